"""Agreement metrics, faithfulness curves, attention checks and view state, on hand-computed cases."""

import json
import math

import numpy as np
import pytest

from core import agreement, attention_checks, compare, faithfulness
from core.explanation import Explanation
from core.passages import PassageChoice, paragraphs, select_passage, sentences
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
    from core.explainers import explain

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
    text = "The food was not great, but the staff were lovely!"
    before = runner.probabilities_for_texts([text])[0].copy()
    results = attention_checks.intervene(runner, text, "positive")
    assert len(results) == 2 * runner.model.config.num_hidden_layers
    assert any(r.total_variation > 1e-4 for r in results)
    assert all(0 <= r.total_variation <= 1 for r in results)
    assert runner.model.config._attn_implementation == "eager"
    runner._cache.clear()
    assert np.allclose(runner.probabilities_for_texts([text])[0], before, atol=1e-6)


def test_uniform_intervention_really_uses_uniform_weights(runner):
    import torch

    ids = torch.tensor([runner.prepare("one two three four").input_ids])
    with attention_checks.intervened(runner.model, 0, "uniform"), torch.no_grad():
        out = runner.model(input_ids=ids, output_attentions=True)
    first = out.attentions[0][0]
    assert torch.allclose(first, torch.full_like(first, 1 / ids.shape[1]))
    assert not torch.allclose(out.attentions[1][0], torch.full_like(first, 1 / ids.shape[1]))


def test_view_state_round_trip_and_bad_values():
    state = compare.ViewState(snapshot=3, passage=PassageChoice("sentences", 1, 4), model="org/m",
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
    text = "The staff were lovely but the food was cold."
    c = compare.run_comparison(engine, runner, text, ["occlusion", "attention", "input_x_gradient"], k=3)
    assert compare.run_comparison(engine, runner, text, ["occlusion", "attention", "input_x_gradient"],
                                  only_stored=True).cached == {"occlusion": True, "attention": True,
                                                               "input_x_gradient": True}
    assert compare.run_comparison(engine, runner, text, ["lime"], only_stored=True) is None
    faith = faithfulness.evaluate(runner, c.explanations)
    data = json.loads(compare.to_json(c, 3, faith))
    assert set(data["agreement"]) == set(agreement.METRICS) and len(data["faithfulness"]) == 4
    rows = compare.to_csv(c).splitlines()
    assert rows[0] == "index,word,start,end,occlusion,attention,input_x_gradient" and len(rows) == len(c.words) + 1
    assert compare.metrics_csv(c, 3).count("feature_agreement") == 3
    summary = compare.summarise(c, 3, faith, attention_checks.correlations(c.explanations), [])
    assert summary[0].startswith(f"The model predicts **{c.predicted_label}**")
    assert any("comprehensiveness AOPC" in line for line in summary)


def test_demos_save_and_list(engine):
    state = compare.ViewState(text="hello", methods=["attention"])
    demo = compare.save_demo(engine, "First demo", "look at this", state)
    assert compare.get_demo(engine, demo.id).note == "look at this"
    assert json.loads(compare.list_demos(engine)[0].query) == state.to_query()
    from core.explainers import ExplainError

    with pytest.raises(ExplainError):
        compare.save_demo(engine, "  ", "", state)


def test_faithfulness_without_curves_keeps_aopc(runner):
    from core.explainers import explain

    occl = explain(runner, "alpha beta gamma delta epsilon", "occlusion")
    full, light = faithfulness.evaluate(runner, [occl]), faithfulness.evaluate(runner, [occl], curve_points=0)
    assert light[0].deletion == [] and math.isnan(light[0].deletion_auc)
    assert light[0].comprehensiveness == full[0].comprehensiveness
