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


def add_model_arguments(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """--model (a classifier: hub id or directory), or --lm with what makes a causal LM explainable: a template
    and label words (a classifier), or a continuation and a contrast (the greedy continuation by default)."""
    from core.params import int_argument

    parser.add_argument("--model", help=help)
    lm = parser.add_argument_group("causal language models (--lm replaces --model)")
    lm.add_argument("--lm", help="a causal LM: hub id or directory")
    lm.add_argument("--template", help="the prompt, holding {text} once (default for a continuation: {text})")
    lm.add_argument("--labels", help="comma-separated label words: the LM is read as a classifier")
    lm.add_argument("--continuation", help="the continuation to explain (default: the model's greedy one)")
    lm.add_argument("--contrast", help="explain the continuation rather than this one: log p(A) - log p(B)")
    lm.add_argument("--max-new-tokens", type=int_argument("max-new-tokens", 1, 512), default=None,
                    help="longest greedy continuation (default 20)")
    lm.add_argument("--chat", action="store_true", help="wrap the template in the model's chat template")
    lm.add_argument("--no-kv-cache", action="store_true", help="score a contrast without sharing the prompt's cache")


def resolve_model_arguments(args: argparse.Namespace) -> None:
    """Turn --lm and its options into the model spec in args.model (core/engine/adapters), checked in one line."""
    if not hasattr(args, "lm"):
        return
    lm_only = {"--template": args.template, "--labels": args.labels, "--continuation": args.continuation,
               "--contrast": args.contrast, "--max-new-tokens": args.max_new_tokens, "--chat": args.chat or None,
               "--no-kv-cache": args.no_kv_cache or None}
    if args.lm is None:
        given = [name for name, value in lm_only.items() if value is not None]
        if given:
            raise CliError(f"{', '.join(given)} go with --lm (a causal LM), not with --model.")
        return
    if args.model is not None:
        raise CliError("Give --model (a classifier) or --lm (a causal LM), not both.")
    from core.engine.adapters import make_spec

    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        if args.continuation or args.contrast or args.max_new_tokens:
            raise CliError("--labels reads the LM as a classifier; --continuation, --contrast and --max-new-tokens "
                           "explain a continuation: give one or the other.")
        if not args.template:
            raise CliError("--labels needs --template, the prompt holding {text} (e.g. 'Review: {text} Sentiment:').")
        args.model = make_spec("lm_classifier", {"model": args.lm, "template": args.template, "labels": labels,
                                                 "chat": args.chat or None})
        return
    args.model = make_spec("lm_continuation", {
        "model": args.lm, "template": args.template, "continuation": args.continuation, "contrast": args.contrast,
        "max_new_tokens": args.max_new_tokens, "chat": args.chat or None,
        "use_cache": False if args.no_kv_cache else None})


def bound_to(spec: str | None, text: str) -> str | None:
    """`spec` ready to explain `text`: a continuation model without a continuation generates its greedy one."""
    if spec is None:
        return None
    from core.engine.adapters import AdapterSpecError, bind_spec
    from core.engine.modelling import ModelLoadError

    with one_line_errors(ModelLoadError, AdapterSpecError):
        return bind_spec(spec, text)


def load(spec: str | None) -> LoadedModel:
    from core.engine.modelling import ModelLoadError, load_model

    try:
        return load_model(spec)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from exc


def load_description(spec: str | None) -> LoadedModel:
    """The model described without its weights (labels, kind, layout), or one line saying why not."""
    from core.engine.modelling import ModelLoadError, describe_model

    with one_line_errors(ModelLoadError):
        return describe_model(spec)


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
