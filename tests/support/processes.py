"""Processes this test run started, found through /proc: a test kills only its own children, never a
process of another run or another user that happens to match a pattern."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        # the command name in parentheses may itself hold spaces and parentheses: read after the last ')'
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def descendants(root: int | None = None) -> list[int]:
    """Every living process below `root` (default: this process), children first."""
    root = os.getpid() if root is None else root
    parents = _parents()
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def kill_own_descendant(pattern: str, timeout: float = 120.0) -> int:
    """SIGKILL the first process below this one whose command line (or title, which Ray sets to
    `ray::<task>` while a task runs) matches `pattern`; its pid. Raises if none appears in time."""
    wanted = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in descendants():
            if wanted.search(command_line(pid)):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no process of this run matching {pattern!r} appeared within {timeout:.0f} s")
