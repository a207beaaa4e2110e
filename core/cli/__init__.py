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
    samples,
    snapshots,
    worker,
)
from core.cli.common import CliError

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
                  worker):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.storage.db import DatabaseUnavailable

    try:
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
