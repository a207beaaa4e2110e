"""`rashomon check stability|randomisation`: the Checks page from the command line."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from core.cli.common import (
    CliError,
    add_input_arguments,
    input_text,
    method_list,
    print_json,
    progress_bar,
    quiet,
    require_text,
    runner_for,
)
from core.params import int_argument


def cmd_stability(args: argparse.Namespace) -> None:
    from core.analyses import checks

    text = require_text(input_text(args))
    methods = method_list(args.methods)
    runner = runner_for(args.model)
    results = checks.stability(runner, text, checks.stability_variants(methods, quick=args.quick), args.k,
                               progress=quiet if args.json else progress_bar("stability"))
    if args.json:
        print_json([asdict(r) for r in results])
        return
    for r in results:
        print(r.verdict.sentence)
    _fail_if(not all(r.verdict.passed for r in results), args.strict, "stability")


def cmd_randomisation(args: argparse.Namespace) -> None:
    from core.analyses import checks

    text = require_text(input_text(args))
    methods = method_list(args.methods)
    runner = runner_for(args.model)
    result = checks.randomisation(runner, text, methods, max_layers=args.max_layers,
                                  progress=quiet if args.json else progress_bar("randomisation"))
    if args.json:
        print_json(asdict(result))
        return
    for stage in result.stages:
        print(f"{stage.name:18} " + ", ".join(f"{m} {v:+.2f}" for m, v in stage.similarity.items()))
    for verdict in result.verdicts.values():
        print(verdict.sentence)
    _fail_if(not all(v.passed for v in result.verdicts.values()), args.strict, "randomisation")


def _fail_if(failed: bool, strict: bool, name: str) -> None:
    if failed and strict:
        raise CliError(f"At least one method failed the {name} check (--strict).")


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("check", help="trust checks").add_subparsers(dest="check_command", required=True)
    stability = group.add_parser("stability", help="does each method agree with itself?")
    add_input_arguments(stability)
    stability.add_argument("--model")
    stability.add_argument("--methods", help="comma-separated (default: all)")
    stability.add_argument("--k", type=int_argument("k", 1, 1_000), default=5)
    stability.add_argument("--quick", action="store_true", help="the smaller sample counts of the page's Quick mode")
    stability.add_argument("--strict", action="store_true", help="exit 1 when a method is unstable")
    stability.add_argument("--json", action="store_true")
    stability.set_defaults(func=cmd_stability)
    randomisation = group.add_parser("randomisation", help="model randomisation (Adebayo et al. 2018)")
    add_input_arguments(randomisation)
    randomisation.add_argument("--model")
    randomisation.add_argument("--methods", help="comma-separated (default: all)")
    randomisation.add_argument("--max-layers", type=int_argument("max-layers", 1, 1_000), help="randomise at most this many encoder layers")
    randomisation.add_argument("--strict", action="store_true", help="exit 1 when a method fails")
    randomisation.add_argument("--json", action="store_true")
    randomisation.set_defaults(func=cmd_randomisation)
