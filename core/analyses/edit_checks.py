"""Edits as evidence: do the methods' top words control the decision, and do the methods' answers survive
edits that change nothing?

- **Counterfactual agreement**: for each word-level method, the share of minimal flipping edits (the
  counterfactuals of `core.analyses.edits`, found by the search's own ranking so that no method is
  favoured) that touch at least one of the method's top-k words, next to the share a random ranking
  would get (exact: 1 - C(n - e, k) / C(n, k) for e edited words of n).
- **Explanation fragility** (Ghorbani et al. 2019, "Interpretation of Neural Networks is Fragile"):
  for meaning-preserving swaps that keep the prediction (edits the search evaluated and kept: similarity
  above the bound, same label), how much each method's top-k changes (top-k intersection, Spearman over
  the words; a swap keeps the word count, so positions line up).

Searches are stored (`CheckRecord`, kind "counterfactual"), so a page reload or a repeated CLI call
costs no model work.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.analyses import agreement
from core.analyses.edits import (
    SEARCH,
    SearchProgress,
    SearchResult,
    Variant,
    random_touch_share,
    search,
)
from core.analyses.reports import explain_all, view_requests
from core.analyses.store import explain_stored
from core.engine.runner import ModelRunner
from core.explanation import Explanation
from core.methods.base import ExplainError
from core.storage.records import find_keyed, keyed_record_id, save_keyed
from core.storage.schema import sample_now
from core.words import keyed_text

KIND = "counterfactual"


@dataclass(frozen=True)
class EditAgreement:
    method: str
    share: float  # share of counterfactuals whose edits touch the method's top-k words
    random_share: float  # what a random ranking's top-k would get on the same counterfactuals
    counterfactuals: int
    k: int

    @property
    def lift(self) -> float:
        return self.share - self.random_share


@dataclass(frozen=True)
class Fragility:
    method: str
    top_k_intersection: float  # mean over variants: share of the top-k words still in the top-k
    spearman: float  # mean over variants: rank correlation of |score| over the words (nan if undefined)
    variants: int
    k: int


def counterfactual_agreement(result: SearchResult, explanations: Sequence[Explanation], k: int) -> list[EditAgreement]:
    """Per method: how often the counterfactuals edit one of its top-k words, and a random ranking's share."""
    if not result.counterfactuals:
        return []
    n = len(result.words)
    random_share = float(np.mean([random_touch_share(n, len(c.positions), k) for c in result.counterfactuals]))
    rows = []
    for explanation in explanations:
        if len(explanation.words) != n:
            raise ExplainError(f"{explanation.method} explains {len(explanation.words)} words, the search edited "
                               f"a text of {n}: they must explain the same text.")
        top = set(agreement.top_k(explanation.scores, k))
        share = float(np.mean([bool(c.positions & top) for c in result.counterfactuals]))
        rows.append(EditAgreement(explanation.method, share, random_share, len(result.counterfactuals), k))
    return rows


def fragility_variants(result: SearchResult, count: int = 2) -> list[Variant]:
    """The kept swaps closest to the original text, fewest edits first."""
    return sorted(result.kept, key=lambda v: (len(v.edits), -v.similarity))[:count]


def fragility(original: Sequence[Explanation], edited: Sequence[Sequence[Explanation]], k: int) -> list[Fragility]:
    """Per method, how much its answer moves from the original text to each edited one (same word count)."""
    spearman = agreement.METRICS["spearman"].fn
    rows = []
    for i, base in enumerate(original):
        kept, correlations = [], []
        for variant in edited:
            other = variant[i]
            if other.method != base.method or len(other.scores) != len(base.scores):
                raise ExplainError("Fragility compares the same method on texts with the same number of words.")
            a, b = np.asarray(base.scores, dtype=float), np.asarray(other.scores, dtype=float)
            kept.append(agreement.feature_agreement(a, b, k))
            correlations.append(spearman(a, b, k))
        finite = [c for c in correlations if not math.isnan(c)]
        rows.append(Fragility(base.method, float(np.mean(kept)) if kept else math.nan,
                              float(np.mean(finite)) if finite else math.nan, len(edited), k))
    return rows


# -- stored searches ---------------------------------------------------------------------------------------
def _search_key(runner: ModelRunner, text: str, target: str | None, order: str, params: dict[str, Any]) -> str:
    data = [runner.loaded.fingerprint, keyed_text(runner.prepare(text).text), target or "", order,
            sorted((params or {}).items())]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()


def stored_search(engine: Engine, runner: ModelRunner, text: str, target: str | None = None, *,
                  order: str = SEARCH, params: dict[str, Any] | None = None, fresh: bool = False,
                  only_stored: bool = False, progress: SearchProgress | None = None) -> tuple[SearchResult | None, bool]:
    """(result, whether it came from the store). With `order` a method name, the positions follow that
    method's word scores for the predicted label (itself explained through the store)."""
    from core.analyses.edits import resolve_options

    resolved = resolve_options(params)
    key = _search_key(runner, text, target, order, resolved)
    if not fresh and (stored := find_keyed(engine, KIND, runner.loaded.fingerprint, key)) is not None:
        return SearchResult.from_dict(stored), True
    if only_stored:
        return None, False
    scores = None
    if order != SEARCH:
        scores = explain_stored(engine, runner, text, order).explanation.scores
    result = replace(search(runner, text, target, order=order, ranking_scores=scores, params=resolved, progress=progress),
                     sample=sample_now())
    save_keyed(engine, KIND, runner.loaded.name, runner.loaded.fingerprint, key, result.to_dict())
    return result, False


def search_record_id(engine: Engine, runner: ModelRunner, text: str, target: str | None = None, *,
                     order: str = SEARCH, params: dict[str, Any] | None = None) -> int | None:
    """The id of the stored search for these settings (what a note on one of its counterfactuals names), or None."""
    from core.analyses.edits import resolve_options

    key = _search_key(runner, text, target, order, resolve_options(params))
    return keyed_record_id(engine, KIND, runner.loaded.fingerprint, key)


@dataclass(frozen=True)
class EditReport:
    """A search with the evidence it gives about the methods (what the page, the CLI and corpus runs show)."""

    search: SearchResult
    from_store: bool
    agreement: list[EditAgreement]
    fragility: list[Fragility]
    variants: list[str]  # the edited texts fragility was measured on
    k: int

    def to_dict(self) -> dict[str, Any]:
        return {"search": self.search.to_dict(), "from_store": self.from_store, "k": self.k,
                "counterfactual_agreement": [{**asdict(a), "lift": a.lift} for a in self.agreement],
                "fragility": [asdict(f) for f in self.fragility], "fragility_texts": self.variants}


def edit_report(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str], *, target: str | None = None,
                order: str = SEARCH, params: dict[str, Any] | None = None, options: dict[str, dict] | None = None,
                k: int = 5, fragility_count: int = 2, fresh: bool = False, only_stored: bool = False,
                progress: SearchProgress | None = None) -> EditReport | None:
    """Search (stored), then the methods' counterfactual agreement and fragility (explanations through the
    store, for the predicted label). With `only_stored`, None unless the search is stored."""
    result, from_store = stored_search(engine, runner, text, target, order=order, params=params, fresh=fresh,
                                       only_stored=only_stored, progress=progress)
    if result is None:
        return None
    if not methods:
        return EditReport(result, from_store, [], [], [], k)
    original = explain_all(engine, runner, view_requests(runner, result.text, methods, options)).explanations
    rows = counterfactual_agreement(result, original, k)
    variants = fragility_variants(result, fragility_count)
    edited = [explain_all(engine, runner, view_requests(runner, v.text, methods, options)).explanations
              for v in variants]
    frail = fragility(original, edited, k) if edited else []
    return EditReport(result, from_store, rows, frail, [v.text for v in variants], k)
