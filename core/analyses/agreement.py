"""How far explanations agree: the disagreement metrics of Krishna et al. (2022).

"The Disagreement Problem in Explainable Machine Learning: A Practitioner's Perspective".
Top-k metrics rank words by absolute score (importance regardless of direction); signs come in
only where a metric says so. Every metric declares its range and whether higher is better
(after ferret's evaluators), so the UI can label and colour it without special cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

from core.explanation import Explanation


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    range: tuple[float, float]
    higher_is_better: bool
    uses_k: bool
    fn: Callable[[np.ndarray, np.ndarray, int], float]
    help: str


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the k largest |scores|, most important first (ties: earlier word first)."""
    values = np.abs(np.asarray(scores, dtype=float))
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return order[: min(k, len(values))]


def feature_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top-k words that both lists contain."""
    ta, tb = top_k(a, k), top_k(b, k)
    return len(set(ta) & set(tb)) / len(ta) if ta else math.nan


def rank_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of top-k positions holding the same word in both lists."""
    ta, tb = top_k(a, k), top_k(b, k)
    return sum(x == y for x, y in zip(ta, tb, strict=True)) / len(ta) if ta else math.nan


def sign_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top-k words that both lists contain with the same sign."""
    ta, tb = top_k(a, k), top_k(b, k)
    common = set(ta) & set(tb)
    return sum(np.sign(a[i]) == np.sign(b[i]) for i in common) / len(ta) if ta else math.nan


def signed_rank_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of top-k positions holding the same word with the same sign in both lists."""
    ta, tb = top_k(a, k), top_k(b, k)
    same = sum(x == y and np.sign(a[x]) == np.sign(b[y]) for x, y in zip(ta, tb, strict=True))
    return same / len(ta) if ta else math.nan


def _correlation(fn) -> Callable[[np.ndarray, np.ndarray, int], float]:
    def correlate(a: np.ndarray, b: np.ndarray, k: int) -> float:
        if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
            return math.nan  # undefined for constant scores: shown as n/a, never as agreement
        return float(fn(np.abs(a), np.abs(b))[0])
    return correlate


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("feature_agreement", "Feature agreement", (0, 1), True, True, feature_agreement,
           "Share of top-k words both methods pick."),
    Metric("rank_agreement", "Rank agreement", (0, 1), True, True, rank_agreement,
           "Share of top-k positions with the same word."),
    Metric("sign_agreement", "Sign agreement", (0, 1), True, True, sign_agreement,
           "Share of top-k words both pick with the same sign."),
    Metric("signed_rank_agreement", "Signed rank agreement", (0, 1), True, True, signed_rank_agreement,
           "Share of top-k positions with the same word and sign."),
    Metric("spearman", "Spearman rank correlation", (-1, 1), True, False, _correlation(spearmanr),
           "Rank correlation of |score| over all words."),
    Metric("kendall", "Kendall rank correlation", (-1, 1), True, False, _correlation(kendalltau),
           "Kendall's tau of |score| over all words."),
]}


def agreement_matrix(explanations: Sequence[Explanation], metric: str, k: int) -> np.ndarray:
    """Symmetric matrix of `metric` between every pair of explanations (diagonal: self-agreement)."""
    spec = METRICS[metric]
    scores = [np.asarray(e.scores, dtype=float) for e in explanations]
    n = len(scores)
    out = np.full((n, n), math.nan)
    for i in range(n):
        for j in range(i, n):
            out[i, j] = out[j, i] = spec.fn(scores[i], scores[j], k)
    return out


def cluster_order(matrix: np.ndarray) -> list[int]:
    """An order of the methods in which those that agree sit together (average-linkage clustering)."""
    n = len(matrix)
    if n <= 2:
        return list(range(n))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    similarity = np.nan_to_num(matrix, nan=0.0)
    low, high = float(np.nanmin(similarity)), float(np.nanmax(similarity))
    distance = (high - similarity) if high > low else np.zeros_like(similarity)
    np.fill_diagonal(distance, 0.0)
    distance = (distance + distance.T) / 2
    return [int(i) for i in leaves_list(linkage(squareform(distance, checks=False), method="average"))]


def camps(matrix: np.ndarray, names: Sequence[str], threshold: float) -> list[list[str]]:
    """Groups of methods whose pairwise agreement is at least `threshold` (single linkage)."""
    groups: list[set[int]] = [{i} for i in range(len(names))]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                if any(matrix[i, j] >= threshold for i in groups[a] for j in groups[b]):
                    groups[a] |= groups.pop(b)
                    merged = True
                    break
            if merged:
                break
    return [[names[i] for i in sorted(g)] for g in sorted(groups, key=lambda g: (-len(g), min(g)))]


@dataclass(frozen=True)
class HotSpot:
    index: int
    word: str
    sign_conflict: bool
    positive_methods: tuple[str, ...]
    negative_methods: tuple[str, ...]
    rank_spread: int
    dispute: float


def hot_spots(explanations: Sequence[Explanation], k: int, relative_threshold: float = 0.1) -> list[HotSpot]:
    """Words the methods dispute most: sign conflicts among signed methods, and large rank spread.

    A signed method "votes" on a word's direction when |score| is at least `relative_threshold`
    of its largest |score|. Rank spread is the difference between the best and worst rank
    (by |score|) the word gets across all methods. Dispute = spread / n_words, plus 1 for a
    sign conflict, so conflicts come first.
    """
    if not explanations:
        return []
    n = len(explanations[0].words)
    ranks = []
    for e in explanations:
        order = top_k(e.scores, n)
        rank = np.empty(n, dtype=int)
        rank[order] = np.arange(n)
        ranks.append(rank)
    ranks_arr = np.array(ranks)
    spots = []
    for i in range(n):
        positive, negative = [], []
        for e in explanations:
            if not e.signed:
                continue
            scale = max(abs(s) for s in e.scores) or 1.0
            if abs(e.scores[i]) >= relative_threshold * scale:
                (positive if e.scores[i] > 0 else negative).append(e.method)
        in_someones_top = bool((ranks_arr[:, i] < k).any())
        spread = int(ranks_arr[:, i].max() - ranks_arr[:, i].min())
        conflict = bool(positive and negative)
        if conflict or in_someones_top:
            spots.append(HotSpot(i, explanations[0].words[i], conflict, tuple(positive), tuple(negative), spread,
                                 spread / max(1, n) + (1.0 if conflict else 0.0)))
    return sorted(spots, key=lambda s: (-s.dispute, s.index))
