"""Waiting on an event with a deadline: the one way tests wait (never a bare sleep, never forever)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 120.0, every: float = 0.05,
               what: str = "the condition") -> T:
    """The first truthy value of `condition()`; fails the test if none comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
