"""A corpus run in aggregate: agreement distributions, faithfulness leaderboard, disputes, cost, exports.

Every function reads the job's finished items (typed `ItemResult`s) and returns typed rows.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import Engine

from core.analyses.corpus.jobs import items_of, require_job
from core.analyses.corpus.results import Item
from core.analyses.faithfulness import RANDOM_NAME
from core.spreadsheet import SafeWriter


@dataclass(frozen=True)
class AgreementRow:
    item: int
    pair: str
    metric: str
    value: float
    label: str


@dataclass(frozen=True)
class LeaderboardRow:
    method: str
    comprehensiveness: float
    comp_low: float
    comp_high: float
    sufficiency: float
    suff_low: float
    suff_high: float
    inputs: int


@dataclass(frozen=True)
class DisputedInput:
    position: int
    origin: str
    text: str
    mean_spearman: float
    label: str


@dataclass(frozen=True)
class CostRow:
    method: str
    inputs: int
    mean_seconds: float
    total_seconds: float
    mean_forward_passes: float
    reused: int


@dataclass(frozen=True)
class CompletenessGap:
    method: str
    inputs: int
    median: float
    p90: float
    max: float


@dataclass(frozen=True)
class LabelRow:
    label: str
    inputs: int
    mean_spearman: float
    mean_comprehensiveness: float


def bootstrap_interval(values: Sequence[float | None], *, samples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    if len(data) == 1:
        return float(data[0]), float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = rng.choice(data, size=(samples, len(data)), replace=True).mean(axis=1)
    tail = (1 - level) / 2
    return float(data.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _done(engine: Engine, job_id: int) -> list[Item]:
    return items_of(engine, job_id, "done")


def agreement_rows(engine: Engine, job_id: int) -> list[AgreementRow]:
    """Long-form rows (pair, metric, value, label) for distribution plots."""
    rows = []
    for item in _done(engine, job_id):
        for pair, values in item.result.pairs.items():
            for metric, value in asdict(values).items():
                if value is not None:
                    rows.append(AgreementRow(item.position, pair, metric, value, item.predicted_label))
    return rows


def leaderboard(engine: Engine, job_id: int) -> list[LeaderboardRow]:
    """Mean comprehensiveness and sufficiency per method with bootstrap 95% intervals."""
    by_method: dict[str, tuple[list[float], list[float]]] = {}
    for item in _done(engine, job_id):
        for method, scores in item.result.faithfulness.items():
            comp, suff = by_method.setdefault(method, ([], []))
            comp.append(scores.comprehensiveness)
            suff.append(scores.sufficiency)
    rows = [LeaderboardRow(method, *bootstrap_interval(comp), *bootstrap_interval(suff), len(comp))
            for method, (comp, suff) in by_method.items()]
    return sorted(rows, key=lambda r: -r.comprehensiveness)


def most_disputed(engine: Engine, job_id: int, n: int = 10) -> list[DisputedInput]:
    """Inputs with the lowest mean pairwise Spearman correlation between methods."""
    rows = []
    for item in _done(engine, job_id):
        values = [v.spearman for v in item.result.pairs.values() if v.spearman is not None]
        if values:
            rows.append(DisputedInput(item.position, item.origin, item.text, float(np.mean(values)),
                                      item.predicted_label))
    return sorted(rows, key=lambda r: r.mean_spearman)[:n]


def cost_rows(engine: Engine, job_id: int) -> list[CostRow]:
    """What each method cost over the run: seconds and forward passes per input (as first computed,
    for results reused from the store), and how many inputs reused a stored result."""
    by_method: dict[str, dict[str, list]] = {}
    for item in _done(engine, job_id):
        result = item.result
        for method, seconds in result.seconds.items():
            m = by_method.setdefault(method, {"seconds": [], "passes": [], "reused": []})
            m["seconds"].append(seconds)
            m["passes"].append(result.forward_passes.get(method, math.nan))
            m["reused"].append(result.reused.get(method, False))
    return [CostRow(method, len(m["seconds"]), float(np.mean(m["seconds"])), float(np.sum(m["seconds"])),
                    float(np.mean(m["passes"])), int(sum(m["reused"])))
            for method, m in by_method.items()]


def completeness_gaps(engine: Engine, job_id: int) -> list[CompletenessGap]:
    """The completeness gap |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)| over the
    run's inputs: median, 90th percentile and maximum, per method that reports one."""
    gaps: dict[str, list[float]] = {}
    for item in _done(engine, job_id):
        for method, gap in item.result.completeness_gap.items():
            gaps.setdefault(method, []).append(gap)
    return [CompletenessGap(method, len(values), float(np.median(values)), float(np.percentile(values, 90)),
                            float(np.max(values))) for method, values in gaps.items()]


def per_label(engine: Engine, job_id: int) -> list[LabelRow]:
    """Mean pairwise Spearman and mean comprehensiveness, per predicted label."""
    groups: dict[str, dict] = {}
    for item in _done(engine, job_id):
        g = groups.setdefault(item.predicted_label, {"inputs": 0, "spearman": [], "comprehensiveness": []})
        g["inputs"] += 1
        g["spearman"] += [v.spearman for v in item.result.pairs.values() if v.spearman is not None]
        g["comprehensiveness"] += [v.comprehensiveness for m, v in item.result.faithfulness.items()
                                   if m != RANDOM_NAME]
    return [LabelRow(label, g["inputs"],
                     float(np.mean(g["spearman"])) if g["spearman"] else math.nan,
                     float(np.mean(g["comprehensiveness"])) if g["comprehensiveness"] else math.nan)
            for label, g in sorted(groups.items())]


@dataclass(frozen=True)
class AttackRow:
    """Attack results over inputs with one predicted label (or "all")."""

    label: str
    inputs: int
    successes: int
    success_rate: float
    rate_low: float
    rate_high: float
    mean_words_changed: float  # over successes
    mean_share_changed: float  # words changed / words in the input, over successes
    mean_queries: float  # per attacked input
    queries_per_success: float  # all queries spent / successes


@dataclass(frozen=True)
class EditAgreementRow:
    method: str
    inputs: int  # inputs with at least one counterfactual
    share: float
    share_low: float
    share_high: float
    random_share: float
    lift: float  # share - random share, mean over inputs
    lift_low: float
    lift_high: float


@dataclass(frozen=True)
class FragilityRow:
    method: str
    inputs: int
    top_k_kept: float
    kept_low: float
    kept_high: float
    spearman: float
    spearman_low: float
    spearman_high: float


def _edited(engine: Engine, job_id: int) -> list[Item]:
    return [item for item in _done(engine, job_id) if item.result.edits is not None]


def attack_rows(engine: Engine, job_id: int) -> list[AttackRow]:
    """Success rate (with a 95% bootstrap interval), words changed and queries, per predicted label and overall."""
    groups: dict[str, list[Item]] = {}
    for item in _edited(engine, job_id):
        groups.setdefault(item.predicted_label, []).append(item)
        groups.setdefault("all", []).append(item)
    rows = []
    for label, items in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        scores = [item.result.edits for item in items]
        wins = [e for e in scores if e.success]
        rate, low, high = bootstrap_interval([float(e.success) for e in scores])
        queries = sum(e.queries for e in scores)
        rows.append(AttackRow(
            label, len(scores), len(wins), rate, low, high,
            float(np.mean([e.words_changed for e in wins])) if wins else math.nan,
            float(np.mean([e.words_changed / e.words for e in wins])) if wins else math.nan,
            float(queries / len(scores)), float(queries / len(wins)) if wins else math.nan))
    return rows


def edit_agreement_rows(engine: Engine, job_id: int) -> list[EditAgreementRow]:
    """Per method: mean share of flipping edits touching its top-k words, and its lift over a random ranking
    on the same edits (paired per input), with 95% bootstrap intervals; inputs without a flip are left out."""
    shares: dict[str, list[float]] = {}
    lifts: dict[str, list[float]] = {}
    chance: dict[str, list[float]] = {}
    for item in _edited(engine, job_id):
        edits = item.result.edits
        if not edits.counterfactuals or edits.random_share is None:
            continue
        for method, share in edits.agreement.items():
            shares.setdefault(method, []).append(share)
            lifts.setdefault(method, []).append(share - edits.random_share)
            chance.setdefault(method, []).append(edits.random_share)
    rows = [EditAgreementRow(method, len(values), *bootstrap_interval(values), float(np.mean(chance[method])),
                             *bootstrap_interval(lifts[method])) for method, values in shares.items()]
    return sorted(rows, key=lambda r: -r.lift)


def fragility_rows(engine: Engine, job_id: int) -> list[FragilityRow]:
    """Per method: mean top-k kept and Spearman under meaning-preserving swaps that keep the prediction
    (lower = more fragile), with 95% bootstrap intervals."""
    kept: dict[str, list[float | None]] = {}
    correlation: dict[str, list[float | None]] = {}
    for item in _edited(engine, job_id):
        for method, (top_k, spearman) in item.result.edits.fragility.items():
            kept.setdefault(method, []).append(top_k)
            correlation.setdefault(method, []).append(spearman)
    rows = [FragilityRow(method, sum(v is not None for v in values), *bootstrap_interval(values),
                         *bootstrap_interval(correlation[method])) for method, values in kept.items()]
    return sorted(rows, key=lambda r: r.top_k_kept)


def export_json(engine: Engine, job_id: int) -> str:
    job = require_job(engine, job_id)
    return json.dumps({
        "job": job.to_dict(),
        "items": [item.to_dict() for item in items_of(engine, job_id)],
        "leaderboard": [asdict(r) for r in leaderboard(engine, job_id)],
        "per_label": [asdict(r) for r in per_label(engine, job_id)],
        "attack": [asdict(r) for r in attack_rows(engine, job_id)],
        "counterfactual_agreement": [asdict(r) for r in edit_agreement_rows(engine, job_id)],
        "fragility": [asdict(r) for r in fragility_rows(engine, job_id)],
    }, indent=2, ensure_ascii=False)


def export_csv(engine: Engine, job_id: int) -> str:
    require_job(engine, job_id)
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["position", "origin", "predicted_label", "pair", "metric", "value"])
    for item in _done(engine, job_id):
        for pair, values in item.result.pairs.items():
            for metric, value in asdict(values).items():
                writer.writerow([item.position, item.origin, item.predicted_label, pair, metric, value])
    return buffer.getvalue()
