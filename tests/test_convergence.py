"""Sampling until converged: stops early where the answer is clear (and is then right), runs to the cap
and says so where it is not; Integrated Gradients adds steps until its completeness gap is small."""

import math

import numpy as np
import pytest

from core.engine.runner import ModelRunner
from core.methods.convergence import ROUND
from core.methods.explain import explain
from core.methods.perturbation import lime_explainer
from tests.test_more_methods import brute_force_shapley, target_index

HARD = " ".join(["the"] * 60)  # sixty identical words: no top five is more right than another


def test_kernel_shap_stops_early_and_gives_the_exact_shapley_values(runner):
    text = "not a great film"
    e = explain(runner, text, "kernel_shap", params={"num_samples": 1000})
    d = e.diagnostics
    assert d["convergence_converged"] and d["convergence_samples"] < 1000 and d["convergence_rounds"] == 1
    t = target_index(runner, e)
    _, indexed = lime_explainer(runner, runner.prepare(text), {"seed": 0})
    n = indexed.num_words()

    def value(kept):
        removed = [j for j in range(n) if j not in kept]
        return runner.probabilities_for_texts([indexed.inverse_removing(removed)])[0, t]

    np.testing.assert_allclose(e.scores, brute_force_shapley(value, n), atol=1e-6)


def test_lime_stops_early_on_a_clear_input_and_runs_to_the_cap_on_a_hard_one(tiny_model):
    easy = explain(ModelRunner(tiny_model), "not a great film", "lime")
    assert easy.diagnostics["convergence_converged"] and easy.diagnostics["samples"] < 1000
    hard = explain(ModelRunner(tiny_model), HARD, "lime", params={"num_samples": 300})
    d = hard.diagnostics
    assert not d["convergence_converged"] and d["samples"] == 300
    assert d["convergence_rounds"] == math.ceil(300 / ROUND)  # rounds of ROUND new samples up to the cap
    assert d["convergence_stability"] < 1 - d["convergence_tolerance"]
    fixed = explain(ModelRunner(tiny_model), HARD, "lime", params={"num_samples": 300, "adaptive": False})
    assert fixed.diagnostics["samples"] == 300 and "convergence_converged" not in fixed.diagnostics


def test_kernel_shap_says_when_it_did_not_converge(tiny_model):
    hard = explain(ModelRunner(tiny_model), HARD, "kernel_shap", params={"num_samples": 300})
    assert not hard.diagnostics["convergence_converged"] and hard.diagnostics["samples"] == 300


def test_shap_rounds_reuse_their_queries_and_stop_when_the_tree_is_complete(tiny_model):
    short = explain(ModelRunner(tiny_model), "not a great film", "shap")
    d = short.diagnostics
    assert d["convergence_converged"] and d["convergence_rounds"] == 1 and d["convergence_stability"] == 1.0
    long_text = "The food was not great, but the staff were lovely and the view was wonderful! " * 3
    runner = ModelRunner(tiny_model)
    adaptive = explain(runner, long_text, "shap", params={"tolerance": 0.0, "max_evals": 512})
    assert adaptive.diagnostics["convergence_rounds"] >= 2
    # Rounds of 256 and 512 evaluations cost about one run of 512: earlier rounds' masks are cache hits.
    assert adaptive.forward_passes <= 512 + 10 < adaptive.diagnostics["evaluations"]


def test_integrated_gradients_adds_steps_until_complete(tiny_model):
    text = "The food was not great, but the staff were lovely and the view was wonderful!"
    e = explain(ModelRunner(tiny_model), text, "integrated_gradients")
    d = e.diagnostics
    assert d["converged"] and d["relative_delta"] < 0.01 and d["steps"] in (16, 32, 64, 128, 256)
    capped = explain(ModelRunner(tiny_model), text, "integrated_gradients",
                     params={"n_steps": 16, "max_gap": 0.0})
    assert capped.diagnostics["steps"] == 16 and not capped.diagnostics["converged"]
    assert capped.forward_passes == 1 + 16 + 1  # the prediction, 16 interpolation steps, f(baseline)


@pytest.mark.processes
def test_warm_up_imports_and_compiles_shap_before_the_first_request(tiny_model):
    import subprocess
    import sys

    # A fresh process: after the warm-up, shap and its numba routines are loaded and a SHAP call works.
    code = ("import sys; from core.engine.modelling import load_model; from core.engine.runner import ModelRunner; "
            "from core.methods.explain import explain; from core.engine.warmup import warm_up_in_background; "
            f"m = load_model({str(tiny_model.path)!r}); assert 'shap' not in sys.modules; "
            "warm_up_in_background(m).join(); assert 'shap' in sys.modules and 'numba' in sys.modules; "
            "print(explain(ModelRunner(m), 'A fine day.', 'shap').method)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "shap"
