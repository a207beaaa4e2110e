"""Tasks: the heavy work behind the pages, run by workers, with progress in the database.

Comparisons, checks, whole documents, edit searches, training examples, attention views, head
importance, error groups, model vs model, the datamodeling check and model builds: each is one
`TaskKind` in `KINDS` (a module's function and one entry). A page submits a task and only shows it:
progress, then the stored result. A worker (a local process the app starts, or `rashomon worker` on
another machine, taking the kinds it declares) claims the oldest queued task under a lease, renews a
heartbeat while it runs, writes progress as it goes and stores what the kind makes in the usual
tables. A page that is closed and reopened finds the live task for the same work by its key, so
nothing is lost or started twice; a task whose worker died is taken over by another worker, and the
parts already stored (each method's explanation) are reused, not recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.analyses.reports import StopRequested
from core.engine.fingerprints import remember
from core.engine.modelling import LoadedModel
from core.engine.pass_time import ESTIMATE_PARAM
from core.engine.runner import ModelRunner
from core.plugins import import_plugins
from core.storage.db import session_scope
from core.storage.leases import lease_expired, new_owner
from core.storage.people import acting_as, log_request
from core.storage.schema import TaskRecord, utcnow

Progress = Callable[[str, float, str], None]  # (part, fraction done, message)
ShouldStop = Callable[[], bool]
ACTIVE = ("queued", "running")
HEARTBEAT_SECONDS = 3.0
PROGRESS_EVERY = 0.3  # seconds between progress writes (the page polls about once a second)
STOP_CHECK_EVERY = 0.5  # seconds between reads of the stop flag
WORKER_NICENESS = 10  # a server's own workers yield the CPU to the server: a page stays quick while they work
MAX_ATTEMPTS = 3  # a task whose worker died this often fails instead of killing the next worker too


class TaskError(Exception):
    """A task that cannot be submitted or found; the message is one line for a page or the CLI."""


@dataclass(frozen=True)
class TaskKind:
    """One kind of page work: `run(engine, runner, params, progress, should_stop)` returns what the page
    needs to find the stored result (JSON-able). `identity` picks the parameters that decide what is
    computed (a "recompute" flag does not): one live task per kind, model and identity."""

    name: str
    title: str
    run: Callable[[Engine, ModelRunner | None, dict[str, Any], Progress, ShouldStop], dict[str, Any]]
    identity: Callable[[dict[str, Any]], dict[str, Any]] = lambda params: params
    needs_model: bool = True  # False: the worker loads no model for it (a build makes one)
    # It writes model files or other data under RASHOMON_HOME: only a worker that shares the server's
    # RASHOMON_HOME takes it (a worker on another machine declares `--no-home-kinds`).
    writes_home: bool = False
    # Work nobody is waiting for (samples, preparations made ahead): claimed only when no task a person
    # asked for is waiting.
    background: bool = False


@dataclass(frozen=True)
class Task:
    id: int
    kind: str
    model: str
    params: dict[str, Any]
    key: str
    status: str
    stop_requested: bool
    progress: dict[str, tuple[float, str]]
    result: dict[str, Any]
    error: str
    owner: str
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    seconds: float
    forward_passes: int
    requested_by: str = "unknown"  # who queued it; a worker runs it acting for them (core/storage/people.py)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        """Overall progress: the mean over the parts reported so far (0 before the first report)."""
        return sum(f for f, _ in self.progress.values()) / len(self.progress) if self.progress else 0.0

    @classmethod
    def from_row(cls, row: TaskRecord) -> Task:
        progress = {part: (float(value[0]), str(value[1])) for part, value in json.loads(row.progress or "{}").items()}
        return cls(row.id, row.kind, row.model, json.loads(row.params), row.key, row.status, row.stop_requested,
                   progress, json.loads(row.result) if row.result else {}, row.error, row.owner, row.heartbeat_at,
                   row.created_at, row.started_at, row.finished_at, row.attempts, row.seconds, row.forward_passes,
                   row.requested_by)


# -- the kinds ------------------------------------------------------------------------------------------------
def _run_comparison(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                    should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.reports import run_report

    report = run_report(engine, runner, params["text"], params["methods"], params.get("options") or {},
                        params.get("target") or None, fresh=bool(params.get("fresh")), progress=progress,
                        should_stop=should_stop)
    if report.stopped:
        raise StopRequested(f"Stopped: {', '.join(report.comparison.methods)} finished and are kept; "
                            f"{', '.join(report.comparison.missing)} did not run.")
    cached = report.comparison.cached
    return {"methods": report.comparison.methods, "target": report.comparison.target,
            "computed": [m for m in report.comparison.methods if not cached.get(m)],
            "reused": [m for m in report.comparison.methods if cached.get(m)]}


def _run_stability(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                   should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses import checks

    variants = checks.stability_variants(quick=bool(params.get("quick")))
    unknown = [m for m in params["methods"] if m not in variants]
    if unknown:
        raise TaskError(f"No stability settings for {', '.join(unknown)}.")
    texts, methods, k = params["texts"], params["methods"], int(params.get("k", 5))
    results = checks.stability_over(runner, texts, {m: variants[m] for m in methods}, k,
                                    progress=lambda f, m: progress("stability", f, m))
    progress("sensitivity", 0.0, "baselines and other choices")
    sensitive = checks.sensitivity_over(runner, texts, methods, k)
    progress("sensitivity", 1.0, "done")
    return {"check": checks.save_check(engine, runner, "stability", texts, stability=results, sensitivity=sensitive)}


def _run_randomisation(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                       should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses import checks

    result = checks.randomisation_over(runner, params["texts"], params["methods"],
                                       progress=lambda f, m: progress("randomisation", f, m))
    return {"check": checks.save_check(engine, runner, "randomisation", params["texts"], randomisation=result)}


def _run_document(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                  should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.documents import explain_document
    from core.library.snapshots import get_snapshot

    snapshot = get_snapshot(engine, int(params["snapshot"]))
    if snapshot is None or snapshot.error:
        raise TaskError(f"Snapshot {params['snapshot']} has no text (deleted, or a failed fetch).")
    methods = params["methods"]

    def report(window: int, windows: int, method: str, fraction: float, message: str) -> None:
        done = (window + (methods.index(method) + fraction) / len(methods)) / windows
        progress("document", min(1.0, done), f"window {window + 1} of {windows}, {method}: {message}")

    document = explain_document(engine, runner, snapshot.text, methods, params.get("target") or None,
                                overlap=float(params["overlap"]), window_tokens=int(params["window_tokens"]),
                                progress=report)
    return {"windows": len(document.windows)}


def _run_edits(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
               should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.edit_checks import edit_report

    report = edit_report(engine, runner, params["text"], params["methods"], target=params["target"],
                         order=params["order"], params=params["params"], options=params.get("options") or {},
                         k=int(params["k"]), progress=lambda f, m: progress("edits", f, m))
    return {"counterfactuals": len(report.search.counterfactuals)}


def _run_training_data(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                           should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.training_data.store import stored_attributions
    from core.analyses.training_data.training_sets import training_set_for

    training = training_set_for(engine, runner.loaded)
    stored_attributions(engine, runner.loaded, training, params["text"], params["methods"],
                        target=params.get("target") or None, k=int(params["k"]),
                        progress=lambda f, m: progress("training", f, m))
    return {"methods": params["methods"]}


def _run_training_data_preparation(engine: Engine, runner: ModelRunner, params: dict[str, Any],
                                   progress: Progress, should_stop: ShouldStop) -> dict[str, Any]:
    """Everything a training-data query needs, prepared once ahead of the first person to ask (after a build)."""
    from core.analyses.training_data.attribute import attribute
    from core.analyses.training_data.training_sets import training_set_for

    training = training_set_for(engine, runner.loaded)
    # One throw-away query builds every method's stored preparation, as `rashomon training-data prepare` does.
    attribute(runner.loaded, training, training.examples[0].text, params["methods"], k=1,
              progress=lambda f, m: progress("prepare", f, m))
    return {"rows": len(training.examples), "methods": params["methods"]}


def _run_head_importance(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                         should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.attention_checks import stored_head_importance

    result = stored_head_importance(engine, runner, params["text"], params.get("target") or None,
                                    fresh=bool(params.get("fresh")), progress=lambda f, m: progress("heads", f, m))
    return {"target": result.target, "forward_passes": result.forward_passes}


def _run_attention_view(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                        should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.attention_views import stored_attention_view

    progress("attention", 0.0, "one pass with every attention map")
    view = stored_attention_view(engine, runner, params["text"])
    progress("attention", 1.0, "done")
    return {"layers": view.layers, "heads": view.heads, "tokens": len(view.tokens)}


def _run_error_groups(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                      should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.error_groups import stored_groups

    groups = stored_groups(engine, runner, int(params["job"]), min_size=params.get("min_size") or None,
                           fresh=bool(params.get("fresh")), progress=lambda f, m: progress("groups", f, m))
    return {"groups": len(groups.groups), "errors": groups.errors}


def _run_model_compare(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                       should_stop: ShouldStop) -> dict[str, Any]:
    """Model A is the task's model (the worker's runner); model B is loaded here."""
    from core.analyses.evaluation import heldout_inputs
    from core.analyses.model_compare import stored_diff
    from core.engine.modelling import load_model

    other = ModelRunner(load_model(params["b"]))  # the load records its fingerprint for the pages
    diff = stored_diff(engine, runner, other, heldout_inputs(int(params["limit"]), runner.loaded.language), fresh=bool(params.get("fresh")),
                       progress=lambda f, m: progress("diff", f, m))
    return {"inputs": diff.inputs, "fixed": len(diff.fixed), "broken": len(diff.broken)}


def _run_datamodeling(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                      should_stop: ShouldStop) -> dict[str, Any]:
    """The linear datamodeling check (surrogates retrained on random subsets), stored for the page."""
    from core.analyses.training_data.retraining import linear_datamodeling
    from core.analyses.training_data.store import save_retraining
    from core.analyses.training_data.training_sets import training_set_for

    training = training_set_for(engine, runner.loaded)
    result = linear_datamodeling(runner.loaded, training, [params["text"]], params["methods"],
                                 target=params.get("target") or None, subsets=int(params.get("subsets", 20)),
                                 progress=lambda f, m: progress("datamodeling", f, m))
    save_retraining(engine, runner.loaded, training, result)
    return {"subsets": result.subsets, "retrained": result.retrained}


def _run_corpus(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                should_stop: ShouldStop) -> dict[str, Any]:
    from core.analyses.corpus.task import run_corpus_task

    return run_corpus_task(engine, runner, params, progress, should_stop)


def _run_build(engine: Engine, runner: ModelRunner | None, params: dict[str, Any], progress: Progress,
               should_stop: ShouldStop) -> dict[str, Any]:
    from core.work.builds import run_build

    return run_build(engine, runner, params, progress, should_stop)


def _run_known_answer(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                      should_stop: ShouldStop) -> dict[str, Any]:
    """Plant a shortcut, retrain a copy of the model, probe it and score every method (stored for Checks)."""
    from core.analyses.known_answer import known_answer

    result = known_answer(engine, runner, params["token"], params["label"], rate=float(params["rate"]),
                          methods=params["methods"], inputs=int(params["inputs"]), k=int(params["k"]),
                          probe=int(params.get("probe") or 300), fresh=bool(params.get("fresh")), progress=progress)
    return {"learned": result.learned, "shortcut_rate": result.shortcut_rate, "planted_model": result.planted_model}


def _run_backend_gate(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                      should_stop: ShouldStop) -> dict[str, Any]:
    """A cheaper backend's fidelity gate against float32 on the held-out texts (stored: the workers' `auto` reads it)."""
    from core.analyses.backend_gate import gate, long_enough
    from core.analyses.evaluation import heldout_inputs

    loaded = runner.loaded
    texts = [i.text for i in heldout_inputs(int(params["inputs"]), loaded.language)]
    longer = long_enough([i.text for i in heldout_inputs(None, loaded.language)], int(params["method_inputs"]))
    result = gate(engine, loaded, params["backend"], texts, method_texts=longer, fresh=True,
                  progress=lambda f, m: progress("gate", f, m))
    return {"backend": result.backend, "passed": result.passed, "speedup": result.speedup}


def _run_samples(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                 should_stop: ShouldStop) -> dict[str, Any]:
    from core.work.samples import run_step

    return run_step(engine, runner, params, progress, should_stop)


def _run_model_pair(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                    should_stop: ShouldStop) -> dict[str, Any]:
    """One input explained by model A (the task's) and model B, each method, stored for Model vs model."""
    from core.analyses.model_compare import stored_pairs
    from core.engine.modelling import load_model

    progress("pair", 0.0, "both models, every method")
    other = ModelRunner(load_model(params["b"]))
    pairs = stored_pairs(engine, runner, other, params["text"], params["methods"])
    progress("pair", 1.0, "done")
    return {"methods": [p.method for p in pairs]}


def _run_token_view(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Progress,
                    should_stop: ShouldStop) -> dict[str, Any]:
    """One method's scores for each generated token of a continuation (stored row by row)."""
    from core.analyses.token_view import token_view

    view = token_view(engine, runner, params["text"], params["method"], params.get("options") or {},
                      progress=lambda f, m: progress(params["method"], f, m))
    return {"tokens": len(view.tokens), "computed": view.computed}


def _without_fresh(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "fresh"}


KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind("comparison", "Comparison", _run_comparison, identity=_without_fresh),
    TaskKind("stability", "Stability check", _run_stability),
    TaskKind("randomisation", "Randomisation check", _run_randomisation),
    TaskKind("document", "Whole document", _run_document),
    TaskKind("edits", "Edits that flip the prediction", _run_edits),
    # its first use prepares the training set's representations under RASHOMON_HOME
    TaskKind("training_data", "Training examples behind a prediction", _run_training_data, writes_home=True),
    TaskKind("training_data_preparation", "Training-data preparation", _run_training_data_preparation,
             writes_home=True, background=True),
    TaskKind("attention_view", "Every layer and head", _run_attention_view),
    TaskKind("head_importance", "Head importance", _run_head_importance, identity=_without_fresh),
    TaskKind("error_groups", "Error groups", _run_error_groups, identity=_without_fresh),
    TaskKind("model_compare", "Model vs model", _run_model_compare, identity=_without_fresh),
    TaskKind("model_pair", "One input, both models", _run_model_pair),
    TaskKind("token_view", "Which prompt words drove each generated token", _run_token_view),
    TaskKind("datamodeling", "Datamodeling check", _run_datamodeling, writes_home=True),
    TaskKind("corpus_run", "Corpus run or evaluation", _run_corpus),
    TaskKind("model_build", "Model build", _run_build, needs_model=False, writes_home=True),
    # it trains a copy of the model under RASHOMON_HOME/models
    TaskKind("backend_gate", "Fidelity gate of a cheaper backend", _run_backend_gate, writes_home=True),
    TaskKind("known_answer", "Known-answer check", _run_known_answer, identity=_without_fresh, writes_home=True),
    # the sample workspace, one step per task (its training-data step prepares under RASHOMON_HOME)
    TaskKind("samples", "Sample workspace", _run_samples, writes_home=True, background=True),
)}


# Modules (comma-separated) imported once the registry above exists, each adding or wrapping kinds with
# `register_kind`, as RASHOMON_PLUGINS adds methods; worker processes inherit the variable.
PLUGINS_ENV = "RASHOMON_TASK_PLUGINS"


def register_kind(kind: TaskKind) -> TaskKind:
    """Add a kind of heavy work (or replace one of the same name) from a plugin module."""
    KINDS[kind.name] = kind
    return kind


def load_plugins() -> list[str]:
    return import_plugins(PLUGINS_ENV, None, TaskError)


# -- submitting and reading -----------------------------------------------------------------------------------
def task_key(kind: str, model: str, params: dict[str, Any]) -> str:
    # what a page estimated is kept with the task, but two runs of the same work are one task whatever it said
    identity = {k: v for k, v in KINDS[kind].identity(params).items() if k != ESTIMATE_PARAM}
    text = json.dumps({"kind": kind, "model": model, "params": identity}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def submit(engine: Engine, kind: str, model: str, params: dict[str, Any]) -> Task:
    """Queue a task, or return the live one that already computes the same thing (a second tab, a reload)."""
    if kind not in KINDS:
        raise TaskError(f"Unknown task kind '{kind}'; known: {', '.join(KINDS)}.")
    key = task_key(kind, model, params)
    for _ in range(3):  # a live twin can end between the insert that failed and the read
        if (live := latest(engine, key)) is not None and live.active:
            log_request(engine, kind, f"task:{live.id}", shared=True)  # one computation, two people asked
            return live
        try:
            with session_scope(engine) as session:
                row = TaskRecord(kind=kind, model=model, params=json.dumps(params, ensure_ascii=False), key=key)
                session.add(row)
                session.flush()
                task = Task.from_row(row)
            log_request(engine, kind, f"task:{task.id}", shared=False)
            return task
        except IntegrityError:  # another process queued the same work first: the index keeps one
            continue
    raise TaskError("The same work was submitted and ended repeatedly while this submission ran; try again.")


def get_task(engine: Engine, task_id: int) -> Task | None:
    with session_scope(engine) as session:
        row = session.get(TaskRecord, task_id)
        return Task.from_row(row) if row else None


def latest(engine: Engine, key: str) -> Task | None:
    """The newest task with this key, whatever its status."""
    with session_scope(engine) as session:
        row = session.exec(select(TaskRecord).where(TaskRecord.key == key).order_by(col(TaskRecord.id).desc())).first()
        return Task.from_row(row) if row else None


def latest_for(engine: Engine, kind: str, model: str, params: dict[str, Any]) -> Task | None:
    return latest(engine, task_key(kind, model, params))


def list_tasks(engine: Engine, limit: int = 50, status: tuple[str, ...] = (), kind: str = "") -> list[Task]:
    with session_scope(engine) as session:
        statement = select(TaskRecord).order_by(col(TaskRecord.id).desc()).limit(limit)
        if status:
            statement = statement.where(col(TaskRecord.status).in_(status))
        if kind:
            statement = statement.where(TaskRecord.kind == kind)
        return [Task.from_row(r) for r in session.exec(statement).all()]


def record_ended(engine: Engine, kind: str, model: str, params: dict[str, Any], status: str,
                 result: dict[str, Any], error: str = "") -> Task:
    """Store work that ended outside the queue (imported from before it existed) as an ended task."""
    with session_scope(engine) as session:
        row = TaskRecord(kind=kind, model=model, params=json.dumps(params, ensure_ascii=False),
                         key=task_key(kind, model, params), status=status, result=json.dumps(result), error=error,
                         finished_at=utcnow())
        session.add(row)
        session.flush()
        return Task.from_row(row)


def request_stop(engine: Engine, task_id: int) -> bool:
    """Stop a queued task at once, or ask a running one to stop (its finished parts are kept); False if
    it had already ended."""
    with engine.begin() as connection:
        queued = connection.execute(update(TaskRecord).where(TaskRecord.id == task_id, TaskRecord.status == "queued")
                                    .values(status="stopped", finished_at=utcnow(), error="Stopped before it started."))
        if queued.rowcount == 1:
            return True
        running = connection.execute(update(TaskRecord).where(TaskRecord.id == task_id, TaskRecord.status == "running")
                                     .values(stop_requested=True))
        return running.rowcount == 1


def is_stale(task: Task) -> bool:
    return task.status == "running" and lease_expired(task.owner, task.heartbeat_at)


# -- running -----------------------------------------------------------------------------------------------------
def claim(engine: Engine, task: Task) -> str | None:
    """Take the task's lease (a compare-and-swap on its status and owner as read); the owner token, or None
    when another worker was faster or the task is alive elsewhere."""
    if task.status not in ACTIVE or (task.status == "running" and not is_stale(task)):
        return None
    owner = new_owner()
    if task.stop_requested:  # its worker died after a stop was asked for: nothing more to do
        values: dict[str, Any] = dict(status="stopped", finished_at=utcnow(), stop_requested=False,
                                      error="Stopped while it ran: the parts that finished are kept.")
    elif task.attempts >= MAX_ATTEMPTS:
        values = dict(status="failed", finished_at=utcnow(),
                                      error=f"The worker running it stopped {task.attempts} times (out of memory?).")
    else:
        values = dict(status="running", owner=owner, heartbeat_at=utcnow(), started_at=utcnow(),
                      attempts=task.attempts + 1)
    with engine.begin() as connection:
        claimed = connection.execute(update(TaskRecord).where(
            TaskRecord.id == task.id, TaskRecord.status == task.status, TaskRecord.owner == task.owner).values(**values))
    return owner if claimed.rowcount == 1 and values["status"] == "running" else None


def kinds_for(names: str = "", shares_home: bool = True) -> frozenset[str]:
    """The kinds a worker takes: those named (comma-separated; default every kind), less those that write
    under RASHOMON_HOME when it does not share the server's. An unknown name is a `TaskError`."""
    chosen = [n.strip() for n in names.split(",") if n.strip()] or list(KINDS)
    unknown = [n for n in chosen if n not in KINDS]
    if unknown:
        raise TaskError(f"Unknown task kind {', '.join(unknown)}; known: {', '.join(KINDS)}.")
    return frozenset(n for n in chosen if shares_home or not KINDS[n].writes_home)


def measured_time(engine: Engine, kind: str, noun: str) -> str:
    """How long a task of `kind` takes here: the median of those that finished (a page's estimate is never a
    constant), or a sentence saying there is no measurement yet."""
    done = [t for t in list_tasks(engine, limit=200, status=("done",), kind=kind) if t.seconds > 0]
    if not done:
        return f"no {noun} has finished here yet, so there is no measured time"
    seconds = sorted(t.seconds for t in done)[len(done) // 2]
    amount = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f"about {amount}, the median of the {len(done)} {noun}(s) that finished here"


def foreground_kinds() -> list[str]:
    return [name for name, kind in KINDS.items() if not kind.background]


def claim_next(engine: Engine, kinds: frozenset[str] | None = None) -> tuple[Task, str] | None:
    """The oldest queued task of `kinds` (default: every kind), or one whose worker died, with this
    worker's lease on it; work a person asked for before background work."""
    waiting = list_tasks(engine, limit=200, status=ACTIVE)[::-1]
    for task in sorted(waiting, key=lambda t: t.kind in KINDS and KINDS[t.kind].background):  # stable: oldest first
        if kinds is not None and task.kind not in kinds:
            continue
        if (owner := claim(engine, task)) is not None:
            return get_task(engine, task.id), owner
    return None


class _Reporter:
    """The progress and stop callbacks a kind gets: progress goes to the database at most every
    PROGRESS_EVERY seconds; a stop request is read at most every STOP_CHECK_EVERY seconds, and raises
    StopRequested from inside a progress report so that long steps stop too."""

    def __init__(self, engine: Engine, task: Task, owner: str) -> None:
        self.engine, self.task_id, self.owner = engine, task.id, owner
        self.parts: dict[str, list] = {part: [f, m] for part, (f, m) in task.progress.items()}
        self._written = self._checked = 0.0
        self._stop = False

    def __call__(self, part: str, fraction: float, message: str) -> None:
        self.parts[part] = [min(1.0, max(0.0, float(fraction))), message]
        if time.monotonic() - self._written >= PROGRESS_EVERY or fraction >= 1.0:
            self.flush()
        if self.should_stop():
            raise StopRequested("Stopped while it ran: the parts that finished are kept.")

    def flush(self) -> None:
        self._written = time.monotonic()
        with contextlib.suppress(Exception), self.engine.begin() as connection:  # progress is best effort
            connection.execute(update(TaskRecord).where(TaskRecord.id == self.task_id, TaskRecord.owner == self.owner)
                               .values(progress=json.dumps(self.parts, ensure_ascii=False)))

    def should_stop(self) -> bool:
        if not self._stop and time.monotonic() - self._checked >= STOP_CHECK_EVERY:
            self._checked = time.monotonic()
            task = get_task(self.engine, self.task_id)
            self._stop = task is None or task.stop_requested or task.owner != self.owner
        return self._stop


def _keep_beating(engine: Engine, task_id: int, owner: str, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(Exception), engine.begin() as connection:  # the next beat comes in seconds
            connection.execute(update(TaskRecord).where(TaskRecord.id == task_id, TaskRecord.owner == owner)
                               .values(heartbeat_at=utcnow()))


def one_line(exc: BaseException) -> str:
    """What a page shows for a failed task: the message of errors meant for people, else the type too."""
    from core.analyses.evaluation import EvaluationError
    from core.analyses.training_data.training_sets import TrainingDataError
    from core.engine.modelling import ModelLoadError
    from core.methods.base import ExplainError

    message = " ".join(str(exc).split()) or type(exc).__name__
    meant_for_people = ExplainError | ModelLoadError | TaskError | TrainingDataError | EvaluationError
    return message if isinstance(exc, meant_for_people) else f"{type(exc).__name__}: {message}"


def run_claimed(engine: Engine, runner_for: Callable[[str], ModelRunner], task: Task, owner: str) -> Task:
    """Run a claimed task to its end (done, stopped or failed) under the lease; returns it as stored."""
    done_beating = threading.Event()
    threading.Thread(target=_keep_beating, args=(engine, task.id, owner, done_beating), daemon=True,
                     name=f"task-{task.id}-heartbeat").start()
    started, passes, runner = time.perf_counter(), 0, None
    reporter = _Reporter(engine, task, owner)
    status, result, error = "done", {}, ""
    try:
        kind = KINDS[task.kind]
        if kind.needs_model:
            runner = runner_for(task.model)
            remember(engine, runner.loaded)  # so that the pages, which never load weights, find the results
            passes, timed = runner.forward_passes, (runner.forward_seconds, runner.timed_passes)
        with acting_as(task.requested_by):  # what the task stores records the person who asked for it
            result = kind.run(engine, runner, task.params, reporter, reporter.should_stop)
        if runner is not None:
            from core.engine.pass_time import record_from_runner, record_shortcut

            record_from_runner(engine, runner, *timed)
            record_shortcut(engine, runner)
    except StopRequested as exc:
        status, error = "stopped", str(exc)
    except Exception as exc:  # the page shows one line; the worker's log keeps the traceback
        status, error = "failed", one_line(exc)
        traceback.print_exc()
    finally:
        done_beating.set()
    values = dict(status=status, result=json.dumps(result), error=error, finished_at=utcnow(),
                  seconds=time.perf_counter() - started, stop_requested=False,
                  forward_passes=runner.forward_passes - passes if runner is not None else 0,
                  progress=json.dumps(reporter.parts, ensure_ascii=False))
    with engine.begin() as connection:
        connection.execute(update(TaskRecord).where(TaskRecord.id == task.id, TaskRecord.owner == owner).values(**values))
    return get_task(engine, task.id)


def run_here(engine: Engine, runner: ModelRunner, task_id: int) -> Task:
    """Run one task in this process now (the embedded mode with no worker process, and tests)."""
    task = get_task(engine, task_id)
    if task is None:
        raise TaskError(f"There is no task {task_id}.")
    owner = claim(engine, task)
    if owner is None:
        return task  # ended already, or alive in a worker
    return run_claimed(engine, lambda _spec: runner, get_task(engine, task_id), owner)


def runner_with_backend(loaded: LoadedModel, engine: Engine | None = None) -> ModelRunner:
    """A runner over `loaded` through the backend RASHOMON_BACKEND asks for, if it passed its fidelity gate for
    these weights (core/analyses/backend_gate.py), else float32: the pages choose the same way."""
    from core.analyses.backend_gate import backend_for
    from core.storage.db import get_engine
    from core.storage.settings import load_settings

    return ModelRunner(loaded, backend=backend_for(engine or get_engine(), loaded, load_settings().backend)[0])


def model_runners(max_models: int = 3) -> Callable[[str], ModelRunner]:
    """A worker's models: each loaded once and kept (the few most recent), one runner each."""
    from core.engine.modelling import load_model
    from core.storage.settings import load_settings

    loaded: dict[str, ModelRunner] = {}

    def runner_for(spec: str) -> ModelRunner:
        spec = spec or load_settings().resolved_model
        if spec not in loaded:
            if len(loaded) >= max_models:
                loaded.pop(next(iter(loaded)))
            loaded[spec] = runner_with_backend(load_model(spec))
        return loaded[spec]

    return runner_for


def work(engine: Engine, runner_for: Callable[[str], ModelRunner], *, once: bool = False, poll: float = 0.5,
         keep_going: Callable[[], bool] = lambda: True, on_task: Callable[[Task], None] | None = None,
         kinds: frozenset[str] | None = None) -> int:
    """A worker's loop: claim the oldest task (of `kinds`), run it, repeat; with `once`, stop when none is
    waiting. Returns how many tasks it ran."""
    ran = 0
    while keep_going():
        claimed = claim_next(engine, kinds)
        if claimed is None:
            if once:
                break
            time.sleep(poll)
            continue
        task = run_claimed(engine, runner_for, *claimed)
        ran += 1
        if on_task:
            on_task(task)
    return ran


# -- local worker processes ----------------------------------------------------------------------------------------
@dataclass
class LocalWorkers:
    """The worker processes a server starts for itself (the embedded default needs no other service):
    `count` of them, restarted when one dies, each ending when the server does. Their logs are in
    `log_dir`. Torch threads are shared out so that the workers together use the machine's cores, and the
    workers run at a lower CPU priority than the server."""

    count: int
    log_dir: Path
    processes: list[subprocess.Popen | None] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure(self) -> None:
        """Start the workers that are not running (the first time, or after one died)."""
        with self._lock:
            self.processes += [None] * (self.count - len(self.processes))
            for slot, process in enumerate(self.processes):
                if process is None or process.poll() is not None:
                    self.processes[slot] = self._start(slot)

    def _start(self, slot: int) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threads = max(1, (os.cpu_count() or 1) // self.count)
        # With two workers or more, the last one is kept for work a person asked for: background work (the
        # samples, preparations made ahead) never makes a person's first comparison wait.
        people_only = ["--kinds", ",".join(foreground_kinds())] if self.count > 1 and slot == self.count - 1 else []
        with open(self.log_dir / f"worker-{slot}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "core", "worker", "--tasks-only", "--parent-pid", str(os.getpid()),
                 "--threads", str(threads), "--nice", str(WORKER_NICENESS), *people_only], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def stop(self) -> None:
        with self._lock:
            for process in self.processes:
                if process is not None and process.poll() is None:
                    process.terminate()
            for process in self.processes:
                if process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(10)


_server_workers: dict[tuple[int, str], LocalWorkers] = {}
_server_workers_lock = threading.Lock()


def server_workers(count: int, home: Path) -> LocalWorkers:
    """This process's local workers for `home` (one set per process): the server starts them before its
    first page is opened (scripts/serve.py), and every page run finds the same set to keep alive."""
    with _server_workers_lock:
        key = (count, str(home))
        if key not in _server_workers:
            _server_workers[key] = LocalWorkers(count, Path(home) / "workers")
        return _server_workers[key]


load_plugins()
