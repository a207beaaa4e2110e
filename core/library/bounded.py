"""Run a pure function in a forked child under a wall-clock, CPU and memory budget.

Extraction parses whatever a page serves: a 2.7 MB page of 49,900 paragraphs took 123 CPU-seconds. It runs in
a child of the process that asked (forked: no interpreter start, the parsers already imported), which is
killed when it passes the budget; the caller gets `BudgetExceeded` with one sentence, and the process that
asked (a server, a worker) carries on. Where fork is unavailable the function runs in place, unbounded.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Budget:
    seconds: float = 30.0  # wall clock
    memory_bytes: int = 1 << 30  # growth of the child's resident memory over the parent's at the fork
    poll: float = 0.02


class BudgetExceeded(RuntimeError):
    """The work passed its budget and was stopped; the message says which limit."""


def _resident(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class ChildCrashed(BudgetExceeded):
    """The child ended on a signal that is not a budget's (a crash in a parser's C code, seen once as SIGSEGV)."""


def run_bounded(function: Callable[..., T], *args: Any, budget: Budget = Budget(), what: str = "the work") -> T:
    """`function(*args)` computed in a forked child within `budget`; its exception, if it raised one, is
    raised here; `BudgetExceeded` when it was stopped. A child that crashed (a signal no budget sent) is forked
    once more: a forked copy of a busy process can crash where a second copy does not."""
    try:
        return _run_bounded_once(function, *args, budget=budget, what=what)
    except ChildCrashed:
        return _run_bounded_once(function, *args, budget=budget, what=what)


def _run_bounded_once(function: Callable[..., T], *args: Any, budget: Budget, what: str) -> T:
    if not hasattr(os, "fork") or not Path("/proc").is_dir():
        return function(*args)
    handle, name = tempfile.mkstemp(prefix="rashomon-bounded-")
    os.close(handle)
    out = Path(name)
    try:
        pid = os.fork()
        if pid == 0:  # the child: compute, write the outcome, leave without running the parent's cleanup
            code = 0
            try:
                seconds = max(1, int(budget.seconds) + 1)
                resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
                try:
                    outcome: tuple[str, Any] = ("value", function(*args))
                except BaseException as exc:  # noqa: BLE001 (handed to the parent as it is)
                    outcome = ("error", exc)
                try:
                    out.write_bytes(pickle.dumps(outcome))
                except Exception as exc:  # an unpicklable exception: its text instead
                    out.write_bytes(pickle.dumps(("error", RuntimeError(str(exc)))))
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        return _wait(pid, out, budget, what)
    finally:
        out.unlink(missing_ok=True)


def _wait(pid: int, out: Path, budget: Budget, what: str) -> Any:
    start_memory = _resident(pid)
    deadline = time.monotonic() + budget.seconds
    reason = ""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            reason = f"it took longer than {budget.seconds:g} s"
        elif _resident(pid) - start_memory > budget.memory_bytes:
            reason = f"it needed more than {budget.memory_bytes / 2**20:,.0f} MB"
        if reason:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise BudgetExceeded(f"Stopped {what}: {reason}.")
        time.sleep(budget.poll)
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
            raise BudgetExceeded(f"Stopped {what}: its CPU time ran out.")
        raise ChildCrashed(f"Stopped {what}: it ended on signal {os.WTERMSIG(status)}.")
    try:
        kind, value = pickle.loads(out.read_bytes())
    except Exception as exc:
        raise BudgetExceeded(f"Stopped {what}: it ended without a result.") from exc
    if kind == "error":
        raise value
    return value
