"""Model vs model on a constructed pair: model B is model A with its head pushed towards "positive", so what
B fixes and breaks is known exactly; per-class deltas and both models' explanations on one input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from core.analyses.corpus.inputs import Input
from core.analyses.evaluation import EvaluationError
from core.analyses.model_compare import compare_models, explain_both
from core.engine.modelling import final_linear
from core.engine.runner import ModelRunner

TEXTS = ["The staff were lovely.", "Cold food and a rude waiter.", "It was a room.", "Wonderful view, awful bed.",
         "Never again.", "Fine, I suppose.", "Best stay ever!", "The lift was broken for days.", "A quiet week.",
         "Loved the breakfast."]
GOLD = ["positive", "negative", "neutral", "neutral", "negative", "neutral", "positive", "negative", "neutral", "positive"]


@pytest.fixture
def pair(tiny_model):
    model = copy.deepcopy(tiny_model.model)
    with torch.no_grad():
        final_linear(model).bias[tiny_model.labels.index("positive")] += 100.0  # B says positive, always
    return ModelRunner(tiny_model), ModelRunner(tiny_model.with_model(model))


def test_flip_counts_on_a_constructed_pair(pair):
    a, b = pair
    inputs = [Input(f"row {i}", t, g) for i, (t, g) in enumerate(zip(TEXTS, GOLD, strict=True))]
    diff = compare_models(a, b, inputs, draws=200)
    predicted_a = [a.loaded.labels[int(i)] for i in a.probabilities_for_texts(TEXTS).argmax(1)]
    fixed = [i for i, (g, p) in enumerate(zip(GOLD, predicted_a, strict=True)) if g == "positive" and p != g]
    broken = [i for i, (g, p) in enumerate(zip(GOLD, predicted_a, strict=True)) if p == g and g != "positive"]
    changed = [i for i, (g, p) in enumerate(zip(GOLD, predicted_a, strict=True))
               if p != g and g != "positive" and p != "positive"]
    assert [c.position for c in diff.fixed] == fixed and [c.position for c in diff.broken] == broken
    assert [c.position for c in diff.changed_errors] == changed
    assert all(c.b == "positive" for c in diff.fixed + diff.broken + diff.changed_errors)
    deltas = {d.name: d for d in diff.deltas}
    accuracy_a = np.mean([g == p for g, p in zip(GOLD, predicted_a, strict=True)])
    assert deltas["accuracy"].a == pytest.approx(accuracy_a) and deltas["accuracy"].b == pytest.approx(0.3)
    assert deltas["accuracy"].low <= deltas["accuracy"].delta <= deltas["accuracy"].high
    assert deltas["F1 negative"].b == 0.0 and set(deltas) == {"accuracy", "macro-F1", "F1 negative", "F1 neutral",
                                                               "F1 positive"}


def test_both_explanations_and_their_agreement(pair):
    a, b = pair
    same = explain_both(a, a, TEXTS[3], ["occlusion", "saliency"], k=3)
    assert all(p.spearman == pytest.approx(1.0) and p.top_k_overlap == 1.0 for p in same)
    pairs = explain_both(a, b, TEXTS[3], ["occlusion"], target="neutral", k=3)
    assert pairs[0].a.target == pairs[0].b.target == "neutral" and pairs[0].a.words == pairs[0].b.words
    from scipy.stats import spearmanr

    x, y = pairs[0].a.scores, pairs[0].b.scores
    assert pairs[0].spearman == pytest.approx(spearmanr(x, y).statistic)  # recomputed from the two explanations
    assert list(x) != list(y)  # two different models give two different accounts


def test_models_with_other_labels_are_refused(pair, tmp_path):
    from core.engine.modelling import load_model
    from tests.support.tiny_model import build_tiny_model

    other = ModelRunner(load_model(str(build_tiny_model(tmp_path / "two", labels=("bad", "good")))))
    with pytest.raises(EvaluationError, match="different labels"):
        compare_models(pair[0], other, [Input("r", "x", "bad")])


def test_rows_either_model_trained_on_are_left_out(trained_tiny_model):
    """A rebuild with an exported error group trains on some held-out rows: those do not count."""
    from core.analyses.training_data.training_sets import recorded_training_texts

    trained = sorted(recorded_training_texts(trained_tiny_model))[:3]
    runner = ModelRunner(trained_tiny_model)
    label = trained_tiny_model.labels[0]
    inputs = [Input(f"row {i}", t, label) for i, t in enumerate(trained + TEXTS)]
    diff = compare_models(runner, runner, inputs, draws=50)
    assert diff.left_out == 3 and diff.inputs == len(TEXTS)
    with pytest.raises(EvaluationError, match="training row"):
        compare_models(runner, runner, inputs[:3], draws=50)


def test_stored_pairs_are_read_back_with_no_pass_under_model_as_prediction(engine, pair):
    from core.analyses.model_compare import stored_pairs

    a, b = pair
    assert stored_pairs(engine, a, b, TEXTS[3], ["occlusion", "saliency"], only_stored=True) is None
    computed = stored_pairs(engine, a, b, TEXTS[3], ["occlusion", "saliency"])
    direct = explain_both(a, b, TEXTS[3], ["occlusion", "saliency"])
    assert [(p.method, p.a.target, p.a.scores, p.b.scores) for p in computed] == [
        (p.method, p.a.target, pytest.approx(p.a.scores, abs=1e-6), pytest.approx(p.b.scores, abs=1e-6)) for p in direct]
    readers = ModelRunner(a.loaded), ModelRunner(b.loaded)
    read = stored_pairs(engine, *readers, TEXTS[3], ["occlusion", "saliency"], only_stored=True)
    assert readers[0].forward_passes == readers[1].forward_passes == 0
    assert [(p.a.target, p.a.scores, p.b.scores) for p in read] == [(p.a.target, p.a.scores, p.b.scores)
                                                                     for p in computed]
