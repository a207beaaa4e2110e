"""The explanation engine: axioms, agreement with the libraries called directly, offsets, costs."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine.runner import ModelRunner
from core.explanation import Explanation, split_words
from core.methods import METHODS, ExplainError
from core.methods.attention import attention_rollout
from core.methods.explain import explain

TEXT = "The food was not great, but the staff were lovely and the view was wonderful!"


@pytest.fixture(scope="module")
def minilm_runner():
    """The real pretrained MiniLM encoder with a freshly initialised 3-way head."""
    from core.engine.default_model import encoder_dir
    from core.engine.modelling import load_model

    torch.manual_seed(7)
    return ModelRunner(load_model(str(encoder_dir()), allow_new_head=True))


def target_probability(runner, text, target):
    return runner.probabilities([runner.prepare(text).input_ids])[0, runner.loaded.labels.index(target)]


@pytest.mark.parametrize("baseline", ["pad", "mask", "zero"])
def test_integrated_gradients_completeness_tiny(runner, baseline):
    e = explain(runner, TEXT, "integrated_gradients", params={"baseline": baseline})
    d = e.diagnostics
    gap = d["f_input"] - d["f_baseline"]
    assert abs(gap) > 1e-4, "the fixture model must respond to its input for this test to mean anything"
    # Special tokens are equal in input and pad/mask baselines, so their attribution is ~0 and the
    # word scores alone carry the whole difference.
    assert abs(sum(e.token_scores) - gap) <= 0.01 * abs(gap)
    assert abs(d["convergence_delta"]) <= 0.01 * abs(gap)
    if baseline != "zero":
        assert abs(sum(e.scores) - gap) <= 0.01 * abs(gap)


def test_integrated_gradients_completeness_minilm(minilm_runner):
    # A runner of its own: the pass count below must not depend on what earlier tests left in the shared cache.
    e = explain(ModelRunner(minilm_runner.loaded), TEXT, "integrated_gradients", target="LABEL_0")
    gap = e.diagnostics["f_input"] - e.diagnostics["f_baseline"]
    assert abs(sum(e.scores) - gap) <= 0.01 * abs(gap)
    # The prediction, each try's steps (IG_FIRST_STEPS, then doubled until the gap is under 1%), f(baseline).
    from core.methods.gradient import IG_FIRST_STEPS

    steps = e.diagnostics["steps"]
    assert e.forward_passes == 1 + sum(IG_FIRST_STEPS * 2 ** i for i in range(e.diagnostics["tries"])) + 1
    assert steps >= IG_FIRST_STEPS
    attention = explain(ModelRunner(minilm_runner.loaded), TEXT, "attention")
    assert attention.forward_passes == 1  # the prediction comes from the same pass


@pytest.mark.parametrize("fixture", ["runner", "minilm_runner"])
def test_shap_additivity(request, fixture):
    r = request.getfixturevalue(fixture)
    e = explain(r, TEXT, "shap", params={"max_evals": 200})
    f_x = target_probability(r, TEXT, e.target)
    assert e.diagnostics["base_value"] + sum(e.token_scores) == pytest.approx(f_x, abs=1e-5)
    # Over words too, once the credit a limited budget leaves on [CLS]/[SEP] is counted.
    specials = sum(s for t, s in zip(e.tokens, e.token_scores, strict=True) if t in ("[CLS]", "[SEP]"))
    assert e.diagnostics["base_value"] + sum(e.scores) + specials == pytest.approx(f_x, abs=1e-5)


def test_lime_matches_the_library_called_directly(runner):
    from lime.lime_text import LimeTextExplainer

    ours = explain(runner, TEXT, "lime", params={"num_samples": 300, "seed": 3, "adaptive": False})
    words = [w for w, _, _ in split_words(TEXT)]
    target = runner.loaded.labels.index(ours.target)

    def classify(texts):
        ids = runner.tokenizer(list(texts), truncation=True)["input_ids"]
        out = []
        for row in ids:
            with torch.no_grad():
                out.append(torch.softmax(runner.model(input_ids=torch.tensor([row])).logits, -1)[0].numpy())
        return np.array(out)

    direct = LimeTextExplainer(split_expression=lambda t: words, bow=False, mask_string="[MASK]",
                               random_state=3).explain_instance(TEXT, classify, labels=(target,),
                                                                num_features=len(words), num_samples=300)
    expected = np.zeros(len(words))
    for feature, weight in direct.local_exp[target]:
        expected[feature] = weight
    np.testing.assert_allclose(ours.scores, expected, atol=1e-6)


def test_shap_matches_the_library_called_directly(runner):
    import shap

    ours = explain(runner, TEXT, "shap", params={"max_evals": 150})
    target = runner.loaded.labels.index(ours.target)

    def f(texts):
        enc = runner.tokenizer([str(t) for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            return torch.softmax(runner.model(**enc).logits, -1)[:, target].numpy()

    masker = shap.maskers.Text(runner.tokenizer, mask_token="[MASK]", collapse_mask_token=False)
    direct = shap.explainers.Partition(f, masker)([TEXT], max_evals=150, silent=True)
    np.testing.assert_allclose(ours.token_scores, direct.values[0], atol=1e-5)


def test_integrated_gradients_matches_captum_layer_ig(runner):
    from captum.attr import LayerIntegratedGradients

    ours = explain(runner, TEXT, "integrated_gradients", params={"baseline": "pad", "n_steps": 40, "adaptive": False})
    target = runner.loaded.labels.index(ours.target)
    prepared = runner.prepare(TEXT)
    ids = torch.tensor([prepared.input_ids])
    baseline = torch.tensor([[i if s else runner.pad_id for i, s in zip(prepared.input_ids, prepared.special_mask, strict=True)]])

    def forward(input_ids):
        return torch.softmax(runner.model(input_ids=input_ids).logits, -1)[:, target]

    lig = LayerIntegratedGradients(forward, runner.model.get_input_embeddings())
    direct, delta = lig.attribute(ids, baselines=baseline, n_steps=40, return_convergence_delta=True)
    np.testing.assert_allclose(ours.token_scores, direct.sum(-1)[0].detach().numpy(), atol=1e-6)
    # Our completeness gap is computed from the cached prediction; Captum's reruns both end points.
    assert ours.diagnostics["convergence_delta"] == pytest.approx(float(delta[0]), abs=1e-6)


def test_saliency_and_input_x_gradient_match_autograd(runner):
    prepared = runner.prepare(TEXT)
    sal = explain(runner, TEXT, "saliency")
    ixg = explain(runner, TEXT, "input_x_gradient")
    target = runner.loaded.labels.index(sal.target)
    embeds = runner.model.get_input_embeddings()(torch.tensor([prepared.input_ids])).detach().requires_grad_()
    prob = torch.softmax(runner.model(inputs_embeds=embeds).logits, -1)[0, target]
    (grad,) = torch.autograd.grad(prob, embeds)
    np.testing.assert_allclose(sal.token_scores, grad[0].norm(dim=-1).numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ixg.token_scores, (grad * embeds)[0].sum(-1).detach().numpy(), rtol=1e-4, atol=1e-7)
    assert not sal.signed and ixg.signed


def test_occlusion_is_leave_one_word_out(runner):
    e = explain(runner, TEXT, "occlusion")
    target = runner.loaded.labels.index(e.target)
    prepared = runner.prepare(TEXT)
    full = runner.probabilities([prepared.input_ids])[0, target]
    for w, (start, end) in enumerate(e.offsets[:6]):
        ids = [runner.mask_id if (s < end and e_ > start and e_ > s) else i
               for i, (s, e_) in zip(prepared.input_ids, prepared.token_offsets, strict=True)]
        assert e.scores[w] == pytest.approx(full - runner.probabilities([ids])[0, target], abs=1e-6)
    assert e.forward_passes <= len(e.words) + 2
    fresh = explain(ModelRunner(runner.loaded), TEXT, "occlusion")
    assert fresh.forward_passes == len(fresh.words) + 1  # the prediction, then one pass per word
    np.testing.assert_allclose(fresh.scores, e.scores, atol=1e-6)


def test_attention_rows_sum_to_one_and_layer_choice(runner):
    weights, _ = runner.attentions(runner.prepare(TEXT).input_ids)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    last = explain(runner, TEXT, "attention")
    first_head = explain(runner, TEXT, "attention", params={"layer": 0, "head": 1})
    np.testing.assert_allclose(first_head.token_scores, weights[0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(last.token_scores, weights[-1].mean(0)[0], atol=1e-6)
    assert sum(last.token_scores) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ExplainError, match="Layer 7 does not exist"):
        explain(runner, TEXT, "attention", params={"layer": 7})


def test_rollout_matches_hand_computed_example():
    a1 = np.array([[0.5, 0.5], [0.0, 1.0]])
    a2 = np.array([[1.0, 0.0], [0.5, 0.5]])
    # With residual weight 0.5: Â1 = [[.75,.25],[0,1]], Â2 = [[1,0],[.25,.75]]; R = Â2 @ Â1.
    expected = np.array([[0.75, 0.25], [0.1875, 0.8125]])
    np.testing.assert_allclose(attention_rollout(np.stack([a1, a2])), expected)
    np.testing.assert_allclose(attention_rollout(np.stack([a1, a2])).sum(-1), 1.0)


def test_same_seed_same_result_and_seed_matters(runner):
    a = explain(runner, TEXT, "lime", params={"num_samples": 200, "seed": 1})
    b = explain(ModelRunner(runner.loaded), TEXT, "lime", params={"num_samples": 200, "seed": 1})
    c = explain(runner, TEXT, "lime", params={"num_samples": 200, "seed": 2})
    assert a.scores == b.scores and a.scores != c.scores


def test_every_method_returns_the_common_shape(runner):
    for name, method in METHODS.items():
        e = explain(ModelRunner(runner.loaded), TEXT, name, params={"num_samples": 50} if name == "lime" else
                    {"max_evals": 50} if name == "shap" else None)
        assert isinstance(e, Explanation) and e.method == name and e.signed == method.signed
        assert len(e.words) == len(e.offsets) == len(e.scores) and len(e.tokens) == len(e.token_scores)
        assert e.seconds > 0 and e.forward_passes >= 1 and set(e.probabilities) == set(runner.loaded.labels)
        assert Explanation.from_dict(e.to_dict()) == e


def test_cache_hits_are_not_counted_as_forward_passes(runner):
    fresh = ModelRunner(runner.loaded)
    first = explain(fresh, TEXT, "occlusion")
    again = explain(fresh, TEXT, "occlusion")
    assert first.scores == again.scores
    assert again.forward_passes == 0 and again.diagnostics["evaluations"] == first.diagnostics["evaluations"]


def test_batched_dynamic_padding_equals_one_by_one(runner):
    texts = ["short", "a somewhat longer sentence here", "mid length text", "x " * 30]
    batched = ModelRunner(runner.loaded, batch_size=3).probabilities_for_texts(texts)
    single = np.stack([ModelRunner(runner.loaded, batch_size=1).probabilities_for_texts([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_long_input_is_truncated_with_a_count(runner):
    text = " ".join(f"word{i}" for i in range(400))
    e = explain(runner, text, "attention")
    assert e.truncated_words > 0 and len(e.words) + e.truncated_words == 400
    assert e.text == text[: e.offsets[-1][1]]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text": "   ", "method": "attention"}, "empty"),
    ({"text": "fine", "method": "tarot"}, "Unknown method"),
    ({"text": "fine", "method": "attention", "target": "angry"}, "Unknown label"),
    ({"text": "fine", "method": "lime", "params": {"num_samples": "many"}}, "must be int"),
    ({"text": "fine", "method": "integrated_gradients", "params": {"baseline": "blur"}}, "must be one of"),
    ({"text": "fine", "method": "saliency", "params": {"steps": 3}}, "has no option"),
])
def test_bad_requests_raise_clear_errors(runner, kwargs, message):
    with pytest.raises(ExplainError, match=message):
        explain(runner, **kwargs)


def test_any_label_can_be_targeted(runner):
    for label in runner.loaded.labels:
        assert explain(runner, TEXT, "saliency", target=label).target == label


words = st.sampled_from(["good", "bad", "über", "naïve", "don't", "😀", "👍🏽", "!!", "—", "東京", "x", "good"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.tuples(words, st.sampled_from([" ", "", "  ", "\n", ", "])), min_size=1, max_size=12))
def test_offsets_point_at_the_right_characters(runner, parts):
    text = "".join(w + sep for w, sep in parts)
    e = explain(runner, text, "input_x_gradient")
    assert [e.text[s:t] for s, t in e.offsets] == list(e.words)
    assert list(e.words) == [m for m, _, _ in split_words(text)]
    # Every unit of token score lands on some word (special tokens aside): sums agree.
    specials = [i for i, t in enumerate(e.tokens) if t in ("[CLS]", "[SEP]")]
    word_token_sum = sum(s for i, s in enumerate(e.token_scores) if i not in specials)
    assert sum(e.scores) == pytest.approx(word_token_sum, abs=1e-6)


def test_stored_results_come_back_without_running_the_model(runner, engine):
    from core.analyses.store import explain_stored, stored_count

    first = explain_stored(engine, runner, TEXT, "occlusion")
    passes = runner.forward_passes
    again = explain_stored(engine, ModelRunner(runner.loaded), TEXT, "occlusion")
    assert again.cached and again.explanation == first.explanation and runner.forward_passes == passes
    explicit = explain_stored(engine, runner, TEXT, "occlusion", target=first.explanation.target)
    assert explicit.cached and explicit.explanation == first.explanation
    other = next(label for label in runner.loaded.labels if label != first.explanation.target)
    assert not explain_stored(engine, runner, TEXT, "occlusion", target=other).cached
    assert explain_stored(engine, runner, TEXT, "lime", params={"num_samples": 20}, only_stored=True) is None
    fresh = explain_stored(engine, runner, TEXT, "occlusion", fresh=True)
    assert not fresh.cached and fresh.explanation.scores == first.explanation.scores
    assert stored_count(engine) == 2


def test_batches_shrink_for_long_inputs(runner):
    r = ModelRunner(runner.loaded, batch_size=32, max_batch_tokens=2048)
    assert [r.batch_size_for(n) for n in (16, 64, 128, 512, 5000)] == [32, 32, 16, 4, 1]


# -- the first-token shortcut ------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["runner", "minilm_runner"])
def test_first_token_shortcut_gives_the_full_models_numbers(fixture, request):
    runner = request.getfixturevalue(fixture)
    full = ModelRunner(runner.loaded, first_token_shortcut=False)
    assert runner.first_token_shortcut and not full.first_token_shortcut
    rows = [runner.prepare(t).input_ids for t in (TEXT, "Awful.", "Fine, I guess")]  # one padded batch
    np.testing.assert_allclose(runner.probabilities(rows), full.probabilities(rows), rtol=1e-5, atol=1e-6)
    for method in ("saliency", "integrated_gradients", "occlusion"):
        short, reference = explain(runner, TEXT, method), explain(full, TEXT, method)
        assert np.abs(reference.token_scores).max() > 1e-5, "scores this small would make the check empty"
        np.testing.assert_allclose(short.token_scores, reference.token_scores, rtol=1e-4, atol=1e-6)


def test_first_token_shortcut_leaves_the_model_whole(tiny_model):
    from transformers.models.bert.modeling_bert import BertLayer

    from core.engine.first_token import FirstTokenLayer, first_token_model

    keys = list(tiny_model.model.state_dict())
    shortened = first_token_model(tiny_model.model)
    assert isinstance(shortened.bert.encoder.layer[-1], FirstTokenLayer)
    assert isinstance(tiny_model.model.bert.encoder.layer[-1], BertLayer)
    assert shortened.classifier.weight is tiny_model.model.classifier.weight  # weights shared, not copied
    assert list(tiny_model.model.state_dict()) == keys
    weights, _ = ModelRunner(tiny_model).attentions(ModelRunner(tiny_model).prepare(TEXT).input_ids)
    assert weights.shape[-2] == weights.shape[-1] > 1  # the attention methods still see every query row


def test_first_token_shortcut_is_refused_when_the_head_reads_other_positions(tiny_model):
    import copy
    import dataclasses

    from core.engine.first_token import first_token_model

    model = copy.deepcopy(tiny_model.model)
    pooler = model.bert.pooler
    pooler.forward = lambda hidden: pooler.activation(pooler.dense(hidden.mean(dim=1)))  # mean pooling
    assert first_token_model(model) is None
    assert not ModelRunner(dataclasses.replace(tiny_model, model=model)).first_token_shortcut
    assert first_token_model(torch.nn.Linear(2, 2)) is None  # no transformer blocks at all
