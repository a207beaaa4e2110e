"""Corpus runs: many inputs, several methods, disagreement and faithfulness in aggregate.

A job and its items live in the database. `run_job` processes pending items in order and
stores each one as it finishes (a crash loses at most the item in flight); it checks the job's
`stop_requested` flag between items, so any session (or the CLI) can stop it, and a stopped or
crashed job resumes where it left off. `JobRunner` runs jobs on a background thread inside
the server process, so a run survives page reloads and other users' activity.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine
from sqlmodel import col, select

from core import agreement, faithfulness
from core.compare import ViewState, run_comparison
from core.db import session_scope
from core.explainers import get_method
from core.passages import paragraphs, sentences
from core.runner import ModelRunner
from core.schema import CorpusItem, CorpusJob, utcnow
from core.snapshots import latest_good_snapshot, list_links

FAST_METHODS = ("attention", "attention_rollout", "integrated_gradients", "saliency", "occlusion")
# Corpus runs trade a little precision per input for many inputs: Integrated Gradients takes 20 steps
# (its convergence delta is still stored), and faithfulness keeps the ERASER AOPC scores but skips
# the deletion/insertion curves, with one random ranking as reference.
CORPUS_OPTIONS = {"integrated_gradients": {"n_steps": 20}}
# Faithfulness costs about a third of a fast-method run (two masked passes per ERASER fraction per
# method). A leaderboard of means needs a sample, not every input: by default a seeded random sample
# of 50 inputs (every input in smaller corpora); the bootstrap intervals are computed on that sample.
DEFAULT_FAITHFULNESS_INPUTS = 50
FAITHFULNESS_SEED = 0
SLOW_METHODS = ("lime", "shap")
STALE_AFTER = timedelta(seconds=60)  # a "running" job without a heartbeat this long is considered crashed


class CorpusError(ValueError):
    pass


@dataclass(frozen=True)
class Input:
    origin: str
    text: str
    gold_label: str = ""


# -- choosing inputs ---------------------------------------------------------------------------------
def split_into_passages(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Paragraphs the model can read whole; a paragraph that does not fit is cut at sentence ends."""
    out = []
    for paragraph in paragraphs(text):
        if fits(paragraph):
            out.append(paragraph)
            continue
        chunk = ""
        for sentence in sentences(paragraph):
            candidate = f"{chunk} {sentence}".strip()
            if chunk and not fits(candidate):
                out.append(chunk)
                chunk = sentence
            else:
                chunk = candidate
        if chunk:
            out.append(chunk)  # a single over-long sentence is kept; the runner truncates it visibly
    return out


def inputs_from_snapshots(engine: Engine, tags: Sequence[str], fits: Callable[[str], bool]) -> list[Input]:
    inputs = []
    for view in list_links(tags_any=tags, engine=engine):
        snap = latest_good_snapshot(view.id, engine)
        if snap is None:
            continue
        for i, passage in enumerate(split_into_passages(snap.text, fits)):
            inputs.append(Input(f"snapshot {snap.id}, passage {i + 1}", passage))
    return inputs


def inputs_from_csv(content: str, text_column: str = "text", label_column: str = "") -> list[Input]:
    reader = csv.DictReader(io.StringIO(content))
    if reader.fieldnames is None or text_column not in reader.fieldnames:
        raise CorpusError(f"The CSV has no column '{text_column}' (columns: {', '.join(reader.fieldnames or [])}).")
    rows = []
    for n, row in enumerate(reader, start=2):
        text = (row.get(text_column) or "").strip()
        if text:
            rows.append(Input(f"csv row {n}", text, (row.get(label_column) or "").strip() if label_column else ""))
    if not rows:
        raise CorpusError("The CSV has no non-empty texts.")
    return rows


# -- jobs ---------------------------------------------------------------------------------------------------
def faithfulness_positions(total: int, sample: int) -> frozenset[int]:
    """Positions of the inputs that get faithfulness metrics: a seeded random sample, or all (sample 0)."""
    if sample <= 0 or sample >= total:
        return frozenset(range(total))
    rng = np.random.default_rng(FAITHFULNESS_SEED)
    return frozenset(int(p) for p in rng.choice(total, size=sample, replace=False))


def create_job(engine: Engine, name: str, inputs: Sequence[Input], methods: Sequence[str], *, model: str = "",
               options: dict | None = None, k: int = 5, source: str = "",
               faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS) -> int:
    if not inputs:
        raise CorpusError("There are no inputs to run: pick tags with snapshots, or upload a CSV.")
    if len(methods) < 1:
        raise CorpusError("Choose at least one method.")
    for m in methods:
        get_method(m)
    with session_scope(engine) as session:
        options = {**CORPUS_OPTIONS, **(options or {})}
        job = CorpusJob(name=name.strip() or f"corpus of {len(inputs)}", source=source, model=model,
                        methods=json.dumps(list(methods)), options=json.dumps(options), k=k, total=len(inputs),
                        faithfulness_inputs=max(0, faithfulness_inputs))
        session.add(job)
        session.flush()
        for position, item in enumerate(inputs):
            session.add(CorpusItem(job_id=job.id, position=position, origin=item.origin, text=item.text,
                                   gold_label=item.gold_label))
        return job.id


def get_job(engine: Engine, job_id: int) -> CorpusJob | None:
    with session_scope(engine) as session:
        return session.get(CorpusJob, job_id)


def list_jobs(engine: Engine) -> list[CorpusJob]:
    with session_scope(engine) as session:
        return list(session.exec(select(CorpusJob).order_by(col(CorpusJob.id).desc())).all())


def items_of(engine: Engine, job_id: int, status: str | None = None) -> list[CorpusItem]:
    with session_scope(engine) as session:
        statement = select(CorpusItem).where(CorpusItem.job_id == job_id).order_by(CorpusItem.position)
        if status:
            statement = statement.where(CorpusItem.status == status)
        return list(session.exec(statement).all())


def request_stop(engine: Engine, job_id: int) -> None:
    with session_scope(engine) as session:
        job = session.get(CorpusJob, job_id)
        if job is not None and job.status in ("queued", "running"):
            job.stop_requested = True
            session.add(job)


def is_stale(job: CorpusJob) -> bool:
    beat = job.heartbeat_at
    if beat is not None and beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return job.status == "running" and (beat is None or datetime.now(UTC) - beat > STALE_AFTER)


def seconds_left(job: CorpusJob) -> float | None:
    """Estimated time to finish: the mean time of finished items times the items left."""
    finished = job.done + job.failed
    if finished == 0:
        return None
    return job.seconds / finished * (job.total - finished)


def item_metrics(comparison, runner: ModelRunner, k: int, with_faithfulness: bool = True) -> dict:
    """What one input contributes to the corpus view: pairwise agreement and faithfulness per method."""
    names = comparison.methods
    pairs = {}
    for metric in ("spearman", "feature_agreement"):
        m = agreement.agreement_matrix(comparison.explanations, metric, k)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                pairs.setdefault(f"{names[i]} vs {names[j]}", {})[metric] = None if math.isnan(m[i, j]) else float(m[i, j])
    faith = faithfulness.evaluate(runner, comparison.explanations, random_seeds=1, curve_points=0) if with_faithfulness else []
    return {
        "target": comparison.target,
        "probabilities": comparison.probabilities,
        "pairs": pairs,
        "faithfulness": {f.method: {"comprehensiveness": f.aopc_comprehensiveness, "sufficiency": f.aopc_sufficiency}
                         for f in faith},
        "seconds": {e.method: e.seconds for e in comparison.explanations},
        "forward_passes": {e.method: e.forward_passes for e in comparison.explanations},
        "reused": {m: bool(v) for m, v in comparison.cached.items()},
        "completeness_gap": {e.method: e.diagnostics["relative_delta"] for e in comparison.explanations
                             if "relative_delta" in e.diagnostics},
        "truncated_words": comparison.truncated_words,
    }


def run_job(engine: Engine, runner: ModelRunner, job_id: int,
            progress: Callable[[int, int, str], None] | None = None) -> CorpusJob:
    """Process the job's pending items until done or stopped; returns the job as it ends."""
    with session_scope(engine) as session:
        job = session.get(CorpusJob, job_id)
        if job is None:
            raise CorpusError(f"There is no corpus job {job_id}.")
        job.status, job.stop_requested, job.error, job.heartbeat_at = "running", False, "", utcnow()
        session.add(job)
        methods, options, k = json.loads(job.methods), json.loads(job.options), job.k
        measured = faithfulness_positions(job.total, job.faithfulness_inputs)
    try:
        for item in items_of(engine, job_id, "pending"):
            with session_scope(engine) as session:
                job = session.get(CorpusJob, job_id)
                if job.stop_requested:
                    job.status, job.stop_requested = "stopped", False
                    session.add(job)
                    return job
            started = time.perf_counter()
            try:
                comparison = run_comparison(engine, runner, item.text, methods, options, None, k)
                result, error = item_metrics(comparison, runner, k, item.position in measured), ""
            except Exception as exc:  # one bad input must not end the run; it is recorded as failed
                result, error, comparison = {}, f"{type(exc).__name__}: {exc}", None
            elapsed = time.perf_counter() - started
            with session_scope(engine) as session:
                row = session.get(CorpusItem, item.id)
                row.status = "failed" if error else "done"
                row.error, row.seconds, row.result = error, elapsed, json.dumps(result)
                row.predicted_label = comparison.predicted_label if comparison else ""
                job = session.get(CorpusJob, job_id)
                job.done += 0 if error else 1
                job.failed += 1 if error else 0
                job.seconds += elapsed
                job.heartbeat_at = utcnow()
                session.add_all([row, job])
            if progress:
                progress(job.done + job.failed, job.total, item.origin)
        with session_scope(engine) as session:
            job = session.get(CorpusJob, job_id)
            job.status = "done"
            session.add(job)
            return job
    except BaseException as exc:
        with session_scope(engine) as session:
            job = session.get(CorpusJob, job_id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            session.add(job)
        raise


class JobRunner:
    """Runs corpus jobs on background threads of this process (one at a time per job)."""

    def __init__(self, engine: Engine, runner_for: Callable[[str], ModelRunner]) -> None:
        self.engine = engine
        self.runner_for = runner_for
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def is_running(self, job_id: int) -> bool:
        thread = self._threads.get(job_id)
        return thread is not None and thread.is_alive()

    def start(self, job_id: int) -> bool:
        """Start (or resume) a job; False if it is already running here."""
        with self._lock:
            if self.is_running(job_id):
                return False
            job = get_job(self.engine, job_id)
            if job is None:
                raise CorpusError(f"There is no corpus job {job_id}.")
            runner = self.runner_for(job.model)
            thread = threading.Thread(target=self._run, args=(job_id, runner), daemon=True, name=f"corpus-{job_id}")
            self._threads[job_id] = thread
            thread.start()
            return True

    def _run(self, job_id: int, runner: ModelRunner) -> None:
        with contextlib.suppress(Exception):  # the failure is recorded on the job by run_job
            run_job(self.engine, runner, job_id)


# -- aggregation ----------------------------------------------------------------------------------------
def bootstrap_interval(values: Sequence[float], *, samples: int = 2000, seed: int = 0,
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


def _done_results(engine: Engine, job_id: int) -> list[tuple[CorpusItem, dict]]:
    return [(item, json.loads(item.result)) for item in items_of(engine, job_id, "done")]


def agreement_rows(engine: Engine, job_id: int) -> list[dict]:
    """Long-form rows (pair, metric, value, label) for distribution plots."""
    rows = []
    for item, result in _done_results(engine, job_id):
        for pair, values in result["pairs"].items():
            for metric, value in values.items():
                if value is not None:
                    rows.append({"item": item.position, "pair": pair, "metric": metric, "value": value,
                                 "label": item.predicted_label})
    return rows


def leaderboard(engine: Engine, job_id: int) -> list[dict]:
    """Mean comprehensiveness and sufficiency per method with bootstrap 95% intervals."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for _, result in _done_results(engine, job_id):
        for method, values in result["faithfulness"].items():
            for name, value in values.items():
                by_method.setdefault(method, {}).setdefault(name, []).append(value)
    rows = []
    for method, values in by_method.items():
        c, c_lo, c_hi = bootstrap_interval(values["comprehensiveness"])
        s, s_lo, s_hi = bootstrap_interval(values["sufficiency"])
        rows.append({"method": method, "comprehensiveness": c, "comp_low": c_lo, "comp_high": c_hi,
                     "sufficiency": s, "suff_low": s_lo, "suff_high": s_hi, "inputs": len(values["comprehensiveness"])})
    return sorted(rows, key=lambda r: -r["comprehensiveness"])


def most_disputed(engine: Engine, job_id: int, n: int = 10) -> list[dict]:
    """Inputs with the lowest mean pairwise Spearman correlation between methods."""
    rows = []
    for item, result in _done_results(engine, job_id):
        values = [v["spearman"] for v in result["pairs"].values() if v.get("spearman") is not None]
        if values:
            rows.append({"position": item.position, "origin": item.origin, "text": item.text,
                         "mean_spearman": float(np.mean(values)), "label": item.predicted_label})
    return sorted(rows, key=lambda r: r["mean_spearman"])[:n]


def cost_rows(engine: Engine, job_id: int) -> list[dict]:
    """What each method cost over the run: seconds and forward passes per input (as first computed,
    for results reused from the store), and how many inputs reused a stored result."""
    by_method: dict[str, dict[str, list]] = {}
    for _, result in _done_results(engine, job_id):
        for method, seconds in result.get("seconds", {}).items():
            m = by_method.setdefault(method, {"seconds": [], "passes": [], "reused": []})
            m["seconds"].append(seconds)
            m["passes"].append(result.get("forward_passes", {}).get(method, math.nan))
            m["reused"].append(result.get("reused", {}).get(method, False))
    return [{"method": method, "inputs": len(m["seconds"]), "mean_seconds": float(np.mean(m["seconds"])),
             "total_seconds": float(np.sum(m["seconds"])), "mean_forward_passes": float(np.mean(m["passes"])),
             "reused": int(sum(m["reused"]))}
            for method, m in by_method.items()]


def completeness_gaps(engine: Engine, job_id: int) -> dict[str, dict[str, float]]:
    """Integrated Gradients' completeness gap |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|
    over the run's inputs: median, 90th percentile and maximum, per method that reports one."""
    gaps: dict[str, list[float]] = {}
    for _, result in _done_results(engine, job_id):
        for method, gap in result.get("completeness_gap", {}).items():
            gaps.setdefault(method, []).append(gap)
    return {method: {"inputs": len(values), "median": float(np.median(values)),
                     "p90": float(np.percentile(values, 90)), "max": float(np.max(values))}
            for method, values in gaps.items()}


def compare_query(job: CorpusJob, text: str) -> dict[str, str]:
    """Query parameters of the Compare view of one input with the run's model, methods and options,
    so that it opens on the stored results instead of recomputing them."""
    methods = json.loads(job.methods)
    options = {m: v for m, v in json.loads(job.options).items() if m in methods}
    return ViewState(text=text, model=job.model, methods=methods, options=options, k=job.k).to_query()


def per_label(engine: Engine, job_id: int) -> list[dict]:
    """Mean pairwise Spearman and mean comprehensiveness, per predicted label."""
    groups: dict[str, dict] = {}
    for item, result in _done_results(engine, job_id):
        g = groups.setdefault(item.predicted_label, {"inputs": 0, "spearman": [], "comprehensiveness": []})
        g["inputs"] += 1
        g["spearman"] += [v["spearman"] for v in result["pairs"].values() if v.get("spearman") is not None]
        g["comprehensiveness"] += [v["comprehensiveness"] for m, v in result["faithfulness"].items()
                                   if m != faithfulness.RANDOM_NAME]
    return [{"label": label, "inputs": g["inputs"],
             "mean_spearman": float(np.mean(g["spearman"])) if g["spearman"] else math.nan,
             "mean_comprehensiveness": float(np.mean(g["comprehensiveness"])) if g["comprehensiveness"] else math.nan}
            for label, g in sorted(groups.items())]


def export_json(engine: Engine, job_id: int) -> str:
    job = get_job(engine, job_id)
    return json.dumps({
        "job": {"id": job.id, "name": job.name, "source": job.source, "model": job.model,
                "faithfulness_inputs": job.faithfulness_inputs,
                "methods": json.loads(job.methods), "status": job.status, "total": job.total, "done": job.done},
        "items": [{"position": i.position, "origin": i.origin, "text": i.text, "status": i.status,
                   "predicted_label": i.predicted_label, "error": i.error,
                   "result": json.loads(i.result) if i.result else None} for i in items_of(engine, job_id)],
        "leaderboard": leaderboard(engine, job_id),
        "per_label": per_label(engine, job_id),
    }, indent=2, ensure_ascii=False)


def export_csv(engine: Engine, job_id: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "origin", "predicted_label", "pair", "metric", "value"])
    for item, result in _done_results(engine, job_id):
        for pair, values in result["pairs"].items():
            for metric, value in values.items():
                writer.writerow([item.position, item.origin, item.predicted_label, pair, metric, value])
    return buffer.getvalue()


def estimate_passes(runner: ModelRunner, methods: Sequence[str], texts: Sequence[str],
                    options: dict | None = None, faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS) -> float:
    """Forward passes a corpus run of `methods` over `texts` should need (gradient passes count double).

    Per input of n words: lime `num_samples`, shap `max_evals`, integrated gradients 2 per step (a
    backward pass costs about one forward) plus f(baseline), saliency and input x gradient 3,
    occlusion n, the attention methods 0 (their pass is the prediction, counted once), and, on the
    inputs sampled for faithfulness, 2 per ERASER fraction for each method and the random ranking
    (comprehensiveness at the first fraction is an occlusion pass when occlusion ran).
    """
    options = {**CORPUS_OPTIONS, **(options or {})}
    per_method = {}
    for name in methods:
        params = get_method(name).resolve(options.get(name))
        per_method[name] = {"lime": params.get("num_samples", 0), "shap": params.get("max_evals", 0),
                            "integrated_gradients": 2 * params.get("n_steps", 0) + 1,
                            "saliency": 3, "input_x_gradient": 3}.get(name, 0)
    faithfulness_sets = 2 * len(faithfulness.ERASER_FRACTIONS) - (1 if "occlusion" in methods else 0)
    measured = len(faithfulness_positions(len(texts), faithfulness_inputs))
    words = sum(len(runner.prepare(t).words) for t in texts) if "occlusion" in methods else 0
    return ((1 + sum(per_method.values())) * len(texts) + words
            + (len(methods) + 1) * faithfulness_sets * measured)


def estimate_seconds(runner: ModelRunner, methods: Sequence[str], texts: Sequence[str],
                     options: dict | None = None, faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS) -> float:
    """A rough time estimate: `estimate_passes` times a forward-pass time measured on these inputs."""
    sample = [runner.prepare(t) for t in texts[:8]]
    if not sample:
        return 0.0
    fresh = ModelRunner(runner.loaded, batch_size=runner.batch_size, cache_size=64)
    fresh.probabilities([p.input_ids for p in sample])  # warm-up: first calls pay one-off costs
    masked = [[fresh.mask_id if i % 7 == 3 else t for i, t in enumerate(p.input_ids)] for p in sample]
    started = time.perf_counter()
    fresh.probabilities(masked)
    per_pass = (time.perf_counter() - started) / len(masked)
    return per_pass * estimate_passes(runner, methods, texts, options, faithfulness_inputs)
