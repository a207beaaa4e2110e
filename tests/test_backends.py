"""Cheaper passes: backends for plain passes, stored apart, and the fidelity gate that decides whether one is used."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.analyses import backend_gate
from core.engine import backends
from core.engine.runner import ModelRunner
from core.methods.explain import explain

TEXTS = ["The staff were lovely.", "Cold food and a rude waiter.", "It was a room.", "Wonderful view, awful bed.",
         "Never again.", "Fine, I suppose.", "Best stay ever!", "The lift was broken for days."]


@pytest.fixture
def label_flipping_backend(monkeypatch):
    """A backend that changes predictions: float32 logits with the first label pushed far up."""
    def build(loaded, classifier):
        def forward(ids, mask):
            logits = classifier(input_ids=ids, attention_mask=mask).logits.clone()
            logits[:, 0] += 50.0
            return logits
        return forward

    monkeypatch.setitem(backends.BACKENDS, "flipping", backends.Backend("flipping", "test: flips labels", (), build))
    return "flipping"


def test_each_backend_runs_plain_passes_and_names_itself_in_results_and_keys(home, tiny_model):
    float32 = ModelRunner(tiny_model)
    expected = float32.probabilities_for_texts(TEXTS)
    for name in ("int8", "onnx-float32", "onnx-int8"):
        runner = ModelRunner(tiny_model, backend=name)
        got = runner.probabilities_for_texts(TEXTS)
        assert got.shape == expected.shape and np.allclose(got.sum(1), 1.0, atol=1e-5)
        assert runner.loaded.fingerprint == f"{tiny_model.fingerprint}~{name}"  # stored apart from float32
        assert runner.loaded.weights_fingerprint == tiny_model.fingerprint
        occlusion, saliency = explain(runner, TEXTS[3], "occlusion"), explain(runner, TEXTS[3], "saliency")
        assert occlusion.backend == name and saliency.backend == "float32"  # gradients always come from float32
        assert saliency.scores == explain(float32, TEXTS[3], "saliency").scores
    exported = ModelRunner(tiny_model, backend="onnx-float32").probabilities_for_texts(TEXTS)
    assert np.abs(exported - expected).max() < 1e-4  # the same arithmetic, another runtime
    with pytest.raises(backends.BackendError, match="Unknown backend"):
        ModelRunner(tiny_model, backend="fp4")


def test_stored_results_never_mix_backends(engine, tiny_model):
    from core.analyses.store import explain_stored, stored_count

    first = explain_stored(engine, ModelRunner(tiny_model), TEXTS[0], "occlusion")
    other = explain_stored(engine, ModelRunner(tiny_model, backend="int8"), TEXTS[0], "occlusion")
    assert not first.cached and not other.cached and stored_count(engine) == 2
    again = explain_stored(engine, ModelRunner(tiny_model, backend="int8"), TEXTS[0], "occlusion")
    assert again.cached and again.explanation.backend == "int8"


def test_the_gate_refuses_a_backend_that_changes_predictions(engine, tiny_model, label_flipping_backend):
    result = backend_gate.gate(engine, tiny_model, label_flipping_backend, TEXTS, method_texts=TEXTS[:2])
    assert not result.passed and result.labels_kept < backend_gate.LABELS_KEPT
    assert "kept the predicted label on" in result.sentence() and result.methods == []  # (c) cannot rescue it
    assert backend_gate.backend_for(engine, tiny_model, "auto")[0] == "float32"
    chosen, why = backend_gate.backend_for(engine, tiny_model, label_flipping_backend)
    assert chosen == "float32" and "refused" in why


def test_a_faithful_backend_passes_and_auto_takes_the_fastest_that_passed(engine, tiny_model):
    from core.storage.records import save_keyed

    result = backend_gate.gate(engine, tiny_model, "onnx-float32", TEXTS, method_texts=TEXTS[:2])
    assert result.passed, result.reasons
    assert result.labels_kept == 1.0 and result.max_probability_difference < 1e-4
    assert {m.method for m in result.methods} == set(backend_gate.served_methods())
    occlusion = next(m for m in result.methods if m.method == "occlusion")
    assert occlusion.top_k_agreement == 1.0 and occlusion.spearman == pytest.approx(1.0)
    lime = next(m for m in result.methods if m.method == "lime")
    assert lime.sampling and lime.reference is not None and lime.top_k_agreement >= lime.reference
    assert set(result.seconds_per_pass) == {"float32", "onnx-float32"} and result.speedup > 0
    # Choosing: two passed gates stored with known speed-ups; auto takes the faster, a named one is honoured.
    for name, speedup in (("onnx-float32", 1.3), ("int8", 2.0)):
        stored = json.loads(json.dumps(result.to_dict())) | {"backend": name, "speedup": speedup, "passed": True}
        save_keyed(engine, backend_gate.KIND, tiny_model.name, tiny_model.fingerprint, name, stored)
    assert backend_gate.backend_for(engine, tiny_model, "auto")[0] == "int8"
    assert backend_gate.backend_for(engine, tiny_model, "onnx-float32")[0] == "onnx-float32"
    assert backend_gate.backend_for(engine, tiny_model, "float32")[0] == "float32"
    assert backend_gate.backend_for(engine, tiny_model, "onnx-int8")[0] == "float32"  # no gate yet


def test_workers_and_pages_use_the_chosen_backend(engine, tiny_model, monkeypatch):
    from core.storage.records import save_keyed
    from core.work.tasks import runner_with_backend

    assert runner_with_backend(tiny_model, engine).backend == "float32"
    gate = backend_gate.measure(tiny_model, "int8", TEXTS[:2])
    save_keyed(engine, backend_gate.KIND, tiny_model.name, tiny_model.fingerprint, "int8",
               gate.to_dict() | {"passed": True, "speedup": 1.5, "reasons": []})
    assert runner_with_backend(tiny_model, engine).backend == "int8"
    monkeypatch.setenv("RASHOMON_BACKEND", "float32")
    assert runner_with_backend(tiny_model, engine).backend == "float32"


def test_cli_gate_and_backends(home, tiny_model_dir, capsys):
    from core.cli import main

    assert main(["model", "gate", "--backend", "onnx-float32", "--inputs", "40", "--method-inputs", "1", "--json"]) == 0
    gated = json.loads(capsys.readouterr().out)
    assert gated["backend"] == "onnx-float32" and gated["inputs"] == 40 and gated["passed"]
    assert main(["model", "backends", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [b["backend"] for b in listing["backends"]] == list(backends.BACKENDS)
    assert next(b for b in listing["backends"] if b["backend"] == "onnx-float32")["gate"]["passed"]
    assert main(["model", "gate", "--backend", "fp4"]) == 1
    assert "Unknown backend 'fp4'" in capsys.readouterr().err


def test_a_comparison_counts_the_passes_its_methods_shared_and_names_each_backend(engine, tiny_model):
    """KernelSHAP reads LIME's neighbourhood and occlusion's masks are among LIME's: the same masked input asked
    twice runs once (the runner's cache), and the cost says how many were shared."""
    from core.analyses.compare import cost_rows, report_to_dict, shared_passes
    from core.analyses.reports import run_report

    runner = ModelRunner(tiny_model, backend="int8")
    report = run_report(engine, runner, "The staff were lovely but the room was cold and the food was bland.",
                        ["lime", "kernel_shap", "occlusion", "saliency"], {})
    counted = shared_passes(report)
    asked = sum(e.diagnostics["evaluations"] for e in report.comparison.explanations) + report.measure_cost.evaluations
    ran = sum(e.forward_passes for e in report.comparison.explanations) + report.measure_cost.forward_passes
    assert counted == {"asked": asked, "ran": ran, "shared": asked - ran} and counted["shared"] > 0
    kernel = next(e for e in report.comparison.explanations if e.method == "kernel_shap")
    assert kernel.forward_passes < kernel.diagnostics["evaluations"]  # LIME's masks came from the cache
    rows = {row["step"]: row for row in cost_rows(report)}
    assert rows["lime"]["backend"] == "int8" and rows["saliency"]["backend"] == "float32"
    assert rows["faithfulness and attention checks"]["backend"] == "int8" == report.measure_backend
    assert report_to_dict(report, 3)["cost"]["shared_passes"] == counted


def test_an_attention_pass_never_puts_a_float32_answer_in_another_backends_cache(tiny_model):
    """Attention weights come from the float32 model; on the float32 backend that pass also answers the prediction,
    on any other it must not (the prediction, LIME's full input and occlusion's baseline would be float32's while
    the masked inputs ran on the backend)."""
    int8 = ModelRunner(tiny_model, backend="int8")
    ids = int8.prepare(TEXTS[3]).input_ids
    _, float32_answer = int8.attentions(ids)
    assert np.array_equal(int8.probabilities([ids])[0], int8.uncached_probabilities(ids))
    assert not np.array_equal(int8.probabilities([ids])[0], float32_answer)  # int8 moves this input a little
    float32 = ModelRunner(tiny_model)
    passes = float32.forward_passes
    float32.attentions(ids)
    float32.probabilities([ids])
    assert float32.forward_passes == passes + 1  # on float32 the attention pass still answers the prediction


def test_the_models_page_runs_a_backends_gate_on_a_worker_task_and_shows_it(home, tiny_model_dir, tiny_model,
                                                                              monkeypatch):
    """The gate is a task kind: the Models page's button queues it (here it runs in the page's own run: no
    workers), and the page then reads the stored gate and says which backend serves the model."""
    from streamlit.testing.v1 import AppTest

    from core.analyses import backend_gate
    from core.engine.fingerprints import remember
    from core.storage.db import get_engine
    from core.work import tasks

    remember(get_engine(), tiny_model)  # as a worker records on loading the weights: the page reads it
    monkeypatch.setattr(backend_gate, "DEFAULT_INPUTS", 40)  # the page's button asks for 2,000: minutes
    monkeypatch.setattr(backend_gate, "DEFAULT_METHOD_INPUTS", 1)
    app = AppTest.from_file("../app.py", default_timeout=300)
    app.run()
    app.switch_page("pages/models.py").run()
    assert not app.exception
    assert any(m.value == "**onnx-float32**: no gate measured yet." for m in app.markdown)
    assert any("run on **float32**" in m.value for m in app.markdown)
    app.button(key="gate_onnx-float32_run").click().run()
    assert not app.exception
    [task] = tasks.list_tasks(get_engine(), kind="backend_gate")
    assert task.status == "done" and task.params["backend"] == "onnx-float32", task.error
    shown = [m.value for m in app.markdown if m.value.startswith("**onnx-float32**")]
    assert shown and "passed its fidelity gate on 40 inputs" in shown[0]
