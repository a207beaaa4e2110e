"""RASHOMON_COUNT_PASSES: a process's model loads and passes, counted where the browser suite reads them."""

from __future__ import annotations

import os

from core.engine import counters


def test_loads_and_every_kind_of_pass_are_counted(home, monkeypatch, tiny_model_dir):
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods.explain import explain

    monkeypatch.setattr(counters, "_counts", {"loads": 0, "passes": 0})
    assert counters.read(os.getpid()) == {"loads": 0, "passes": 0}
    monkeypatch.setenv(counters.ENV, "1")
    loaded = load_model(str(tiny_model_dir))
    assert counters.read(os.getpid())["loads"] == 1
    runner = ModelRunner(loaded)
    assert counters.read(os.getpid())["passes"] == 0  # a runner costs nothing until it runs the model
    assert runner.first_token_shortcut  # checked against the full model on probe inputs: those passes count
    before = counters.read(os.getpid())["passes"]
    assert before > 0
    runner.probabilities_for_texts(["One review.", "Another review.", "A third."])
    assert counters.read(os.getpid())["passes"] - before == runner.forward_passes == 3  # one batch of three
    before = counters.read(os.getpid())["passes"]
    saliency = explain(ModelRunner(runner.loaded), "The food was cold.", "saliency")
    # A gradient pass runs the embeddings too: counted (the runner counts its backward pass as another).
    assert counters.read(os.getpid())["passes"] - before >= 1 and saliency.forward_passes >= 1
    monkeypatch.delenv(counters.ENV)
    load_model(str(tiny_model_dir))  # not watched: nothing counted
    assert counters.read(os.getpid())["loads"] == 1
