"""Hold kinds of task that run no method at the gate: a worker started with RASHOMON_TEST_GATE_KINDS=kind,...
(and RASHOMON_TASK_PLUGINS=tests.support.gate_kinds, the task registry's plugin hook) stops those tasks at
their first progress report, once their work has begun, until the test opens the gate."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from core.work import tasks
from tests.support.gate import hold

KINDS_ENV = "RASHOMON_TEST_GATE_KINDS"


def held_at_first_progress(run: Callable[..., dict]) -> Callable[..., dict]:
    def gated(engine, runner, params, progress, should_stop):
        held: list[bool] = []

        def report(part: str, fraction: float, message: str) -> None:
            progress(part, fraction, message)
            if not held:
                held.append(True)
                hold(lambda f, m: progress(part, f, m))

        return run(engine, runner, params, report, should_stop)

    return gated


for name in filter(None, os.environ.get(KINDS_ENV, "").split(",")):
    tasks.register_kind(dataclasses.replace(tasks.KINDS[name], run=held_at_first_progress(tasks.KINDS[name].run)))
