"""What one Compare view shows, derived from a stored report: view state, agreement, summary, exports, demos.

The Compare page and `rashomon compare` both open or run a `core.analyses.reports.ComparisonReport` and
read everything below from it, so the two show the same numbers for the same view.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlmodel import col, select

from core.analyses import agreement, faithfulness
from core.analyses.edit_checks import EditReport
from core.analyses.granularity import DEFAULT_LEVEL, LEVELS
from core.analyses.passages import PassageChoice
from core.analyses.reports import Comparison, ComparisonReport
from core.analyses.verdict import Evidence, decide, near_zero, score_scales
from core.engine.catalogue import model_choices
from core.methods.base import ExplainError
from core.methods.registry import METHODS
from core.params import Param, read_query
from core.render import GridRow, md
from core.spreadsheet import SafeWriter
from core.storage.db import session_scope
from core.storage.schema import Demo

DEFAULT_K = 5
MAX_K = 20  # the Compare page's k slider goes up to this


@dataclass
class ViewState:
    """Everything that defines a comparison view; mirrored into the page's query parameters."""

    snapshot: int | None = None
    text: str = ""
    passage: PassageChoice = field(default_factory=PassageChoice)
    model: str = ""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    target: str = ""
    k: int = DEFAULT_K
    # What a continuation model explains with each request (core/engine/adapters): empty for a classifier.
    continuation: str = ""
    contrast: str = ""
    level: str = DEFAULT_LEVEL  # the units agreement is computed on (core/analyses/granularity.py)
    # The stored text's key (core/storage/texts.py): when set, the address names the text by it (`t=`) instead of
    # carrying the text; a page sets it once the text is stored.
    text_key: str = field(default="", compare=False)
    problems: list[str] = field(default_factory=list, compare=False)  # what the link had wrong

    def to_query(self) -> dict[str, str]:
        query: dict[str, str] = {"k": str(self.k), "methods": ",".join(self.methods)}
        if self.snapshot is not None:
            query["snapshot"] = str(self.snapshot)
            query["passage"] = self.passage.to_query()
        elif self.text_key:
            query["t"] = self.text_key
        else:
            query["text"] = self.text
        if self.model:
            query["model"] = self.model
        if self.options:
            query["options"] = json.dumps(self.options, sort_keys=True, separators=(",", ":"))
        if self.target:
            query["target"] = self.target
        for name in ("continuation", "contrast"):
            if getattr(self, name):
                query[name] = getattr(self, name)
        if self.level != DEFAULT_LEVEL:
            query["level"] = self.level
        return query

    @classmethod
    def from_query(cls, query: dict[str, str]) -> ViewState:
        """Parse query parameters (`VIEW_PARAMS`); a malformed value falls back to its default and is named in
        `problems`."""
        parsed = read_query(VIEW_PARAMS, query)
        state = cls(problems=parsed.problems)
        state.snapshot = parsed["snapshot"]
        if state.snapshot is not None:
            state.passage = PassageChoice.from_query(parsed["passage"])
        state.text, state.model, state.target, state.k = parsed["text"], parsed["model"], parsed["target"], parsed["k"]
        state.text_key = parsed["t"] if state.snapshot is None else ""
        state.methods = parsed["methods"] or list(METHODS)
        state.options = _options_from_query(parsed["options"], state.problems)
        state.continuation, state.contrast, state.level = parsed["continuation"], parsed["contrast"], parsed["level"]
        return state


# What a Compare address may carry, parsed once (core/params.py).
VIEW_PARAMS = (
    Param("snapshot", "id", help="a snapshot's number"),
    Param("passage", "text", default="", max_length=64, help="paragraph:N-M, sentences:N-M or all:0-0"),
    Param("text", "text", default="", help="free text to explain (older links; the page stores it and names it by t)"),
    Param("t", "text", default="", max_length=32, help="the key of a stored free text (core/storage/texts.py)"),
    Param("model", "choice", default="", choices=lambda: list(model_choices()), help="one of the server's models"),
    Param("methods", "names", default=None, choices=lambda: list(METHODS), help="comma-separated method names"),
    Param("options", "text", default="", max_length=20_000, help="each method's options, as JSON"),
    Param("target", "text", default="", max_length=300, help="the label to explain"),
    Param("k", "int", default=DEFAULT_K, minimum=1, maximum=MAX_K, help="the top words compared"),
    Param("continuation", "text", default="", max_length=2000, help="a continuation model's continuation"),
    Param("contrast", "text", default="", max_length=2000, help="a continuation model's contrast"),
    Param("level", "choice", default=DEFAULT_LEVEL, choices=lambda: list(LEVELS),
          help="token, word, sentence or paragraph: the units agreement is computed on"),
)


def _options_from_query(raw: str | None, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Options from a link, each checked against its method's declared options; bad ones are named and dropped."""
    try:
        options = json.loads(raw or "{}")
        if not isinstance(options, dict):
            raise ValueError
    except (ValueError, TypeError):
        problems.append("The link's method options are not readable; using the defaults.")
        return {}
    kept: dict[str, dict[str, Any]] = {}
    for method, values in options.items():
        if method not in METHODS or not isinstance(values, dict):
            problems.append(f"The link sets options of '{method}', which is not a method; ignored.")
            continue
        for name, value in values.items():
            try:
                METHODS[method].resolve({name: value})
            except ExplainError as exc:
                problems.append(f"{METHODS[method].title}: {exc} Using the default.")
                continue
            kept.setdefault(method, {})[name] = value
    return kept


def normalised_rows(comparison: Comparison, shared: bool = False) -> np.ndarray:
    """Scores per method, each row divided by its largest |score| (so colours compare across rows), or with
    `shared` every row by the largest |score| of any method (so sizes compare, and a near-zero method is pale)."""
    rows = np.array([e.scores for e in comparison.explanations], dtype=float)
    scale = np.abs(rows).max(axis=1, keepdims=True)
    if shared:
        scale = np.full_like(scale, float(np.abs(rows).max()) if rows.size else 0.0)
    return np.divide(rows, scale, out=np.zeros_like(rows), where=scale > 0)


def scale_note(own: float, widest: float, typical: float, shared: bool) -> str:
    """What a row's colours are divided by, and whether its scores are near zero beside the other methods'."""
    note = (f"colours ÷ {widest:.3g}, the largest |score| of any method (its own: {own:.3g})" if shared
            else f"colours ÷ {own:.3g}, its largest |score|")
    if near_zero(own, typical):
        note += "; near zero beside the others: no evidence, not evidence of nothing"
    return note


LONG_INPUT_WORDS = 60  # above this, the side-by-side rows scroll


def grid_rows(comparison: Comparison, k: int, shared: bool = False) -> list[GridRow]:
    """The side-by-side view: each method's highlighted copy of the input, its top-k words ranked, and what its
    colours are divided by (its own largest |score|, or with `shared` the largest of any method)."""
    normalised = normalised_rows(comparison, shared)
    largest, typical = score_scales(comparison)
    widest = max(largest.values(), default=0.0)
    rows = []
    for index, e in enumerate(comparison.explanations):
        spec = METHODS.get(e.method)
        ranks = {word: rank for rank, word in enumerate(agreement.top_k(e.scores, k), start=1)}
        rows.append(GridRow(
            title=spec.title if spec else e.method,
            note=("signed: red supports, blue opposes" if e.signed else "unsigned: green = important")
            + "; " + scale_note(largest[e.method], widest, typical, shared),
            text=e.text, offsets=e.offsets, values=normalised[index].tolist(), signed=e.signed, ranks=ranks,
            titles=[f"{w}: {s:+.4f}" for w, s in zip(e.words, e.scores, strict=True)]))
    return rows


def top_words_table(comparison: Comparison, k: int) -> list[dict[str, str]]:
    """One row per method (full name) with its top-k words and scores: every method visible at once."""
    rows = []
    for method, words in top_words(comparison, k).items():
        spec = METHODS.get(method)
        row = {"method": spec.title if spec else method}
        row.update({str(rank): f"{w} ({s:+.3f})" for rank, (w, s) in enumerate(words, start=1)})
        rows.append(row)
    return rows


def top_words(comparison: Comparison, k: int) -> dict[str, list[tuple[str, float]]]:
    return {e.method: [(e.words[i], e.scores[i]) for i in agreement.top_k(e.scores, k)]
            for e in comparison.explanations}


def matrices(comparison: Comparison, k: int) -> dict[str, np.ndarray]:
    return {name: agreement.agreement_matrix(comparison.explanations, name, k) for name in agreement.METRICS}


# -- written summary ---------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def summarise(report: ComparisonReport, k: int, camp_threshold: float = 0.5,
              edits: EditReport | None = None) -> list[str]:
    """A plain-language account built only from numbers the page shows, in Markdown: every word and
    label it quotes from the input or the model is escaped (`core.render.md`). With `edits` (a
    counterfactual search on the same input), what the flipping edits say about the methods too."""
    comparison, faith = report.comparison, report.faithfulness
    attention_corr, interventions = report.correlations, report.interventions
    lines = []
    probs = comparison.probabilities
    label = comparison.predicted_label
    if all(0 <= p <= 1 for p in probs.values()) and abs(sum(probs.values()) - 1) < 1e-3:
        lines.append(f"The model predicts **{md(label)}** with probability {probs[label]:.2f}"
                     + (f"; the methods explain **{md(comparison.target)}**." if comparison.target != label else "."))
    else:  # outputs explained as they are (a continuation's log-probabilities): nothing is "predicted"
        lines.append(f"The methods explain the model's output **{md(comparison.target)}** = "
                     f"{probs[comparison.target]:.3f} (a value, not a probability).")
    tops = top_words(comparison, k)
    counts: dict[str, int] = {}
    for words in tops.values():
        for w, _ in words:
            counts[w] = counts.get(w, 0) + 1
    n = len(comparison.explanations)
    consensus = [w for w, c in sorted(counts.items(), key=lambda wc: -wc[1]) if c > n / 2]
    if consensus:
        lines.append(f"Most methods ({'more than half' if n > 2 else 'both'}) put "
                     + ", ".join(f"“{md(w)}”" for w in consensus[:5]) + f" in their top {k}.")
    else:
        lines.append(f"No word is in the top {k} of more than half of the methods: they tell different stories.")
    fa = agreement.agreement_matrix(comparison.explanations, "feature_agreement", k)
    groups = agreement.camps(fa, comparison.methods, camp_threshold)
    if len(groups) > 1:
        lines.append(f"With feature agreement of at least {camp_threshold:.2f} at k={k}, the methods form "
                     f"{len(groups)} camps: " + "; ".join(", ".join(g) for g in groups) + ".")
    else:
        lines.append(f"All methods share at least {camp_threshold:.2f} feature agreement at k={k} with some other method.")
    real = [f for f in faith if f.method != faithfulness.RANDOM_NAME]
    random_ref = next((f for f in faith if f.method == faithfulness.RANDOM_NAME), None)
    if real:
        lines += _faithfulness_claims(real, random_ref)
    if attention_corr:
        strongest = max(attention_corr, key=lambda c: -1 if math.isnan(c.spearman) else c.spearman)
        lines.append(f"Attention and gradient/erasure scores agree at most at Spearman {_fmt(strongest.spearman)} "
                     f"({strongest.attention_method} vs {strongest.reference_method}).")
    if interventions:
        biggest = max(interventions, key=lambda i: i.total_variation)
        flips = sum(i.label_flipped for i in interventions)
        lines.append(f"Replacing one layer's attention moves the prediction by up to {_fmt(biggest.total_variation)} "
                     f"(total variation, layer {biggest.layer}, {biggest.mode}); {flips} of {len(interventions)} "
                     "interventions change the predicted label.")
    if edits is not None:
        lines += _edit_claims(edits, set(comparison.methods))
    return lines


def _edit_claims(edits: EditReport, methods: set[str]) -> list[str]:
    """Counterfactual agreement, claimed only as far as the counts go: ties are named as ties, and a
    method leads only if its share is above a random ranking's."""
    found = edits.search.counterfactuals
    if not found:
        return [f"No edit of up to {edits.search.params['max_edits']} words flips the prediction within the "
                f"similarity bound {edits.search.params['similarity']:.2f} ({edits.search.stopped})."]
    rows = [r for r in edits.agreement if r.method in methods]
    if not rows:
        return []
    chance, n = rows[0].random_share, len(found)
    best = max(r.share for r in rows)
    leaders = [r.method for r in rows if r.share == best]
    sample = f"{n} counterfactual{'s' if n != 1 else ''}" + (", a small sample" if n < 5 else "")
    if best <= chance:
        return [f"The {sample} that flip the prediction touch no method's top {edits.k} words more often than a "
                f"random ranking's would be touched ({_fmt(chance)})."]
    return [f"The minimal edits that flip the prediction ({sample}) touch the top {edits.k} words of "
            + " and ".join(f"**{m}**" for m in leaders) + f" most often ({_fmt(best)} of them, against "
            f"{_fmt(chance)} for a random ranking)" + (": a tie." if len(leaders) > 1 else ".")]


def _interval(low_high: tuple[float, float]) -> str:
    return f"{_fmt(low_high[0])} to {_fmt(low_high[1])}"


def _lead(a: dict[float, float], b: dict[float, float]) -> tuple[float, float]:
    """90% interval of the mean of a - b over the removal fractions, paired fraction by fraction (every
    score grows with the fraction removed; pairing takes that shared trend out)."""
    return faithfulness.fraction_interval([a[f] - b[f] for f in a])


def _faithfulness_claims(real: Sequence[faithfulness.Faithfulness],
                         random_ref: faithfulness.Faithfulness | None) -> list[str]:
    """Name a most faithful method only when its lead over every other method is clear: the paired
    bootstrap interval of the difference (over the removal fractions) excludes zero. Otherwise say
    there is no clear winner and name the methods it cannot be told apart from."""
    lines = []
    by_comp = sorted(real, key=lambda f: -f.aopc_comprehensiveness)
    best, rest = by_comp[0], by_comp[1:]
    tied = [f for f in rest if _lead(best.comprehensiveness, f.comprehensiveness)[0] <= 0]
    ref = (f"; a random ranking scores {_fmt(random_ref.aopc_comprehensiveness)}" if random_ref else "")
    if not rest:
        lines.append(f"Removing its top words moves the prediction by comprehensiveness AOPC "
                     f"{_fmt(best.aopc_comprehensiveness)} for **{best.method}**{ref}.")
    elif tied:
        lines.append(f"Removing its top words: no clear winner. **{best.method}** leads on comprehensiveness AOPC "
                     f"({_fmt(best.aopc_comprehensiveness)}), but its lead over {', '.join(f.method for f in tied)} "
                     f"is within the spread over the removal fractions{ref}.")
    else:
        runner_up = rest[0]
        lines.append(f"Removing its top words moves the prediction most for **{best.method}** (comprehensiveness "
                     f"AOPC {_fmt(best.aopc_comprehensiveness)}, ahead of {runner_up.method} by "
                     f"{_interval(_lead(best.comprehensiveness, runner_up.comprehensiveness))} over the removal "
                     f"fractions, clear of every other method{ref}).")
    by_suff = sorted(real, key=lambda f: f.aopc_sufficiency)
    suff, others = by_suff[0], by_suff[1:]
    suff_tied = [f for f in others if _lead(f.sufficiency, suff.sufficiency)[0] <= 0]
    if others and suff_tied:
        lines.append(f"Keeping only its top words: no clear winner; **{suff.method}** has the lowest sufficiency AOPC "
                     f"({_fmt(suff.aopc_sufficiency)}), within the spread of "
                     f"{', '.join(f.method for f in suff_tied)}.")
    else:
        lines.append(f"Keeping only its top words preserves the prediction best for **{suff.method}** "
                     f"(sufficiency AOPC {_fmt(suff.aopc_sufficiency)}).")
    if random_ref:
        worse = [f.method for f in real if _lead(f.comprehensiveness, random_ref.comprehensiveness)[0] <= 0]
        if worse:
            lines.append("Not clearly better than a random ranking at finding the words the prediction depends on "
                         "(paired over the removal fractions): " + ", ".join(worse) + ".")
    return lines


# -- export ---------------------------------------------------------------------------------------------
def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def report_to_dict(report: ComparisonReport, k: int, evidence: Evidence | None = None,
                   at_level: Comparison | None = None, level: str = DEFAULT_LEVEL) -> dict[str, Any]:
    """Everything the Compare view shows, as plain data (the CLI's `compare --json` and the page's download);
    `evidence`: stored checks and edit search the verdict reads (verdict.gather); `at_level`: the comparison at
    another `level` than the word (core/analyses/granularity.py), on which agreement is then computed."""
    comparison = report.comparison
    leveled = at_level or comparison
    return {
        "level": {"name": level, "aggregation": LEVELS[level], "units": list(leveled.explanations[0].words),
                  "scores": {e.method: list(e.scores) for e in leveled.explanations}},
        "text": comparison.text, "target": comparison.target, "prediction": comparison.probabilities,
        "predicted_label": comparison.predicted_label, "k": k, "missing_methods": list(comparison.missing),
        "sample": report.sample,
        "verdict": (found.to_dict() if (found := decide(report, k, evidence=evidence)) is not None else None),
        "explanations": [{**e.to_dict(), "cached": comparison.cached.get(e.method, False)}
                         for e in comparison.explanations],
        "agreement": {name: {"methods": comparison.methods,
                             "matrix": [[_finite(v) for v in row] for row in m.tolist()]}
                      for name, m in matrices(leveled, k).items()},
        "faithfulness": [{key: _finite(value) if isinstance(value, float) else value
                          for key, value in f.to_dict().items()} for f in report.faithfulness],
        "faithfulness_other_erasures": {name: [{key: _finite(value) if isinstance(value, float) else value
                                                for key, value in f.to_dict().items()} for f in rows]
                                        for name, rows in report.other_erasures.items()},
        "attention_correlations": [{**c.to_dict(), "spearman": _finite(c.spearman)} for c in report.correlations],
        "attention_interventions": [i.to_dict() for i in report.interventions],
        "summary": summarise(report, k) if report.measured else [],
        "cost": {"from_store": report.from_store, "forward_passes_now": report.cost_now.forward_passes,
                 "seconds_now": report.cost_now.seconds,
                 "measures": {"forward_passes": report.measure_cost.forward_passes,
                              "seconds": report.measure_cost.seconds,
                              "evaluations": report.measure_cost.evaluations},
                 "shared_passes": shared_passes(report)},
    }


def to_json(report: ComparisonReport, k: int, evidence: Evidence | None = None) -> str:
    return json.dumps(report_to_dict(report, k, evidence), ensure_ascii=False, indent=2)


def convergence(diagnostics: dict[str, Any]) -> tuple[int | None, str]:
    """(samples, evaluations or steps used; 'yes' / 'no (cap)' / '' when the method has no stopping rule)."""
    if "convergence_converged" in diagnostics:
        used = diagnostics.get("samples", diagnostics["convergence_samples"])
        return int(used), "yes" if diagnostics["convergence_converged"] else "no (cap)"
    if "converged" in diagnostics and "steps" in diagnostics:
        return int(diagnostics["steps"]), "yes" if diagnostics["converged"] else "no (cap)"
    used = diagnostics.get("samples", diagnostics.get("steps"))
    return (int(used) if used is not None else None), ""


def provenance(comparison: Comparison, last_run: dict[str, Any] | None) -> str:
    """Where this view's explanations came from, honestly: computed by its last run, or read from the store
    (made earlier by a corpus run, another view or a run whose record is gone). `last_run`: the result of the
    view's last finished comparison task, None if there is none."""
    shown = set(comparison.methods)
    if last_run and set(last_run.get("methods", [])) >= shown and "computed" in last_run:
        computed = [m for m in last_run["computed"] if m in shown]
        reused = [m for m in last_run.get("reused", []) if m in shown]
        if not reused:
            return f"Computed by this view's last run: all {len(computed)} methods."
        if not computed:
            return f"This view's last run reused stored results for all {len(reused)} methods (nothing recomputed)."
        return (f"This view's last run computed {', '.join(computed)}; it reused stored results for "
                f"{', '.join(reused)}.")
    stored = [m for m in comparison.methods if comparison.cached.get(m)]
    if len(stored) == len(shown):
        return "Read from the store: every method's result was computed earlier (this view or another)."
    if stored:
        return f"Read from the store: {', '.join(stored)}."
    return ""


def shared_passes(report: ComparisonReport) -> dict[str, int]:
    """Model inputs the comparison asked for and the passes it ran when it was computed: the difference is what
    methods and measures shared (the same masked input asked twice runs once, from the runner's cache)."""
    asked = sum(int(e.diagnostics.get("evaluations", e.forward_passes)) for e in report.comparison.explanations)
    ran = sum(e.forward_passes for e in report.comparison.explanations)
    if report.measured:
        asked += report.measure_cost.evaluations or report.measure_cost.forward_passes
        ran += report.measure_cost.forward_passes
    return {"asked": asked, "ran": ran, "shared": max(0, asked - ran)}


def cost_rows(report: ComparisonReport) -> list[dict[str, Any]]:
    """Per method, and for the measures: what this view cost now, and seconds and passes when first computed."""
    comparison = report.comparison
    rows = []
    for e in comparison.explanations:
        stored = comparison.cached.get(e.method, False) or report.from_store
        budget, converged = convergence(e.diagnostics)
        asked = int(e.diagnostics.get("evaluations", e.forward_passes))
        rows.append({"step": e.method, "forward passes now": 0 if stored else e.forward_passes, "from store": stored,
                     "seconds when computed": e.seconds, "forward passes when computed": e.forward_passes,
                     "model inputs asked": asked, "shared (already run)": max(0, asked - e.forward_passes),
                     "samples / steps used": budget, "converged": converged, "backend": e.backend})
    if report.measured:
        rows.append({"step": "faithfulness and attention checks",
                     "forward passes now": 0 if report.from_store else report.measure_cost.forward_passes,
                     "from store": report.from_store, "seconds when computed": report.measure_cost.seconds,
                     "forward passes when computed": report.measure_cost.forward_passes,
                     "model inputs asked": report.measure_cost.evaluations,
                     "shared (already run)": max(0, report.measure_cost.evaluations - report.measure_cost.forward_passes),
                     "backend": report.measure_backend})
    return rows


def to_csv(comparison: Comparison) -> str:
    """One row per word, one column per method (raw scores)."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["index", "word", "start", "end", *comparison.methods])
    first = comparison.explanations[0]
    for i, (word, (start, end)) in enumerate(zip(first.words, first.offsets, strict=True)):
        writer.writerow([i, word, start, end, *(e.scores[i] for e in comparison.explanations)])
    return buffer.getvalue()


def metrics_csv(comparison: Comparison, k: int) -> str:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["metric", "method_a", "method_b", "value"])
    for name, m in matrices(comparison, k).items():
        for i, a in enumerate(comparison.methods):
            for j, b in enumerate(comparison.methods):
                if i < j:
                    writer.writerow([name, a, b, "" if math.isnan(m[i, j]) else m[i, j]])
    return buffer.getvalue()


# -- demos ------------------------------------------------------------------------------------------------
def save_demo(engine: Engine, name: str, note: str, state: ViewState) -> Demo:
    name = name.strip()
    if not name:
        raise ExplainError("Give the demo a name.")
    with session_scope(engine) as session:
        demo = session.exec(select(Demo).where(Demo.name == name)).first() or Demo(name=name, query="")
        demo.note = note
        demo.query = json.dumps(state.to_query(), sort_keys=True)
        session.add(demo)
        session.flush()
        return demo


def list_demos(engine: Engine) -> list[Demo]:
    with session_scope(engine) as session:
        return list(session.exec(select(Demo).order_by(col(Demo.created_at).desc())).all())


def get_demo(engine: Engine, demo_id: int) -> Demo | None:
    with session_scope(engine) as session:
        return session.get(Demo, demo_id)


def plain(markdown_line: str) -> str:
    """A summary line as plain text (for the terminal): bold markers and escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown_line.replace("**", ""))
