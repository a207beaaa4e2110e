"""`rashomon document`: a text longer than the model's window, explained window by window and stitched."""

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


def cmd_document(args: argparse.Namespace) -> None:
    from core.analyses.documents import explain_document, paragraph_text
    from core.methods.registry import fast_methods

    text = require_text(input_text(args))
    methods = method_list(args.methods) if args.methods else fast_methods()
    runner = runner_for(args.model)
    bars: dict = {}

    def progress(window: int, windows: int, method: str, fraction: float, message: str) -> None:
        bars.setdefault((window, method), progress_bar(f"window {window + 1}/{windows} {method}"))(fraction, message)

    with one_line_errors(ExplainError):
        doc = explain_document(engine(), runner, text, methods, args.target, parse_options(args.option),
                               overlap=args.overlap, window_tokens=args.window, k=args.k, fresh=args.fresh,
                               progress=None if args.json else progress)
    if args.json:
        print_json({"model": runner.loaded.describe(), **doc.to_dict()})
        return
    print(f"Explaining {doc.target} over {len(doc.windows)} windows of up to {args.window or runner.loaded.max_length} "
          f"tokens; {doc.forward_passes} model passes, {doc.seconds:.1f} s.")
    print(doc.stitching)
    for paragraph in sorted(doc.paragraphs, key=lambda p: -(p.disagreement or 0)):
        figure = "n/a" if paragraph.disagreement is None else f"{paragraph.disagreement:.2f}"
        print(f"¶{paragraph.index + 1:<3} disagreement {figure}  {paragraph_text(doc, paragraph)[:70]!r}")
        for method, words in paragraph.top_words.items():
            print(f"     {method:22} {', '.join(words)}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    document = sub.add_parser("document", help="explain a long text window by window, scores stitched, "
                                               "paragraphs ranked by disagreement")
    add_input_arguments(document)
    add_model_arguments(document)
    document.add_argument("--methods", help="comma-separated (default: the fast methods)")
    document.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, repeatable")
    document.add_argument("--target", help="label to explain (default: the highest mean probability over windows)")
    document.add_argument("--window", type=int_argument("window", 8, 8_192), help="tokens per window (default: what the model reads)")
    document.add_argument("--overlap", type=float_argument("overlap", 0, 0.9), default=0.25, help="share of a window's words the next one repeats")
    document.add_argument("--k", type=int_argument("k", 1, 1_000), default=5, help="top words per paragraph (default 5)")
    document.add_argument("--fresh", action="store_true", help="recompute even if stored results exist")
    document.add_argument("--json", action="store_true")
    document.set_defaults(func=cmd_document)
