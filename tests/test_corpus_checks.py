"""Corpus jobs (persistence, stop, resume, background thread), aggregation maths, trust checks."""

import json

import numpy as np
import pytest

from core.analyses import checks, corpus
from core.engine.runner import ModelRunner
from core.methods.registry import corpus_options
from core.storage.db import session_scope
from core.storage.schema import CorpusItem

FAST = ["attention", "occlusion", "input_x_gradient"]
TEXTS = ["The staff were lovely.", "The food was cold and bland.", "An average evening, nothing special.",
         "Wonderful view, terrible coffee.", "I would come back for the desserts alone."]


def make_job(engine, n=4, methods=FAST):
    return corpus.create_job(engine, "test", [corpus.Input(f"row {i}", t) for i, t in enumerate(TEXTS[:n])],
                             methods, k=3, source="unit test")


def test_bootstrap_interval_by_hand():
    assert corpus.bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    mean, low, high = corpus.bootstrap_interval([0.0, 1.0, 0.0, 1.0], samples=4000)
    assert mean == 0.5 and 0.0 <= low < 0.5 < high <= 1.0
    assert corpus.bootstrap_interval([0.2, float("nan")])[0] == 0.2
    assert all(np.isnan(corpus.bootstrap_interval([])))


def test_aggregation_on_hand_made_results(engine):
    job_id = make_job(engine, n=3)
    made = [((0.9, 1.0), {"a": 0.4, "b": 0.1}, "positive"),
            ((-0.2, 0.0), {"a": 0.2, "b": 0.3}, "negative"),
            ((0.5, 0.5), {"a": 0.3, "b": 0.2}, "positive")]
    with session_scope(engine) as session:
        for item, ((rho, fa), comp, label) in zip(corpus.items_of(engine, job_id), made, strict=True):
            row = session.get(CorpusItem, item.id)
            row.status, row.predicted_label = "done", label
            row.result = corpus.ItemResult(
                pairs={"a vs b": corpus.PairAgreement(rho, fa)},
                faithfulness={m: corpus.FaithfulnessScores(v, 0.5 - v) for m, v in comp.items()}).to_json()
            session.add(row)
    board = {r.method: r for r in corpus.leaderboard(engine, job_id)}
    assert board["a"].comprehensiveness == pytest.approx(0.3) and board["b"].comprehensiveness == pytest.approx(0.2)
    assert board["a"].sufficiency == pytest.approx(0.2) and board["a"].inputs == 3
    assert board["a"].comp_low <= 0.3 <= board["a"].comp_high
    assert [r.position for r in corpus.most_disputed(engine, job_id)] == [1, 2, 0]
    labels = {r.label: r for r in corpus.per_label(engine, job_id)}
    assert labels["positive"].inputs == 2 and labels["positive"].mean_spearman == pytest.approx(0.7)
    assert labels["negative"].mean_comprehensiveness == pytest.approx(0.25)
    assert len(corpus.agreement_rows(engine, job_id)) == 6
    assert corpus.export_csv(engine, job_id).count("a vs b") == 6
    assert json.loads(corpus.export_json(engine, job_id))["job"]["total"] == 3


def test_job_survives_a_crash_and_resumes_without_recomputing(engine, runner):
    job_id = make_job(engine)

    def crash_after_two(done, total, origin):
        if done == 2:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        corpus.run_job(engine, runner, job_id, progress=crash_after_two)
    job = corpus.get_job(engine, job_id)
    assert job.status == "failed" and job.done == 2
    kept = {i.id: i.result for i in corpus.items_of(engine, job_id, "done")}
    assert len(kept) == 2
    finished = corpus.run_job(engine, runner, job_id)
    assert finished.status == "done" and finished.done == 4 and finished.failed == 0
    after = {i.id: i.result for i in corpus.items_of(engine, job_id, "done")}
    assert all(after[i] == r for i, r in kept.items())  # finished items untouched
    result = corpus.items_of(engine, job_id)[0].result
    assert set(result.pairs) == {"attention vs occlusion", "attention vs input_x_gradient",
                                 "occlusion vs input_x_gradient"}
    assert "random" in result.faithfulness


def test_stop_then_resume(any_engine, runner):
    engine = any_engine
    job_id = make_job(engine)

    def stop_after_first(done, total, origin):
        if done == 1:
            corpus.request_stop(engine, job_id)

    stopped = corpus.run_job(engine, runner, job_id, progress=stop_after_first)
    assert stopped.status == "stopped" and stopped.done == 1
    assert corpus.seconds_left(stopped) > 0
    assert corpus.run_job(engine, runner, job_id).done == 4


def test_a_corpus_run_is_a_task_that_stops_when_asked_and_resumes(engine, runner):
    """Start on the Corpus page submits a `corpus_run` task; a second Start follows the same task; a stop
    asked of the task ends the job after the input in flight, keeping it; a resume is a new task."""
    from sqlalchemy import update

    from core.storage.schema import TaskRecord
    from core.work import tasks

    job_id = make_job(engine, n=3)
    first = tasks.submit(engine, "corpus_run", "", {"job": job_id})
    assert tasks.submit(engine, "corpus_run", "", {"job": job_id}).id == first.id
    owner = tasks.claim(engine, first)
    with engine.begin() as connection:  # Stop pressed while a worker holds it
        connection.execute(update(TaskRecord).where(TaskRecord.id == first.id).values(stop_requested=True))
    stopped = tasks.run_claimed(engine, lambda _spec: runner, tasks.get_task(engine, first.id), owner)
    job = corpus.get_job(engine, job_id)
    assert stopped.status == "stopped" and "resume continues" in stopped.error
    assert (job.status, job.done) == ("stopped", 1)  # the first input's report carried the stop
    resumed = tasks.submit(engine, "corpus_run", "", {"job": job_id})
    assert resumed.id != first.id
    done = tasks.run_here(engine, runner, resumed.id)
    job = corpus.get_job(engine, job_id)
    assert done.status == "done" and done.result == {"job": job_id, "status": "done", "finished": 3, "total": 3}
    assert (job.status, job.done, job.fraction) == ("done", 3, 1.0)


def test_inputs_from_csv_and_passages():
    rows = corpus.inputs_from_csv("text,label\nGreat food,positive\n,neutral\nAwful,negative\n", "text", "label")
    assert [(r.text, r.gold_label, r.origin) for r in rows] == [("Great food", "positive", "csv row 2"),
                                                               ("Awful", "negative", "csv row 4")]
    with pytest.raises(corpus.CorpusError, match="no column 'body'"):
        corpus.inputs_from_csv("text\nx\n", "body")
    long = "One sentence here. " * 10 + "\n\nShort paragraph."
    parts = corpus.split_into_passages(long, lambda t: len(t.split()) <= 9)
    assert parts[-1] == "Short paragraph." and all(len(p.split()) <= 9 for p in parts)
    assert " ".join(parts[:-1]) == long.split("\n\n")[0].strip()


def test_pass_estimate_tracks_a_real_run(engine, runner):
    methods = ["attention", "integrated_gradients", "occlusion", "saliency"]
    # Inputs of ~35 words, so that the ERASER fractions name different word sets (as in real passages).
    texts = [" ".join(TEXTS[i:] + TEXTS[:i]) for i in range(3)]
    job_id = corpus.create_job(engine, "estimate", [corpus.Input(f"row {i}", t) for i, t in enumerate(texts)],
                               methods, k=3)
    expected = corpus.estimate_passes(runner, methods, texts)
    fresh = ModelRunner(runner.loaded)
    corpus.run_job(engine, fresh, job_id)
    gradient_steps = len(texts) * (16 + 1)  # IG's 16 steps (the tiny model needs no more) and saliency ran backward too
    assert 0.75 * expected <= fresh.forward_passes + gradient_steps <= 1.1 * expected
    # LIME and SHAP on short inputs draw far fewer distinct perturbations than their sample caps (the rest
    # are cache hits): the cost models count distinct ones, so the estimate tracks a real run here too.
    slow = ["lime", "shap"]
    expected = corpus.estimate_passes(runner, slow, TEXTS, {"lime": {"num_samples": 300}}, faithfulness_inputs=0)
    job_id = corpus.create_job(engine, "slow", [corpus.Input(f"row {i}", t) for i, t in enumerate(TEXTS)], slow,
                               options={"lime": {"num_samples": 300}}, faithfulness_inputs=0)
    fresh = ModelRunner(runner.loaded)
    corpus.run_job(engine, fresh, job_id)
    assert 0.5 * expected <= fresh.forward_passes <= 1.5 * expected, (fresh.forward_passes, expected)
    assert expected < 0.5 * (300 + 500) * len(TEXTS)  # far below the caps these short inputs never reach
    assert corpus.estimate_seconds(runner, methods, TEXTS) > 0


def test_faithfulness_sample_is_seeded_and_bounded():
    sample = corpus.faithfulness_positions(100, 50)
    assert len(sample) == 50 and sample == corpus.faithfulness_positions(100, 50)
    assert all(0 <= p < 100 for p in sample) and max(sample) >= 50  # not just the first fifty
    assert corpus.faithfulness_positions(30, 50) == frozenset(range(30))
    assert corpus.faithfulness_positions(30, 0) == frozenset(range(30))


def test_job_measures_faithfulness_on_its_sample_only(engine, runner):
    job_id = corpus.create_job(engine, "sample", [corpus.Input(f"row {i}", t) for i, t in enumerate(TEXTS)],
                               FAST, k=3, faithfulness_inputs=2)
    corpus.run_job(engine, runner, job_id)
    items = corpus.items_of(engine, job_id, "done")
    measured = {i.position for i in items if i.result.faithfulness}
    assert measured == corpus.faithfulness_positions(len(TEXTS), 2) and len(measured) == 2
    assert {row.inputs for row in corpus.leaderboard(engine, job_id)} == {2}
    assert {row.item for row in corpus.agreement_rows(engine, job_id)} == set(range(len(TEXTS)))
    assert json.loads(corpus.export_json(engine, job_id))["job"]["faithfulness_inputs"] == 2
    every = corpus.estimate_passes(runner, FAST, TEXTS, faithfulness_inputs=0)
    assert corpus.estimate_passes(runner, FAST, TEXTS, faithfulness_inputs=2) < every


def test_disputed_inputs_reopen_with_the_runs_stored_explanations(engine, runner):
    from core.analyses.reports import open_report

    job_id = make_job(engine, n=3, methods=["attention", "integrated_gradients", "occlusion"])
    corpus.run_job(engine, runner, job_id)
    job = corpus.get_job(engine, job_id)
    assert job.options == corpus_options(job.methods)  # the registry's corpus settings
    disputed = corpus.most_disputed(engine, job_id)
    fresh = ModelRunner(runner.loaded)
    reopened = open_report(engine, fresh, disputed[0].text, job.methods, job.options)
    assert reopened is not None and all(reopened.comparison.cached.values())
    assert fresh.forward_passes == reopened.measure_cost.forward_passes  # only faithfulness and attention checks ran


def test_cost_and_completeness_over_a_run(engine, runner):
    job_id = make_job(engine, n=3, methods=["integrated_gradients", "occlusion"])
    corpus.run_job(engine, ModelRunner(runner.loaded), job_id)
    cost = {row.method: row for row in corpus.cost_rows(engine, job_id)}
    assert set(cost) == {"integrated_gradients", "occlusion"} and all(r.inputs == 3 for r in cost.values())
    assert cost["integrated_gradients"].mean_forward_passes >= 16  # at least the first try of 16 steps
    assert cost["occlusion"].total_seconds > 0 and cost["occlusion"].reused == 0
    gaps = corpus.completeness_gaps(engine, job_id)
    assert [g.method for g in gaps] == ["integrated_gradients"] and gaps[0].inputs == 3
    assert 0 <= gaps[0].median <= gaps[0].max < 0.05
    again = make_job(engine, n=3, methods=["integrated_gradients", "occlusion"])
    corpus.run_job(engine, runner, again)
    assert all(row.reused == 3 for row in corpus.cost_rows(engine, again))


def test_create_job_refuses_empty_inputs(engine):
    with pytest.raises(corpus.CorpusError, match="no inputs"):
        corpus.create_job(engine, "x", [], FAST)


def test_stability_same_settings_are_perfectly_stable(runner):
    text = TEXTS[3]
    results = checks.stability(runner, text, {"integrated_gradients": [{"n_steps": 20}, {"n_steps": 20}],
                                              "lime": [{"seed": 0, "num_samples": 60}, {"seed": 1, "num_samples": 60}]}, k=3)
    ig, lime = results
    assert ig.mean_spearman == pytest.approx(1.0) and ig.mean_topk == 1.0
    assert ig.verdict.passed and ig.verdict.figure == ig.mean_spearman and ig.verdict.threshold == checks.STABLE_SPEARMAN
    assert "stable" in ig.verdict.sentence and lime.mean_spearman < 1.0
    over = checks.stability_over(runner, TEXTS[:2], {"integrated_gradients": [{"n_steps": 20}, {"n_steps": 20}]}, k=3)
    assert over[0].mean_spearman == pytest.approx(1.0) and "over 2 inputs" in over[0].verdict.sentence


def test_attention_at_a_low_layer_is_judged_only_once_that_layer_is_randomised(runner):
    layers = runner.model.config.num_hidden_layers
    result = checks.randomisation(runner, TEXTS[3], ["attention"], params={"attention": {"layer": 0}})
    assert result.judged["attention"] == [f"+ layer {0}"] and len(result.stages) == layers + 1
    too_few = checks.randomisation(runner, TEXTS[3], ["attention"], params={"attention": {"layer": 0}}, max_layers=1)
    assert too_few.judged["attention"] == [] and "not judged" in too_few.verdicts["attention"].sentence


def test_baseline_sensitivity_is_reported_apart_from_stability(runner):
    assert all("baseline" not in v for v in checks.stability_variants(["integrated_gradients"])["integrated_gradients"])
    [ig] = checks.sensitivity(runner, TEXTS[3], ["integrated_gradients", "saliency"], k=3)
    assert ig.method == "integrated_gradients" and [v["baseline"] for v in ig.variants] == ["pad", "mask", "zero"]
    assert "apart from stability" in ig.sentence
    # Recomputed from scratch: IG under each baseline, Spearman of the absolute scores, averaged over pairs.
    import itertools

    from scipy.stats import spearmanr

    from core.methods.explain import explain

    runs = [explain(ModelRunner(runner.loaded), TEXTS[3], "integrated_gradients", params=dict(v))
            for v in ig.variants]
    assert len({r.target for r in runs}) == 1
    expected = np.mean([spearmanr(np.abs(a.scores), np.abs(b.scores)).statistic
                        for a, b in itertools.combinations(runs, 2)])
    assert ig.mean_spearman == pytest.approx(expected, abs=1e-6)


def test_checks_are_stored_and_reopened(engine, runner):
    stability = checks.stability(runner, TEXTS[0], {"saliency": [{}, {}]}, k=3)
    randomisation = checks.randomisation(runner, TEXTS[0], ["saliency"], max_layers=1)
    first = checks.save_check(engine, runner, "stability", [TEXTS[0]], stability=stability)
    second = checks.save_check(engine, runner, "randomisation", [TEXTS[0]], randomisation=randomisation)
    assert checks.load_check(engine, first).stability == stability
    reopened = checks.load_check(engine, second)
    assert reopened.kind == "randomisation" and reopened.randomisation.verdicts == randomisation.verdicts
    assert checks.load_check(engine, 999) is None


def test_stability_verdict_fails_below_its_thresholds(runner):
    """LIME on 12 samples with different seeds cannot agree with itself: the verdict says so, typed."""
    lime = checks.stability(runner, TEXTS[3], {"lime": [{"seed": s, "num_samples": 12} for s in range(4)]}, k=3)[0]
    assert lime.mean_spearman < checks.STABLE_SPEARMAN
    assert lime.verdict.passed is False and "UNSTABLE" in lime.verdict.sentence


def test_randomisation_check_on_the_tiny_model(tiny_model_dir):
    from core.engine.modelling import load_model

    loaded = load_model(str(tiny_model_dir))  # its own copy: the fingerprint below is computed from scratch
    runner = ModelRunner(loaded)
    result = checks.randomisation(runner, TEXTS[3], ["attention", "integrated_gradients"])
    layers = runner.model.config.num_hidden_layers
    assert [s.name for s in result.stages] == ["classifier head"] + [f"+ layer {layers - 1 - i}" for i in range(layers)]
    # Raw attention never looks at the classifier head: identical after the head is randomised, so that
    # stage is not held against it; it is judged on the layer stages only.
    assert result.stages[0].similarity["attention"] == pytest.approx(1.0)
    assert result.judged["attention"] == [s.name for s in result.stages[1:]]
    assert result.judged["integrated_gradients"] == [s.name for s in result.stages]
    worst = max(s.similarity["attention"] for s in result.stages[1:])
    assert result.verdicts["attention"].figure == pytest.approx(worst)
    assert result.verdicts["attention"].passed == (worst < checks.RANDOMISATION_PASS)
    assert "Not judged: classifier head" in result.verdicts["attention"].sentence
    # With every layer and the head randomised, the gradients answer a different model: IG must move.
    assert result.stages[-1].similarity["integrated_gradients"] < 1.0 - 1e-3
    assert loaded.fingerprint == load_model(str(tiny_model_dir)).fingerprint  # the trained model is untouched


def test_stop_is_honoured_between_methods_and_keeps_what_finished(engine, runner, monkeypatch):
    """Stop asked while an input is in flight ends the run after the method in flight: the input stays
    pending, the methods that finished are stored, and a resume reuses them."""
    from core.methods import METHODS
    from core.methods.base import Attribution, Family, Method

    def stop_while_running(run, prepared, target, params, progress):
        corpus.request_stop(engine, job_id)
        return Attribution(word_scores=np.ones(len(prepared.words)))

    monkeypatch.setitem(METHODS, "asks_to_stop", Method(
        name="asks_to_stop", title="Asks to stop", family=Family.PERTURBATION, signed=False, citation="test",
        options=(), attribute=stop_while_running, cost=lambda p, n: 0))
    job_id = corpus.create_job(engine, "stop", [corpus.Input("row", TEXTS[0])], ["attention", "asks_to_stop", "occlusion"])
    assert corpus.get_job(engine, job_id).shown_status == "queued"
    stopped = corpus.run_job(engine, runner, job_id)
    assert stopped.status == "stopped" and stopped.done == 0 and stopped.fraction == 0
    assert [i.status for i in corpus.items_of(engine, job_id)] == ["pending"]
    from core.analyses.store import explain_stored

    assert explain_stored(engine, runner, TEXTS[0], "asks_to_stop", only_stored=True) is not None
    assert explain_stored(engine, runner, TEXTS[0], "occlusion", only_stored=True) is None


@pytest.mark.processes
def test_a_run_whose_process_died_is_seen_as_interrupted_at_once(any_engine):
    engine = any_engine
    import os
    import socket
    import subprocess
    import sys

    from core.storage.db import session_scope
    from core.storage.schema import CorpusJob, utcnow

    job_id = make_job(engine, n=1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    def set_owner(owner: str, beat) -> corpus.Job:
        with session_scope(engine) as session:
            row = session.get(CorpusJob, job_id)
            row.status, row.owner, row.heartbeat_at, row.stop_requested = "running", owner, beat, False
            session.add(row)
        return corpus.get_job(engine, job_id)

    host = socket.gethostname()
    assert corpus.is_stale(set_owner(f"{host}:{gone.pid}", utcnow()))  # fresh heartbeat, dead process
    assert not corpus.is_stale(set_owner(f"{host}:{os.getpid()}", utcnow()))
    assert not corpus.is_stale(set_owner("elsewhere:1", utcnow()))  # another machine: its heartbeat decides
    from datetime import timedelta

    assert corpus.is_stale(set_owner("elsewhere:1", utcnow() - timedelta(minutes=5)))
    assert corpus.get_job(engine, job_id).shown_status == "interrupted"  # what pages and `corpus status` say
    set_owner(f"{host}:{os.getpid()}", utcnow())
    corpus.request_stop(engine, job_id)
    assert corpus.get_job(engine, job_id).shown_status == "stopping"


def test_two_runners_on_one_job_never_both_compute(any_engine, tiny_model):
    """Two runners started on one job at once (two servers, or a resume of a job that merely looks stale):
    one claims it, the other is refused in one sentence; every item is computed once; progress stays <= 1.
    On SQLite and on PostgreSQL (the compare-and-swap relies on each database's row count)."""
    engine = any_engine
    from concurrent.futures import ThreadPoolExecutor

    job_id = make_job(engine, n=5)

    def run() -> str:
        try:
            corpus.run_job(engine, ModelRunner(tiny_model), job_id)
            return "ran"
        except corpus.CorpusError as exc:
            return str(exc)

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: run(), range(2), timeout=240))
    assert outcomes.count("ran") == 1, outcomes
    refused = next(o for o in outcomes if o != "ran")
    assert "already running" in refused or "just started by another runner" in refused
    job = corpus.get_job(engine, job_id)
    assert job.status == "done" and job.done == 5 and job.finished == job.total and job.fraction == 1.0
    with pytest.raises(corpus.CorpusError):  # a live run is refused, not doubled
        from core.storage.db import session_scope
        from core.storage.schema import CorpusJob, utcnow

        with session_scope(engine) as session:
            row = session.get(CorpusJob, job_id)
            row.status, row.heartbeat_at = "running", utcnow()
            session.add(row)
        corpus.run_job(engine, ModelRunner(tiny_model), job_id)
