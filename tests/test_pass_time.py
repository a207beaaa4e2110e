"""The stored pass time behind every estimate: measured on workers from real passes, never on a page."""

from __future__ import annotations

import pytest

from core.engine import pass_time
from core.engine.runner import ModelRunner
from core.work import tasks


def test_the_runner_times_its_plain_forward_passes(tiny_model):
    runner = ModelRunner(tiny_model)
    runner.probabilities_for_texts([f"Review {i}: the room was fine." for i in range(12)])
    assert runner.timed_passes == 12 == runner.forward_passes and runner.forward_seconds > 0
    runner.probabilities_for_texts([f"Review {i}: the room was fine." for i in range(12)])  # cached: no pass
    assert runner.timed_passes == 12


def test_a_task_with_enough_passes_stores_the_pass_time_it_saw(engine, tiny_model):
    runner = ModelRunner(tiny_model)
    assert pass_time.stored_pass_time(engine, tiny_model.fingerprint) is None
    small = tasks.submit(engine, "comparison", "m", {"text": "Fine.", "methods": ["attention"], "options": {},
                                                      "target": ""})
    tasks.run_here(engine, runner, small.id)
    assert pass_time.stored_pass_time(engine, tiny_model.fingerprint) is None  # too few passes to say anything
    text = " ".join(["The staff were lovely but the food was cold and the room was loud."] * 6)
    big = tasks.submit(engine, "comparison", "m", {"text": text, "methods": ["occlusion"], "options": {}, "target": ""})
    before = (runner.forward_seconds, runner.timed_passes)
    ended = tasks.run_here(engine, runner, big.id)
    passes = runner.timed_passes - before[1]
    assert passes >= pass_time.MIN_PASSES and ended.status == "done"
    stored = pass_time.stored_pass_time(engine, tiny_model.fingerprint)
    assert stored == pytest.approx((runner.forward_seconds - before[0]) / passes)


def test_a_worker_measurement_is_stored_and_the_estimate_uses_it(engine, tiny_model):
    seconds = pass_time.measure_pass_time(engine, ModelRunner(tiny_model))
    assert seconds > 0 and pass_time.stored_pass_time(engine, tiny_model.fingerprint) == pytest.approx(seconds)
    assert pass_time.stored_pass_time(engine, "another model") is None
    assert "2,000 model passes, roughly 10 s" in pass_time.estimate_sentence(2000, 0.005)
    assert "shown once a worker has measured" in pass_time.estimate_sentence(2000, None)
