"""The first ten minutes, timed: `make run` on a fresh clone with an empty data directory, driven by a real browser.

    python scripts/bench_first_minutes.py [--venv PATH] [--port 8599]

Clones this repository into a temporary directory, installs it (`--venv` reuses an installed virtual
environment instead: the install is not what is timed), then starts `make run` with a new, empty
RASHOMON_HOME and records, in seconds from the moment `make run` is started:

- the first page answering (Home rendered in chromium);
- the default model's build finishing (Home shows the model), and the build task's own time;
- a newcomer's own first comparison (a pasted sentence, Compare's default methods) visible, started as soon as the
  build ends;
- the first stored sample comparison visible (Home's first "thing to try" opened);
- the preparation and each sample step, from their tasks.

Prints a Markdown table for BENCHMARKS.md. Run it with nothing else running: the figures are the machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RASHOMON_CHROMIUM", "/usr/bin/chromium")
SENTENCE = "The flight was late again and nobody told us why, but the crew were lovely."
HOUR_MS = 3_600_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", help="an installed virtual environment to reuse (default: `make install` in the clone)")
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rashomon-first-minutes-"))
    clone, home = work / "clone", work / "home"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if args.venv:
        os.symlink(Path(args.venv).resolve(), clone / ".venv")  # a throw-away clone: nothing is committed from it
        for stamp in (clone / ".venv").glob(".installed-*"):  # newer than the clone's files: make installs nothing
            stamp.touch()
    else:
        subprocess.run(["make", "install"], cwd=clone, check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RASHOMON_")}
    env["RASHOMON_HOME"] = str(home)
    log = (work / "make-run.log").open("w")
    started = time.monotonic()
    server = subprocess.Popen(["make", "run", f"RUN_PORT={args.port}"], cwd=clone, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - started, 1)
        print(f"{marks[name]:8.1f} s  {name}", flush=True)

    try:
        from playwright.sync_api import expect, sync_playwright

        url = f"http://127.0.0.1:{args.port}"
        while True:  # the server's health check, then a rendered page in the browser
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"make run ended; see {log.name}") from None
                time.sleep(0.2)
        expect.set_options(timeout=HOUR_MS)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(HOUR_MS)
            page.goto(f"{url}/")
            expect(page.get_by_role("heading", name="Rashomon")).to_be_visible()
            mark("first page answers")
            expect(page.get_by_text("rashomon-minilm-tweet-sentiment", exact=True)).to_be_visible()
            mark("build finished (Home shows the model)")
            page.goto(f"{url}/Compare?" + urlencode({"text": SENTENCE}))
            page.get_by_role("button", name="Run", exact=True).click()
            expect(page.get_by_role("heading", name="Summary")).to_be_visible()
            mark("own first comparison visible")
            page.goto(f"{url}/")
            page.get_by_role("link", name="Fourteen accounts of one tweet").click()
            expect(page.get_by_role("heading", name="Summary")).to_be_visible()
            mark("first sample comparison visible")
            page.goto(f"{url}/")
            expect(page.get_by_role("link", name="The training data behind an answer")).to_be_visible()
            mark("all three things to try offered")
            browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        log.close()
    report(marks, home / "rashomon.db")
    shutil.rmtree(work, ignore_errors=True)


def report(marks: dict[str, float], database: Path) -> None:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT kind, params, seconds, result FROM task ORDER BY id").fetchall()
    print("\n| moment (from `make run`) | seconds |\n| --- | --- |")
    for name, seconds in marks.items():
        print(f"| {name} | {seconds:.1f} |")
    if "build finished (Home shows the model)" in marks and "own first comparison visible" in marks:
        after = marks["own first comparison visible"] - marks["build finished (Home shows the model)"]
        print(f"| own first comparison, after the build | {after:.1f} |")
    print("\n| task | seconds | result |\n| --- | --- | --- |")
    for kind, params, seconds, result in rows:
        step = json.loads(params).get("step", "")
        outcome = json.loads(result) if result else {}
        shown = {k: v for k, v in outcome.items() if k in ("macro_f1", "accuracy", "job", "demo", "groups",
                                                            "counterfactuals", "rows")}
        print(f"| {kind}{' ' + step if step else ''} | {seconds:.1f} | {shown} |")


if __name__ == "__main__":
    sys.exit(main())
