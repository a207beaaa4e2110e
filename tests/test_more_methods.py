"""DeepLIFT, GradientSHAP, KernelSHAP, attention x gradient, gradient-weighted rollout, attention norms and
head importance: each against its definition and against the library called directly."""

import itertools
import math

import numpy as np
import pytest
import torch

from core.analyses.attention_checks import head_importance
from core.engine.runner import ModelRunner
from core.methods.attention_gradient import gradient_weighted_rollout
from core.methods.attention_norm import projections, weighted_values
from core.methods.deeplift import TargetProbability, deeplift_scores
from core.methods.explain import explain
from core.methods.gradient import baseline_ids
from core.methods.kernel_shap import constrained_shapley_regression
from core.methods.perturbation import lime_explainer
from core.methods.registry import METHODS, methods_passes

TEXT = "The food was not great, but the staff were lovely and the view was wonderful!"


def target_index(runner, e):
    return runner.loaded.labels.index(e.target)


# -- DeepLIFT ---------------------------------------------------------------------------------------

def test_deeplift_sums_to_delta_where_the_rescale_rule_covers_every_nonlinearity():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    inputs, baselines = torch.randn(1, 3, 4), torch.zeros(1, 3, 4)
    attributions, delta = deeplift_scores(network, inputs, baselines)
    gap = float(network(inputs) - network(baselines))
    assert abs(gap) > 1e-3
    assert float(attributions.sum()) == pytest.approx(gap, abs=1e-5)
    assert abs(delta) < 1e-5


def test_deeplift_matches_captum_and_reports_its_true_gap(runner):
    from captum.attr import DeepLift

    e = explain(runner, TEXT, "deeplift")
    t = target_index(runner, e)
    prepared = runner.prepare(TEXT)
    embeds, base = runner.embed(prepared.input_ids), runner.embed(baseline_ids(runner, prepared, "pad"))
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long)
    direct = DeepLift(TargetProbability(ModelRunner(runner.loaded), t)).attribute(
        embeds, baselines=base, additional_forward_args=(mask,))[0].sum(-1).detach().numpy()
    np.testing.assert_allclose(e.token_scores, direct, atol=1e-6)
    f_x = runner.probabilities([prepared.input_ids])[0, t]
    f_b = runner.probabilities([baseline_ids(runner, prepared, "pad")])[0, t]
    assert e.diagnostics["convergence_delta"] == pytest.approx(sum(e.token_scores) - (f_x - f_b), abs=1e-5)
    assert e.forward_passes == 1 + METHODS["deeplift"].estimated_passes({}, len(e.words))  # the cost model holds


# -- GradientSHAP -----------------------------------------------------------------------------------

def test_gradient_shap_matches_captum_called_directly(runner):
    from captum.attr import GradientShap

    e = explain(runner, TEXT, "gradient_shap", params={"n_samples": 8, "seed": 3})
    t = target_index(runner, e)
    prepared = runner.prepare(TEXT)
    embeds = runner.embed(prepared.input_ids)
    baselines = torch.cat([runner.embed(baseline_ids(runner, prepared, k)) for k in ("pad", "mask")])
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long)
    np.random.seed(3)
    direct = GradientShap(lambda x, m: runner.forward_embeddings(x, m)[:, t]).attribute(
        embeds, baselines=baselines, additional_forward_args=(mask,), n_samples=8)[0].sum(-1).detach().numpy()
    np.testing.assert_allclose(e.token_scores, direct, atol=1e-6)


def test_gradient_shap_completeness_holds_in_expectation_over_baselines(runner):
    # For a fixed baseline b, the expectation over the random point a in [0, 1] of grad f(b + a(x - b)).(x - b)
    # is f(x) - f(b) exactly; so the mean per-sample gap must be within sampling error of zero.
    n = 400
    e = explain(runner, TEXT, "gradient_shap", params={"n_samples": n, "baselines": "pad+mask+zero"})
    mean, std = e.diagnostics["mean_convergence_delta"], e.diagnostics["std_convergence_delta"]
    assert std > 0, "a sampled estimate must vary from sample to sample"
    assert abs(mean) <= 4 * std / math.sqrt(n)
    few = explain(runner, TEXT, "gradient_shap", params={"n_samples": 4, "seed": 1})
    assert few.scores != e.scores


# -- KernelSHAP -------------------------------------------------------------------------------------

def brute_force_shapley(value, n):
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi[i] += weight * (value(set(subset) | {i}) - value(set(subset)))
    return phi


def test_kernel_shap_is_the_exact_shapley_value_when_every_mask_is_drawn(runner):
    text = "not a great film"
    e = explain(runner, text, "kernel_shap", params={"num_samples": 400, "adaptive": False})
    assert e.diagnostics["exact"]
    t = target_index(runner, e)
    prepared = runner.prepare(text)
    _, indexed = lime_explainer(runner, prepared, {"seed": 0})
    n = indexed.num_words()

    def value(kept):
        removed = [j for j in range(n) if j not in kept]
        return runner.probabilities_for_texts([indexed.inverse_removing(removed)])[0, t]

    np.testing.assert_allclose(e.scores, brute_force_shapley(value, n), atol=1e-6)


def test_regression_recovers_a_linear_game_from_a_sample_of_masks():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=7)
    masks = rng.integers(0, 2, size=(60, 7))
    phi = constrained_shapley_regression(masks, masks @ weights + 0.3, weights.sum() + 0.3, 0.3)
    np.testing.assert_allclose(phi, weights, atol=1e-9)


def test_kernel_shap_adds_up_and_shares_lime_queries(tiny_model):
    runner = ModelRunner(tiny_model)
    fixed = {"adaptive": False, "num_samples": 500}
    lime = explain(runner, TEXT, "lime", params=fixed)
    kernel = explain(runner, TEXT, "kernel_shap", params=fixed)
    assert kernel.forward_passes <= 1 < lime.forward_passes  # the same queries, answered by the cache
    assert kernel.diagnostics["evaluations"] >= lime.diagnostics["evaluations"]
    # Adaptive: each stops on its own; the rounds both drew are drawn once.
    shared = ModelRunner(tiny_model)
    lime_adaptive = explain(shared, TEXT, "lime")
    kernel_adaptive = explain(shared, TEXT, "kernel_shap")
    extra = max(0, kernel_adaptive.diagnostics["samples"] - lime_adaptive.diagnostics["samples"])
    assert kernel_adaptive.forward_passes <= extra + 1
    t = target_index(runner, kernel)
    f_x = runner.probabilities([runner.prepare(TEXT).input_ids])[0, t]
    assert kernel.diagnostics["base_value"] + sum(kernel.scores) == pytest.approx(f_x, abs=1e-9)
    other_seed = explain(ModelRunner(tiny_model), TEXT, "kernel_shap", params={**fixed, "seed": 1})
    assert other_seed.forward_passes > 100
    n = len(runner.prepare(TEXT).words)
    alone = methods_passes(["kernel_shap"], {}, n)
    assert methods_passes(["lime", "kernel_shap"], {}, n) == pytest.approx(methods_passes(["lime"], {}, n) + 1)
    assert methods_passes(["lime", "kernel_shap"], {"kernel_shap": {"seed": 2}}, n) == pytest.approx(
        methods_passes(["lime"], {}, n) + alone)


def test_kernel_shap_with_kernel_sampling_matches_captum(runner):
    from captum.attr import KernelShap

    e = explain(runner, TEXT, "kernel_shap", params={"sampling": "kernel", "num_samples": 120, "seed": 5})
    t = target_index(runner, e)
    prepared = runner.prepare(TEXT)
    occlusion = explain(runner, TEXT, "occlusion")  # the same word groups, the same mask-token baseline
    groups = [next((w for w, (s, end) in enumerate(occlusion.offsets) if s <= a < end), len(occlusion.words))
              if not special else len(occlusion.words)
              for (a, _), special in zip(prepared.token_offsets, prepared.special_mask, strict=True)]
    baseline = [i if s else runner.mask_id for i, s in zip(prepared.input_ids, prepared.special_mask, strict=True)]
    torch.manual_seed(5)
    direct = KernelShap(lambda ids: torch.from_numpy(runner.probabilities(ids.tolist())[:, t])).attribute(
        torch.tensor([prepared.input_ids]), baselines=torch.tensor([baseline]), feature_mask=torch.tensor([groups]),
        n_samples=120, perturbations_per_eval=runner.batch_size)[0].numpy()
    expected = np.zeros(len(e.words))
    for token, group in enumerate(groups):
        if group < len(e.words):
            expected[group] = direct[token]
    np.testing.assert_allclose(e.scores, expected, atol=1e-6)


# -- attention with gradients, and attention norms -------------------------------------------------

def attention_and_gradients_by_autograd(runner, text, target):
    ids = torch.tensor([runner.prepare(text).input_ids])
    out = runner.model(input_ids=ids, output_attentions=True)
    p = torch.softmax(out.logits[0], -1)[target]
    grads = torch.autograd.grad(p, out.attentions)
    return (np.stack([a[0].detach().numpy() for a in out.attentions]), np.stack([g[0].numpy() for g in grads]))


def test_attention_x_gradient_and_gradient_rollout_match_autograd(runner):
    e = explain(runner, TEXT, "attention_x_gradient", params={"layer": 0, "head": 1})
    t = target_index(runner, e)
    weights, grads = attention_and_gradients_by_autograd(runner, TEXT, t)
    np.testing.assert_allclose(e.token_scores, (weights[0, 1] * grads[0, 1])[0], atol=1e-7)
    rollout = explain(ModelRunner(runner.loaded), TEXT, "gradient_rollout")
    np.testing.assert_allclose(rollout.token_scores, gradient_weighted_rollout(weights, grads)[0], atol=1e-6)
    assert rollout.forward_passes == 1 + METHODS["gradient_rollout"].estimated_passes({}, len(rollout.words))


def test_gradient_weighted_rollout_by_hand():
    weights = np.array([[[[0.5, 0.5], [0.2, 0.8]]]])  # one layer, one head
    grads = np.array([[[[1.0, -1.0], [2.0, 0.5]]]])
    mixed = np.array([[0.5, 0.0], [0.4, 0.4]])  # (grad * A) clipped at zero
    np.testing.assert_allclose(gradient_weighted_rollout(weights, grads), np.eye(2) + mixed)


def test_attention_norm_vectors_rebuild_the_attention_output(runner):
    parts = weighted_values(runner, runner.prepare(TEXT).input_ids, 1)
    rebuilt = parts["weighted"].sum(axis=(0, 2)) + parts["bias"]  # sum over heads and keys, per query
    np.testing.assert_allclose(rebuilt, parts["output"], atol=1e-5)
    e = explain(runner, TEXT, "attention_norm", params={"layer": 1})
    np.testing.assert_allclose(e.token_scores, np.linalg.norm(parts["weighted"][:, 0].sum(axis=0), axis=-1), atol=1e-6)
    plain = explain(runner, TEXT, "attention", params={"layer": 1})
    assert np.argsort(e.token_scores).tolist() != np.argsort(plain.token_scores).tolist()  # norms are not weights


# -- head importance --------------------------------------------------------------------------------

def test_silencing_a_head_equals_zeroing_its_value_projection(tiny_model, tiny_model_dir):
    runner = ModelRunner(tiny_model)
    result = head_importance(runner, TEXT)
    layers, heads = tiny_model.model.config.num_hidden_layers, tiny_model.model.config.num_attention_heads
    assert result.forward_passes == layers * heads + 1
    assert result.array.shape == (layers, heads)
    from core.engine.modelling import load_model

    copy = load_model(str(tiny_model_dir))
    value, _ = projections(copy.model, 1)
    size = value.weight.shape[0] // heads
    with torch.no_grad():
        value.weight[size:2 * size] = 0  # head 1 of layer 1 now outputs zeros
        value.bias[size:2 * size] = 0
    silenced = ModelRunner(copy, first_token_shortcut=False).probabilities([runner.prepare(TEXT).input_ids])[0]
    t = tiny_model.labels.index(result.target)
    assert result.effects[1][1] == pytest.approx(silenced[t] - result.probability, abs=1e-6)
    assert abs(result.effects[1][1]) > 1e-4
    unmasked = runner.head_masked(runner.prepare(TEXT).input_ids, np.ones((1, layers, heads)))
    assert unmasked[0, t] == pytest.approx(result.probability, abs=1e-6)


def test_a_stored_attention_view_is_the_computed_one_read_with_no_pass(engine, tiny_model):
    from core.analyses.attention_views import attention_view, stored_attention_view

    text = "The food was not great, but the staff were lovely!"
    direct = attention_view(ModelRunner(tiny_model), text)
    assert stored_attention_view(engine, ModelRunner(tiny_model), text, only_stored=True) is None
    stored_attention_view(engine, ModelRunner(tiny_model), text)  # computed and stored (a worker's task)
    reader = ModelRunner(tiny_model)
    read = stored_attention_view(engine, reader, text, only_stored=True)
    assert reader.forward_passes == 0
    assert read.tokens == direct.tokens and read.probabilities == direct.probabilities
    np.testing.assert_allclose(read.weights, direct.weights, atol=1e-3)  # stored as float16
    np.testing.assert_allclose(read.weights.sum(-1), 1.0, atol=5e-3)  # rows are still distributions
