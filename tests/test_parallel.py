"""Corpus jobs on several processes and on Ray: the same results as one process, item by item, even when a
worker or the driver dies mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from core.analyses import corpus
from core.analyses.corpus.inputs import Input
from core.engine.runner import ModelRunner
from core.storage.db import make_engine
from core.storage.leases import process_alive
from core.work.fanout import LOCAL_RAY, run_job_parallel
from tests.support.processes import kill_own_descendant

pytestmark = pytest.mark.processes  # local worker processes, Ray, subprocess drivers
METHODS = ["occlusion", "saliency", "attention"]
TEXTS = [f"Review {i}: the staff were {word} and the room was {other}." for i, (word, other) in enumerate(
    [("lovely", "quiet"), ("rude", "cold"), ("fine", "small"), ("kind", "noisy"), ("slow", "clean"),
     ("helpful", "dark"), ("cheerful", "bright"), ("distant", "warm")])]


def make_job(engine, texts=TEXTS) -> int:
    return corpus.create_job(engine, "parallel", [Input(f"row {i}", t, "") for i, t in enumerate(texts)], METHODS,
                             k=3, faithfulness_inputs=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """The single-process run of the same job, in its own database (so nothing is reused from a store);
    computed once for the module."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}")
    job_id = make_job(engine)
    corpus.run_job(engine, ModelRunner(tiny_model), job_id)
    return {item.position: item for item in corpus.items_of(engine, job_id)}


def assert_same_results(engine, job_id, reference) -> None:
    items = corpus.items_of(engine, job_id)
    assert [i.status for i in items] == ["done"] * len(TEXTS)
    job = corpus.get_job(engine, job_id)
    assert (job.status, job.done, job.failed, job.total) == ("done", len(TEXTS), 0, len(TEXTS))
    for item in items:
        expected = reference[item.position]
        assert item.predicted_label == expected.predicted_label
        assert item.result.target == expected.result.target
        assert item.result.probabilities == pytest.approx(expected.result.probabilities, abs=1e-5)
        assert set(item.result.pairs) == set(expected.result.pairs)
        for pair, values in item.result.pairs.items():
            assert values.spearman == pytest.approx(expected.result.pairs[pair].spearman, abs=1e-5)
            assert values.feature_agreement == pytest.approx(expected.result.pairs[pair].feature_agreement)
        for method, scores in item.result.faithfulness.items():
            reference_scores = expected.result.faithfulness[method]
            assert scores.comprehensiveness == pytest.approx(reference_scores.comprehensiveness, abs=1e-5)
            assert scores.sufficiency == pytest.approx(reference_scores.sufficiency, abs=1e-5)


def test_local_processes_give_the_single_process_results(any_engine, reference):
    job_id = make_job(any_engine)
    seen = []
    job = run_job_parallel(any_engine, job_id, workers=2, ray_address="", progress=lambda d, t, o: seen.append(d))
    assert job.status == "done"
    # One report per input, counts never going back, ending at the total (two inputs may finish between reports).
    assert len(seen) == len(TEXTS) and seen == sorted(seen) and seen[-1] == len(TEXTS)
    assert_same_results(any_engine, job_id, reference)


def test_a_killed_local_worker_leaves_the_rest_pending_and_a_resume_finishes(home, tmp_path, reference):
    engine = make_engine(f"sqlite:///{tmp_path / 'killed.db'}")
    job_id = make_job(engine)
    killed = []

    def kill_the_first_to_start(item_id: int, pid: int) -> None:
        """The driver's own worker, killed once it has signalled that it holds an input."""
        if not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    job = run_job_parallel(engine, job_id, workers=2, ray_address="", started=kill_the_first_to_start)
    assert killed, "no worker reported starting an input"
    assert not process_alive(killed[0])
    assert job.status == "failed" and "died" in job.error and "resume continues" in job.error
    finished = {i.id: i.result for i in corpus.items_of(engine, job_id, "done")}
    assert len(finished) < len(TEXTS)
    resumed = run_job_parallel(engine, job_id, workers=2, ray_address="")
    assert resumed.status == "done"
    # What was stored before the crash is kept as it was, never computed again.
    assert {i.id: i.result for i in corpus.items_of(engine, job_id, "done") if i.id in finished} == finished
    assert_same_results(engine, job_id, reference)


def test_ray_gives_the_same_results_even_when_a_worker_is_killed(home, tmp_path, reference):
    """A local Ray instance with 2 CPUs: results equal the single-process run item by item, after one worker
    is killed mid-task (Ray reruns its task; the input is stored once)."""
    pytest.importorskip("ray")
    import ray

    engine = make_engine(f"sqlite:///{tmp_path / 'ray.db'}")
    job_id = make_job(engine)
    killed = []
    # Ray titles a worker process `ray::work_item` while it runs that task: the sign it is mid-task.
    killer = threading.Thread(target=lambda: killed.append(kill_own_descendant(r"^ray::work_item")), daemon=True)
    killer.start()
    try:
        job = run_job_parallel(engine, job_id, workers=2, ray_address=LOCAL_RAY)
    finally:
        ray.shutdown()
    killer.join(timeout=130)
    assert killed, "no Ray worker was killed"
    assert job.status == "done"
    assert_same_results(engine, job_id, reference)


def test_a_killed_driver_is_resumed_without_losing_or_repeating_inputs(home, tmp_path, reference, tiny_model_dir):
    """The driver process dies mid-job: its lease is seen as stale at once, and a resume finishes the job."""
    import sys

    url = f"sqlite:///{tmp_path / 'driver.db'}"
    engine = make_engine(url)
    job_id = make_job(engine)
    code = ("import sys; from core.storage.db import make_engine; from core.work.fanout import run_job_parallel; "
            f"run_job_parallel(make_engine({url!r}), {job_id}, workers=1, ray_address='')")
    driver = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "RASHOMON_MODEL": str(tiny_model_dir)},
                              start_new_session=True)
    deadline = time.monotonic() + 180
    while corpus.get_job(engine, job_id).done < 2:
        assert driver.poll() is None, "the driver ended before it was killed"
        assert time.monotonic() < deadline, "the driver stored fewer than 2 inputs in 180 s"
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its worker, at once
    driver.wait()
    before = {i.id: i.result for i in corpus.items_of(engine, job_id, "done")}
    assert 2 <= len(before) < len(TEXTS)
    assert corpus.is_stale(corpus.get_job(engine, job_id))
    job = run_job_parallel(engine, job_id, workers=2, ray_address="")
    assert job.status == "done"
    assert {i.id: i.result for i in corpus.items_of(engine, job_id, "done") if i.id in before} == before
    assert_same_results(engine, job_id, reference)


def test_a_worker_command_runs_queued_jobs_from_the_shared_database(home, reference):
    """`rashomon worker --once --workers 2` picks up a job queued elsewhere (a page, another machine)."""
    import sys

    from core.storage.db import get_engine

    engine = get_engine()
    job_id = make_job(engine)
    result = subprocess.run([sys.executable, "-m", "core", "worker", "--once", "--workers", "2"], capture_output=True,
                            text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_results(engine, job_id, reference)
    from core.cli import main

    assert main(["worker", "--once"]) == 0 and corpus.get_job(engine, job_id).done == len(TEXTS)  # nothing left


def test_a_corpus_run_task_can_drive_worker_processes(home, reference, monkeypatch, tiny_model):
    """With RASHOMON_JOB_WORKERS=2, a `corpus_run` task's worker only drives: the model work runs in two
    processes of its own, and its own model makes no pass."""
    from core.storage.db import get_engine
    from core.work import tasks

    monkeypatch.setenv("RASHOMON_JOB_WORKERS", "2")
    engine = get_engine()
    job_id = make_job(engine)
    idle = ModelRunner(tiny_model)
    task = tasks.run_here(engine, idle, tasks.submit(engine, "corpus_run", "", {"job": job_id}).id)
    assert task.status == "done", task.error
    assert idle.forward_passes == 0
    assert_same_results(engine, job_id, reference)
