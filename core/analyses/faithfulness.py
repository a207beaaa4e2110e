"""Which account does the model itself support? Erasure-based faithfulness.

ERASER (DeYoung et al., 2020): for each method, rank words by the support it says they give the
target (signed methods: descending score, so words said to speak *against* the target come last;
unsigned methods: descending magnitude), then
- comprehensiveness(k) = p(x) - p(x without its top-k% words)   (higher is better),
- sufficiency(k)       = p(x) - p(only its top-k% words)        (lower is better),
each averaged over k in 1, 5, 10, 20, 50% (AOPC). Removed words are replaced by the tokenizer's
mask token, one per word piece, so positions and length stay as they were.
Deletion and insertion curves (Petsiuk et al., 2018) mask or reveal words in rank order.
A random ranking, averaged over seeds, is the reference line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.engine.runner import ModelRunner, PreparedText
from core.explanation import Explanation, token_word_matrix

ERASER_FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.50)
CURVE_POINTS = 11
RANDOM_NAME = "random"
RANDOM_SEEDS = 5  # random rankings averaged into the reference line
# How a word is removed: replaced by the tokenizer's [MASK] token (the default), deleted outright (the input
# shortens), or replaced by a neutral filler word; the last two stay closer to what the model was trained on.
ERASURES = ("mask", "delete", "filler")
FILLER_WORD = "the"


@dataclass(frozen=True)
class Faithfulness:
    method: str
    comprehensiveness: dict[float, float]
    sufficiency: dict[float, float]
    deletion: list[tuple[float, float]]  # (fraction of words removed, p(target))
    insertion: list[tuple[float, float]]  # (fraction of words revealed, p(target))
    # The random ranking's only: the standard deviation of the AOPCs over its draws (None: not recorded, a view
    # stored before it was), the yardstick a method's margin over random is read against.
    comprehensiveness_spread: float | None = None
    sufficiency_spread: float | None = None
    erasure: str = "mask"  # how the words were removed (ERASURES)
    # The random ranking's only: at each curve point, the lowest and highest p(target) of its draws (the band a
    # method's curve is read against; empty for views stored before it was recorded).
    deletion_band: list[tuple[float, float]] = field(default_factory=list)
    insertion_band: list[tuple[float, float]] = field(default_factory=list)
    aopc_comprehensiveness: float = field(init=False)
    aopc_sufficiency: float = field(init=False)
    deletion_auc: float = field(init=False)
    insertion_auc: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "aopc_comprehensiveness", float(np.mean(list(self.comprehensiveness.values()))))
        object.__setattr__(self, "aopc_sufficiency", float(np.mean(list(self.sufficiency.values()))))
        object.__setattr__(self, "deletion_auc", _auc(self.deletion))
        object.__setattr__(self, "insertion_auc", _auc(self.insertion))

    @property
    def comprehensiveness_interval(self) -> tuple[float, float]:
        """90% bootstrap interval of the AOPC over the removal fractions: how much the score depends on
        which fractions are averaged, the uncertainty a single input offers."""
        return fraction_interval(list(self.comprehensiveness.values()))

    @property
    def sufficiency_interval(self) -> tuple[float, float]:
        return fraction_interval(list(self.sufficiency.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method,
                "comprehensiveness": {str(k): v for k, v in self.comprehensiveness.items()},
                "sufficiency": {str(k): v for k, v in self.sufficiency.items()},
                "deletion": [list(p) for p in self.deletion], "insertion": [list(p) for p in self.insertion],
                "aopc_comprehensiveness": self.aopc_comprehensiveness, "aopc_sufficiency": self.aopc_sufficiency,
                "deletion_auc": self.deletion_auc, "insertion_auc": self.insertion_auc, "erasure": self.erasure,
                **({"comprehensiveness_spread": self.comprehensiveness_spread,
                    "sufficiency_spread": self.sufficiency_spread} if self.comprehensiveness_spread is not None else {}),
                **({"deletion_band": [list(b) for b in self.deletion_band],
                    "insertion_band": [list(b) for b in self.insertion_band]} if self.deletion_band else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faithfulness:
        return cls(data["method"], {float(k): float(v) for k, v in data["comprehensiveness"].items()},
                   {float(k): float(v) for k, v in data["sufficiency"].items()},
                   [(float(x), float(y)) for x, y in data["deletion"]],
                   [(float(x), float(y)) for x, y in data["insertion"]],
                   data.get("comprehensiveness_spread"), data.get("sufficiency_spread"), data.get("erasure", "mask"),
                   [(float(lo), float(hi)) for lo, hi in data.get("deletion_band", [])],
                   [(float(lo), float(hi)) for lo, hi in data.get("insertion_band", [])])


def _band(curves: Sequence[Sequence[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Per curve point, the lowest and highest p(target) over the random draws' curves."""
    return [(min(c[i][1] for c in curves), max(c[i][1] for c in curves)) for i in range(len(curves[0]))]


def fraction_interval(values: Sequence[float], *, samples: int = 2000, seed: int = 0,
                      level: float = 0.9) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (one per ERASER fraction)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        value = float(data[0]) if len(data) else math.nan
        return value, value
    means = np.random.default_rng(seed).choice(data, size=(samples, len(data)), replace=True).mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _auc(curve: Sequence[tuple[float, float]]) -> float:
    if not curve:
        return math.nan
    xs, ys = zip(*curve, strict=True)
    return float(np.trapezoid(ys, xs))


def support_ranking(explanation: Explanation) -> list[int]:
    scores = np.asarray(explanation.scores, dtype=float)
    key = -scores if explanation.signed else -np.abs(scores)
    return sorted(range(len(scores)), key=lambda i: (key[i], i))


def how_many(fraction: float, n_words: int) -> int:
    """Words in the top `fraction`: at least one, rounding up (1% of 30 words is 1 word)."""
    return min(n_words, max(1, math.ceil(fraction * n_words)))


class Eraser:
    """Masks sets of words of one prepared input and reads the target probability."""

    def __init__(self, runner: ModelRunner, prepared: PreparedText, target: int, erasure: str = "mask") -> None:
        if erasure not in ERASURES:
            raise ValueError(f"Unknown erasure {erasure!r}; one of {', '.join(ERASURES)}.")
        self.runner, self.prepared, self.target, self.erasure = runner, prepared, target, erasure
        filler = runner.tokenizer.convert_tokens_to_ids(FILLER_WORD) if erasure == "filler" else None
        self.replacement = runner.mask_id if filler in (None, runner.tokenizer.unk_token_id) else filler
        matrix = token_word_matrix(prepared.token_offsets, [(s, e) for _, s, e in prepared.words], len(prepared.text))
        self.tokens_of_word = [np.nonzero(matrix[:, w])[0].tolist() for w in range(matrix.shape[1])]
        self.n_words = len(prepared.words)

    def ids_without(self, words: Sequence[int]) -> list[int]:
        ids = list(self.prepared.input_ids)
        removed = {t for w in words for t in self.tokens_of_word[w]}
        if self.erasure == "delete":
            return [token for i, token in enumerate(ids) if i not in removed]
        for t in removed:
            ids[t] = self.replacement
        return ids

    def probabilities(self, removed_sets: Sequence[Sequence[int]]) -> np.ndarray:
        rows = [self.ids_without(words) for words in removed_sets]
        return self.runner.probabilities(rows)[:, self.target]


def evaluate(runner: ModelRunner, explanations: Sequence[Explanation], *, random_seeds: int = RANDOM_SEEDS,
             fractions: Sequence[float] = ERASER_FRACTIONS, curve_points: int = CURVE_POINTS,
             erasure: str = "mask") -> list[Faithfulness]:
    """Faithfulness of each explanation, plus a random-ranking reference named 'random' (last), removing words
    by `erasure` (ERASURES)."""
    if not explanations:
        return []
    first = explanations[0]
    prepared = runner.prepare(first.text)
    target = runner.loaded.labels.index(first.target)
    eraser = Eraser(runner, prepared, target, erasure)
    n = eraser.n_words
    rankings = {e.method: support_ranking(e) for e in explanations}
    rng = np.random.default_rng(0)
    random_rankings = [list(rng.permutation(n)) for _ in range(random_seeds)]
    # curve_points=0 skips the curves (corpus runs keep only the AOPC scores)
    steps = sorted({round(i * n / (curve_points - 1)) for i in range(curve_points)}) if curve_points > 1 else []

    def sets_of(ranking: Sequence[int]) -> list[list[int]]:
        return ([ranking[: how_many(f, n)] for f in fractions] + [ranking[how_many(f, n):] for f in fractions]
                + [ranking[:s] for s in steps] + [ranking[s:] for s in steps])

    def read(probs: np.ndarray, full: float) -> tuple[dict, dict, list, list]:
        comp = probs[: len(fractions)]
        suff = probs[len(fractions): 2 * len(fractions)]
        dele = probs[2 * len(fractions): 2 * len(fractions) + len(steps)]
        ins = probs[2 * len(fractions) + len(steps):]
        return ({f: float(full - p) for f, p in zip(fractions, comp, strict=True)},
                {f: float(full - p) for f, p in zip(fractions, suff, strict=True)},
                [(s / n, float(p)) for s, p in zip(steps, dele, strict=True)],
                [(s / n, float(p)) for s, p in zip(steps, ins, strict=True)])

    # One call for every ranking: the runner fills whole batches and masks shared by two rankings run once.
    all_rankings = list(rankings.values()) + random_rankings
    per_ranking = 2 * len(fractions) + 2 * len(steps)
    probs = eraser.probabilities([[]] + [s for r in all_rankings for s in sets_of(r)])
    full = probs[0]
    measured = [read(probs[1 + i * per_ranking: 1 + (i + 1) * per_ranking], full) for i in range(len(all_rankings))]
    results = [Faithfulness(method, *m, erasure=erasure)
               for method, m in zip(rankings, measured[: len(rankings)], strict=True)]
    randoms = measured[len(rankings):]
    results.append(Faithfulness(
        RANDOM_NAME,
        {f: float(np.mean([r[0][f] for r in randoms])) for f in fractions},
        {f: float(np.mean([r[1][f] for r in randoms])) for f in fractions},
        [(x, float(np.mean([r[2][i][1] for r in randoms]))) for i, (x, _) in enumerate(randoms[0][2])],
        [(x, float(np.mean([r[3][i][1] for r in randoms]))) for i, (x, _) in enumerate(randoms[0][3])],
        float(np.std([np.mean(list(r[0].values())) for r in randoms], ddof=1)) if len(randoms) > 1 else None,
        float(np.std([np.mean(list(r[1].values())) for r in randoms], ddof=1)) if len(randoms) > 1 else None,
        erasure=erasure,
        deletion_band=_band([r[2] for r in randoms]),
        insertion_band=_band([r[3] for r in randoms]),
    ))
    return results
