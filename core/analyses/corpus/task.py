"""A corpus run (or an evaluation, a prediction-only corpus run) as a task: the `corpus_run` kind.

The task's worker runs the job's pending inputs itself with its own model, or, with
RASHOMON_JOB_WORKERS above 1 or a Ray address, drives that many local worker processes or Ray tasks
(`core.work.fanout`). The job keeps its own table, progress and per-input results; the task adds the
engine's queue, stop, takeover and one progress bar. A stop asked of the task, or of the job from the
Corpus page or the command line, ends the run after the input in flight; a resume is a new task that
continues with the pending inputs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from core.analyses.corpus.jobs import request_stop, run_job
from core.analyses.reports import StopRequested
from core.engine.runner import ModelRunner
from core.storage.settings import load_settings


def run_corpus_task(engine: Engine, runner: ModelRunner, params: dict[str, Any], progress: Any,
                    should_stop: Any) -> dict[str, Any]:
    from core.work.fanout import run_job_parallel
    from core.work.tasks import TaskError

    job_id = int(params["job"])

    def on_progress(done: int, total: int, origin: str) -> None:
        try:
            progress("corpus", done / max(1, total), f"{done} of {total} inputs · {origin}")
        except StopRequested:  # the task was asked to stop: the job stops after the input in flight
            request_stop(engine, job_id)

    settings = load_settings()
    if settings.ray_address or settings.job_workers > 1:
        job = run_job_parallel(engine, job_id, workers=max(1, settings.job_workers), ray_address=settings.ray_address,
                               progress=on_progress)
    else:
        job = run_job(engine, runner, job_id, progress=on_progress)
    if job.status == "stopped":
        raise StopRequested(f"Stopped after {job.finished} of {job.total} inputs; they are kept and a resume "
                            "continues with the rest.")
    if job.status == "failed":
        raise TaskError(job.error)
    return {"job": job_id, "status": job.status, "finished": job.finished, "total": job.total}
