"""`rashomon heads`: head importance, every head of every layer silenced in turn."""

from __future__ import annotations

import argparse

from core.cli.common import (
    add_input_arguments,
    add_model_arguments,
    input_text,
    one_line_errors,
    print_json,
    progress_bar,
    require_text,
    runner_for,
)
from core.methods.base import ExplainError


def cmd_heads(args: argparse.Namespace) -> None:
    from core.analyses.attention_checks import head_importance
    from core.methods.explain import label_for

    text = require_text(input_text(args))
    runner = runner_for(args.model)
    with one_line_errors(ExplainError, ValueError):
        target = label_for(runner, args.target) or None
        result = head_importance(runner, text, target, progress=None if args.json else progress_bar("heads"))
    if args.json:
        print_json({"model": runner.loaded.describe(), **result.to_dict()})
        return
    effects = result.array
    print(f"p({result.target}) = {result.probability:.4f}; change when one head is silenced "
          f"({result.forward_passes} model passes, {result.seconds:.2f} s):")
    print("layer " + "".join(f"{'h' + str(h):>9}" for h in range(effects.shape[1])))
    for layer, row in enumerate(effects):
        print(f"{layer:5} " + "".join(f"{v:+9.4f}" for v in row))
    print("Strongest: " + ", ".join(f"layer {la} head {h} ({e:+.4f})" for la, h, e in result.most_important(5)))


def add_commands(sub: argparse._SubParsersAction) -> None:
    heads = sub.add_parser("heads", help="head importance: silence each attention head in turn (Michel et al. 2019)")
    add_input_arguments(heads)
    add_model_arguments(heads)
    heads.add_argument("--target", help="label whose probability is watched (default: the predicted one)")
    heads.add_argument("--json", action="store_true")
    heads.set_defaults(func=cmd_heads)
