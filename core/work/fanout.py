"""Corpus jobs over several processes: local worker processes, or Ray tasks on a cluster.

The driver (this process) claims the job's lease and renews its heartbeat; it hands out the pending
inputs and waits. Each worker process loads the model once and, per input, computes the result and
stores it itself under the driver's lease (`jobs.store_item`: atomic, an input stored once is never
stored again), so results reach the shared database as they finish.

- With `RASHOMON_RAY_ADDRESS` (or `ray_address=`), inputs are Ray tasks (`ray.init(address=...)`;
  "local" starts a private instance). Ray reruns a task whose worker died (up to 3 times); the input
  is simply computed again, since nothing was stored for it. A worker with a GPU gets the model on it
  (`load_model` picks the GPU when one is present).
- Without it, the same function runs in local spawned processes fed from a queue. If one dies, the
  others are killed at once (never waited for: a pool whose worker died can block forever in its
  shutdown, as Python 3.11's `ProcessPoolExecutor` did here), the run ends as "failed" with the
  inputs left pending, and a resume continues with them.
- If the driver is killed, its lease goes stale (dead process or silent heartbeat) and `resume`
  continues with the pending inputs; finished inputs are never lost or computed twice.

Each of n local workers gets cores / n torch threads, so n workers never oversubscribe the CPU.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from collections.abc import Callable
from multiprocessing import get_context
from typing import Any

from sqlalchemy import Engine

from core.analyses.corpus.jobs import (
    JobProgress,
    claim,
    compute_item,
    faithfulness_positions,
    finish,
    items_of,
    require_job,
    start_heartbeat,
    stop_requested,
    store_item,
)
from core.analyses.corpus.results import Item, Job
from core.analyses.reports import StopRequested
from core.storage.schema import CorpusItem

RAY_ADDRESS_ENV = "RASHOMON_RAY_ADDRESS"
LOCAL_RAY = "local"  # start a private Ray instance with as many CPUs as workers (tests, one machine)
RAY_TASK_RETRIES = 3
_process_state: dict[str, Any] = {}  # per worker process: engines and model runners, loaded once
# Called with (item id, worker pid) when a local worker process starts an input.
StartedFn = Callable[[int, int], None]


class WorkerDied(RuntimeError):
    """A local worker process ended while inputs were still to be done."""


def database_url(engine: Engine) -> str:
    """The engine's URL with its password, for worker processes (never shown to anyone)."""
    return engine.url.render_as_string(hide_password=False)


def work_item(url: str, model_spec: str, job_id: int, item_id: int, owner: str, threads: int) -> dict[str, Any]:
    """Compute and store one input (in a worker process); the model is loaded on the first call only."""
    import torch

    from core.engine.modelling import load_model
    from core.storage.db import get_engine, session_scope
    from core.work.tasks import runner_with_backend

    if _process_state.get("threads") != threads:
        torch.set_num_threads(max(1, threads))
        _process_state["threads"] = threads
    engine = get_engine(url)
    runners = _process_state.setdefault("runners", {})
    if model_spec not in runners:
        runners[model_spec] = runner_with_backend(load_model(model_spec or None), engine)
    job = require_job(engine, job_id)
    with session_scope(engine) as session:
        item = Item.from_row(session.get(CorpusItem, item_id))
    if item.status != "pending":
        return {"item": item_id, "stored": False, "pid": os.getpid()}
    started = time.perf_counter()
    try:
        result, error, predicted = compute_item(engine, runners[model_spec], job, item,
                                                faithfulness_positions(job.total, job.faithfulness_inputs))
    except StopRequested:  # not asked for here (no stop callback), but never store a half result
        return {"item": item_id, "stored": False, "pid": os.getpid()}
    stored = store_item(engine, job_id, owner, item_id, result, error, predicted, time.perf_counter() - started)
    return {"item": item_id, "stored": stored is not None, "pid": os.getpid()}


def run_job_parallel(engine: Engine, job_id: int, *, workers: int = 2, ray_address: str | None = None,
                     progress: JobProgress | None = None, started: StartedFn | None = None) -> Job:
    """Process the job's pending inputs on `workers` local processes, or as Ray tasks when `ray_address`
    (default: $RASHOMON_RAY_ADDRESS) is set; returns the job as it ends (done, stopped or failed).
    `started` hears which local worker process took which input (not called on Ray)."""
    ray_address = ray_address if ray_address is not None else os.environ.get(RAY_ADDRESS_ENV, "")
    job, owner = claim(engine, job_id)
    done_beating = start_heartbeat(engine, job_id, owner)
    pending = items_of(engine, job_id, "pending")
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    arguments = [(database_url(engine), job.model, job_id, item.id, owner, threads) for item in pending]
    origins = {item.id: item.origin for item in pending}

    def report(outcome: dict[str, Any]) -> None:
        if progress:
            now = require_job(engine, job_id)
            progress(now.finished, now.total, origins.get(outcome.get("item"), ""))

    try:
        if ray_address:
            stopped = _run_on_ray(ray_address, workers, arguments, report, lambda: stop_requested(engine, job_id))
        else:
            stopped = _run_on_processes(workers, arguments, report, lambda: stop_requested(engine, job_id), started)
    except WorkerDied as exc:
        left = len(items_of(engine, job_id, "pending"))
        return finish(engine, job_id, "failed", f"{exc}; {left} inputs are still pending and a resume continues "
                                                "with them.")
    except BaseException as exc:
        finish(engine, job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        done_beating.set()
    if stopped:
        return finish(engine, job_id, "stopped")
    left = items_of(engine, job_id, "pending")
    return finish(engine, job_id, "done") if not left else finish(
        engine, job_id, "failed", f"{len(left)} inputs were not stored (the lease was lost); resume to finish them.")


def _local_worker(inputs: Any, outcomes: Any, stop: Any) -> None:
    """A local worker process: take inputs until the queue's end marker (or a stop), report each."""
    _ignore_interrupts()
    while not stop.is_set():
        arguments = inputs.get()
        if arguments is None:
            return
        outcomes.put(("started", arguments[3], os.getpid()))
        try:
            outcomes.put(("done", work_item(*arguments), os.getpid()))
        except BaseException as exc:  # reported to the driver, which fails the job with it
            outcomes.put(("error", f"{type(exc).__name__}: {exc}", os.getpid()))
            return


def _run_on_processes(workers: int, arguments: list[tuple], report: Callable[[dict], None],
                      should_stop: Callable[[], bool], started: StartedFn | None = None) -> bool:
    """True if stopped early. Spawned processes: a forked copy of a process holding torch threads and
    database connections is not safe. Raises `WorkerDied` as soon as a worker ends before its work
    does; the others are killed, never waited for."""
    if not arguments:
        return False
    context = get_context("spawn")
    inputs, outcomes, stop = context.Queue(), context.Queue(), context.Event()
    for item in arguments:
        inputs.put(item)
    count = max(1, min(workers, len(arguments)))
    for _ in range(count):
        inputs.put(None)
    processes = [context.Process(target=_local_worker, args=(inputs, outcomes, stop), daemon=True)
                 for _ in range(count)]
    for process in processes:
        process.start()
    remaining, stopping = len(arguments), False
    try:
        while (remaining and any(p.is_alive() for p in processes)) or not outcomes.empty():
            try:
                kind, payload, pid = outcomes.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in processes if not p.is_alive() and p.exitcode != 0]
                if dead:
                    raise WorkerDied(f"A worker process died (exit code {dead[0].exitcode})") from None
                if not stopping and should_stop():
                    stopping = True
                    stop.set()  # each worker finishes (and stores) the input in hand, then exits
                continue
            if kind == "started" and started:
                started(payload, pid)
            elif kind == "done":
                remaining -= 1
                report(payload)
            elif kind == "error":
                raise RuntimeError(payload)
        if remaining and not stopping:
            dead = [p for p in processes if p.exitcode != 0]
            raise WorkerDied(f"A worker process died (exit code {dead[0].exitcode if dead else 0})")
        return stopping
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=10)
        for channel in (inputs, outcomes):
            channel.cancel_join_thread()  # never block on a pipe whose reader is gone
            channel.close()


def _ignore_interrupts() -> None:
    """Ctrl-C in a terminal reaches the whole process group: only the driver answers it (by stopping)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_on_ray(address: str, workers: int, arguments: list[tuple], report: Callable[[dict], None],
                should_stop: Callable[[], bool]) -> bool:
    import ray

    if not ray.is_initialized():
        if address == LOCAL_RAY:  # on 127.0.0.1, with Ray's usage reporting (a network call) off
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    task = ray.remote(max_retries=RAY_TASK_RETRIES, retry_exceptions=False)(work_item)
    refs = [task.remote(*args) for args in arguments]
    while refs:
        finished, refs = ray.wait(refs, num_returns=1, timeout=1.0)
        for ref in finished:
            report(ray.get(ref))
        if refs and should_stop():
            for ref in refs:
                ray.cancel(ref)  # queued tasks are dropped; a running one may still finish and store
            return True
    return False
