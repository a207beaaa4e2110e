"""Compare's verdict: which account the model supports on this input, and why, from the numbers the view shows.

The ranking orders the methods by how much more their top words move the model than a random ranking's do
(comprehensiveness margin: removing a method's words drops p(target) this much more than removing random ones;
sufficiency margin: keeping only them keeps it this much better), read against the spread of the random
rankings' own results. When no method's margin clears that spread, the erasure test cannot tell the methods
apart on this input and the verdict says so (`undecided`) instead of crowning a winner. The camps, the words
every supported method agrees on, the words in dispute (and who claims them) and the warnings that change the
reading follow. The page, `rashomon compare --json` and the exports carry the same object and the same words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.analyses import agreement, faithfulness
from core.analyses.reports import ComparisonReport

ERASURE = "mask"  # how faithfulness removes a word today: the tokenizer's [MASK] token
NEAR_ZERO = 1e-3  # a method whose largest |score| is below this share of the median method's largest is "near zero"
ATTENTION_STILL = 0.05  # attention interventions that move the prediction less than this (total variation)


def score_scales(comparison) -> tuple[dict[str, float], float]:
    """Each method's largest |score| and the median of them: what near zero is judged against."""
    largest = {e.method: float(np.max(np.abs(e.scores))) if e.scores else 0.0 for e in comparison.explanations}
    return largest, (float(np.median(list(largest.values()))) if largest else 0.0)


def near_zero(size: float, typical: float) -> bool:
    return typical > 0 and size < NEAR_ZERO * typical


@dataclass(frozen=True)
class Ranked:
    method: str
    comprehensiveness_margin: float
    sufficiency_margin: float
    spread: float | None  # the random rankings' spread the margin is read against (None: not recorded)
    # Share of the stored edit search's minimal flipping edits that touch the method's top k, minus what a random
    # ranking's top k gets on the same edits (None: no edit search stored for this input).
    counterfactual_lift: float | None = None

    @property
    def clears(self) -> bool:
        return self.spread is not None and self.comprehensiveness_margin > self.spread


@dataclass(frozen=True)
class Verdict:
    ranking: list[Ranked]
    camps: list[list[str]]
    agreed_words: list[str]
    disputed_words: list[dict[str, Any]]  # {"word", "methods"}
    warnings: list[dict[str, str]]  # {"kind", "method", "text"}
    erasure: str
    undecided: bool
    # The same ranking with the words deleted outright and with a filler word: {erasure: {supported, undecided}}
    by_erasure: dict[str, dict[str, Any]] = field(default_factory=dict)
    sentences: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # per sentence, the page section that proves it

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ranking"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                           for r in data["ranking"]]
        return data


@dataclass(frozen=True)
class Evidence:
    """What other pages stored about this input and model that changes the verdict's reading: stability checks
    (Checks page) and the edit search Compare's "What would flip it?" runs by default."""

    unstable: list[dict[str, Any]] = field(default_factory=list)  # {"method", "text"} from stored stability checks
    counterfactual_lift: dict[str, float] = field(default_factory=dict)  # method -> lift over a random ranking
    counterfactuals: int = 0  # minimal flipping edits the lifts are read from
    edit_target: str = ""  # the label the edit search aimed for


def default_edit_request(probabilities: dict[str, float]) -> dict[str, Any]:
    """The edit search Compare shows by default (and the CLI's `edits` runs): towards the second most probable
    label, the search's own order, its default limits."""
    from core.analyses.edits import OPTIONS, SEARCH

    ranked = sorted(probabilities, key=lambda label: -probabilities[label])
    defaults = {o.name: o.default for o in OPTIONS}
    return {"target": ranked[1] if len(ranked) > 1 else ranked[0], "order": SEARCH,
            "params": {"max_edits": defaults["max_edits"], "similarity": defaults["similarity"]}}


def gather(engine, runner, report: ComparisonReport, k: int, options: dict | None = None) -> Evidence:
    """The stored evidence for one view (no model pass: stability checks and the default edit search, if stored)."""
    import json

    from sqlmodel import col, select

    from core.analyses.checks import STABLE_SPEARMAN, STABLE_TOPK
    from core.analyses.edit_checks import edit_report
    from core.storage.db import session_scope
    from core.storage.schema import CheckRecord

    comparison = report.comparison
    shown = set(comparison.methods)
    unstable: dict[str, dict[str, Any]] = {}
    with session_scope(engine) as session:
        rows = session.exec(select(CheckRecord).where(CheckRecord.kind == "stability",
                                                      CheckRecord.model_fingerprint == runner.loaded.fingerprint)
                            .order_by(col(CheckRecord.id).desc())).all()
        stored = [(row.id, json.loads(row.payload)) for row in rows]
    # A check on this very input first, then the newest over other inputs: each method judged once.
    for check_id, payload in sorted(stored, key=lambda item: comparison.text not in item[1]["texts"]):
        here = comparison.text in payload["texts"]
        scope = "on this input" if here and len(payload["texts"]) == 1 else f"over {len(payload['texts'])} inputs"
        for result in payload["stability"]:
            method = result["method"]
            if method in shown and method not in unstable:
                passed = result["verdict"]["passed"]
                unstable[method] = None if passed else {
                    "method": method,
                    "text": f"{method} disagrees with itself across its own seeds and settings {scope} (Checks, "
                            f"check {check_id}: mean Spearman {result['mean_spearman']:.2f}, top-k agreement "
                            f"{result['mean_topk']:.2f}; stable needs {STABLE_SPEARMAN} and {STABLE_TOPK}): its "
                            "top words here may be one draw among several."}
    evidence = Evidence(unstable=[u for u in unstable.values() if u])
    if len(comparison.probabilities) < 2:
        return evidence
    request = default_edit_request(comparison.probabilities)
    try:
        edits = edit_report(engine, runner, comparison.text, list(comparison.methods), only_stored=True,
                            options=options or {}, k=k, **request)
    except Exception:  # noqa: BLE001 - a stored search that cannot be read is no evidence, not a broken verdict
        edits = None
    if edits is None or not edits.agreement:
        return evidence
    return Evidence(evidence.unstable, {a.method: a.lift for a in edits.agreement},
                    max(a.counterfactuals for a in edits.agreement), request["target"])


def rank(rows: Sequence[faithfulness.Faithfulness]) -> list[Ranked]:
    """The methods of one faithfulness table by their margins over its random ranking (best first)."""
    random_ref = next((f for f in rows if f.method == faithfulness.RANDOM_NAME), None)
    if random_ref is None:
        return []
    spread = random_ref.comprehensiveness_spread
    return sorted((Ranked(f.method, f.aopc_comprehensiveness - random_ref.aopc_comprehensiveness,
                          random_ref.aopc_sufficiency - f.aopc_sufficiency, spread)
                   for f in rows if f.method != faithfulness.RANDOM_NAME),
                  key=lambda r: (-r.comprehensiveness_margin, -r.sufficiency_margin))


def decide(report: ComparisonReport, k: int, camp_threshold: float = 0.5,
           evidence: Evidence | None = None) -> Verdict | None:
    """The verdict of a measured view (None before its faithfulness is measured); `evidence`: what stability checks
    and the stored edit search add (`gather`)."""
    comparison = report.comparison
    evidence = evidence or Evidence()
    ranking = [replace(r, counterfactual_lift=evidence.counterfactual_lift.get(r.method))
               for r in rank(report.faithfulness)]
    if not report.measured or not ranking:
        return None
    by_erasure = {}
    for erasure, rows in report.other_erasures.items():
        other = rank(rows)
        by_erasure[erasure] = {"supported": [r.method for r in other if r.clears],
                               "undecided": not any(r.clears for r in other)}
    supported = [r.method for r in ranking if r.clears]
    undecided = not supported

    fa = agreement.agreement_matrix(comparison.explanations, "feature_agreement", k)
    camps = agreement.camps(fa, comparison.methods, camp_threshold)
    tops = {e.method: [e.words[i] for i in agreement.top_k(e.scores, k)] for e in comparison.explanations}
    claimed: dict[str, list[str]] = {}
    for method, words in tops.items():
        for word in dict.fromkeys(words):
            claimed.setdefault(word, []).append(method)
    agreed = ([w for w in claimed if all(m in claimed[w] for m in supported)] if supported else [])
    disputed = [{"word": w, "methods": ms} for w, ms in claimed.items()
                if w not in agreed and len(ms) <= len(tops) / 2]

    warnings = []
    for r in ranking:
        if r.comprehensiveness_margin <= 0:
            warnings.append({"kind": "no_better_than_random", "method": r.method,
                             "text": f"{r.method}'s top words move the model no more than random words do here "
                                     f"(comprehensiveness margin {r.comprehensiveness_margin:+.3f})."})
    largest, typical = score_scales(comparison)
    for method, size in largest.items():
        if near_zero(size, typical):
            warnings.append({"kind": "near_zero", "method": method,
                             "text": f"{method}'s scores are all near zero (largest |score| {size:.2g} against a "
                                     f"median method's {typical:.2g}): its colours are stretched from almost "
                                     "nothing, so read it as no evidence, not as evidence of nothing."})
    warnings += [{"kind": "unstable", **u} for u in evidence.unstable]
    attention = [m for m in comparison.methods if m.startswith("attention")]
    if attention and report.interventions:
        moved = max(i.total_variation for i in report.interventions)
        if moved < ATTENTION_STILL:
            warnings.append({"kind": "attention_intervention", "method": ", ".join(attention),
                             "text": f"Replacing attention moves the prediction by at most {moved:.3f} (total "
                                     "variation): the model does not depend on these attention weights here, so "
                                     "the attention methods describe something it can do without."})

    verdict = Verdict(ranking, camps, agreed, disputed, warnings, ERASURE, undecided, by_erasure)
    said = sentences(verdict, comparison.target, k, evidence)
    return Verdict(**{**asdict(verdict), "ranking": ranking, "sentences": [text for text, _ in said],
                      "sections": [section for _, section in said]})


SECTION = {"no_better_than_random": "faithfulness", "near_zero": "side-by-side", "attention_intervention": "attention",
           "unstable": "checks"}


def sentences(verdict: Verdict, target: str, k: int, evidence: Evidence | None = None) -> list[tuple[str, str]]:
    """The verdict in words (plain text; a page escapes it), each with the section of the page that proves it."""
    lines: list[tuple[str, str]] = []
    spread = verdict.ranking[0].spread if verdict.ranking else None
    if spread is None:
        lines.append(("This view was stored before the random rankings' spread was recorded: recompute it for a "
                      "verdict.", "faithfulness"))
    elif verdict.undecided:
        best = verdict.ranking[0]
        lines.append((f"Undecided: no method's top words move p({target}) by more than random words do beyond the "
                      f"random rankings' own spread ({spread:.3f}; best: {best.method}, margin "
                      f"{best.comprehensiveness_margin:+.3f}). Erasure by [{verdict.erasure}] cannot tell the "
                      "methods apart on this input.", "faithfulness"))
    else:
        supported = [r for r in verdict.ranking if r.clears]
        lines.append((f"The model supports {', '.join(r.method for r in supported[:4])}"
                      f"{' and others' if len(supported) > 4 else ''} most: removing their top {k} words drops "
                      f"p({target}) by {', '.join(f'{r.comprehensiveness_margin:+.3f}' for r in supported[:4])} more "
                      f"than removing random words (random rankings' spread {spread:.3f}; erasure by "
                      f"[{verdict.erasure}]).", "faithfulness"))
    named = {"delete": "with the words deleted instead of masked", "filler": "with a filler word instead"}
    for erasure, outcome in verdict.by_erasure.items():
        lines.append((f"{named.get(erasure, erasure).capitalize()}: " + (
            "undecided." if outcome["undecided"] else
            f"supports {', '.join(outcome['supported'][:4])}{' and others' if len(outcome['supported']) > 4 else ''}."),
            "faithfulness"))
    if evidence is not None and evidence.counterfactual_lift:
        lifts = sorted(evidence.counterfactual_lift.items(), key=lambda item: -item[1])
        best, lift = lifts[0]
        lines.append((f"The stored edit search towards {evidence.edit_target} ({evidence.counterfactuals} minimal "
                      f"flipping edit(s)) touches {best}'s top {k} words most ({lift:+.2f} over a random ranking)"
                      + ("" if len(lifts) < 2 else f"; {lifts[-1][0]}'s least ({lifts[-1][1]:+.2f})") + ".", "edits"))
    if len(verdict.camps) > 1:
        lines.append((f"{len(verdict.camps)} camps: " + "; ".join(", ".join(c) for c in verdict.camps) + ".",
                      "agreement"))
    if verdict.agreed_words:
        lines.append(("Every supported method puts " + ", ".join(f"“{w}”" for w in verdict.agreed_words[:6])
                      + f" in its top {k}.", "side-by-side"))
    if verdict.disputed_words:
        lines.append(("In dispute: " + "; ".join(f"“{d['word']}” ({', '.join(d['methods'])})"
                                                for d in verdict.disputed_words[:5]) + ".", "side-by-side"))
    lines += [(w["text"], SECTION[w["kind"]]) for w in verdict.warnings]
    return lines
