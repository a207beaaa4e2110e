"""Which stored results a command read or wrote, and who asked for each: so that the CLI's `--json` output of a
stored result names its requester (the person who first asked for it, not necessarily the one reading it now).

A command opens `watching()`; the storage functions that read or write a result (keyed results, corpus and
evaluation jobs, training sets) call `saw(...)` while it is open. Outside `watching()` nothing is collected, so
pages, workers and tests pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One stored result a command used: `record` is "table:id"."""

    record: str
    requested_by: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "requested_by": self.requested_by,
                "created_at": self.created_at.isoformat() if self.created_at else None}


_seen: ContextVar[list[Seen] | None] = ContextVar("rashomon_seen", default=None)
MAX_SEEN = 200


@contextmanager
def watching() -> Iterator[list[Seen]]:
    """Collect, in order and once each, the stored results used inside the block."""
    seen: list[Seen] = []
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)


def current() -> list[Seen]:
    """What `watching()` has collected so far (empty outside it)."""
    return list(_seen.get() or [])


def saw(table: str, row_id: int | None, requested_by: str | None, created_at: datetime | None = None) -> None:
    """Note a stored result read or written (no-op outside `watching()` or for a row without an id)."""
    seen = _seen.get()
    # a long-running command (`rashomon worker`) keeps storing results: it names the first MAX_SEEN, no more
    if seen is None or row_id is None or len(seen) >= MAX_SEEN:
        return
    entry = Seen(f"{table}:{row_id}", requested_by or "unknown", created_at)
    if all(s.record != entry.record for s in seen):
        seen.append(entry)


def with_requester(data: Any, seen: list[Seen], person: str) -> Any:
    """`data` (a command's JSON object) with `requested_by` (who asked for the result it shows: the last stored
    result used, else `person`, who asked now) and `stored` (every stored result used). Lists and objects that
    already name a requester are left as they are."""
    if not isinstance(data, dict) or "requested_by" in data:
        return data
    return {**data, "requested_by": seen[-1].requested_by if seen else person,
            "stored": [s.to_dict() for s in seen]}
