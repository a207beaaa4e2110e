"""Page tasks: submitted, claimed under a lease, run by worker processes, stoppable, taken over after a crash."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from core.analyses import checks
from core.analyses.reports import open_report, run_report
from core.storage.db import session_scope
from core.storage.leases import process_alive
from core.storage.schema import ExplanationRecord, utcnow
from core.work import tasks
from tests.support.gate import entered, open_gate
from tests.support.servers import Worker, kill_the_server_mid_task, stand_in_server
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The staff were lovely but the food was cold and bland."
LONG_TEXT = " ".join(["The staff were lovely but the food was cold, the room was loud and the bill was wrong."] * 4)
# The gate (tests/support/gate.py) holds a worker mid-comparison until the test opens it: occlusion
# (cheapest) is stored before it, LIME (dearest) would run after it.
GATED = {"methods": ["occlusion", "gate", "lime"], "text": LONG_TEXT, "target": "",
         "options": {"lime": {"num_samples": 5000, "adaptive": False}}}


def comparison(text: str = TEXT, methods=("occlusion", "attention"), **extra) -> dict:
    return {"text": text, "methods": list(methods), "options": {}, "target": "", **extra}


def explanation_rows(engine, method: str) -> list[tuple[int, object]]:
    with session_scope(engine) as session:
        rows = session.exec(select(ExplanationRecord).where(ExplanationRecord.method == method)).all()
        return [(r.id, r.created_at) for r in rows]


def test_one_live_task_per_key_and_recompute_does_not_change_the_key(engine):
    first = tasks.submit(engine, "comparison", "m", comparison())
    assert first.status == "queued" and first.attempts == 0
    assert tasks.submit(engine, "comparison", "m", comparison()).id == first.id  # a reload, a second tab
    assert tasks.submit(engine, "comparison", "m", comparison(fresh=True)).id == first.id
    assert tasks.submit(engine, "comparison", "other", comparison()).id != first.id
    assert tasks.submit(engine, "comparison", "m", comparison(methods=["occlusion"])).id != first.id
    assert tasks.request_stop(engine, first.id)  # queued: stopped at once, nothing ran
    stopped = tasks.get_task(engine, first.id)
    assert stopped.status == "stopped" and not stopped.active
    assert tasks.submit(engine, "comparison", "m", comparison()).id != first.id  # an ended task is not reused
    with pytest.raises(tasks.TaskError, match="Unknown task kind 'nonsense'"):
        tasks.submit(engine, "nonsense", "m", {})


def test_a_comparison_task_stores_the_same_report_as_running_it_directly(engine, runner, tiny_model_dir):
    task = tasks.submit(engine, "comparison", str(tiny_model_dir), comparison())
    done = tasks.run_here(engine, runner, task.id)
    assert done.status == "done" and done.error == "" and done.attempts == 1
    assert done.result == {"methods": ["occlusion", "attention"], "target": done.result["target"],
                           "computed": ["occlusion", "attention"], "reused": []}
    assert done.forward_passes > 0 and done.seconds > 0  # the cost is recorded
    assert set(done.progress) >= {"occlusion", "attention", "measures"} and done.fraction == 1.0
    stored = open_report(engine, runner, TEXT, ["occlusion", "attention"])
    direct = run_report(engine, runner, TEXT, ["occlusion", "attention"], fresh=True)
    assert [e.scores for e in stored.comparison.explanations] == [e.scores for e in direct.comparison.explanations]
    assert tasks.run_here(engine, runner, task.id).status == "done"  # an ended task is not run twice


def test_failures_end_the_task_in_one_line(engine, runner, tmp_path):
    bad_model = tasks.submit(engine, "comparison", str(tmp_path / "no-model"), comparison())
    ran = tasks.work(engine, tasks.model_runners(), once=True)
    assert ran == 1
    failed = tasks.get_task(engine, bad_model.id)
    assert failed.status == "failed" and "\n" not in failed.error and "Traceback" not in failed.error
    assert str(tmp_path / "no-model") in failed.error
    bad_method = tasks.submit(engine, "comparison", "", comparison(methods=["occlusion", "nonsense"]))
    assert tasks.run_here(engine, runner, bad_method.id).error.startswith("Unknown method 'nonsense'")


def test_check_tasks_store_checks_that_reopen(engine, runner, tiny_model_dir):
    model = str(tiny_model_dir)
    stability = tasks.submit(engine, "stability", model, {"texts": [TEXT], "methods": ["integrated_gradients"],
                                                           "quick": True, "k": 5})
    randomisation = tasks.submit(engine, "randomisation", model, {"texts": [TEXT], "methods": ["saliency"]})
    assert tasks.work(engine, tasks.model_runners(), once=True) == 2
    stored = checks.load_check(engine, tasks.get_task(engine, stability.id).result["check"])
    assert stored.kind == "stability" and [r.method for r in stored.stability] == ["integrated_gradients"]
    again = checks.stability_over(runner, [TEXT], {"integrated_gradients":
                                                   checks.stability_variants(quick=True)["integrated_gradients"]}, 5)
    assert [r.mean_spearman for r in stored.stability] == pytest.approx([r.mean_spearman for r in again])
    random_check = checks.load_check(engine, tasks.get_task(engine, randomisation.id).result["check"])
    assert random_check.kind == "randomisation" and "saliency" in random_check.randomisation.verdicts


def test_two_worker_processes_share_the_queue_and_run_each_task_once(any_engine, tiny_model_dir, gate):
    workers = [Worker(), Worker()]
    try:
        for process in workers:  # both have loaded the model and are polling
            process.wait_for_line("waiting for work")
        gated = {**comparison(), "methods": ["occlusion", "gate"]}
        submitted = [tasks.submit(any_engine, "comparison", str(tiny_model_dir), {**gated, "text": f"{TEXT} Take {i}."})
                     for i in range(4)]
        # Each worker holds a task at the gate: two tasks are running at once, on two processes.
        holders = wait_until(lambda: len(entered(gate)) == 2 and entered(gate), what="both workers at the gate")
        assert set(holders) == {w.process.pid for w in workers}
        open_gate(gate)
        wait_until(lambda: all(not tasks.get_task(any_engine, s.id).active for s in submitted), what="all four tasks")
        ended = [tasks.get_task(any_engine, s.id) for s in submitted]
        assert [t.status for t in ended] == ["done"] * 4 and [t.attempts for t in ended] == [1] * 4
        assert {int(t.owner.split(":")[1]) for t in ended} == set(holders)  # both workers took some
    finally:
        for process in workers:
            process.kill()


def test_a_killed_workers_task_is_taken_over_without_recomputing_what_finished(engine, tiny_model_dir, gate):
    task = tasks.submit(engine, "comparison", str(tiny_model_dir), GATED)
    first = Worker()
    try:
        held = wait_until(lambda: entered(gate), what="the worker at the gate")
        assert held == [first.process.pid]
        kept = explanation_rows(engine, "occlusion")  # the cheaper method finished before the gate
        assert kept
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        assert tasks.is_stale(tasks.get_task(engine, task.id))  # its process is gone: no need to wait out the lease
    finally:
        first.kill()
    open_gate(gate)
    second = Worker("--once")
    output = second.finish()
    ended = tasks.get_task(engine, task.id)
    assert ended.status == "done", output
    assert ended.attempts == 2
    assert explanation_rows(engine, "occlusion") == kept  # reused, not recomputed
    assert len(explanation_rows(engine, "gate")) == 1 and len(explanation_rows(engine, "lime")) == 1


def test_a_running_task_stops_when_asked_and_keeps_the_finished_methods(engine, tiny_model_dir, gate):
    task = tasks.submit(engine, "comparison", str(tiny_model_dir), GATED)
    process = Worker()
    try:
        wait_until(lambda: entered(gate), what="the worker at the gate")
        assert explanation_rows(engine, "occlusion")
        assert tasks.request_stop(engine, task.id)
        ended = wait_until(lambda: (t := tasks.get_task(engine, task.id)) and not t.active and t, what="the stop")
    finally:
        process.kill()
    assert ended.status == "stopped" and "kept" in ended.error
    assert explanation_rows(engine, "occlusion")
    assert not explanation_rows(engine, "gate") and not explanation_rows(engine, "lime")
    assert not tasks.request_stop(engine, task.id)  # ended: nothing to stop


@pytest.mark.processes
def test_local_workers_end_with_the_server_that_started_them(home, tmp_path):
    """A stand-in server starts two local workers, then is killed; its workers notice and exit."""
    server, pid_file = stand_in_server(tmp_path, workers=2)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the stand-in server's workers")
        pids = [int(p) for p in pid_file.read_text().split()]
        assert len(pids) == 2 and all(process_alive(p) for p in pids)
    finally:
        server.kill()
        server.wait(timeout=30)
    wait_until(lambda: not any(process_alive(p) for p in pids), timeout=30, every=0.2, what="the workers to exit")


def test_the_tasks_command_lists_and_stops_tasks(engine, capsys):
    import json

    from core.cli import main

    task = tasks.submit(engine, "comparison", "m", comparison())
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["kind"], r["status"]) for r in rows] == [(task.id, "comparison", "queued")]
    assert main(["tasks", "stop", str(task.id)]) == 0
    assert f"Asked task {task.id} to stop." in capsys.readouterr().out
    assert main(["tasks", "stop", str(task.id)]) == 1
    assert capsys.readouterr().err.strip() == f"rashomon: Task {task.id} has already ended."
    assert main(["tasks", "stop", "999"]) == 1
    assert capsys.readouterr().err.strip() == "rashomon: There is no task 999."
    assert main(["tasks"]) == 0
    assert "stopped" in capsys.readouterr().out


@pytest.fixture
def kind_cases(engine, home, trained_tiny_model_dir, tiny_model_dir, random_lm_dir):
    """Parameters for one task of every kind on the trained tiny model, and what the checks need."""
    from core.analyses import corpus
    from core.analyses.edits import ANY_OTHER, SEARCH
    from core.analyses.evaluation import create_evaluation, heldout_inputs
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.storage.schema import Link, Snapshot
    from core.work.builds import build_params
    from core.work.samples import sample_params

    model = str(trained_tiny_model_dir)
    runner = ModelRunner(load_model(model))
    with session_scope(engine) as session:
        link = Link(url="https://example.com/review", normalized_url="https://example.com/review")
        session.add(link)
        session.flush()
        snapshot = Snapshot(link_id=link.id, text=LONG_TEXT, title="A long review")
        session.add(snapshot)
        session.flush()
        snapshot_id = snapshot.id
    edits = {"text": TEXT, "methods": ["occlusion"], "target": ANY_OTHER, "order": SEARCH,
             "params": {"max_edits": 2, "similarity": 0.5}, "options": {}, "k": 3}
    document = {"snapshot": snapshot_id, "methods": ["occlusion"], "target": "", "overlap": 0.25, "window_tokens": 16}
    evaluation = create_evaluation(engine, "held-out", heldout_inputs(40), runner.loaded.labels, model=model)
    assert corpus.run_job(engine, runner, evaluation).status == "done"
    other = str(tiny_model_dir)  # model B of the diff: the untrained tiny model, same labels
    run = corpus.create_job(engine, "run", [corpus.Input(f"row {i}", f"{TEXT} Take {i}.") for i in range(3)],
                            ["occlusion"], k=3, faithfulness_inputs=0)
    cases = {"comparison": comparison(),
             "stability": {"texts": [TEXT], "methods": ["saliency"], "quick": True, "k": 5},
             "randomisation": {"texts": [TEXT], "methods": ["saliency"]},
             "document": document, "edits": edits,
             "training_data": {"text": TEXT, "methods": ["nearest", "tracin"], "target": "", "k": 3},
             "attention_view": {"text": TEXT},
             "head_importance": {"text": TEXT, "target": ""},
             "error_groups": {"job": evaluation, "min_size": 3},
             "model_compare": {"b": other, "limit": 12},
             "model_pair": {"b": other, "text": TEXT, "methods": ["occlusion", "saliency"]},
             "datamodeling": {"text": TEXT, "methods": ["nearest"], "target": "", "subsets": 5},
             "corpus_run": {"job": run},
             "training_data_preparation": {"methods": ["nearest", "tracin"]},
             "samples": sample_params(model, inputs=3, heldout=20),
             "known_answer": {"token": "zorblat", "label": "positive", "rate": 0.3, "methods": ["occlusion"],
                              "inputs": 2, "k": 3, "probe": 40},
             "model_build": build_params(options=["--train-rows", "24", "--heldout-rows", "12", "--checkpoints", "1"]),
             "backend_gate": {"backend": "int8", "inputs": 20, "method_inputs": 0},
             "token_view": {"text": TEXT, "method": "occlusion"}}
    assert set(cases) == set(tasks.KINDS)  # a new kind is one registry entry, and one case here
    # Kinds that need another kind of model than the trained classifier (core/engine/adapters).
    from core.engine.adapters import make_spec

    continuation = make_spec("lm_continuation", {"model": str(random_lm_dir), "continuation": " good day"})
    return {"cases": cases, "runner": runner, "model": model, "other": other, "evaluation": evaluation,
            "edits": edits, "models": {"token_view": continuation}}


def submit_case(engine, kind_cases, kind: str) -> tasks.Task:
    on = kind_cases["models"].get(kind, kind_cases["model"]) if tasks.KINDS[kind].needs_model else ""
    return tasks.submit(engine, kind, on, kind_cases["cases"][kind])


def runner_for_case(kind_cases, kind: str):
    """The worker's runner for a kind's case: the trained classifier's, or one over the case's own model."""
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    spec = kind_cases["models"].get(kind)
    return kind_cases["runner"] if spec is None else ModelRunner(load_model(spec))


def test_every_kind_runs_from_its_registry_entry_and_stores_what_its_page_reads(engine, home, kind_cases, monkeypatch):
    """Each task kind, run as a worker would, leaves the result its page then reads with no model work."""
    from core.analyses.attention_checks import stored_head_importance
    from core.analyses.attention_views import stored_attention_view
    from core.analyses.documents import explain_document
    from core.analyses.edit_checks import edit_report
    from core.analyses.edits import ANY_OTHER, SEARCH
    from core.analyses.error_groups import stored_groups
    from core.analyses.evaluation import heldout_inputs
    from core.analyses.model_compare import stored_diff, stored_pairs
    from core.analyses.training_data.store import retraining_checks, stored_attributions
    from core.analyses.training_data.training_sets import training_set_for
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    runner = kind_cases["runner"]
    monkeypatch.setenv("RASHOMON_SAMPLES", "6")  # the build queues the sample workspace
    for kind in tasks.KINDS:
        task = tasks.run_here(engine, runner_for_case(kind_cases, kind), submit_case(engine, kind_cases, kind).id)
        assert task.status == "done", (kind, task.error)
        assert task.seconds > 0 and task.attempts == 1
        # Their passes go through the worker's runner (the others use model copies or a second model, and
        # the attention view reuses the comparison's cached attention pass on this runner).
        if tasks.KINDS[kind].needs_model and kind not in ("stability", "randomisation", "training_data", "training_data_preparation",
                                                          "datamodeling", "model_compare", "attention_view",
                                                          "model_pair", "backend_gate"):
            assert task.forward_passes > 0, kind

    assert open_report(engine, runner, TEXT, ["occlusion", "attention"]) is not None
    assert explain_document(engine, runner, LONG_TEXT, ["occlusion"], overlap=0.25, window_tokens=16,
                            only_stored=True) is not None
    assert edit_report(engine, runner, TEXT, ["occlusion"], only_stored=True, target=ANY_OTHER, order=SEARCH,
                       params=kind_cases["edits"]["params"], options={}, k=3) is not None
    assert stored_head_importance(engine, runner, TEXT, only_stored=True) is not None
    from core.analyses.backend_gate import stored_gates

    assert stored_gates(engine, runner.loaded.weights_fingerprint)["int8"].inputs == 20  # what Models reads
    assert stored_attention_view(engine, runner, TEXT, only_stored=True) is not None
    from core.analyses.token_view import token_view

    view = token_view(engine, runner_for_case(kind_cases, "token_view"), TEXT, "occlusion", only_stored=True)
    assert view is not None and len(view.tokens) == len(view.scores) >= 2
    assert stored_groups(engine, runner, kind_cases["evaluation"], min_size=3, only_stored=True) is not None
    other = ModelRunner(load_model(kind_cases["other"]))
    assert stored_diff(engine, runner, other, heldout_inputs(12), only_stored=True) is not None
    assert stored_pairs(engine, runner, other, TEXT, ["occlusion", "saliency"], only_stored=True) is not None
    assert (home / "models" / "default-sentiment" / "config.json").exists()  # the build's model
    # ...whose training-data preparation the build queued, as background work
    queued = tasks.list_tasks(engine, kind="training_data_preparation", status=("queued",))
    assert [t.model for t in queued] == [str(home / "models" / "default-sentiment")]
    # ...and then its sample workspace, whose first step (the corpus run) queues the next
    following = [t for t in tasks.list_tasks(engine, kind="samples", status=("queued",))
                 if t.model == str(home / "models" / "default-sentiment")]
    assert [t.params["step"] for t in following] == ["corpus"] and following[0].id > queued[0].id
    assert [t.params["step"] for t in tasks.list_tasks(engine, kind="samples", status=("queued",))
            if t.model == kind_cases["model"]] == ["compare"]
    from core.analyses.training_data.features import preparation_dir

    assert preparation_dir(runner.loaded, training_set_for(engine, runner.loaded)).is_dir()  # the preparation case
    training = training_set_for(engine, runner.loaded)
    assert retraining_checks(engine, runner.loaded, training)  # the datamodeling check's stored result
    assert stored_attributions(engine, runner.loaded, training, TEXT, ["nearest", "tracin"], k=3,
                               only_stored=True)[1]


def test_every_kind_stops_when_asked_while_it_runs(engine, kind_cases):
    """A stop asked of a running task of any kind ends it as stopped at its first progress report."""
    from sqlalchemy import update

    from core.storage.schema import TaskRecord

    for kind in tasks.KINDS:
        submitted = submit_case(engine, kind_cases, kind)
        owner = tasks.claim(engine, submitted)
        assert owner is not None
        with engine.begin() as connection:  # asked from a page or the CLI while a worker holds it
            connection.execute(update(TaskRecord).where(TaskRecord.id == submitted.id).values(stop_requested=True))
        runner = runner_for_case(kind_cases, kind)
        ended = tasks.run_claimed(engine, lambda _spec, runner=runner: runner, tasks.get_task(engine, submitted.id), owner)
        assert ended.status == "stopped", (kind, ended.status, ended.error)
        assert not ended.active and not tasks.request_stop(engine, submitted.id)


def test_every_kind_is_taken_over_when_its_worker_dies(engine, kind_cases):
    """A task of any kind whose worker died (a dead process holds its lease) is claimed again and finishes."""
    from sqlalchemy import update

    from core.storage.schema import TaskRecord

    # No process can have the pid the kernel never hands out (pid_max itself).
    dead_owner = f"{socket.gethostname()}:{int(Path('/proc/sys/kernel/pid_max').read_text())}:gone"
    for kind in tasks.KINDS:
        submitted = submit_case(engine, kind_cases, kind)
        with engine.begin() as connection:  # as a killed worker leaves it: running, its lease held by the dead
            connection.execute(update(TaskRecord).where(TaskRecord.id == submitted.id).values(
                status="running", owner=dead_owner, heartbeat_at=utcnow(), attempts=1))
        assert tasks.is_stale(tasks.get_task(engine, submitted.id))
        ended = tasks.run_here(engine, runner_for_case(kind_cases, kind), submitted.id)
        assert (ended.status, ended.attempts) == ("done", 2), (kind, ended.error)


def test_a_worker_takes_only_the_kinds_it_declares(engine, capsys):
    """A worker on another machine leaves the kinds that write under RASHOMON_HOME to workers that share it."""
    import json

    from core.cli import main

    assert tasks.kinds_for() == frozenset(tasks.KINDS)
    remote = tasks.kinds_for(shares_home=False)
    assert remote == {name for name, kind in tasks.KINDS.items() if not kind.writes_home}
    assert "model_build" not in remote and "comparison" in remote
    with pytest.raises(tasks.TaskError, match="Unknown task kind nonsense"):
        tasks.kinds_for("comparison,nonsense")
    build = tasks.submit(engine, "model_build", "", {"extra_csv": "", "options": []})
    comparison_task = tasks.submit(engine, "comparison", "m", comparison())
    claimed, _owner = tasks.claim_next(engine, remote)
    assert claimed.id == comparison_task.id  # the older build is left for a worker that shares the home
    assert tasks.get_task(engine, build.id).status == "queued"
    assert tasks.claim_next(engine, frozenset({"stability"})) is None

    assert main(["tasks", "kinds", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["kind"] for row in listed] == list(tasks.KINDS)
    assert {row["kind"] for row in listed if row["writes_home"]} == set(tasks.KINDS) - remote
    assert main(["worker", "--kinds", "nonsense", "--once"]) == 1
    assert capsys.readouterr().err.strip() == (f"rashomon: Unknown task kind nonsense; known: {', '.join(tasks.KINDS)}.")


def test_a_new_kind_of_heavy_work_is_one_function_and_one_registry_entry(engine, runner, monkeypatch, capsys):
    """Registered like any kind, it is submitted, run, deduplicated, listed and stopped with no other change."""
    import json

    from core.cli import main

    def count_words(engine, runner, params, progress, should_stop):
        progress("words", 1.0, "counted")
        return {"words": len(runner.prepare(params["text"]).words)}

    monkeypatch.setitem(tasks.KINDS, "word_count", tasks.TaskKind("word_count", "Word count", count_words))
    task = tasks.submit(engine, "word_count", "m", {"text": TEXT})
    assert tasks.submit(engine, "word_count", "m", {"text": TEXT}).id == task.id
    done = tasks.run_here(engine, runner, task.id)
    assert done.status == "done" and done.result == {"words": len(runner.prepare(TEXT).words)}
    assert main(["tasks", "kinds", "--json"]) == 0
    assert "word_count" in [row["kind"] for row in json.loads(capsys.readouterr().out)]
    assert main(["tasks", "--json"]) == 0
    assert [row["kind"] for row in json.loads(capsys.readouterr().out)] == ["word_count"]


def test_killing_the_server_during_a_corpus_run_loses_nothing(engine, gate, tmp_path):
    """A stand-in server with its local worker; a corpus run held mid-input at the gate; the server is
    killed: its worker exits with it, the task's lease is seen as stale at once, a new worker takes the task
    over and the run ends with every input stored once."""
    from core.analyses import corpus
    from core.analyses.corpus.inputs import Input

    job = corpus.create_job(engine, "run", [Input(f"row {i}", f"{TEXT} Take {i}.") for i in range(3)],
                            ["occlusion", "gate"], k=3, faithfulness_inputs=0)
    task = tasks.submit(engine, "corpus_run", "", {"job": job})
    output = kill_the_server_mid_task(engine, task.id, gate, tmp_path,
                                      while_held=lambda: corpus.get_job(engine, job).done == 0)  # not stored yet
    ended, finished_job = tasks.get_task(engine, task.id), corpus.get_job(engine, job)
    assert (ended.status, ended.attempts) == ("done", 2), output
    assert (finished_job.status, finished_job.done, finished_job.failed) == ("done", 3, 0)
    assert [i.status for i in corpus.items_of(engine, job)] == ["done"] * 3


def test_work_a_person_asked_for_is_claimed_before_background_work(engine, runner, monkeypatch):
    def noop(engine, runner, params, progress, should_stop):
        return {}

    monkeypatch.setitem(tasks.KINDS, "ahead", tasks.TaskKind("ahead", "Prepared ahead", noop, background=True))
    early = tasks.submit(engine, "ahead", "m", {"n": 1})  # queued first, by nobody
    asked = tasks.submit(engine, "comparison", "m", comparison())
    assert tasks.claim_next(engine)[0].id == asked.id
    assert tasks.claim_next(engine)[0].id == early.id  # then the background work


SUBMITTER = """
import sys, time
from pathlib import Path
from core.storage.db import get_engine
from core.work import tasks
engine = get_engine()  # migrated before the start line, so that every process is ready at once
Path(sys.argv[2]).touch()
while not Path(sys.argv[1]).exists():
    time.sleep(0.005)
print(tasks.submit(engine, "comparison", "m", {"text": "same", "methods": ["occlusion"], "options": {}, "target": ""}).id)
"""


@pytest.mark.processes
@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql"], indirect=True)
def test_processes_submitting_the_same_work_at_once_make_one_task(backend_url, tmp_path):
    """Before, a check-then-insert made 3-8 queued tasks out of 8 submitters; the database's partial unique index
    keeps one. Five submitters (each imports torch and transformers: eight cost 35 s a backend on 2 cores)."""
    from core.storage.db import get_engine

    get_engine(backend_url)  # migrate once, before the race
    start = tmp_path / "start"
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(start), str(tmp_path / f"ready-{i}")], cwd=ROOT,
                                   env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for i in range(5)]
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 5, timeout=120, what="five submitters ready")
        start.touch()
        outputs = [s.communicate(timeout=120) for s in submitters]
    finally:
        for s in submitters:
            s.kill()
    assert all(s.returncode == 0 for s in submitters), [o[1][-500:] for o in outputs]
    ids = {int(out.strip()) for out, _ in outputs}
    assert len(ids) == 1
    assert [t.id for t in tasks.list_tasks(get_engine(backend_url))] == list(ids)
