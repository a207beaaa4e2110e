"""`rashomon` command line: the same core functions the dashboard pages call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def progress_bar(label: str) -> Callable[[float, str], None]:
    """A one-line progress bar on stderr (quiet when stderr is not a terminal and CI is set)."""
    def report(fraction: float, message: str) -> None:
        filled = int(30 * max(0.0, min(1.0, fraction)))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# -- model --------------------------------------------------------------------------------------
def cmd_model_build_default(args: argparse.Namespace) -> None:
    from core.default_model import BuildConfig, build_default_model
    from core.settings import load_settings

    output = Path(args.output) if args.output else load_settings().default_model_dir
    if args.if_missing and (output / "config.json").exists():
        print(f"Default model already built in {output}")
        return
    config = BuildConfig(train_rows=args.train_rows, heldout_rows=args.heldout_rows, seed=args.seed)
    report = build_default_model(output, config, progress=progress_bar("build"))
    if args.json:
        _print_json({"output_dir": report.output_dir, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                     "train_seconds": report.train_seconds, "total_seconds": report.total_seconds})
    else:
        print(f"Saved to {report.output_dir}")
        print(f"Held-out accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f} "
              f"({report.config.heldout_rows} rows); build took {report.total_seconds:.0f} s")


def cmd_model_info(args: argparse.Namespace) -> None:
    model = _load(args.model)
    from core.first_token import first_token_model

    info = {**model.describe(), "fingerprint": model.fingerprint, "max_length": model.max_length,
            "device": str(model.device), "first_token_shortcut": first_token_model(model.model) is not None}
    if args.json:
        _print_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def _load(spec: str | None):
    from core.modelling import ModelLoadError, load_model

    try:
        return load_model(spec)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from exc


# -- explanations ---------------------------------------------------------------------------
def cmd_methods(args: argparse.Namespace) -> None:
    from core.explainers import METHODS

    if args.json:
        _print_json([m.to_dict() for m in METHODS.values()])
        return
    for method in METHODS.values():
        print(f"{method.name:22} {method.title} ({'signed' if method.signed else 'unsigned'}, {method.family})")
        for option in method.options:
            extra = f" one of {', '.join(map(str, option.choices))}" if option.choices else ""
            print(f"    --{option.name} {option.type} = {option.default!r}: {option.help}{extra}")


def _read_input_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.file is not None:
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"Cannot read {args.file}: {exc.strerror}.") from exc
    from core.snapshots import get_snapshot

    snapshot = get_snapshot(args.snapshot)
    if snapshot is None:
        raise CliError(f"No snapshot with id {args.snapshot}.")
    if snapshot.error:
        raise CliError(f"Snapshot {args.snapshot} is a failed fetch ({snapshot.error}); it has no text.")
    return snapshot.text


def cmd_explain(args: argparse.Namespace) -> None:
    from core.db import get_engine
    from core.explainers import METHODS, ExplainError, get_method
    from core.runner import ModelRunner
    from core.store import explain_stored

    text = _read_input_text(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(METHODS)
    try:
        for name in methods:
            get_method(name)
        if not text.strip():
            raise ExplainError("The text is empty: give some words to explain.")
    except ExplainError as exc:
        raise CliError(str(exc)) from exc
    model = _load(args.model)
    runner = ModelRunner(model)
    engine = get_engine()
    results = []
    for name in methods:
        params = {"seed": args.seed} if any(o.name == "seed" for o in get_method(name).options) else {}
        try:
            stored = explain_stored(engine, runner, text, name, args.target, params, fresh=args.fresh,
                                    progress=None if args.json else progress_bar(name))
        except ExplainError as exc:
            raise CliError(str(exc)) from exc
        results.append(stored)
    first = results[0].explanation
    if args.json:
        _print_json({
            "model": model.describe(),
            "text": first.text,
            "prediction": {"label": first.predicted_label, "probabilities": first.probabilities},
            "truncated": first.truncated_words,
            "explanations": [{**r.explanation.to_dict(), "cached": r.cached} for r in results],
        })
        return
    print(f"Prediction: {first.predicted_label} " + ", ".join(f"{k} {v:.3f}" for k, v in first.probabilities.items()))
    if first.truncated_words:
        print(f"Note: the input was truncated to fit the model; {first.truncated_words} words were dropped.")
    for r in results:
        e = r.explanation
        top = sorted(zip(e.words, e.scores, strict=True), key=lambda ws: -abs(ws[1]))[:5]
        print(f"{e.method:22} target={e.target} {e.seconds:7.3f}s {e.forward_passes:5d} passes"
              f"{' (stored)' if r.cached else ''}  top: " + ", ".join(f"{w} {s:+.3f}" for w, s in top))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rashomon", description="Compare explanations of a text classifier.")
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="build or inspect models").add_subparsers(dest="model_command", required=True)
    build = model.add_parser("build-default", help="fine-tune the offline default model")
    build.add_argument("--output", help="directory (default: RASHOMON_HOME/models/default-sentiment)")
    build.add_argument("--train-rows", type=int, default=8000)
    build.add_argument("--heldout-rows", type=int, default=2000)
    build.add_argument("--seed", type=int, default=13)
    build.add_argument("--if-missing", action="store_true", help="do nothing when the model already exists")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_model_build_default)
    info = model.add_parser("info", help="load a model and describe it")
    info.add_argument("--model")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_model_info)

    methods = sub.add_parser("methods", help="list explanation methods and their options")
    methods.add_argument("--json", action="store_true")
    methods.set_defaults(func=cmd_methods)

    explain = sub.add_parser("explain", help="explain a prediction with several methods")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--snapshot", type=int)
    source.add_argument("--file")
    explain.add_argument("--model")
    explain.add_argument("--methods", help="comma-separated (default: all)")
    explain.add_argument("--target", help="label to explain (default: the predicted one)")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--fresh", action="store_true", help="recompute even if a stored result exists")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_explain)

    from core import cli_snapshots

    cli_snapshots.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        print(f"rashomon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rashomon: interrupted", file=sys.stderr)
        return 130
    return 0
