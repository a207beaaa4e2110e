"""A stored comparison report: everything one Compare view shows, kept in the database.

A report holds the explanations of every chosen method on one input, their faithfulness (ERASER
scores and deletion/insertion curves) and the attention checks (correlations and interventions).
It is keyed like explanations (model fingerprint, text hash, each method with its resolved
options, target), so a shared link reopens the whole view from the database with no model pass.
Agreement matrices, hot spots and the summary are pure functions of the report (`core.analyses.compare`),
computed on reading for whatever k the view asks for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.analyses import attention_checks, faithfulness
from core.analyses.attention_checks import AttentionCorrelation, Intervention
from core.analyses.faithfulness import Faithfulness
from core.analyses.store import lookup, run_stored
from core.engine.interventions import MODES
from core.engine.runner import ModelRunner
from core.explanation import Explanation, split_words
from core.methods.attention import needs_attentions
from core.methods.base import ExplainError
from core.methods.explain import PREDICTED, ExplainRequest, params_key
from core.methods.registry import methods_passes
from core.storage.db import session_scope
from core.storage.schema import ComparisonReportRecord, sample_now

MethodProgress = Callable[[str, float, str], None]  # (method or step, fraction, message)
MEASURES = "measures"  # the progress name of the faithfulness and attention-check step


@dataclass(frozen=True)
class Comparison:
    """The explanations of one input by several methods (all explaining the same target label)."""

    text: str
    explanations: tuple[Explanation, ...]
    cached: dict[str, bool]  # method -> came from the store
    missing: tuple[str, ...] = ()  # methods not (yet) computed: a run stopped before them

    @property
    def methods(self) -> list[str]:
        return [e.method for e in self.explanations]

    @property
    def probabilities(self) -> dict[str, float]:
        return self.explanations[0].probabilities

    @property
    def predicted_label(self) -> str:
        return self.explanations[0].predicted_label

    @property
    def target(self) -> str:
        return self.explanations[0].target

    @property
    def truncated_words(self) -> int:
        return self.explanations[0].truncated_words

    @property
    def words(self) -> tuple[str, ...]:
        return self.explanations[0].words


@dataclass(frozen=True)
class Cost:
    """What showing a view cost now (not what its stored parts cost when first computed)."""

    forward_passes: int = 0
    seconds: float = 0.0
    # Model inputs asked for, cache hits included: minus forward_passes, the inputs another method (or an
    # earlier step) had already run, so they cost nothing here (occlusion's masks among LIME's, curves' steps).
    evaluations: int = 0


@dataclass(frozen=True)
class ComparisonReport:
    comparison: Comparison
    faithfulness: tuple[Faithfulness, ...] = ()
    correlations: tuple[AttentionCorrelation, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    measured: bool = False  # faithfulness and attention checks were run (a stopped run has none)
    measure_cost: Cost = field(default_factory=Cost)  # what the measures cost when they were computed
    from_store: bool = False  # the whole report came from the database
    cost_now: Cost = field(default_factory=Cost)
    sample: bool = False  # computed for the sample workspace (core/work/samples.py)
    # Faithfulness (AOPC only) with the words deleted outright and replaced by a neutral filler, beside the
    # [MASK] erasure of `faithfulness`: whether a verdict survives a change of the erasure.
    other_erasures: dict[str, tuple[Faithfulness, ...]] = field(default_factory=dict)
    measure_backend: str = "float32"  # what ran the faithfulness passes (one backend for every curve)

    @property
    def stopped(self) -> bool:
        return bool(self.comparison.missing)

    def to_payload(self) -> dict[str, Any]:
        return {"text": self.comparison.text,
                "explanations": [e.to_dict() for e in self.comparison.explanations],
                "faithfulness": [f.to_dict() for f in self.faithfulness],
                "correlations": [c.to_dict() for c in self.correlations],
                "interventions": [i.to_dict() for i in self.interventions],
                "measure_cost": {"forward_passes": self.measure_cost.forward_passes,
                                 "seconds": self.measure_cost.seconds, "evaluations": self.measure_cost.evaluations},
                "sample": sample_now(), "measure_backend": self.measure_backend,
                "other_erasures": {name: [f.to_dict() for f in rows] for name, rows in self.other_erasures.items()}}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> ComparisonReport:
        explanations = tuple(Explanation.from_dict(e) for e in data["explanations"])
        return cls(
            comparison=Comparison(data["text"], explanations, {e.method: True for e in explanations}),
            faithfulness=tuple(Faithfulness.from_dict(f) for f in data["faithfulness"]),
            correlations=tuple(AttentionCorrelation.from_dict(c) for c in data["correlations"]),
            interventions=tuple(Intervention.from_dict(i) for i in data["interventions"]),
            measured=True, measure_cost=Cost(**data.get("measure_cost", {})), from_store=True,
            sample=bool(data.get("sample")), measure_backend=data.get("measure_backend", "float32"),
            other_erasures={name: tuple(Faithfulness.from_dict(f) for f in rows)
                            for name, rows in data.get("other_erasures", {}).items()})


# -- one view's requests -----------------------------------------------------------------------------------
def view_requests(runner: ModelRunner, text: str, methods: Sequence[str], options: dict[str, dict] | None = None,
                  target: str | None = None) -> list[ExplainRequest]:
    """Validate a whole view before anything runs: every method, every option, the target label."""
    if not methods:
        raise ExplainError("Choose at least one method.")
    options = options or {}
    first = ExplainRequest.build(runner, text, methods[0], target, options.get(methods[0]))
    return [first] + [ExplainRequest.build(runner, text, name, target, options.get(name), first.prepared)
                      for name in methods[1:]]


def _report_key(requests: Sequence[ExplainRequest], target: str) -> dict[str, str]:
    first = requests[0]
    view = params_key({"methods": [[r.method.name, r.params] for r in requests]})
    return dict(model_fingerprint=first.model_fingerprint, text_sha256=first.text_sha256, view_key=view,
                target=target)


def _lookup_report(engine: Engine, requests: Sequence[ExplainRequest], target: str) -> ComparisonReport | None:
    with session_scope(engine) as session:
        record = session.exec(select(ComparisonReportRecord).filter_by(**_report_key(requests, target))).first()
        return ComparisonReport.from_payload(json.loads(record.payload)) if record else None


def _save_report(engine: Engine, runner: ModelRunner, requests: Sequence[ExplainRequest],
                 report: ComparisonReport) -> None:
    payload = json.dumps(report.to_payload(), ensure_ascii=False)
    targets = [report.comparison.target] + ([PREDICTED] if requests[0].target == PREDICTED else [])
    for target in targets:
        key = _report_key(requests, target)
        with session_scope(engine) as session:
            record = session.exec(select(ComparisonReportRecord).filter_by(**key)).first()
            record = record or ComparisonReportRecord(model_name=runner.loaded.name, **key, payload="")
            record.payload = payload
            session.add(record)
            try:
                session.flush()
            except IntegrityError:  # another process stored the same view meanwhile; theirs is as good
                session.rollback()


# -- opening and running a view ----------------------------------------------------------------------------
def open_report(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
                options: dict[str, dict] | None = None, target: str | None = None, *,
                partial: bool = False, measure: bool = True) -> ComparisonReport | None:
    """The view from the store, computing no explanation.

    A stored report comes back with no model pass. If only the explanations are stored (a corpus
    run made them, say), the measures are computed now and the report stored (with `measure=False`,
    it comes back unmeasured instead: a page leaves model work to the workers). With `partial=True`,
    a view whose explanations are only partly stored (a stopped run) comes back with the finished
    ones and the rest listed as missing, unmeasured. Otherwise None.
    """
    requests = view_requests(runner, text, methods, options, target)
    return _from_store(engine, runner, requests, partial=partial, measure=measure)


def stored_report_row(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
                      options: dict[str, dict] | None = None,
                      target: str | None = None) -> tuple[int, str, datetime] | None:
    """The stored view's row number (what a note on this comparison names: `comparison:ID`), who first asked
    for it and when, or None."""
    requests = view_requests(runner, text, methods, options, target)
    with session_scope(engine) as session:
        record = session.exec(select(ComparisonReportRecord).filter_by(
            **_report_key(requests, requests[0].target))).first()
        return (record.id, record.requested_by, record.created_at) if record is not None else None


def stored_report_id(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
                     options: dict[str, dict] | None = None, target: str | None = None) -> int | None:
    row = stored_report_row(engine, runner, text, methods, options, target)
    return row[0] if row else None


def _stored_explanations(engine: Engine, requests: Sequence[ExplainRequest]) -> Comparison | None:
    found: dict[str, Explanation] = {}
    target = requests[0].target
    for _ in range(2):  # once a stored result names the label, methods stored under it are found too
        for request in requests:
            name = request.method.name
            if name not in found and (stored := lookup(engine, request, None if target == PREDICTED else target)):
                found[name] = stored.explanation
                target = stored.explanation.target
    if not found:
        return None
    explanations = tuple(found[r.method.name] for r in requests if r.method.name in found)
    missing = tuple(r.method.name for r in requests if r.method.name not in found)
    return Comparison(explanations[0].text, explanations, {m: True for m in found}, missing)


def _from_store(engine: Engine, runner: ModelRunner, requests: Sequence[ExplainRequest], *,
                partial: bool, measure: bool = True) -> ComparisonReport | None:
    started, passes = time.perf_counter(), runner.forward_passes
    if (report := _lookup_report(engine, requests, requests[0].target)) is not None:
        return report
    comparison = _stored_explanations(engine, requests)
    if comparison is None:
        return None
    if comparison.missing:
        return ComparisonReport(comparison) if partial else None
    if not measure:
        return ComparisonReport(comparison)
    report = _measured(runner, comparison)
    _save_report(engine, runner, requests, report)
    return replace(report, cost_now=Cost(runner.forward_passes - passes, time.perf_counter() - started))


def run_report(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
               options: dict[str, dict] | None = None, target: str | None = None, *, fresh: bool = False,
               progress: MethodProgress | None = None, should_stop: Callable[[], bool] | None = None,
               on_explanation: Callable[[Comparison], None] | None = None) -> ComparisonReport:
    """Explain `text` with every method (stored results reused unless `fresh`), measure and store the view.

    `should_stop` is asked before each method; once it says yes, the report has the methods that
    finished (each already stored) and lists the others as missing; it is neither measured nor stored.
    `on_explanation` sees the comparison so far after each method (progressive display).
    """
    requests = view_requests(runner, text, methods, options, target)
    started, passes = time.perf_counter(), runner.forward_passes
    if not fresh and (report := _lookup_report(engine, requests, requests[0].target)) is not None:
        return report
    comparison = explain_all(engine, runner, requests, fresh=fresh, progress=progress, should_stop=should_stop,
                             on_explanation=on_explanation)
    report = ComparisonReport(comparison)
    if not comparison.missing:
        if progress:
            progress(MEASURES, 0.0, "faithfulness and attention checks")
        report = _measured(runner, comparison)
        _save_report(engine, runner, requests, report)
        if progress:
            progress(MEASURES, 1.0, f"{report.measure_cost.seconds:.1f} s")
    return replace(report, cost_now=Cost(runner.forward_passes - passes, time.perf_counter() - started))


def explain_all(engine: Engine, runner: ModelRunner, requests: Sequence[ExplainRequest], *, fresh: bool = False,
                progress: MethodProgress | None = None, should_stop: Callable[[], bool] | None = None,
                on_explanation: Callable[[Comparison], None] | None = None) -> Comparison:
    """Every request through the store, the cheapest first (so the first results show at once); later
    methods explain the label the first one explained. `on_explanation` gets the comparison so far (in
    the requested order) after each method."""
    done: dict[str, Explanation] = {}
    cached: dict[str, bool] = {}
    target = None
    n_words = len(requests[0].prepared.words)
    order = sorted(requests, key=lambda r: r.method.cost(r.params, n_words))

    def so_far() -> Comparison:
        explanations = tuple(done[r.method.name] for r in requests if r.method.name in done)
        return Comparison(explanations[0].text, explanations, dict(cached),
                          tuple(r.method.name for r in requests if r.method.name not in done))

    for request in order:
        name = request.method.name
        if should_stop and should_stop():
            if not done:
                raise StopRequested(f"Stopped before {name}; nothing was computed.")
            return so_far()
        report = (lambda f, m, _n=name: progress(_n, f, m)) if progress else None
        stored = run_stored(engine, runner, request if target is None else replace(request, target=target),
                            fresh=fresh, progress=report)
        if report:
            report(1.0, "stored result" if stored.cached else f"{stored.explanation.seconds:.1f} s")
        done[name] = stored.explanation
        cached[name] = stored.cached
        target = stored.explanation.target
        if on_explanation:
            on_explanation(so_far())
    return so_far()


@dataclass(frozen=True)
class ViewEstimate:
    """What running a view will cost, known before Run: the words the model reads and the passes."""

    words: int  # words in the input
    words_read: int  # words that fit the model
    forward_passes: float

    @property
    def truncated_words(self) -> int:
        return self.words - self.words_read


def estimate_view(runner: ModelRunner, text: str, methods: Sequence[str],
                  options: dict[str, dict] | None = None) -> ViewEstimate:
    """Passes a fresh run of this view should need (a backward pass counting as one): the prediction, each
    method's declared cost model, faithfulness (ERASER fractions and both curves for every method and
    the random rankings) and the attention interventions. Cache hits make real runs cheaper."""
    options = options or {}
    prepared = runner.prepare(text)
    n = len(prepared.words)
    passes = 1 + methods_passes(list(methods), options, n)
    rankings = len(methods) + faithfulness.RANDOM_SEEDS
    passes += rankings * 2 * (len(faithfulness.ERASER_FRACTIONS) + faithfulness.CURVE_POINTS)
    if not needs_attentions(runner.loaded):
        passes += len(MODES) * runner.loaded.config.num_hidden_layers
    return ViewEstimate(len(split_words(text)), n, passes)


class StopRequested(Exception):
    """Stopped before the first method finished: there is nothing to show."""


def _measured(runner: ModelRunner, comparison: Comparison) -> ComparisonReport:
    """Faithfulness and the attention checks of a complete comparison."""
    started, passes, asked = time.perf_counter(), runner.forward_passes, runner.evaluations
    explanations = list(comparison.explanations)
    faith = faithfulness.evaluate(runner, explanations)
    others = {erasure: tuple(faithfulness.evaluate(runner, explanations, curve_points=0, erasure=erasure))
              for erasure in faithfulness.ERASURES if erasure != "mask"}
    correlations = attention_checks.correlations(explanations)
    interventions = ([] if needs_attentions(runner.loaded) else
                     attention_checks.intervene(runner, comparison.text, comparison.target))
    return ComparisonReport(comparison, tuple(faith), tuple(correlations), tuple(interventions), measured=True,
                            measure_cost=Cost(runner.forward_passes - passes, time.perf_counter() - started,
                                              runner.evaluations - asked),
                            other_erasures=others, measure_backend=runner.backend)

