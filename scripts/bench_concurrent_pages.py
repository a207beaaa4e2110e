"""A third person's page load while two people run comparisons, in a real browser against a real server.

For each setting of RASHOMON_TASK_WORKERS (2: the default, comparisons on two local worker processes;
0: comparisons in the pages' own script threads, as before tasks), a fresh server on the default model:
the Snapshots page is loaded idle, then two browser sessions press Run on two different inputs (every
method) and a third session loads the Snapshots page again and again until both comparisons finish.
Printed: page load times (idle and while both run), each comparison's wall time from Run to its
Summary, and how much slower the busy loads are than the idle ones (settings measured side by side in one
run of this script).

    python scripts/bench_concurrent_pages.py [--model PATH] [--modes 2,0] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from core.analyses.compare import ViewState  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402
from core.work import tasks  # noqa: E402

CHROMIUM = os.environ.get("RASHOMON_CHROMIUM", "/usr/bin/chromium")
TEXTS = ["The hotel staff were friendly and the room was spotless, but breakfast was cold, the wifi kept dropping "
         "and checkout took forty minutes, so I would not stay again.",
         "The first half of the film drags badly, yet the final act is so tense and beautifully shot that I left "
         "the cinema grinning and already planning to see it again."]


def start_server(model: str, workers: int, home: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "RASHOMON_HOME": home, "RASHOMON_MODEL": model, "RASHOMON_TASK_WORKERS": str(workers),
           "HF_HUB_OFFLINE": "1"}
    env.pop("RASHOMON_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true",
                                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(match) -> float:
    """User + system CPU seconds of this machine's processes whose command line satisfies `match`."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if match(command):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_by_role(port: int) -> dict[str, float]:
    return {"server": cpu_seconds(lambda c: "serve.py" in c and f"--server.port {port}" in c),
            "workers": cpu_seconds(lambda c: "core worker" in c),
            "browser": cpu_seconds(lambda c: "chromium" in c)}


def load_time(browser, url: str) -> float:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    started = time.monotonic()
    page.goto(url)
    expect(page.get_by_role("heading", name="Links (")).to_be_visible(timeout=120_000)
    seconds = time.monotonic() - started
    context.close()
    return seconds


def one_setting(browser, model: str, workers: int, idle_loads: int, max_seconds: float,
                close: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as home:
        port = 8600 + workers
        server = start_server(model, workers, home, port)
        base = f"http://127.0.0.1:{port}"
        try:
            load_time(browser, f"{base}/Snapshots")  # the server loads the model; workers start
            if workers:
                logs = Path(home) / "workers"
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline and sum(
                        "waiting for work" in p.read_text() for p in logs.glob("*.log")) < workers:
                    time.sleep(0.5)
            idle = [load_time(browser, f"{base}/Snapshots") for _ in range(idle_loads)]
            people, finished, busy = [], {}, []
            for i, text in enumerate(TEXTS):
                context = browser.new_context(viewport={"width": 1500, "height": 1000})
                page = context.new_page()
                page.goto(f"{base}/Compare?" + urlencode(ViewState(text=text).to_query()))
                expect(page.get_by_text("Press Run to explain this input")).to_be_visible(timeout=120_000)
                people.append((i, context, page))
            clicked, cpu_before = time.monotonic(), cpu_by_role(port)
            for _, _, page in people:
                page.get_by_role("button", name="Run", exact=True).click()
            if close and workers:  # both people leave once their task is submitted (it goes on without them)
                for _, context, page in people:
                    expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=120_000)
                    context.close()
                db = make_engine(f"sqlite:///{home}/rashomon.db", run_migrations=False)
                while time.monotonic() - clicked < max_seconds:
                    busy.append(load_time(browser, f"{base}/Snapshots"))
                    ended = [t for t in tasks.list_tasks(db) if not t.active]
                    if len(ended) == len(people):
                        finished = {i: (t.finished_at - t.created_at).total_seconds() for i, t in enumerate(ended)}
                        break
                people = []
            # Playwright's sync API is single-threaded: the two Run pages are polled between the third's loads.
            while len(finished) < len(people) and time.monotonic() - clicked < max_seconds:
                busy.append(load_time(browser, f"{base}/Snapshots"))
                print(f"  {workers} workers: a page load took {busy[-1]:.2f} s, {time.monotonic() - clicked:.0f} s "
                      "after Run", flush=True)
                for i, _, page in people:
                    if i not in finished and page.get_by_role("heading", name="Summary").count():
                        finished[i] = time.monotonic() - clicked
            for i, context, page in people:
                if i not in finished:
                    shot = Path(tempfile.gettempdir()) / f"bench-concurrent-{workers}-{i}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"  comparison {i} shows no Summary after {max_seconds:.0f} s; see {shot}", flush=True)
                    finished[i] = float("nan")
                context.close()
            cpu_after = cpu_by_role(port)
        finally:
            server.terminate()
            server.wait(30)
    return {"workers": workers, "close": close, "idle": idle, "busy": busy, "comparisons": [finished[i] for i in sorted(finished)],
            "cpu": {role: round(cpu_after[role] - cpu_before[role], 1) for role in cpu_after}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--modes", default="2,2c,0", help="RASHOMON_TASK_WORKERS values to compare; a trailing c: "
                                                           "the two people close their tab once Run is pressed")
    parser.add_argument("--idle-loads", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=600, help="give up on the comparisons after this long")
    parser.add_argument("--out", help="append the table to this Markdown file")
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"No model at {args.model}: build it with `rashomon model build-default`.")
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        for mode in args.modes.split(","):
            workers, close = int(mode.rstrip("c")), mode.endswith("c")
            results.append(one_setting(browser, args.model, workers, args.idle_loads, args.max_seconds, close))
            print(results[-1], flush=True)
        browser.close()
    lines = [f"### Third page load while two comparisons run ({time.strftime('%Y-%m-%d')}, "
             f"`scripts/bench_concurrent_pages.py`, {Path(args.model).name}, every method, {os.cpu_count()} cores)", "",
             "| page work runs in | idle load, median | load while both run: median / max (n) | busy / idle | "
             "comparisons, Run to done | CPU s meanwhile: server / workers / browser |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        where = f"{r['workers']} worker processes" if r["workers"] else "the pages' script threads"
        where += ", both tabs closed after Run" if r["close"] else (", both tabs following" if r["workers"] else "")
        busy = f"{statistics.median(r['busy']):.2f} s / {max(r['busy']):.2f} s ({len(r['busy'])})" if r["busy"] else "-"
        slower = f"{statistics.median(r['busy']) / statistics.median(r['idle']):.1f}x" if r["busy"] else "-"
        lines.append(f"| {where} | {statistics.median(r['idle']):.2f} s | {busy} | {slower} | "
                     f"{', '.join(f'{s:.0f} s' for s in r['comparisons'])} | "
                     f"{r['cpu']['server']:.0f} / {r['cpu']['workers']:.0f} / {r['cpu']['browser']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as out:
            out.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
