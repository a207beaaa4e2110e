"""Corpus jobs: stored in the database, run item by item, stoppable and resumable.

`run_job` processes pending items in order and stores each one as it finishes (a crash loses at
most the item in flight); it checks the job's `stop_requested` flag between items, so any session
(or the CLI) can stop it, and a stopped or crashed job resumes where it left off. `JobRunner` runs
jobs on a background thread inside the server process, so a run survives page reloads.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy import Engine, update
from sqlmodel import col, select

from core.analyses import agreement, faithfulness
from core.analyses.corpus.inputs import CorpusError, Input
from core.analyses.corpus.results import EditScores, FaithfulnessScores, Item, ItemResult, Job, PairAgreement
from core.analyses.edit_checks import edit_report
from core.analyses.edits import ANY_OTHER, resolve_options
from core.analyses.reports import Comparison, StopRequested, explain_all, view_requests
from core.engine.runner import ModelRunner
from core.methods.base import ExplainError
from core.methods.registry import corpus_options, get_method
from core.storage.db import session_scope
from core.storage.leases import lease_expired, new_owner
from core.storage.provenance import saw
from core.storage.schema import CorpusItem, CorpusJob, utcnow

# A leaderboard of means needs a sample, not every input: by default faithfulness is measured on a
# seeded random sample of 50 inputs (every input in smaller corpora); the bootstrap intervals are
# computed on that sample. Corpus runs keep the ERASER AOPC scores but skip the curves, with one
# random ranking as reference.
DEFAULT_FAITHFULNESS_INPUTS = 50
FAITHFULNESS_SEED = 0
HEARTBEAT_SECONDS = 5.0  # a running job renews its heartbeat this often, whatever its inputs cost
# Corpus attacks consider every word (so the positions' ranking favours no method), stop at 3 minimal
# counterfactuals, and measure fragility on one kept swap per input.
CORPUS_EDIT_OPTIONS = {"positions": 64, "count": 3, "budget": 3000}
FRAGILITY_VARIANTS = 1
JobProgress = Callable[[int, int, str], None]  # (finished, total, origin of the item just finished)


def faithfulness_positions(total: int, sample: int) -> frozenset[int]:
    """Positions of the inputs that get faithfulness metrics: a seeded random sample, or all (sample 0)."""
    if sample <= 0 or sample >= total:
        return frozenset(range(total))
    rng = np.random.default_rng(FAITHFULNESS_SEED)
    return frozenset(int(p) for p in rng.choice(total, size=sample, replace=False))


def create_job(engine: Engine, name: str, inputs: Sequence[Input], methods: Sequence[str], *, model: str = "",
               options: dict | None = None, k: int = 5, source: str = "",
               faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS, edits: dict | None = None,
               predict_only: bool = False) -> int:
    """A stored job. `edits`: search options (see `core.analyses.edits.OPTIONS`; corpus defaults in
    `CORPUS_EDIT_OPTIONS`) to also attack every input and measure counterfactual agreement and fragility.
    `predict_only` (no methods): each input only gets the model's probabilities (`core.analyses.evaluation`)."""
    if not inputs:
        raise CorpusError("There are no inputs to run: pick tags with snapshots, or upload a CSV.")
    if not methods and not predict_only:
        raise CorpusError("Choose at least one method.")
    try:
        for m in methods:
            get_method(m).resolve((options or {}).get(m))
    except ExplainError as exc:
        raise CorpusError(str(exc)) from exc
    options = {**corpus_options(list(methods)), **(options or {})}
    if edits is not None:
        try:
            edits = resolve_options({**CORPUS_EDIT_OPTIONS, **edits})
        except ExplainError as exc:
            raise CorpusError(str(exc)) from exc
    with session_scope(engine) as session:
        job = CorpusJob(name=name.strip() or f"corpus of {len(inputs)}", source=source, model=model,
                        methods=json.dumps(list(methods)), options=json.dumps(options), k=k, total=len(inputs),
                        faithfulness_inputs=max(0, faithfulness_inputs),
                        edits=json.dumps(edits) if edits is not None else "")
        session.add(job)
        session.flush()
        for position, item in enumerate(inputs):
            session.add(CorpusItem(job_id=job.id, position=position, origin=item.origin, text=item.text,
                                   gold_label=item.gold_label))
        return job.id


def get_job(engine: Engine, job_id: int) -> Job | None:
    with session_scope(engine) as session:
        row = session.get(CorpusJob, job_id)
        if row is None:
            return None
        saw("corpus_job", row.id, row.requested_by, row.created_at)
        return Job.from_row(row)


def require_job(engine: Engine, job_id: int) -> Job:
    job = get_job(engine, job_id)
    if job is None:
        raise CorpusError(f"There is no corpus job {job_id}.")
    return job


def list_jobs(engine: Engine) -> list[Job]:
    with session_scope(engine) as session:
        return [Job.from_row(r) for r in session.exec(select(CorpusJob).order_by(col(CorpusJob.id).desc())).all()]


def items_of(engine: Engine, job_id: int, status: str | None = None) -> list[Item]:
    with session_scope(engine) as session:
        statement = select(CorpusItem).where(CorpusItem.job_id == job_id).order_by(CorpusItem.position)
        if status:
            statement = statement.where(CorpusItem.status == status)
        return [Item.from_row(r) for r in session.exec(statement).all()]


def request_stop(engine: Engine, job_id: int) -> bool:
    """Ask a queued or running job to stop after the item in flight; False if it is not running."""
    with session_scope(engine) as session:
        job = session.get(CorpusJob, job_id)
        if job is None:
            raise CorpusError(f"There is no corpus job {job_id}.")
        if job.status in ("queued", "running"):
            job.stop_requested = True
            session.add(job)
            return True
        return False


def is_stale(job: Job) -> bool:
    """A "running" job whose runner is gone: its process on this host is dead, or its heartbeat stopped."""
    return job.status == "running" and lease_expired(job.owner, job.heartbeat_at)


def claim(engine: Engine, job_id: int) -> tuple[Job, str]:
    """Take the job's lease atomically: one runner at a time, whatever the number of servers.

    A compare-and-swap on the job's owner and status as read (every run writes a fresh owner token): if
    another runner claimed it in between, the update matches no row and this one backs off. A job that
    looks alive is refused."""
    job = require_job(engine, job_id)
    if job.status == "running" and not is_stale(job):
        raise CorpusError(f"Corpus job {job_id} is already running ({job.owner or 'another runner'}); "
                          "stop it first or wait for it.")
    owner = new_owner()
    with engine.begin() as connection:
        claimed = connection.execute(
            update(CorpusJob).where(CorpusJob.id == job_id, CorpusJob.owner == job.owner,
                                    CorpusJob.status == job.status)
            .values(status="running", owner=owner, heartbeat_at=utcnow(), stop_requested=False, error=""))
    if claimed.rowcount != 1:
        raise CorpusError(f"Corpus job {job_id} was just started by another runner.")
    return require_job(engine, job_id), owner


def _beat(engine: Engine, job_id: int, owner: str) -> bool:
    """Renew the lease; False once another runner holds it."""
    with engine.begin() as connection:
        renewed = connection.execute(update(CorpusJob).where(CorpusJob.id == job_id, CorpusJob.owner == owner)
                                     .values(heartbeat_at=utcnow()))
    return renewed.rowcount == 1


def _keep_beating(engine: Engine, job_id: int, owner: str, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(Exception):  # a missed beat is harmless; the next one comes in seconds
            if not _beat(engine, job_id, owner):
                return


def stop_requested(engine: Engine, job_id: int) -> bool:
    with session_scope(engine) as session:
        row = session.get(CorpusJob, job_id)
        return row is None or row.stop_requested


def seconds_left(job: Job) -> float | None:
    """Estimated time to finish: the mean time of finished items times the items left."""
    if job.finished == 0:
        return None
    return job.seconds / job.finished * max(0, job.total - job.finished)


def item_result(comparison: Comparison, runner: ModelRunner, k: int, with_faithfulness: bool = True) -> ItemResult:
    """What one input contributes to the corpus view: pairwise agreement and faithfulness per method."""
    names = comparison.methods
    matrices = {metric: agreement.agreement_matrix(comparison.explanations, metric, k)
                for metric in ("spearman", "feature_agreement")}
    pairs = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            values = {metric: None if math.isnan(m[i, j]) else float(m[i, j]) for metric, m in matrices.items()}
            pairs[f"{names[i]} vs {names[j]}"] = PairAgreement(**values)
    faith = (faithfulness.evaluate(runner, list(comparison.explanations), random_seeds=1, curve_points=0)
             if with_faithfulness else [])
    explanations = comparison.explanations
    return ItemResult(
        target=comparison.target, probabilities=comparison.probabilities, pairs=pairs,
        faithfulness={f.method: FaithfulnessScores(f.aopc_comprehensiveness, f.aopc_sufficiency) for f in faith},
        seconds={e.method: e.seconds for e in explanations},
        forward_passes={e.method: e.forward_passes for e in explanations},
        reused={m: bool(v) for m, v in comparison.cached.items()},
        completeness_gap={e.method: e.diagnostics["relative_delta"] for e in explanations
                          if "relative_delta" in e.diagnostics},
        truncated_words=comparison.truncated_words)


def edit_scores(engine: Engine, runner: ModelRunner, comparison: Comparison, job: Job) -> EditScores:
    """Attack one input (any label but the predicted one) and score the methods on its flipping edits."""
    report = edit_report(engine, runner, comparison.text, job.methods, target=ANY_OTHER, params=job.edits,
                         options=job.options, k=job.k, fragility_count=FRAGILITY_VARIANTS)
    search = report.search
    smallest = min((len(c.edits) for c in search.counterfactuals), default=None)
    return EditScores(success=search.found, words=len(search.words), words_changed=smallest, queries=search.queries,
                      forward_passes=search.forward_passes, seconds=search.seconds,
                      counterfactuals=len(search.counterfactuals),
                      agreement={a.method: a.share for a in report.agreement},
                      random_share=report.agreement[0].random_share if report.agreement else None,
                      fragility={f.method: [None if math.isnan(f.top_k_intersection) else f.top_k_intersection,
                                            None if math.isnan(f.spearman) else f.spearman] for f in report.fragility})


def compute_item(engine: Engine, runner: ModelRunner, job: Job, item: Item, measured: frozenset[int],
                 should_stop: Callable[[], bool] = lambda: False) -> tuple[ItemResult, str, str]:
    """(result, error, predicted label) of one input; StopRequested when a stop came between methods (the
    methods that finished are stored, and a resume reuses them, while the item itself stays pending)."""
    if not job.methods:  # an evaluation: the prediction only, one pass
        prepared = runner.prepare(item.text)
        probabilities = runner.probabilities([prepared.input_ids])[0]
        labels = runner.loaded.labels
        predicted = labels[int(np.argmax(probabilities))]
        return (ItemResult(target=predicted, probabilities={label: float(p) for label, p in zip(labels, probabilities,
                                                                                              strict=True)},
                           truncated_words=prepared.truncated_words), "", predicted)
    try:
        requests = view_requests(runner, item.text, job.methods, job.options)
        comparison = explain_all(engine, runner, requests, should_stop=should_stop)
        if comparison.missing:
            raise StopRequested(f"Stopped before {', '.join(comparison.missing)}.")
        result = item_result(comparison, runner, job.k, item.position in measured)
        if job.edits is not None:
            result = replace(result, edits=edit_scores(engine, runner, comparison, job))
        return result, "", comparison.predicted_label
    except StopRequested:
        raise
    except Exception as exc:  # one bad input must not end the run; it is recorded as failed
        return ItemResult(), f"{type(exc).__name__}: {exc}", ""


def store_item(engine: Engine, job_id: int, owner: str, item_id: int, result: ItemResult, error: str,
               predicted_label: str, seconds: float) -> Job | None:
    """Store one finished input under the job's lease, in one transaction of atomic updates (several worker
    processes store at once); an input already stored is never counted twice. None once the lease is lost."""
    with engine.begin() as connection:
        # Renewing the lease first also locks the job's row (PostgreSQL) or the database (SQLite) until commit.
        renewed = connection.execute(update(CorpusJob).where(CorpusJob.id == job_id, CorpusJob.owner == owner)
                                     .values(heartbeat_at=utcnow()))
        if renewed.rowcount != 1:
            return None
        stored = connection.execute(
            update(CorpusItem).where(CorpusItem.id == item_id, CorpusItem.status == "pending")
            .values(status="failed" if error else "done", error=error, seconds=seconds,
                    result="" if error else result.to_json(), predicted_label=predicted_label))
        if stored.rowcount == 1:
            connection.execute(update(CorpusJob).where(CorpusJob.id == job_id).values(
                done=CorpusJob.done + (0 if error else 1), failed=CorpusJob.failed + (1 if error else 0),
                seconds=CorpusJob.seconds + seconds))
    return get_job(engine, job_id)


def start_heartbeat(engine: Engine, job_id: int, owner: str) -> threading.Event:
    """Renew the lease on its own thread (so one slow input never makes a live run look crashed); set the
    returned event to stop."""
    done_beating = threading.Event()
    threading.Thread(target=_keep_beating, args=(engine, job_id, owner, done_beating), daemon=True,
                     name=f"corpus-{job_id}-heartbeat").start()
    return done_beating


def finish(engine: Engine, job_id: int, status: str, error: str = "") -> Job:
    with session_scope(engine) as session:
        row = session.get(CorpusJob, job_id)
        row.status, row.error = status, error
        if status == "stopped":
            row.stop_requested = False
        session.add(row)
        return Job.from_row(row)


def run_job(engine: Engine, runner: ModelRunner, job_id: int, progress: JobProgress | None = None) -> Job:
    """Process the job's pending items in this process until done or stopped; returns the job as it ends."""
    job, owner = claim(engine, job_id)
    measured = faithfulness_positions(job.total, job.faithfulness_inputs)
    done_beating = start_heartbeat(engine, job_id, owner)
    try:
        for item in items_of(engine, job_id, "pending"):
            if stop_requested(engine, job_id):
                return finish(engine, job_id, "stopped")
            started = time.perf_counter()
            try:
                result, error, predicted = compute_item(engine, runner, job, item, measured,
                                                        lambda: stop_requested(engine, job_id))
            except StopRequested:
                return finish(engine, job_id, "stopped")
            stored = store_item(engine, job_id, owner, item.id, result, error, predicted,
                                time.perf_counter() - started)
            if stored is None:  # the lease went to another runner: its results count, not ours
                return require_job(engine, job_id)
            if progress:
                progress(stored.finished, stored.total, item.origin)
        return finish(engine, job_id, "done")
    except BaseException as exc:
        finish(engine, job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        done_beating.set()
