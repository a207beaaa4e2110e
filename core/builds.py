"""Model builds started from a page: `rashomon model build-default` in a local process of its own.

A build takes minutes (about 9 on a 2-core CPU), so it cannot run in a page's script thread. The
process writes its progress to `status.json` in its own directory under RASHOMON_HOME/builds, which
any page (after a reload, in another browser) reads back; its one-line error, if it fails, is the
last line of its log.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.leases import process_alive
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Build:
    id: str
    source: str  # what the extra rows came from, e.g. "evaluation 3, group 1"
    extra_rows: int
    started: float  # epoch seconds
    fraction: float
    message: str
    finished: bool
    error: str  # one line; empty unless it failed
    output_dir: str  # the new model, once finished
    accuracy: float | None
    macro_f1: float | None

    @property
    def running(self) -> bool:
        return not self.finished and not self.error


def builds_dir() -> Path:
    return load_settings().home / "builds"


def write_status(path: Path, **fields: object) -> None:
    """Replace the status file atomically (a reader never sees half of it)."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.update(fields)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(current))
    partial.replace(path)


def start_rebuild(extra_csv: str, source: str, *, label_column: str = "gold",
                  extra_arguments: Sequence[str] = ()) -> Build:
    """Build a new version of the default model with the rows of `extra_csv` added to its training rows,
    in a process of its own; returns at once. `extra_arguments`, after those in RASHOMON_BUILD_OPTIONS (for
    example `--train-rows 2000` for a quicker, weaker build), go to `build-default` as they are."""
    arguments = [*shlex.split(os.environ.get("RASHOMON_BUILD_OPTIONS", "")), *extra_arguments]
    stamp, suffix = time.strftime("%Y%m%d-%H%M%S"), 1
    directory = builds_dir() / stamp
    while directory.exists():  # two builds in the same second
        suffix += 1
        directory = builds_dir() / f"{stamp}-{suffix}"
    directory.mkdir(parents=True)
    rows_file = directory / "extra.csv"
    rows_file.write_text(extra_csv, encoding="utf-8")
    extra_rows = max(0, sum(1 for row in csv.reader(io.StringIO(extra_csv)) if row) - 1)  # quoted newlines too
    status = directory / "status.json"
    write_status(status, source=source, extra_rows=extra_rows, started=time.time(), fraction=0.0,
                 message="Starting", finished=False)
    log = (directory / "build.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "model", "build-default", "--extra-training", str(rows_file),
         "--label-column", label_column, "--status-file", str(status), *arguments],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    (directory / "pid").write_text(str(process.pid))  # its own file: the build writes status.json meanwhile
    # Reap it when it ends (no zombie left behind by the server); the status file holds the outcome.
    threading.Thread(target=process.wait, daemon=True).start()
    log.close()
    return build(directory.name)


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    return lines[-1] if lines else "the build stopped without a message"


def build(build_id: str) -> Build:
    directory = builds_dir() / build_id
    status_file = directory / "status.json"
    if not status_file.is_file():
        raise FileNotFoundError(f"No build {build_id!r} under {builds_dir()}.")
    status = json.loads(status_file.read_text())
    error = status.get("error", "")
    pid_text = (directory / "pid").read_text().strip() if (directory / "pid").is_file() else ""
    pid = int(pid_text) if pid_text.isdigit() else None
    starting = pid is None and time.time() - float(status.get("started", 0)) < 30  # Popen not yet returned
    if not status.get("finished") and not error and not starting and not process_alive(pid):
        error = _last_line(directory / "build.log")
    return Build(build_id, status.get("source", ""), int(status.get("extra_rows", 0)), float(status.get("started", 0)),
                 float(status.get("fraction", 0.0)), status.get("message", ""), bool(status.get("finished")), error,
                 status.get("output_dir", ""), status.get("accuracy"), status.get("macro_f1"))


def list_builds() -> list[Build]:
    """Builds started here, newest first."""
    root = builds_dir()
    if not root.is_dir():
        return []
    return [build(d.name) for d in sorted(root.iterdir(), reverse=True) if (d / "status.json").is_file()]
