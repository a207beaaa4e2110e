"""A method that holds its worker until the test opens a gate: kill and stop tests act on an event
("the gate was entered") instead of guessing that a large LIME run is still going.

Loaded into worker processes with RASHOMON_PLUGINS=tests.support.gate (the registry's plugin hook);
the `gate` fixture adds it to the test process's registry for that test only. Heavy work that runs no
method (an evaluation, error grouping, a build) is held the same way by tests/support/gate_kinds.py. The gate is a folder named by RASHOMON_TEST_GATE: the method
writes `entered-<pid>` when it starts and returns once `open` exists, reporting progress meanwhile (so
a stop request is raised inside it, as in any long method).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.methods.base import Attribution, Family, Method, Option
from core.methods.registry import METHODS, register

GATE_ENV = "RASHOMON_TEST_GATE"
HOLD_AT_MOST = 240.0  # a test that forgets to open the gate fails, it does not hang


def gate_folder() -> Path:
    return Path(os.environ[GATE_ENV])


def hold(progress: Callable[[float, str], None]) -> None:
    """Say so in the gate folder, then wait (reporting progress, so a stop request reaches the holder) until
    the test opens the gate."""
    folder = gate_folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"entered-{os.getpid()}").touch()
    deadline = time.monotonic() + HOLD_AT_MOST
    while not (folder / "open").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        progress(0.5, "waiting at the gate")
        time.sleep(0.05)


def _gate(runner, prepared, target, params, progress) -> Attribution:
    hold(progress)
    n = len(prepared.words)
    return Attribution(word_scores=np.linspace(1.0, 0.0, n) if n else np.zeros(0))


# A comparison runs its methods cheapest first: the declared cost puts the gate after occlusion (one
# pass per word) and before a LIME run of thousands of samples.
GATE = Method(name="gate", title="Gate (test only)", family=Family.PERTURBATION, signed=False,
              citation="A test fixture, not a method.",
              options=(Option("passes", "int", 1000, "Where the gate sorts among the methods (its cost).", minimum=0),),
              attribute=_gate, cost=lambda params, n_words: params["passes"])
# Registered where a test asked for it (a worker started with RASHOMON_TEST_GATE set); the test process
# itself adds it only for the tests that use the `gate` fixture, so no other test sees a 15th method.
if os.environ.get(GATE_ENV) and GATE.name not in METHODS:
    register(GATE)


def entered(folder: Path) -> list[int]:
    """The pids of the processes that have entered the gate."""
    return [int(p.name.split("-", 1)[1]) for p in folder.glob("entered-*")] if folder.exists() else []


def open_gate(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open").touch()
