"""One of several processes hitting the same database at once (run by tests/test_hostile.py):
adds links, refreshes a shared one, tags, and searches, through the core functions a server calls.

    python -m tests.concurrency_worker PAGES_BASE_URL WORKER_NUMBER ROUNDS
Prints one JSON line with what it did; exits non-zero with the error on any failure.
"""

from __future__ import annotations

import json
import sys

from core.library.snapshots import add_tags, list_links, refresh_link, snapshot_url
from core.storage.db import get_engine


def main(base: str, worker: int, rounds: int) -> None:
    engine = get_engine()
    shared = snapshot_url(engine, f"{base}/article", ["shared"]).link.id
    done = {"added": 0, "refreshed": 0, "searches": 0, "shared": shared}
    for i in range(rounds):
        link = snapshot_url(engine, f"{base}/plain?worker={worker}&round={i}", ["shared", f"worker-{worker}"]).link.id
        done["added"] += 1
        refresh_link(engine, shared)
        done["refreshed"] += 1
        add_tags(engine, [link, shared], [f"round-{i}"])
        if not list_links(engine, search="riverside"):
            raise SystemExit("the shared article was not found by search")
        done["searches"] += 1
    print(json.dumps(done))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
