"""Leases on stored work: who runs a job or task, and whether that runner is still alive.

A runner writes an owner token ("host:pid:random") and renews a heartbeat; another process may take
the work over once the owner's process is gone (same host) or its heartbeat is older than the limit.
Shared by corpus jobs, tasks and model builds.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

STALE_AFTER = timedelta(seconds=20)  # a "running" record without a heartbeat this long is considered crashed


def new_owner() -> str:
    """A run's lease token: host, process and a random part (two runners in one process differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_alive(pid: int | None) -> bool:
    """Whether process `pid` of this host runs (a zombie, ended but not yet reaped, counts as gone)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def owner_is_dead(owner: str) -> bool:
    """True when the owner ran on this host and its process is gone (a restarted server, a killed CLI)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its heartbeat can tell
    return not process_alive(int(pid))


def lease_expired(owner: str, heartbeat_at: datetime | None, stale_after: timedelta = STALE_AFTER) -> bool:
    """A running record whose runner is gone: its process on this host is dead, or its heartbeat stopped."""
    if owner and owner_is_dead(owner):
        return True
    if heartbeat_at is not None and heartbeat_at.tzinfo is None:
        heartbeat_at = heartbeat_at.replace(tzinfo=UTC)
    return heartbeat_at is None or datetime.now(UTC) - heartbeat_at > stale_after
