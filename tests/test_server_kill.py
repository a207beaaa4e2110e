"""Killing the server mid-work loses nothing: an evaluation, an error grouping and a model build, each held
at the gate on the server's own worker when the server dies, are taken over by another worker and end done,
and what the pages read is there. (The corpus run's case is in test_tasks.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.analyses import corpus
from core.analyses.evaluation import create_evaluation, heldout_inputs
from core.work import builds, tasks
from tests.support.gate_kinds import KINDS_ENV
from tests.support.servers import kill_the_server_mid_task
from tests.test_builds import SMALL


def evaluation(engine, model_dir) -> tuple[tasks.Task, callable]:
    job = create_evaluation(engine, "held-out", heldout_inputs(40), ["negative", "neutral", "positive"],
                            model=str(model_dir))
    task = tasks.submit(engine, "corpus_run", str(model_dir), {"job": job})

    def found() -> None:
        finished = corpus.get_job(engine, job)
        assert (finished.status, finished.done, finished.failed) == ("done", 40, 0)
        assert [i.status for i in corpus.items_of(engine, job)] == ["done"] * 40

    return task, found


def error_grouping(engine, model_dir) -> tuple[tasks.Task, callable]:
    from core.analyses.error_groups import stored_groups
    from core.engine.fingerprints import known_fingerprint
    from core.engine.modelling import describe_model, load_model
    from core.engine.runner import ModelRunner

    job = create_evaluation(engine, "held-out", heldout_inputs(60), ["negative", "neutral", "positive"],
                            model=str(model_dir))
    corpus.run_job(engine, ModelRunner(load_model(str(model_dir))), job)
    task = tasks.submit(engine, "error_groups", str(model_dir), {"job": job})

    def found() -> None:  # as the Evaluation page reads it: a described model, the store only
        described = describe_model(str(model_dir))
        page = ModelRunner(described.with_fingerprint(known_fingerprint(engine, described.signature)))
        groups = stored_groups(engine, page, job, only_stored=True)
        assert groups is not None and groups.errors == tasks.get_task(engine, task.id).result["errors"]

    return task, found


def build(engine, model_dir) -> tuple[tasks.Task, callable]:
    task = builds.submit_build(engine, options=SMALL)

    def found() -> None:
        shown = builds.list_builds(engine)[0]
        assert shown.status == "done" and 0.0 <= shown.macro_f1 <= 1.0
        assert (Path(shown.output_dir) / "config.json").is_file()

    return task, found


@pytest.mark.processes
@pytest.mark.parametrize("work", [evaluation, error_grouping, pytest.param(build, marks=pytest.mark.slow)])
def test_killing_the_server_mid_work_loses_nothing(work, engine, gate, tmp_path, monkeypatch, trained_tiny_model_dir):
    task, found = work(engine, trained_tiny_model_dir)
    monkeypatch.setenv(tasks.PLUGINS_ENV, "tests.support.gate_kinds")
    task = tasks.get_task(engine, task.id)  # (a build is submitted as a Build view of its task)
    monkeypatch.setenv(KINDS_ENV, task.kind)  # the server's worker holds this kind at its first progress report
    output = kill_the_server_mid_task(engine, task.id, gate, tmp_path)
    ended = tasks.get_task(engine, task.id)
    assert (ended.status, ended.attempts) == ("done", 2), output
    found()
