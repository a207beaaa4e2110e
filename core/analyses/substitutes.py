"""Substitution candidates from the classifier's own word embeddings, offline.

HotFlip (Ebrahimi et al. 2018) swaps a token for another from the model's own vocabulary; here the
candidates for a word are the vocabulary words nearest to it by cosine in the classifier's input
embedding matrix (the mean of its word pieces for a word the vocabulary splits). Only whole,
alphabetic vocabulary entries are candidates, so a substitution is always one word. Everything
comes from the model's own files: no word-vector download (TextFooler's counter-fitted GloVe) is
needed.

Limits: input embeddings of a fine-tuned transformer put words that share contexts close, so
candidates include inflections, near-synonyms and some antonyms ("good" near "bad"); the sentence
similarity constraint (`core.analyses.sentence_similarity`) and the model re-check are what make an edit count.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from core.engine.modelling import LoadedModel
from core.words import HAS_HAN, split_words


class Substitutes:
    """Nearest vocabulary words of a word in one model's input embedding space."""

    def __init__(self, loaded: LoadedModel, min_length: int = 2) -> None:
        tokenizer = loaded.tokenizer
        special = set(tokenizer.all_special_tokens)
        vocabulary = tokenizer.get_vocab()
        self._tokenizer = tokenizer
        with torch.no_grad():
            table = loaded.model.get_input_embeddings().weight.detach().float().cpu()
        self._table = table
        characters = [t for t in vocabulary if len(t) == 1 and HAS_HAN.match(t)]
        if len(characters) >= CHINESE_VOCABULARY:
            # A character vocabulary (the Chinese model): candidates are whole words, those of its own training
            # rows as the word layer splits them, each the mean of its characters' embeddings.
            vectors = [(w, v) for w in chinese_candidates(loaded, characters) if (v := self._vector(w)) is not None]
            self.words = [w for w, _ in vectors]
            matrix = np.stack([v for _, v in vectors]) if vectors else np.zeros((0, table.shape[1]))
        else:
            words = sorted((token, index) for token, index in vocabulary.items()
                           if token.isalpha() and token.isascii() and len(token) >= min_length and token not in special)
            self.words = [w for w, _ in words]
            matrix = table[[i for _, i in words]].numpy()
        self._index = {w: i for i, w in enumerate(self.words)}
        self._lowercase = bool(getattr(tokenizer, "do_lower_case", False)) or all(w == w.lower() for w in self.words[:500])
        self._unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self._lock = threading.Lock()
        self._memo: dict[str, list[str]] = {}

    def _vector(self, word: str) -> np.ndarray | None:
        ids = self._tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            return None
        vector = self._table[ids].mean(0).numpy()
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None

    def for_word(self, word: str, n: int) -> list[str]:
        """Up to `n` replacement words for `word`, nearest first, in the word's own capitalisation."""
        if n <= 0 or not word[:1].isalpha():
            return []
        key = word.lower() if self._lowercase else word
        with self._lock:
            if key not in self._memo:
                vector = self._vector(key)
                if vector is None:
                    self._memo[key] = []
                else:
                    similarity = self._unit @ vector
                    order = np.argsort(-similarity)[: 4 * n + 8]
                    # Skip the word itself and its case or plural twins: swapping "movie" for "movies" is no edit.
                    self._memo[key] = [self.words[i] for i in order
                                       if self.words[i].lower() not in {key.lower(), key.lower() + "s"}
                                       and self.words[i].lower() + "s" != key.lower()]
            found = self._memo[key][:n]
        if word.isupper() and len(word) > 1:
            return [w.upper() for w in found]
        if word[:1].isupper():
            return [w[:1].upper() + w[1:] for w in found]
        return found


CHINESE_VOCABULARY = 300  # a vocabulary with at least this many single Han characters reads Chinese by characters
CANDIDATE_WORDS = 5000  # the most frequent multi-character words of the training rows offered as swaps


def chinese_candidates(loaded: LoadedModel, characters: list[str]) -> list[str]:
    """Words a Chinese edit may swap in: the most frequent two-to-four-character words of the model's training rows
    (training.jsonl beside it, as Rashomon's builds save it) that its vocabulary covers; without training rows,
    its single characters."""
    import json
    from collections import Counter

    rows = loaded.directory / "training.jsonl"
    known = set(characters)
    if not rows.exists():
        return sorted(known)
    counts: Counter[str] = Counter()
    for line in rows.read_text(encoding="utf-8").splitlines():
        counts.update(w for w, _, _ in split_words(json.loads(line)["text"])
                      if 2 <= len(w) <= 4 and all(c in known for c in w))
    return [w for w, _ in counts.most_common(CANDIDATE_WORDS)]


_tables: dict[str, Substitutes] = {}
_tables_lock = threading.Lock()


def substitutes_for(loaded: LoadedModel) -> Substitutes:
    """The model's substitution table, built once per model (about a second on the default model)."""
    with _tables_lock:
        if loaded.fingerprint not in _tables:
            if len(_tables) >= 4:
                _tables.pop(next(iter(_tables)))
            _tables[loaded.fingerprint] = Substitutes(loaded)
        return _tables[loaded.fingerprint]
