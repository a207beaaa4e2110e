"""`rashomon model build-default|info`."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import CliError, load, print_json, progress_bar, quiet


def cmd_build_default(args: argparse.Namespace) -> None:
    from core.default_model import BuildConfig, build_default_model
    from core.settings import load_settings

    output = Path(args.output) if args.output else load_settings().default_model_dir
    if args.if_missing and (output / "config.json").exists():
        if args.json:
            print_json({"output_dir": str(output), "built": False})
        else:
            print(f"Default model already built in {output}")
        return
    if not 0 <= args.flip_fraction < 1:
        raise CliError("--flip-fraction must be at least 0 and below 1.")
    config = BuildConfig(train_rows=args.train_rows, heldout_rows=args.heldout_rows, seed=args.seed,
                         checkpoints=args.checkpoints, flip_fraction=args.flip_fraction)
    report = build_default_model(output, config, progress=quiet if args.json else progress_bar("build"))
    if args.json:
        print_json({"output_dir": report.output_dir, "built": True, "accuracy": report.accuracy,
                    "macro_f1": report.macro_f1, "train_seconds": report.train_seconds,
                    "total_seconds": report.total_seconds})
    else:
        print("Trained a new classification head on the MiniLM encoder (a fresh head is expected when fine-tuning).")
        print(f"Saved to {report.output_dir}")
        print(f"Held-out accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f} "
              f"({report.config.heldout_rows} rows); build took {report.total_seconds:.0f} s")


def cmd_info(args: argparse.Namespace) -> None:
    from core.first_token import first_token_model

    model = load(args.model)
    info = {**model.describe(), "fingerprint": model.fingerprint, "max_length": model.max_length,
            "device": str(model.device), "first_token_shortcut": first_token_model(model.model) is not None}
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="build or inspect models").add_subparsers(dest="model_command", required=True)
    build = model.add_parser("build-default", help="fine-tune the offline default model")
    build.add_argument("--output", help="directory (default: RASHOMON_HOME/models/default-sentiment)")
    build.add_argument("--train-rows", type=int, default=8000)
    build.add_argument("--heldout-rows", type=int, default=2000)
    build.add_argument("--seed", type=int, default=13)
    build.add_argument("--checkpoints", type=int, default=4, help="training checkpoints kept for TracIn (default 4)")
    build.add_argument("--flip-fraction", type=float, default=0.0,
                       help="share of training labels flipped (seeded), to test finding mislabelled rows")
    build.add_argument("--if-missing", action="store_true", help="do nothing when the model already exists")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build_default)
    info = model.add_parser("info", help="load a model and describe it")
    info.add_argument("--model")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
