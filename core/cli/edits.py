"""`rashomon counterfactual`: the smallest word edits that flip the prediction, and what they say about the methods."""

from __future__ import annotations

import argparse

from core.cli.common import (
    add_input_arguments,
    add_model_arguments,
    engine,
    input_text,
    method_list,
    one_line_errors,
    print_json,
    progress_bar,
    require_text,
    runner_for,
)
from core.cli.explain import parse_options
from core.methods.base import ExplainError
from core.params import float_argument, int_argument


def cmd_counterfactual(args: argparse.Namespace) -> None:
    from core.analyses.edit_checks import edit_report
    from core.analyses.edits import ANY_OTHER, SEARCH, resolve_options
    from core.methods.registry import fast_methods

    text = require_text(input_text(args))
    params = {name: value for name, value in (("max_edits", args.max_edits), ("similarity", args.similarity),
                                              ("count", args.count), ("budget", args.budget)) if value is not None}
    with one_line_errors(ExplainError):
        resolve_options(params)  # refuse bad options before a model is loaded
    methods = [] if args.methods == "" else (method_list(args.methods) if args.methods else fast_methods())
    order = args.order or SEARCH
    if order != SEARCH:
        method_list(order)
    runner = runner_for(args.model)
    if not args.methods:  # the default list leaves out what cannot explain this model
        from core.methods.registry import split_compatible

        methods = split_compatible(methods, runner.loaded)[0]
    target = ANY_OTHER if args.attack else args.target
    with one_line_errors(ExplainError):
        report = edit_report(engine(), runner, text, methods, target=target, order=order, params=params, k=args.k,
                             options=parse_options(args.option), fresh=args.fresh,
                             progress=None if args.json else progress_bar("search"))
    if args.json:
        print_json({"model": runner.loaded.describe(), "sample": report.search.sample, **report.to_dict()})
        return
    result = report.search
    goal = "any other label" if result.goal == ANY_OTHER else result.goal
    print(f"Prediction {result.predicted} ({result.probabilities[result.predicted]:.2f}); goal: {goal}. "
          f"{len(result.counterfactuals)} counterfactual(s); {result.forward_passes} model passes, {result.queries} "
          f"queries, {result.seconds:.1f} s" + (" (stored)" if report.from_store else "") + f"; {result.stopped}.")
    if result.first_seconds is not None:
        print(f"First found after {result.first_seconds:.1f} s and {result.first_passes} passes.")
    for counterfactual in result.counterfactuals:
        edits = ", ".join(f"{e.original!r} -> {e.replacement!r}" if e.replacement else f"{e.original!r} deleted"
                          for e in counterfactual.edits)
        print(f"- {counterfactual.label} ({counterfactual.probabilities[counterfactual.label]:.2f}), "
              f"similarity {counterfactual.similarity:.2f}: {edits}")
        print(f"    {counterfactual.text}")
    if report.agreement:
        print(f"Counterfactual agreement (share of the edits touching a method's top {report.k}; "
              f"random ranking {report.agreement[0].random_share:.2f}):")
        for row in sorted(report.agreement, key=lambda r: -r.share):
            print(f"  {row.method:22} {row.share:.2f}")
    if report.fragility:
        print(f"Fragility over {report.fragility[0].variants} meaning-preserving swap(s) that keep the prediction "
              f"(top-{report.k} kept, Spearman):")
        for row in sorted(report.fragility, key=lambda r: r.top_k_intersection):
            print(f"  {row.method:22} {row.top_k_intersection:.2f}  {row.spearman:.2f}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("edits", aliases=["counterfactual"], help="smallest word edits that flip the prediction; counterfactual "
                                                    "agreement and fragility of the methods")
    add_input_arguments(command)
    add_model_arguments(command)
    goal = command.add_mutually_exclusive_group()
    goal.add_argument("--target", help="label to reach (default: the most probable other label)")
    goal.add_argument("--attack", action="store_true", help="any label but the predicted one")
    command.add_argument("--max-edits", type=int_argument("max-edits", 1, 10), help="most words changed (default 3)")
    command.add_argument("--similarity", type=float_argument("similarity", 0, 1), help="least sentence-embedding cosine to the original (default 0.8)")
    command.add_argument("--count", type=int_argument("count", 1, 100), help="most counterfactuals returned (default 5)")
    command.add_argument("--budget", type=int_argument("budget", 1, 10_000_000), help="most model queries (default 6000)")
    command.add_argument("--order", help="'search' (default) or a method whose top words are edited first")
    command.add_argument("--methods", help="methods to check against the edits, comma-separated "
                                           "(default: the fast methods; '' for none)")
    command.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, repeatable")
    command.add_argument("--k", type=int_argument("k", 1, 1_000), default=5, help="top-k words per method")
    command.add_argument("--fresh", action="store_true", help="search again even if a stored result exists")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=cmd_counterfactual)
