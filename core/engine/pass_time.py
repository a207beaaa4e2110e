"""Each model's measured forward-pass time: workers store it, every page's estimate reads it.

A page never times the model itself (that would be model work in the server): a worker measures a
batch of masked passes when it loads a model, and again from the passes of any task that made many,
and stores the figure under the model's weights fingerprint. An estimate is then passes (from each
method's declared cost model) times this stored time; with none stored yet, a page shows the passes
and says the time comes once a worker has run the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

from core.storage.records import find_keyed, save_keyed

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner

KIND = "pass-time"
KEY = "forward"
SHORTCUT_KIND = "first-token-shortcut"
MIN_PASSES = 50  # a task's passes say something about the pass time only when there are enough of them
SAMPLE = "The staff were friendly and the room was clean, but breakfast was cold and the wifi kept dropping."


def record_pass_time(engine: Engine, loaded: LoadedModel, seconds_per_pass: float, passes: int) -> None:
    save_keyed(engine, KIND, loaded.name, loaded.fingerprint, KEY,
               {"seconds_per_pass": float(seconds_per_pass), "passes": int(passes)})


def stored_pass_time(engine: Engine, fingerprint: str) -> float | None:
    """The newest stored seconds per forward pass for the model with these weights, or None."""
    stored = find_keyed(engine, KIND, fingerprint, KEY)
    return float(stored["seconds_per_pass"]) if stored else None


def measure_pass_time(engine: Engine, runner: ModelRunner) -> float:
    """Time a batch of masked passes on a sample input (on a worker, when it loads a model) and store it."""
    from core.analyses.corpus.estimate import seconds_per_pass

    seconds = seconds_per_pass(runner, [SAMPLE])
    record_pass_time(engine, runner.loaded, seconds, 8)
    return seconds


def record_from_runner(engine: Engine, runner: ModelRunner, seconds_before: float, passes_before: int) -> None:
    """After a task: store the pass time its plain forward passes took, when it made enough of them."""
    passes = runner.timed_passes - passes_before
    if passes >= MIN_PASSES:
        record_pass_time(engine, runner.loaded, (runner.forward_seconds - seconds_before) / passes, passes)


def record_shortcut(engine: Engine, runner: ModelRunner) -> None:
    """Once a runner has checked the first-token shortcut (its first pass), store whether it serves the model,
    for the pages, which make no pass to find out."""
    if runner.shortcut_checked and find_keyed(engine, SHORTCUT_KIND, runner.loaded.fingerprint, KEY) is None:
        save_keyed(engine, SHORTCUT_KIND, runner.loaded.name, runner.loaded.fingerprint, KEY,
                   {"on": runner.first_token_shortcut})


def stored_shortcut(engine: Engine, fingerprint: str) -> bool | None:
    """Whether the first-token shortcut serves the model with these weights; None until a worker has checked."""
    stored = find_keyed(engine, SHORTCUT_KIND, fingerprint, KEY)
    return bool(stored["on"]) if stored else None


def estimate_sentence(passes: float, seconds_per_pass: float | None) -> str:
    """What a page says before Run: the passes, and the time from the stored pass time when there is one."""
    if seconds_per_pass is None:
        return (f"Run will cost about {passes:,.0f} model passes (the time is shown once a worker has measured "
                "this model's pass time; stored results and repeated inputs make it cheaper).")
    return (f"Run will cost about {passes:,.0f} model passes, roughly {passes * seconds_per_pass:,.0f} s on a "
            f"worker ({seconds_per_pass * 1000:.1f} ms a pass, measured there; stored results and repeated inputs "
            "make it cheaper).")
