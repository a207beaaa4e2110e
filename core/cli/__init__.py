"""`rashomon` command line: one module per command group, each calling the same core functions as the pages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.cli import (
    attention,
    checks,
    corpus,
    data,
    demos,
    documents,
    edits,
    errors,
    evaluate,
    explain,
    model_compare,
    models,
    notes,
    samples,
    snapshots,
    worker,
)
from core.cli.common import CliError, resolve_model_arguments

__all__ = ["CliError", "build_parser", "main"]


class OneLineParser(argparse.ArgumentParser):
    """A refused argument is one line (`rashomon compare: argument --k: ...`), exit status 2, no usage dump;
    `--help` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rashomon", description="Compare explanations of a text classifier.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (models, model_compare, explain, attention, documents, edits, evaluate, errors, data, snapshots, corpus, checks, demos, samples,
                  notes, worker):
        group.add_commands(sub)
    _add_user_option(parser, set())
    return parser


def _user_argument(raw: str) -> str:
    from core.storage.people import clean_name

    try:
        return clean_name(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_user_option(parser: argparse.ArgumentParser, seen: set[int]) -> None:
    """`--user NAME` after every command (`rashomon notes add --user ana ...`): who asks, stored with what it
    makes (default RASHOMON_USER, else "local")."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and id(parser) not in seen:
        seen.add(id(parser))
        parser.add_argument("--user", type=_user_argument, default=None,
                            help="who is asking, recorded with what this command stores (default: RASHOMON_USER, "
                                 "else local)")
    for group in groups:
        for child in group.choices.values():
            _add_user_option(child, seen)


def _person(args: argparse.Namespace) -> str:
    import os

    from core.storage.people import LOCAL, clean_name

    if getattr(args, "user", None):
        return args.user
    try:
        return clean_name(os.environ["RASHOMON_USER"]) if os.environ.get("RASHOMON_USER", "").strip() else LOCAL
    except ValueError as exc:
        raise CliError(f"RASHOMON_USER: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.storage.db import DatabaseUnavailable
    from core.storage.people import acting_as
    from core.storage.provenance import watching

    try:
        with acting_as(_person(args)), watching():
            resolve_model_arguments(args)
            args.func(args)
    except (CliError, DatabaseUnavailable) as exc:
        print(f"rashomon: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`rashomon methods | head`): nothing left to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("rashomon: interrupted", file=sys.stderr)
        return 130
    return 0
