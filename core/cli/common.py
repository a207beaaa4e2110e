"""What every command shares: the one-line error, progress bars, JSON output, loading inputs and models."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.params import id_argument

if TYPE_CHECKING:
    import argparse

    from sqlalchemy import Engine

    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def progress_bar(label: str) -> Callable[[float, str], None]:
    """A one-line progress bar on stderr."""
    def report(fraction: float, message: str) -> None:
        filled = int(30 * max(0.0, min(1.0, fraction)))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def quiet(fraction: float, message: str) -> None:
    pass


def print_json(data: Any) -> None:
    """Print a command's JSON; an object also names who asked for the stored result it shows (`provenance`)."""
    from core.storage.people import current_person
    from core.storage.provenance import current, with_requester

    print(json.dumps(with_requester(data, current(), current_person()), ensure_ascii=False, indent=2, default=str))


@contextmanager
def one_line_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the core's own error types into the CLI's one-line error."""
    try:
        yield
    except kinds as exc:
        raise CliError(str(exc)) from exc


def read_text_file(path: str) -> str:
    """A text file decoded like fetched pages (charset detection); a binary file is refused in one line."""
    from core.library.fetch import decode_text_file

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    try:
        return decode_text_file(data)
    except ValueError as exc:
        raise CliError(f"Cannot use {path}: {exc}.") from exc


def input_text(args: argparse.Namespace) -> str:
    """The text named by --text, --file or --snapshot."""
    if getattr(args, "text", None) is not None:
        return args.text
    if getattr(args, "file", None) is not None:
        return read_text_file(args.file)
    from core.library.snapshots import get_snapshot

    snapshot = get_snapshot(engine(), args.snapshot)
    if snapshot is None:
        raise CliError(f"No snapshot with id {args.snapshot}.")
    if snapshot.error:
        raise CliError(f"Snapshot {args.snapshot} is a failed fetch ({snapshot.error}); it has no text.")
    return snapshot.text


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--snapshot", type=id_argument("snapshot"))
    source.add_argument("--file", help="a text file (any common encoding)")


def load(spec: str | None) -> LoadedModel:
    from core.engine.modelling import ModelLoadError, load_model

    try:
        return load_model(spec)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from exc


def runner_for(spec: str | None) -> ModelRunner:
    """A runner over the model, through the backend RASHOMON_BACKEND asks for once it passed its gate."""
    from core.work.tasks import runner_with_backend

    return runner_with_backend(load(spec))


def engine() -> Engine:
    from core.storage.db import get_engine

    return get_engine()


def method_list(value: str | None) -> list[str]:
    """The methods named by --methods (default: all), checked before any model is loaded."""
    from core.methods.base import ExplainError
    from core.methods.registry import METHODS, get_method

    names = [m.strip() for m in value.split(",") if m.strip()] if value is not None else list(METHODS)
    if not names:
        raise CliError(f"--methods names no method; choose from {', '.join(METHODS)}.")
    with one_line_errors(ExplainError):
        for name in names:
            get_method(name)
    return names


def require_text(text: str) -> str:
    if not text.strip():
        raise CliError("The text is empty: give some words to explain.")
    return text
