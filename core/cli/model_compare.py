"""`rashomon compare-models`: did the fix work? Two models on the same labelled set, and on one input."""

from __future__ import annotations

import argparse

from core.cli.common import (
    CliError,
    method_list,
    one_line_errors,
    print_json,
    progress_bar,
    quiet,
    read_text_file,
    runner_for,
)
from core.params import int_argument


def cmd_compare_models(args: argparse.Namespace) -> None:
    from core.analyses.evaluation import EvaluationError, heldout_inputs, inputs_from_file
    from core.analyses.model_compare import compare_models, explain_both
    from core.methods.base import ExplainError

    if not (args.heldout or args.file or args.text):
        raise CliError("Give a labelled set (--heldout or --file) and/or one input (--text).")
    methods = method_list(args.methods) if args.text else []
    a, b = runner_for(args.a), runner_for(args.b)
    output: dict = {"model_a": a.loaded.describe(), "model_b": b.loaded.describe()}
    with one_line_errors(EvaluationError, ExplainError):
        if args.heldout or args.file:
            inputs = heldout_inputs(args.limit, a.loaded.language) if args.heldout else inputs_from_file(
                read_text_file(args.file), args.file, args.text_column, args.label_column)
            diff = compare_models(a, b, inputs, progress=quiet if args.json else progress_bar("models"))
            output["evaluation"] = diff.to_dict()
        if args.text:
            pairs = explain_both(a, b, args.text, methods, target=args.target, k=args.k)
            output["input"] = [{"method": p.method, "spearman": p.spearman, "top_k_overlap": p.top_k_overlap,
                                "a": p.a.to_dict(), "b": p.b.to_dict()} for p in pairs]
    if args.json:
        print_json(output)
        return
    if "evaluation" in output:
        skipped = f" ({diff.left_out} left out: a model trained on them)" if diff.left_out else ""
        print(f"{diff.inputs} labelled inputs{skipped}; A = {diff.model_a}, B = {diff.model_b} (95% paired bootstrap intervals):")
        for d in diff.deltas:
            print(f"  {d.name:14} A {d.a:.3f}  B {d.b:.3f}  change {d.delta:+.3f} ({d.low:+.3f} .. {d.high:+.3f})")
        print(f"fixed (A wrong, B right): {len(diff.fixed)}; broken (A right, B wrong): {len(diff.broken)}; "
              f"errors that changed label: {len(diff.changed_errors)}")
        for title, rows in (("fixed", diff.fixed), ("broken", diff.broken)):
            for row in rows[:5]:
                print(f"  {title}: gold {row.gold}, A {row.a}, B {row.b}: {row.text[:80]}")
    if "input" in output:
        print(f"One input, label {pairs[0].a.target}: agreement between the two models' word scores per method")
        for p in pairs:
            top_a = ", ".join(p.a.words[i] for i in sorted(range(len(p.a.scores)), key=lambda i: -abs(p.a.scores[i]))[:args.k])
            top_b = ", ".join(p.b.words[i] for i in sorted(range(len(p.b.scores)), key=lambda i: -abs(p.b.scores[i]))[:args.k])
            print(f"  {p.method:22} Spearman {p.spearman:+.2f}, top-{args.k} overlap {p.top_k_overlap:.2f}; "
                  f"A: {top_a} | B: {top_b}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("model-compare", aliases=["compare-models"],
                             help="model vs model on a labelled set and on one input")
    command.add_argument("--a", required=True, help="model A (hub id or path), e.g. before the fix")
    command.add_argument("--b", required=True, help="model B, e.g. after the fix")
    command.add_argument("--heldout", action="store_true",
                         help="model A's held-out split (the Chinese model's reviews for a Chinese model A)")
    command.add_argument("--limit", type=int_argument("limit", 1, 10_000_000), help="with --heldout: the first N rows")
    command.add_argument("--file", help="a labelled CSV or JSONL file")
    command.add_argument("--text-column", default="text")
    command.add_argument("--label-column", default="label")
    command.add_argument("--text", help="one input: both models' explanations side by side")
    command.add_argument("--methods", default="saliency,input_x_gradient,occlusion", help="for --text")
    command.add_argument("--target", help="for --text: the label explained (default: model A's prediction)")
    command.add_argument("--k", type=int_argument("k", 1, 1_000), default=5)
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=cmd_compare_models)
