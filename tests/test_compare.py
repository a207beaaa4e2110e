"""Agreement metrics, faithfulness curves, attention checks and view state, on hand-computed cases."""

import json
import math

import numpy as np
import pytest

from core.analyses import agreement, attention_checks, compare, faithfulness
from core.analyses.passages import PassageChoice, paragraphs, select_passage, sentences
from core.explanation import Explanation
from core.render import highlighted_text


def expl(method, scores, signed=True, words=None, text=None, target="positive"):
    words = words or [f"w{i}" for i in range(len(scores))]
    text = text or " ".join(words)
    offsets, cursor = [], 0
    for w in words:
        start = text.index(w, cursor)
        offsets.append((start, start + len(w)))
        cursor = start + len(w)
    return Explanation(text=text, words=tuple(words), offsets=tuple(offsets), scores=tuple(scores),
                       tokens=(), token_scores=(), method=method, target=target, signed=signed,
                       probabilities={"negative": 0.2, "positive": 0.8}, seconds=0.1, forward_passes=1)


A = np.array([0.9, -0.5, 0.1, 0.05, -0.8])   # |.| ranking: 0, 4, 1, 2, 3
B = np.array([0.7, 0.6, -0.9, 0.0, 0.2])     # |.| ranking: 2, 0, 1, 4, 3


def test_top_k_by_magnitude():
    assert agreement.top_k(A, 3) == [0, 4, 1]
    assert agreement.top_k(B, 3) == [2, 0, 1]


def test_topk_agreement_metrics_by_hand():
    # top-3: A = [0, 4, 1], B = [2, 0, 1]; common {0, 1}; same position: index 2 holds 1 in both.
    assert agreement.feature_agreement(A, B, 3) == pytest.approx(2 / 3)
    assert agreement.rank_agreement(A, B, 3) == pytest.approx(1 / 3)
    # signs on common words: word 0 (+, +) agree, word 1 (-, +) disagree.
    assert agreement.sign_agreement(A, B, 3) == pytest.approx(1 / 3)
    # position 2 holds word 1 in both but with opposite signs.
    assert agreement.signed_rank_agreement(A, B, 3) == 0.0
    assert agreement.feature_agreement(A, A, 3) == agreement.rank_agreement(A, A, 3) == 1.0


def test_rank_correlations_over_all_words():
    from scipy.stats import kendalltau, spearmanr

    m = agreement.METRICS
    assert m["spearman"].fn(A, B, 3) == pytest.approx(spearmanr(np.abs(A), np.abs(B))[0])
    assert m["kendall"].fn(A, B, 3) == pytest.approx(kendalltau(np.abs(A), np.abs(B))[0])
    assert math.isnan(m["spearman"].fn(A, np.ones(5), 3))  # constant scores: undefined, not "agreement"
    assert all(metric.range[1] == 1 and metric.higher_is_better for metric in m.values())


def test_matrix_is_symmetric_and_clustering_groups_agreeing_methods():
    es = [expl("a", [1, 0.9, 0, 0, 0.1]), expl("x", [0, 0, 1, 0.9, 0]), expl("b", [0.9, 1, 0, 0.1, 0]),
          expl("y", [0, 0.1, 0.9, 1, 0])]
    m = agreement.agreement_matrix(es, "feature_agreement", 2)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    order = [es[i].method for i in agreement.cluster_order(m)]
    assert abs(order.index("a") - order.index("b")) == 1 and abs(order.index("x") - order.index("y")) == 1
    assert sorted(map(sorted, agreement.camps(m, [e.method for e in es], 0.5))) == [["a", "b"], ["x", "y"]]


def test_hot_spots_find_sign_conflicts_first():
    es = [expl("m1", [0.9, 0.5, 0.0]), expl("m2", [-0.8, 0.4, 0.1]), expl("att", [0.1, 0.2, 0.9], signed=False)]
    spots = agreement.hot_spots(es, k=1)
    assert spots[0].index == 0 and spots[0].sign_conflict
    assert spots[0].positive_methods == ("m1",) and spots[0].negative_methods == ("m2",)
    assert {s.index for s in spots} == {0, 2}  # word 1 is in nobody's top 1 and not disputed



def test_faithfulness_by_hand(runner):
    """On the tiny model, comprehensiveness and the curves equal direct masked evaluations."""
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    from core.methods.explain import explain

    occl = explain(runner, text, "occlusion")
    results = faithfulness.evaluate(runner, [occl], random_seeds=2)
    assert [r.method for r in results] == ["occlusion", "random"]
    f = results[0]
    target = runner.loaded.labels.index(occl.target)
    eraser = faithfulness.Eraser(runner, runner.prepare(text), target)
    ranking = faithfulness.support_ranking(occl)
    full = eraser.probabilities([[]])[0]
    # 10 words: 1%, 5%, 10% -> 1 word; 20% -> 2; 50% -> 5
    assert [faithfulness.how_many(x, 10) for x in faithfulness.ERASER_FRACTIONS] == [1, 1, 1, 2, 5]
    assert f.comprehensiveness[0.2] == pytest.approx(full - eraser.probabilities([ranking[:2]])[0])
    assert f.sufficiency[0.5] == pytest.approx(full - eraser.probabilities([ranking[5:]])[0])
    assert f.aopc_comprehensiveness == pytest.approx(np.mean(list(f.comprehensiveness.values())))
    assert f.deletion[0] == (0.0, pytest.approx(full)) and f.deletion[-1][0] == 1.0
    assert f.insertion[-1] == (1.0, pytest.approx(full))
    assert f.deletion_auc == pytest.approx(np.trapezoid([y for _, y in f.deletion], [x for x, _ in f.deletion]))
    # Occlusion's top word is by construction the one whose removal hurts most.
    assert f.comprehensiveness[0.01] >= max(results[1].comprehensiveness[0.01], -1)


def test_support_ranking_signed_and_unsigned():
    assert faithfulness.support_ranking(expl("s", [0.1, -0.9, 0.5])) == [2, 0, 1]
    assert faithfulness.support_ranking(expl("u", [0.1, 0.9, 0.5], signed=False)) == [1, 2, 0]


def test_attention_intervention_changes_and_restores(runner):
    from core.engine.runner import ModelRunner

    text = "The food was not great, but the staff were lovely!"
    before = runner.probabilities_for_texts([text])[0].copy()
    passes = runner.forward_passes
    results = attention_checks.intervene(runner, text, "positive")
    layers = runner.model.config.num_hidden_layers
    assert len(results) == 2 * layers and runner.forward_passes - passes == 2 * layers  # counted by the runner
    assert any(r.total_variation > 1e-4 for r in results)
    for r in results:  # each recomputed from the two distributions the result reports
        after = np.array([r.probabilities[label] for label in runner.loaded.labels])
        assert r.total_variation == pytest.approx(0.5 * np.abs(after - before).sum(), abs=1e-5)
    assert runner.model.config._attn_implementation == "eager"
    assert np.allclose(ModelRunner(runner.loaded).probabilities_for_texts([text])[0], before, atol=1e-6)


def test_uniform_intervention_really_uses_uniform_weights(runner):
    from core.engine.interventions import AttentionIntervention

    ids = runner.prepare("one two three four").input_ids
    _, attentions = runner.intervened(ids, AttentionIntervention(0, "uniform"), output_attentions=True)
    first = attentions[0][0]
    assert np.allclose(first.numpy(), 1 / len(ids))
    assert not np.allclose(attentions[1][0].numpy(), 1 / len(ids))
    # One head only: the other heads of that layer keep their own weights.
    _, one_head = runner.intervened(ids, AttentionIntervention(0, "uniform", head=1), output_attentions=True)
    assert np.allclose(one_head[0][0, 1].numpy(), 1 / len(ids))
    assert not np.allclose(one_head[0][0, 0].numpy(), 1 / len(ids))


def test_interventions_on_two_models_at_once_do_not_leak_into_each_other(runner):
    """The intervention travels with each call: two models (each with its own lock, as two sessions'
    models are) intervening on different layers at the same time get what a lone call gets. A shared
    module-level state let one call's layer leak into the other model's call."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    from core.engine.interventions import AttentionIntervention
    from core.engine.runner import ModelRunner

    other = ModelRunner(runner.loaded.with_model(copy.deepcopy(runner.model)))
    ids = runner.prepare("The food was not great, but the staff were lovely!").input_ids
    jobs = {0: runner, 1: other}
    alone = {layer: r.intervened(ids, AttentionIntervention(layer, "permuted", seed=3))[0] for layer, r in jobs.items()}
    assert not np.allclose(alone[0], alone[1], atol=1e-6)
    with ThreadPoolExecutor(2) as pool:
        futures = [(layer, pool.submit(r.intervened, ids, AttentionIntervention(layer, "permuted", seed=3)))
                   for _ in range(20) for layer, r in jobs.items()]
    for layer, future in futures:
        np.testing.assert_allclose(future.result(timeout=120)[0], alone[layer], atol=1e-6)


def test_view_state_round_trip_and_bad_values():
    state = compare.ViewState(snapshot=3, passage=PassageChoice("sentences", 1, 4), model="default",
                              methods=["lime", "attention"], options={"lime": {"num_samples": 100}}, k=7)
    assert compare.ViewState.from_query(state.to_query()) == state
    text_state = compare.ViewState(text="Some <b>text</b> & more", methods=["shap"], k=3)
    assert compare.ViewState.from_query(text_state.to_query()) == text_state
    broken = compare.ViewState.from_query({"k": "-2", "methods": "tarot,lime", "options": "{not json",
                                           "snapshot": "x"})
    assert broken.k == compare.DEFAULT_K and broken.methods == ["lime"] and broken.options == {}
    assert broken.snapshot is None


def test_passages():
    text = "First paragraph. It has two sentences!\n\nSecond one? Yes. \nThird line."
    assert paragraphs(text) == ["First paragraph. It has two sentences!", "Second one? Yes.", "Third line."]
    assert sentences(text) == ["First paragraph.", "It has two sentences!", "Second one?", "Yes.", "Third line."]
    assert select_passage(text, PassageChoice("sentences", 1, 2)) == "It has two sentences! Second one?"
    assert select_passage(text, PassageChoice("paragraph", 9, 9)) == "Third line."
    assert PassageChoice.from_query("garbage") == PassageChoice()


def test_highlighted_text_escapes_everything():
    text = 'Hi <script>alert("x")</script> & "quotes"'
    words = ["Hi", "<", "script", ">", "alert", "(", '"', "x", '"', ")", "<", "/", "script", ">", "&", '"', "quotes", '"']
    e = expl("m", [0.5] * len(words), words=words, text=text)
    out = highlighted_text(text, e.offsets, e.scores, True, titles=['t"><script>bad()</script>'] * len(words))
    import re

    markup_removed = re.sub(r'<span title="[^"<>]*" style="[^"<>]*">|</span>|<div style="[^"<>]*">|</div>', "", out)
    assert "<" not in markup_removed and ">" not in markup_removed  # only our own tags carry markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in markup_removed
    assert 'title="t&quot;&gt;&lt;script&gt;bad()&lt;/script&gt;"' in out


def test_comparison_exports_and_summary(runner, engine):
    from core.analyses.reports import open_report, run_report

    text = "The staff were lovely but the food was cold."
    methods = ["occlusion", "attention", "input_x_gradient"]
    report = run_report(engine, runner, text, methods)
    c = report.comparison
    assert not report.from_store and report.measured and report.cost_now.forward_passes > 0
    reopened = open_report(engine, runner, text, methods)
    assert reopened.from_store and reopened.comparison.cached == {m: True for m in methods}
    assert reopened.faithfulness == report.faithfulness and reopened.interventions == report.interventions
    assert open_report(engine, runner, text, ["lime"]) is None
    data = json.loads(compare.to_json(report, 3))
    assert set(data["agreement"]) == set(agreement.METRICS) and len(data["faithfulness"]) == 4
    assert data["faithfulness"][0]["aopc_comprehensiveness"] == report.faithfulness[0].aopc_comprehensiveness
    rows = compare.to_csv(c).splitlines()
    assert rows[0] == "index,word,start,end,occlusion,attention,input_x_gradient" and len(rows) == len(c.words) + 1
    assert compare.metrics_csv(c, 3).count("feature_agreement") == 3
    summary = compare.summarise(report, 3)
    assert summary[0].startswith(f"The model predicts **{c.predicted_label}**")
    assert any("comprehensiveness AOPC" in line for line in summary)
    assert summary == data["summary"]


def test_demos_save_and_list(engine):
    state = compare.ViewState(text="hello", methods=["attention"])
    demo = compare.save_demo(engine, "First demo", "look at this", state)
    assert compare.get_demo(engine, demo.id).note == "look at this"
    assert json.loads(compare.list_demos(engine)[0].query) == state.to_query()
    from core.methods import ExplainError

    with pytest.raises(ExplainError):
        compare.save_demo(engine, "  ", "", state)


def test_faithfulness_without_curves_keeps_aopc(runner):
    from core.methods.explain import explain

    occl = explain(runner, "alpha beta gamma delta epsilon", "occlusion")
    full, light = faithfulness.evaluate(runner, [occl]), faithfulness.evaluate(runner, [occl], curve_points=0)
    assert light[0].deletion == [] and math.isnan(light[0].deletion_auc)
    assert light[0].comprehensiveness == full[0].comprehensiveness


def test_a_shared_view_reopens_from_the_store_with_no_model_pass(runner, engine):
    from core.analyses.reports import open_report, run_report
    from core.engine.runner import ModelRunner

    text = "Lovely staff, cold food."
    methods = ["attention", "saliency", "occlusion"]
    first = run_report(engine, runner, text, methods)
    fresh = ModelRunner(runner.loaded)  # a new server process: nothing cached in memory
    shared = open_report(engine, fresh, text, methods)
    assert fresh.forward_passes == 0 and shared.cost_now.forward_passes == 0 and shared.from_store
    assert compare.report_to_dict(shared, 3)["faithfulness"] == compare.report_to_dict(first, 3)["faithfulness"]
    assert shared.interventions == first.interventions and shared.correlations == first.correlations
    # A view whose explanations are stored (say, by a corpus run) but not measured: measured once, then stored.
    from core.analyses.reports import explain_all, view_requests

    explain_all(engine, runner, view_requests(runner, "Cold food.", methods))
    measured = open_report(engine, ModelRunner(runner.loaded), "Cold food.", methods)
    assert measured.measured and not measured.from_store and measured.cost_now.forward_passes > 0
    assert open_report(engine, ModelRunner(runner.loaded), "Cold food.", methods).from_store


def test_stop_between_methods_keeps_what_finished(runner, engine):
    from core.analyses.reports import StopRequested, open_report, run_report

    text = "The view was wonderful, the coffee terrible."
    methods = ["attention", "occlusion", "saliency"]
    asked = []

    def stop_after_first() -> bool:
        asked.append(True)
        return len(asked) > 1

    stopped = run_report(engine, runner, text, methods, should_stop=stop_after_first)
    assert stopped.stopped and stopped.comparison.methods == ["attention"]
    assert stopped.comparison.missing == ("occlusion", "saliency") and not stopped.measured
    assert open_report(engine, runner, text, methods) is None  # nothing half-done is passed off as the view
    partial = open_report(engine, runner, text, methods, partial=True)
    assert partial.comparison.methods == ["attention"] and partial.comparison.missing == ("occlusion", "saliency")
    finished = run_report(engine, runner, text, methods)
    assert finished.comparison.cached == {"attention": True, "occlusion": False, "saliency": False}
    with pytest.raises(StopRequested):
        run_report(engine, runner, "Another text entirely.", methods, should_stop=lambda: True)


def _faith(method, comp, suff):
    fractions = faithfulness.ERASER_FRACTIONS
    return faithfulness.Faithfulness(method, dict(zip(fractions, comp, strict=True)),
                                     dict(zip(fractions, suff, strict=True)), [], [])


def test_summary_names_a_most_faithful_method_only_when_the_lead_is_clear():
    from core.analyses.reports import Comparison, ComparisonReport

    es = (expl("a", [0.9, 0.1, 0.0]), expl("b", [0.1, 0.9, 0.0]))
    comparison = Comparison(es[0].text, es, {"a": False, "b": False})
    random = _faith("random", [0.0, 0.01, 0.0, 0.02, 0.01], [0.3] * 5)
    close = ComparisonReport(comparison, (_faith("a", [0.30, 0.32, 0.29, 0.35, 0.31], [0.1] * 5),
                                          _faith("b", [0.29, 0.31, 0.30, 0.34, 0.30], [0.2] * 5), random),
                             measured=True)
    lines = compare.summarise(close, 2)
    assert any(line.startswith("Removing its top words: no clear winner. **a** leads") and "lead over b is within" in line
               for line in lines)
    clear = ComparisonReport(comparison, (_faith("a", [0.60, 0.62, 0.59, 0.65, 0.61], [0.1] * 5),
                                          _faith("b", [0.10, 0.11, 0.09, 0.12, 0.10], [0.2] * 5), random),
                             measured=True)
    lines = compare.summarise(clear, 2)
    assert any("moves the prediction most for **a**" in line and "clear of every other method" in line
               for line in lines)
    assert any("preserves the prediction best for **a**" in line for line in lines)
    lo, hi = clear.faithfulness[0].comprehensiveness_interval
    assert lo <= clear.faithfulness[0].aopc_comprehensiveness <= hi
    # Paired: a method that beats another by the same margin at every fraction is clearly ahead, even when
    # both scores spread widely over the fractions (the spread is shared).
    spread = ComparisonReport(comparison, (_faith("a", [0.10, 0.20, 0.30, 0.40, 0.50], [0.1] * 5),
                                           _faith("b", [0.05, 0.15, 0.25, 0.35, 0.45], [0.2] * 5), random),
                              measured=True)
    assert any("moves the prediction most for **a**" in line for line in compare.summarise(spread, 2))


def test_chart_specs_keep_every_label_readable():
    """The specs behind the readability fixes: no cut labels, legends that fit, cells sized for their values."""
    from core import charts
    from core.analyses.corpus.aggregate import AgreementRow
    from core.analyses.reports import Comparison, ComparisonReport

    es = tuple(expl(name, [0.9, 0.1, 0.4]) for name in ("integrated_gradients", "input_x_gradient", "attention"))
    comparison = Comparison(es[0].text, es, {e.method: False for e in es})
    matrix = charts.agreement_matrix(comparison, "feature_agreement", 2).to_dict()
    assert matrix["width"] == {"step": charts.MATRIX_CELL[0]} and matrix["height"] == {"step": charts.MATRIX_CELL[1]}
    assert matrix["layer"][0]["encoding"]["x"]["axis"]["labelLimit"] == 0
    assert matrix["layer"][1]["mark"]["type"] == "text"  # values written in the cells
    fractions = faithfulness.ERASER_FRACTIONS
    curves = [faithfulness.Faithfulness(name, dict.fromkeys(fractions, 0.1), dict.fromkeys(fractions, 0.1),
                                        [(0.0, 0.9), (1.0, y)], [(0.0, 0.2), (1.0, 0.9)])
              for name, y in (("integrated_gradients", 0.2), ("attention", 0.6))]
    random_row = faithfulness.Faithfulness("random", dict.fromkeys(fractions, 0.1), dict.fromkeys(fractions, 0.1),
                                           [(0.0, 0.9), (1.0, 0.5)], [(0.0, 0.2), (1.0, 0.9)],
                                           deletion_band=[(0.9, 0.9), (0.4, 0.55)], insertion_band=[(0.2, 0.2), (0.8, 1.0)])
    report = ComparisonReport(comparison, (*curves, random_row), measured=True)
    curve = charts.faithfulness_curve(report, "deletion").to_dict()
    # One panel per method, each with the random band, its mean dashed, and the method's points with tooltips.
    assert curve["facet"]["field"] == "method" and curve["facet"]["header"]["labelLimit"] == 0
    band, mean, line = curve["spec"]["layer"]
    assert band["mark"]["type"] == "area" and band["encoding"]["y2"]["field"] == "random highest"
    assert mean["mark"]["strokeDash"] and line["mark"]["point"] is True
    assert line["encoding"]["y"]["scale"]["zero"] is False  # the axis fits the values, not a fixed 0-1
    assert {t["field"] for t in line["encoding"]["tooltip"]} >= {"method", "fraction", "p(target)", "random mean"}
    frame = charts.faithfulness_frame(report, "deletion")
    assert sorted(frame["method"].unique()) == ["attention", "integrated_gradients"]  # random is the band, not a panel
    last = frame[(frame["method"] == "attention") & (frame["fraction"] == 1.0)].iloc[0]
    assert (last["p(target)"], last["random mean"], last["random lowest"], last["random highest"]) == (0.6, 0.5, 0.4, 0.55)
    rows = [AgreementRow(i, f"{a} vs {b}", "spearman", 0.5, "x") for i in range(3)
            for a, b in (("integrated_gradients", "input_x_gradient"), ("attention", "attention_rollout"))]
    box = charts.corpus_agreement(rows, "spearman", "Spearman").to_dict()
    assert box["encoding"]["y"]["axis"]["labelLimit"] == 0 and box["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert box["height"] == 26 * 2 + 20
    cost = charts.cost([{"step": "faithfulness and attention checks", "seconds when computed": 1.0,
                         "forward passes when computed": 3, "forward passes now": 0}]).to_dict()
    assert cost["encoding"]["y"]["axis"]["labelLimit"] == 0


def test_cheapest_methods_run_first_and_each_is_shown_as_it_finishes(runner, engine):
    from core.analyses.reports import run_report

    seen = []
    report = run_report(engine, runner, "The view was wonderful, the coffee terrible.", ["lime", "occlusion", "attention"],
                        on_explanation=lambda partial: seen.append((partial.methods, partial.missing)))
    assert seen == [(["attention"], ("lime", "occlusion")), (["occlusion", "attention"], ("lime",)),
                    (["lime", "occlusion", "attention"], ())]
    assert report.comparison.methods == ["lime", "occlusion", "attention"] and report.measured
