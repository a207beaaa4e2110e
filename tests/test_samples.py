"""The sample workspace: real results computed by the workers after a build, labelled, and removed in one call."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from core.work import samples, tasks


@pytest.fixture
def run_cli(capsys, home):
    from core.cli import main

    def run(*args: str):
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out) if "--json" in args else out.out

    return run


def run_all(engine, runner) -> list[tasks.Task]:
    """What a worker does: claim and run queued tasks until none is left (each step queues the next)."""
    ran = []
    while (claimed := tasks.claim_next(engine)) is not None:
        ran.append(tasks.run_claimed(engine, lambda _spec: runner, *claimed))
    return ran


def mean_agreement(item_result: str) -> float | None:
    from core.analyses.corpus.results import ItemResult

    values = [p.feature_agreement for p in ItemResult.from_json(item_result).pairs.values()
              if p.feature_agreement is not None]
    return sum(values) / len(values) if values else None


@pytest.mark.slow
def test_the_sample_workspace_is_computed_by_workers_labelled_and_removed_in_one_call(
        engine, home, monkeypatch, trained_tiny_model_dir, run_cli):
    from core.analyses import corpus
    from core.analyses.compare import ViewState, save_demo
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.storage.db import session_scope
    from core.storage.schema import (
        CheckRecord,
        ComparisonReportRecord,
        CorpusItem,
        CorpusJob,
        Demo,
        ExplanationRecord,
    )

    model = str(trained_tiny_model_dir)
    monkeypatch.setenv("RASHOMON_MODEL", model)
    runner = ModelRunner(load_model(model))
    # A person's own work, before and beside the samples: never marked, never removed.
    own_demo = save_demo(engine, "my view", "", ViewState(text="The crew were lovely."))
    own_job = corpus.create_job(engine, "my run", [corpus.Input("row 1", "The crew were lovely.")], ["occlusion"],
                                faithfulness_inputs=0)

    samples.submit_samples(engine, model, inputs=6, heldout=40)
    ran = run_all(engine, runner)
    assert all(t.status == "done" for t in ran), [(t.params, t.error) for t in ran]
    assert [(t.params["step"], t.params["view"]) for t in ran] == [
        ("corpus", 0), ("compare", 0), ("compare", 1), ("compare", 2), ("compare", 3), ("evaluation", 0),
        ("error_groups", 0), ("edits", 0), ("training_data", 0)]
    assert all(t.forward_passes > 0 for t in ran if t.params["step"] in ("corpus", "compare", "evaluation", "edits"))

    # The Compare views are stored demos, listed like any other, chosen from the corpus run's own numbers.
    demos = run_cli("demo", "list", "--json")
    sample_demos = [d for d in demos if d["sample"]]
    assert [d["id"] for d in demos if not d["sample"]] == [own_demo.id]
    assert len(sample_demos) == 4 and all(d["name"].startswith(samples.PREFIX) for d in sample_demos)
    job = samples.workspace(engine).corpus_job
    with session_scope(engine) as session:
        items = session.exec(select(CorpusItem).where(CorpusItem.job_id == job)).all()
        agreement = {i.text: mean_agreement(i.result) for i in items}
    by_agreement = sorted((a, t) for t, a in agreement.items() if a is not None)
    disagreeing = [d for d in sample_demos if "disagree" in d["name"]]
    agreeing = [d for d in sample_demos if "the methods agree" in d["name"]]
    assert {d["query"]["text"] for d in disagreeing} == {t for _, t in by_agreement[:3]}
    assert [d["query"]["text"] for d in agreeing] == [by_agreement[-1][1]]

    # Every sample's --json says so; the stored results come back with no model work.
    first = next(d for d in disagreeing if "(1)" in d["name"])["query"]["text"]
    compared = run_cli("compare", "--text", first, "--json")
    assert compared["sample"] is True and compared["cost"]["from_store"] is True
    assert compared["cost"]["forward_passes_now"] == 0
    probabilities = compared["prediction"]
    second = sorted(probabilities, key=lambda label: -probabilities[label])[1]
    edits = run_cli("edits", "--text", first, "--target", second, "--methods", "", "--json")
    assert edits["sample"] is True and edits["from_store"] is True
    assert run_cli("training-data", "examples", "--text", first, "--json")["sample"] is True
    workspace = samples.workspace(engine)
    assert run_cli("corpus", "status", str(workspace.corpus_job), "--json")["job"]["sample"] is True
    assert run_cli("corpus", "status", str(own_job), "--json")["job"]["sample"] is False
    groups = run_cli("errors", "groups", str(workspace.evaluation_job), "--json")
    assert groups["sample"] is True
    assert [t["kind"] for t in run_cli("tasks", "--json")].count("samples") == 9

    # Home's three things to try open stored samples: the most disagreeing view, the evaluation, training data.
    things = workspace.things_to_try()
    assert [t.address.split("?")[0] for t in things] == ["/Compare", "/Evaluation", "/Training_data"]
    assert things[0].address == f"/Compare?demo={next(d['id'] for d in disagreeing if '(1)' in d['name'])}"
    assert things[1].address == f"/Evaluation?job={workspace.evaluation_job}"

    listed = run_cli("samples", "list", "--json")
    assert listed["sample"] is True and len(listed["demos"]) == 4 and len(listed["things_to_try"]) == 3
    removed = run_cli("samples", "remove", "--json")["removed"]
    assert removed["demo"] == 4 and removed["corpus_job"] == 2 and removed["check_record"] >= 3
    with session_scope(engine) as session:
        for table in (Demo, CheckRecord, ComparisonReportRecord, ExplanationRecord, CorpusJob):
            assert session.exec(select(table).where(col(table.sample))).all() == [], table
        assert [d.id for d in session.exec(select(Demo)).all()] == [own_demo.id]
        assert [j.id for j in session.exec(select(CorpusJob)).all()] == [own_job]
        assert session.exec(select(CorpusItem).where(CorpusItem.job_id == job)).all() == []
    assert samples.workspace(engine).empty and samples.workspace(engine).things_to_try() == []
    assert "There were no samples." in run_cli("samples", "remove")


def test_a_person_s_task_goes_before_the_next_sample_step(engine, home):
    """Samples are background work: a comparison asked for after them is claimed first, and a server with two
    workers keeps one that never takes background kinds."""
    samples.submit_samples(engine, "m", inputs=3)
    comparison = tasks.submit(engine, "comparison", "m", {"text": "Fine.", "methods": ["occlusion"], "options": {},
                                                          "target": ""})
    claimed, _owner = tasks.claim_next(engine)
    assert claimed.id == comparison.id
    assert "samples" not in tasks.foreground_kinds() and "training_data_preparation" not in tasks.foreground_kinds()
    assert "comparison" in tasks.foreground_kinds() and "model_build" in tasks.foreground_kinds()


def test_removing_samples_stops_the_chain(engine, home):
    """Removed while a step waits: the queued step ends and no later step is queued."""
    first = samples.submit_samples(engine, "m", inputs=3)
    samples.remove_samples(engine)
    assert tasks.get_task(engine, first.id) is None  # ended as stopped, then cleared with the samples' history
    assert tasks.list_tasks(engine, status=tasks.ACTIVE) == []


def test_a_sample_step_with_an_unknown_name_fails_in_one_line(engine, home, trained_tiny_model_dir):
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    task = tasks.submit(engine, samples.KIND, str(trained_tiny_model_dir),
                        {**samples.sample_params(str(trained_tiny_model_dir)), "step": "nonsense"})
    ended = tasks.run_here(engine, ModelRunner(load_model(str(trained_tiny_model_dir))), task.id)
    assert ended.status == "failed" and "Unknown sample step 'nonsense'" in ended.error and "\n" not in ended.error
