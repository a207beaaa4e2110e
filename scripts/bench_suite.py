"""How long the test tiers take on this machine: the fast tier (`make test-fast`) and, with --full, the
whole suite (`make test` without its install and lint steps). Wall time of each pytest run, side by side
in one run so the machine's drift shows; figures go to BENCHMARKS.md.

    python scripts/bench_suite.py            # the fast tier, twice
    python scripts/bench_suite.py --full     # and the whole suite once
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = "not slow and not browser and not postgres and not processes"


def run(arguments: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", *arguments], cwd=ROOT, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    if result.returncode != 0:
        raise SystemExit(f"pytest {' '.join(arguments)} failed: {summary}")
    return seconds, re.sub(r"\x1b\[[0-9;]*m", "", summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the whole suite too")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the fast tier")
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        seconds, summary = run(["-p", "randomly", "-m", FAST])
        rows.append((f"fast tier, run {repeat + 1}", seconds, summary))
    if args.full:
        seconds, summary = run(["-p", "no:randomly"])
        rows.append(("whole suite", seconds, summary))
    print("| run | wall time | pytest's summary |\n| --- | --- | --- |")
    for name, seconds, summary in rows:
        print(f"| {name} | {seconds:.0f} s ({seconds / 60:.1f} min) | {summary} |")


if __name__ == "__main__":
    main()
