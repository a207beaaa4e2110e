"""`rashomon check stability|randomisation|known-answer`: the Checks page from the command line."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from core.cli.common import (
    CliError,
    add_input_arguments,
    add_model_arguments,
    engine,
    input_text,
    method_list,
    one_line_errors,
    print_json,
    progress_bar,
    quiet,
    require_text,
    runner_for,
)
from core.params import float_argument, int_argument


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


def cmd_known_answer(args: argparse.Namespace) -> None:
    from core.analyses.known_answer import known_answer
    from core.analyses.training_data.training_sets import TrainingDataError
    from core.methods.base import ExplainError

    methods = method_list(args.methods)
    runner = runner_for(args.model)
    bars: dict = {}

    def report(part: str, fraction: float, message: str) -> None:
        if not args.json:
            bars.setdefault(part, progress_bar(part))(fraction, message)

    with one_line_errors(ExplainError, TrainingDataError):
        result = known_answer(engine(), runner, args.token, args.label, rate=args.rate, methods=methods,
                              inputs=args.inputs, k=args.k, probe=args.probe, fresh=args.fresh, progress=report)
    if args.json:
        print_json(result.to_dict())
        return
    print(result.note)
    print(f"held-out accuracy without the token: planted {result.accuracy:.3f}, original {result.accuracy_original:.3f}")
    if result.learned:
        print(f"{'method':22} {'recall@1':>9} {f'recall@{args.k}':>9} {'mean rank':>10}   control recall@1")
        control = {s.method: s for s in result.control}
        for s in sorted(result.methods, key=lambda s: (-s.recall_at_1, s.mean_rank)) + [result.random]:
            extra = f"{control[s.method].recall_at_1:9.2f}" if s.method in control else ""
            print(f"{s.method:22} {s.recall_at_1:9.2f} {s.recall_at_k:9.2f} {s.mean_rank:10.2f}   {extra}")


def _fail_if(failed: bool, strict: bool, name: str) -> None:
    if failed and strict:
        raise CliError(f"At least one method failed the {name} check (--strict).")


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("check", help="trust checks").add_subparsers(dest="check_command", required=True)
    stability = group.add_parser("stability", help="does each method agree with itself?")
    add_input_arguments(stability)
    add_model_arguments(stability)
    stability.add_argument("--methods", help="comma-separated (default: all)")
    stability.add_argument("--k", type=int_argument("k", 1, 1_000), default=5)
    stability.add_argument("--quick", action="store_true", help="the smaller sample counts of the page's Quick mode")
    stability.add_argument("--strict", action="store_true", help="exit 1 when a method is unstable")
    stability.add_argument("--json", action="store_true")
    stability.set_defaults(func=cmd_stability)
    randomisation = group.add_parser("randomisation", help="model randomisation (Adebayo et al. 2018)")
    add_input_arguments(randomisation)
    add_model_arguments(randomisation)
    randomisation.add_argument("--methods", help="comma-separated (default: all)")
    randomisation.add_argument("--max-layers", type=int_argument("max-layers", 1, 1_000), help="randomise at most this many encoder layers")
    randomisation.add_argument("--strict", action="store_true", help="exit 1 when a method fails")
    randomisation.add_argument("--json", action="store_true")
    randomisation.set_defaults(func=cmd_randomisation)
    known = group.add_parser("known-answer", help="plant a shortcut, retrain a copy of the model, score which "
                                                  "methods find it")
    known.add_argument("--token", default="zorblat", help="the planted word (default: a made-up one)")
    known.add_argument("--label", required=True, help="the label the planted word decides")
    known.add_argument("--rate", type=float_argument("rate", 0.001, 0.999), default=0.1,
                       help="share of training texts planted (default 0.1)")
    known.add_argument("--inputs", type=int_argument("inputs", 1, 10_000), default=100,
                       help="flipped held-out inputs the methods explain (default 100)")
    known.add_argument("--k", type=int_argument("k", 1, 100), default=3)
    known.add_argument("--probe", type=int_argument("probe", 10, 2000), default=300,
                       help="held-out texts the shortcut rate is measured on (default 300)")
    add_model_arguments(known)
    known.add_argument("--methods", help="comma-separated (default: all)")
    known.add_argument("--fresh", action="store_true", help="recompute instead of reading the stored result")
    known.add_argument("--json", action="store_true")
    known.set_defaults(func=cmd_known_answer)
