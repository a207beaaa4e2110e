"""Each model's measured forward-pass time: workers store it, every page's estimate reads it.

A page never times the model itself (that would be model work in the server): a worker measures a
batch of masked passes when it loads a model, and again from the passes of any task that made many,
and stores the figure under the model's weights fingerprint. An estimate is then passes (from each
method's declared cost model) times this stored time; with none stored yet, a page shows the passes
and says the time comes once a worker has run the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.storage.records import find_keyed, save_keyed
from core.storage.schema import TaskRecord

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
               {"seconds_per_pass": float(seconds_per_pass), "passes": int(passes)}, is_result=False)


def stored_pass_time(engine: Engine, fingerprint: str) -> float | None:
    """The newest stored seconds per forward pass for the model with these weights, or None."""
    stored = find_keyed(engine, KIND, fingerprint, KEY, is_result=False)
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
    if runner.shortcut_checked and find_keyed(engine, SHORTCUT_KIND, runner.loaded.fingerprint, KEY, is_result=False) is None:
        save_keyed(engine, SHORTCUT_KIND, runner.loaded.name, runner.loaded.fingerprint, KEY,
                   {"on": runner.first_token_shortcut}, is_result=False)


def stored_shortcut(engine: Engine, fingerprint: str) -> bool | None:
    """Whether the first-token shortcut serves the model with these weights; None until a worker has checked."""
    stored = find_keyed(engine, SHORTCUT_KIND, fingerprint, KEY, is_result=False)
    return bool(stored["on"]) if stored else None


# Passes times the pass time is a lower bound: a run also prepares inputs, stores results, and this machine's speed
# varies up to 2x. Without a finished run to calibrate on, the range goes up to this multiple of it.
UNCALIBRATED_HIGH = 2.5
RECENT_RUNS = 20  # finished runs of a kind and model whose actual/estimated times calibrate the range
ESTIMATE_PARAM = "estimated_seconds"  # what a page estimated, kept in the task's parameters (not its identity)


@dataclass(frozen=True)
class Estimate:
    """A run's expected time as a range: passes x measured pass time, widened by how far finished runs of the same
    kind on the same model took longer (or shorter) than estimated."""

    passes: float
    seconds_per_pass: float | None  # None: no worker has measured this model yet
    low: float | None
    high: float | None
    calibrated_on: int  # finished runs the range was read from (0: the uncalibrated default)

    @property
    def point(self) -> float | None:
        return None if self.seconds_per_pass is None else self.passes * self.seconds_per_pass


def actual_over_estimated(engine: Engine, kind: str, model: str) -> list[float]:
    """Seconds taken / seconds estimated, for the newest finished runs of `kind` on `model` that kept an estimate."""
    with Session(engine) as session:
        rows = session.exec(select(TaskRecord).where(TaskRecord.kind == kind, TaskRecord.model == model,
                                                     TaskRecord.status == "done")
                            .order_by(col(TaskRecord.id).desc()).limit(RECENT_RUNS * 3)).all()
    ratios = []
    for row in rows:
        estimated = json.loads(row.params or "{}").get(ESTIMATE_PARAM)
        if isinstance(estimated, int | float) and estimated > 0 and row.seconds and row.seconds > 0:
            ratios.append(row.seconds / estimated)
    return ratios[:RECENT_RUNS]


def estimate_range(engine: Engine, fingerprint: str, kind: str, model: str, passes: float) -> Estimate:
    per_pass = stored_pass_time(engine, fingerprint)
    if per_pass is None:
        return Estimate(passes, None, None, None, 0)
    point = passes * per_pass
    ratios = actual_over_estimated(engine, kind, model)
    if not ratios:
        return Estimate(passes, per_pass, point, point * UNCALIBRATED_HIGH, 0)
    low, high = (min(ratios), max(ratios)) if len(ratios) < 5 else tuple(np.quantile(ratios, [0.1, 0.9]))
    # widened for this machine's own variation between runs (up to 2x within minutes)
    return Estimate(passes, per_pass, point * low * 0.8, point * high * 1.25, len(ratios))


def duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def range_text(estimate: Estimate) -> str:
    """'40 s to 1.6 min' (or '' when no pass time is measured yet)."""
    if estimate.low is None or estimate.high is None:
        return ""
    return f"{duration(estimate.low)} to {duration(estimate.high)}"


def estimate_sentence(estimate: Estimate) -> str:
    """What a page says before Run: the passes, and the time as a range from measured pass times."""
    if estimate.seconds_per_pass is None:
        return (f"Run will cost about {estimate.passes:,.0f} model passes (the time is shown once a worker has "
                "measured this model's pass time; stored results and repeated inputs make it cheaper).")
    basis = (f"the range is how long {estimate.calibrated_on} finished run(s) of this kind here took against their "
             "estimates" if estimate.calibrated_on else
             "no run of this kind has finished here yet, so the range runs from the passes' time alone (a lower "
             f"bound) to {UNCALIBRATED_HIGH:g}x it")
    return (f"Run will cost about {estimate.passes:,.0f} model passes: {range_text(estimate)} on a worker "
            f"({estimate.seconds_per_pass * 1000:.1f} ms a pass, measured there; {basis}; stored results and "
            "repeated inputs make it cheaper).")


def took_sentence(seconds: float, estimated: float | None) -> str:
    """After a run: how long it took, beside what was estimated (the estimate kept with its task)."""
    return f"The last run took {duration(seconds)}" + (
        f" (estimated {duration(estimated)} from passes x pass time)." if estimated else ".")
