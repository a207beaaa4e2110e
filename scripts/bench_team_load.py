"""A team's load: N browser sessions (separate Chromium contexts of one browser) open a shared Compare link, the
Findings board and Home, round after round, while two comparisons run on the workers. Page load = from navigation
to the page's landmark being visible (the board's "You are ...", Compare's verdict, Home's "Latest findings").

    python scripts/bench_team_load.py [--sessions 10] [--rounds 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
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
CHROMIUM = os.environ.get("RASHOMON_CHROMIUM", "/usr/bin/chromium")
SHARED = "The hotel staff were friendly and the room was spotless, but breakfast was cold and the wifi kept dropping."
BUSY = ["The concert was loud, the crowd was rude, and the sound kept cutting out during the best songs of the night.",
        "Our flight was delayed four hours, the crew was kind, but nobody told us anything about the connection."]


def serve(env: dict) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true",
                                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


def prepare(model: str, home: Path) -> str:
    """A stored comparison to share, notes on the board, and two comparisons queued for the workers."""
    os.environ["RASHOMON_HOME"] = str(home)
    from core.analyses.reports import run_report
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods.registry import fast_methods, method_names
    from core.storage.db import get_engine
    from core.storage.notes import add_note
    from core.storage.people import acting_as
    from core.storage.texts import remember_text
    from core.work import tasks

    engine = get_engine()
    methods = fast_methods()
    run_report(engine, ModelRunner(load_model(model)), SHARED, methods, {})
    for i, person in enumerate(["ana", "bo", "carla"] * 4):
        with acting_as(person):
            add_note(engine, f"Finding {i}: occlusion and SHAP disagree on **cold**.", verdict="needs_review")
    every = method_names()  # every method: the workers stay busy through the measurement
    busy = [tasks.submit(engine, "comparison", model, {"text": text, "methods": every, "options": {}, "target": None,
                                                       "fresh": True}).id for text in BUSY]
    return "Compare?" + urlencode({"t": remember_text(engine, SHARED), "methods": ",".join(methods)}), busy


def statuses(busy: list[int]) -> list[str]:
    from core.storage.db import get_engine
    from core.work import tasks

    return [tasks.get_task(get_engine(), task_id).status for task_id in busy]


async def session(browser, url: str, shared: str, rounds: int, times: dict[str, list[float]]) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    pages = (("board", "Findings", "text=You are "), ("compare", shared, "text=Verdict"),
             ("home", "", "text=Latest findings"))
    for _ in range(rounds):
        for name, path, landmark in pages:
            started = time.perf_counter()
            await page.goto(f"{url}/{path}")
            await page.locator(landmark).first.wait_for(state="visible", timeout=300_000)
            times[name].append(time.perf_counter() - started)
    await context.close()


async def measure(url: str, shared: str, sessions: int, rounds: int) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    times: dict[str, list[float]] = {"board": [], "compare": [], "home": []}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        await asyncio.gather(*(session(browser, url, shared, rounds, times) for _ in range(sessions)))
        await browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=str(Path(os.environ.get("RASHOMON_HOME", "~/.rashomon")).expanduser()
                                               / "models" / "default-sentiment"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp())
    shared, busy = prepare(args.model, home)
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_MODEL": args.model, "RASHOMON_TASK_WORKERS": "2",
           "HF_HUB_OFFLINE": "1"}
    env.pop("RASHOMON_DATABASE_URL", None)
    process, url = serve(env)
    try:
        while statuses(busy) != ["running", "running"]:  # both comparisons have started on the workers
            time.sleep(0.5)
        # one session first, under the same load of two comparisons: the ratio says what the other sessions cost
        alone = asyncio.run(measure(url, shared, 1, args.rounds))
        started = time.perf_counter()
        times = asyncio.run(measure(url, shared, args.sessions, args.rounds))
        wall = time.perf_counter() - started
        after = statuses(busy)
    finally:
        process.terminate()
        process.wait(timeout=30)
    every = sorted(t for values in times.values() for t in values)
    print(f"{args.sessions} sessions x {args.rounds} rounds x 3 pages in {wall:.0f} s; the two comparisons (every "
          f"method) were running when it began and were {' and '.join(after)} when it ended:")
    print("| page | loads | median | 95th percentile | slowest | median, one session alone | ratio |\n"
          "|---|---|---|---|---|---|---|")
    for name, values in (*times.items(), ("all", every)):
        values = sorted(values)
        single = sorted(alone[name]) if name in alone else sorted(t for v in alone.values() for t in v)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        ratio = statistics.median(values) / statistics.median(single)
        print(f"| {name} | {len(values)} | {statistics.median(values):.2f} s | {p95:.2f} s | {max(values):.2f} s | "
              f"{statistics.median(single):.2f} s | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
