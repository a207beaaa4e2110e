"""Hostile pages against the fetcher and extractor at full size: wall time and peak memory of each
snapshot, each in its own process (peak RSS is per process). Appends a table to BENCHMARKS.md.

    python scripts/bench_hostile.py [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = {
    "/dribble-status": "status line and headers at 2 bytes/s",
    "/dribble-headers": "headers at 2 lines/s",
    "/tiny-elements-9mb": "9 MB of `<p>x</p>` (1.15 M elements)",
    "/many-links": "200,000 links",
    "/gzip-bomb": "gzip bomb (30 MB of text in 30 kB)",
    "/bad-redirect": "redirect to http://[x]/",
    "/paragraphs-49900": "49,900 paragraphs (2.7 MB, just under the element budget)",
    "/links-49000": "49,000 links",
}
CHILD = """
import json, resource, sys, time, tempfile
from core.storage.db import make_engine
from core.library.snapshots import snapshot_url
engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/b.db")
started = time.perf_counter()
outcome = snapshot_url(engine, sys.argv[1])
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "error": outcome.error or (outcome.snapshot.error if outcome.snapshot else ""),
                  "peak_mb": peak / 1024}))
"""


def bookmark_import(count: int) -> tuple[float, int]:
    """Seconds to import `count` bookmarks into a fresh SQLite database."""
    import time

    from core.library.bookmarks import import_bookmarks
    from core.storage.db import make_engine

    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<DL><p>"]
    lines += [f'<DT><A HREF="https://example.org/page/{i}" ADD_DATE="1700000000" TAGS="bulk,t{i % 50}">Page {i}</A>'
              for i in range(count)]
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/bookmarks.db")
    started = time.perf_counter()
    summary = import_bookmarks(engine, "\n".join(lines + ["</DL><p>"]))
    return time.perf_counter() - started, summary.added


def main() -> None:
    from core.library.bookmarks import IMPORT_BATCH
    from tests.test_hostile import start_hostile_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args()
    base, stop = start_hostile_server()
    env = {**os.environ, "RASHOMON_ALLOWED_INTERNAL_HOSTS": "127.0.0.1", "RASHOMON_HOME": tempfile.mkdtemp()}
    rows = []
    for path, what in CASES.items():
        out = subprocess.run([sys.executable, "-c", CHILD, base + path], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=300)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((what, data["seconds"], data["peak_mb"], data["error"]))
        print(f"{what}: {data['seconds']:.1f} s, peak {data['peak_mb']:.0f} MB: {data['error']}", flush=True)
    stop.set()
    seconds, added = bookmark_import(100_000)
    print(f"100,000 bookmarks imported in {seconds:.1f} s ({added} links)", flush=True)
    lines = ["", "## Hostile pages (`python scripts/bench_hostile.py`)", "",
             "Each page snapshotted in its own process with the default limits (20 s fetch deadline, 10 MB cap, "
             "100,000-tag budget, extraction in a forked child stopped at 30 s or 1 GB); peak memory is the larger "
             "of the process's and its children's maximum RSS, Python and libraries included.",
             "", "| page | wall time (s) | peak memory (MB) | recorded as |", "| --- | --- | --- | --- |"]
    lines += [f"| {w} | {s:.1f} | {m:.0f} | {e} |" for w, s, m, e in rows]
    lines += ["", f"Bookmark import (Netscape file, 100,000 links with two tags each, SQLite): **{seconds:.0f} s** "
              f"({added:,} links; one transaction per {IMPORT_BATCH:,} bookmarks)."]
    with open(args.out, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
