"""`rashomon data attach|list|show|prepare|suspicious` and `rashomon influence`: training-data attribution."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from core.cli.common import (
    CliError,
    add_input_arguments,
    add_model_arguments,
    engine,
    input_text,
    load,
    one_line_errors,
    print_json,
    progress_bar,
    quiet,
    require_text,
)
from core.cli.explain import parse_options
from core.methods.base import ExplainError
from core.params import int_argument


def _errors():
    from core.analyses.training_data.training_sets import TrainingDataError

    return one_line_errors(TrainingDataError, ExplainError)


def data_method_list(value: str | None) -> list[str]:
    from core.analyses.training_data.attribute import DEFAULT_METHODS
    from core.analyses.training_data.registry import data_method

    names = [m.strip() for m in value.split(",") if m.strip()] if value else list(DEFAULT_METHODS)
    with one_line_errors(ExplainError):
        for name in names:
            data_method(name)
    return names


def _training(args: argparse.Namespace):
    from core.analyses.training_data.training_sets import training_set_for

    loaded = load(args.model)
    with _errors():
        return loaded, training_set_for(engine(), loaded)


def cmd_attach(args: argparse.Namespace) -> None:
    from core.analyses.training_data.training_sets import attach, read_examples
    from core.cli.common import read_text_file

    content = read_text_file(args.file)
    loaded = load(args.model)
    with _errors():
        examples = read_examples(content, Path(args.file).name, loaded.labels, args.text_column, args.label_column)
        set_id = attach(engine(), loaded, examples, args.name or Path(args.file).name)
    if args.json:
        print_json({"id": set_id, "model": loaded.path, "rows": len(examples)})
    else:
        print(f"Attached {len(examples)} training rows to {loaded.name} as set {set_id}.")


def cmd_list(args: argparse.Namespace) -> None:
    from core.analyses.training_data.training_sets import attached_sets

    sets = attached_sets(engine())
    if args.json:
        print_json([asdict(s) for s in sets])
        return
    if not sets:
        print("No attached training sets (models built by Rashomon carry their own rows: `rashomon data show`).")
    for s in sets:
        print(f"{s.id:4}  {s.rows:6} rows  {s.name}  ->  {s.model_name} ({s.model_path}), {s.created_at[:16]}")


def cmd_show(args: argparse.Namespace) -> None:
    from core.analyses.training_data.features import preparation_dir

    loaded, training = _training(args)
    counts = Counter(training.labels)
    info = {"model": loaded.name, "training_set": training.name, "source": training.source,
            "rows": len(training.examples), "labels": dict(counts), "flipped": len(training.flipped),
            "checkpoints": [asdict(c) for c in training.checkpoints], "note": training.checkpoint_note,
            "prepared": (preparation_dir(loaded, training) / "states.npz").is_file(),
            "examples": [asdict(e) for e in training.examples[: args.limit]]}
    if args.json:
        print_json(info)
        return
    print(f"{training.name} ({training.source}): {len(training.examples)} rows; "
          + ", ".join(f"{label} {n}" for label, n in counts.items()))
    print(f"{len(training.checkpoints)} checkpoint(s): "
          + ", ".join(f"step {c.step} (lr {c.learning_rate:.2e})" if c.step else f"final (lr {c.learning_rate:g})"
                      for c in training.checkpoints))
    if training.checkpoint_note:
        print(f"Note: {training.checkpoint_note}.")
    print("Prepared: " + ("yes" if info["prepared"] else "not yet (`rashomon data prepare`)"))
    for e in training.examples[: args.limit]:
        print(f"  {e.id:14} {e.label:10} {e.text[:90]}")


def cmd_prepare(args: argparse.Namespace) -> None:
    """Everything a query needs, once per model: representations, index, gradients, Hessian approximation."""
    import time

    from core.analyses.training_data.attribute import attribute

    loaded, training = _training(args)
    methods = data_method_list(args.methods)
    started = time.perf_counter()
    with _errors():
        # One throw-away query builds every method's stored preparation.
        attribute(loaded, training, training.examples[0].text, methods, k=1,
                  progress=quiet if args.json else progress_bar("prepare"))
    seconds = time.perf_counter() - started
    if args.json:
        print_json({"model": loaded.name, "rows": len(training.examples), "methods": methods, "seconds": seconds})
    else:
        print(f"Prepared {', '.join(methods)} over {len(training.examples)} training rows in {seconds:.1f} s.")


def cmd_suspicious(args: argparse.Namespace) -> None:
    from core.analyses.training_data.attribute import suspicious

    loaded, training = _training(args)
    with _errors():
        result = suspicious(loaded, training, args.method, args.k, progress=quiet if args.json else progress_bar("prepare"))
    if args.json:
        print_json({"model": loaded.name, **asdict(result)})
        return
    print(f"Training examples ranked by {args.method} self-influence (highest first; review these for wrong labels):")
    for e in result.examples:
        flag = "  [flipped]" if e.id in training.flipped else ""
        print(f"  {e.score:10.4g}  {e.id:14} gold {e.gold:9} model {e.predicted:9} {e.text[:70]}{flag}")
    if result.flipped_known:
        print("Precision at k of finding the deliberately flipped rows: "
              + ", ".join(f"@{k} {v:.2f}" for k, v in result.precision.items())
              + f" (random ranking {result.random_precision:.2f})")


def cmd_influence(args: argparse.Namespace) -> None:
    from core.analyses.training_data.attribute import agreement
    from core.analyses.training_data.store import stored_attributions

    text = require_text(input_text(args))
    methods = data_method_list(args.methods)
    options = parse_options(args.option)
    if args.k < 1:
        raise CliError("--k must be at least 1.")
    loaded, training = _training(args)
    with _errors():
        results, from_store = stored_attributions(engine(), loaded, training, text, methods, target=args.target, k=args.k,
                                                  params=options, fresh=args.fresh,
                                                  progress=None if args.json else progress_bar("influence"))
    matrix = agreement(results, args.k)
    if args.json:
        print_json({"model": loaded.describe(), "training_set": training.name, "from_store": from_store,
                    "sample": all(r.sample for r in results),
                    "results": [{**r.to_dict(), "scores": None} | {"scores_count": len(r.scores)} for r in results],
                    "agreement": asdict(matrix)})
        return
    first = results[0]
    print(f"Prediction {first.predicted_label} ({first.probabilities[first.predicted_label]:.2f}); target {first.target}; "
          f"{training.name}, {len(training.examples)} rows" + (" (stored)" if from_store else ""))
    for result in results:
        print(f"\n{result.method}: {result.seconds:.2f} s, {result.forward_passes} passes"
              + (f"; {result.diagnostics['note']}" if "note" in result.diagnostics else ""))
        for title, listed in (("proponents", result.proponents), ("opponents", result.opponents)):
            print(f"  {title}:")
            for e in listed:
                shared = f" [shares: {', '.join(e.shared_words)}]" if e.shared_words else ""
                print(f"    {e.score:+10.4g}  {e.gold:9} {e.text[:80]}{shared}")
    print(f"\nTop-{matrix.k} proponent overlap:")
    for name, row in zip(matrix.methods, matrix.overlap, strict=True):
        print(f"  {name:12} " + " ".join(f"{v:5.2f}" for v in row))


def _check_texts(args: argparse.Namespace, loaded) -> list[str]:
    if args.texts_file:
        from core.cli.common import read_text_file

        texts = [line.strip() for line in read_text_file(args.texts_file).split("\n") if line.strip()]
        if not texts:
            raise CliError(f"{args.texts_file} has no texts (one per line).")
        return texts
    if loaded.directory.resolve() in _default_model_dirs():
        from core.analyses.evaluation import heldout_inputs

        return [i.text for i in heldout_inputs(args.inputs, loaded.language)]
    raise CliError("Give the test inputs with --texts-file (one per line); only the default models (English and "
                   "Chinese) have a held-out split.")


def _default_model_dirs() -> set[Path]:
    from core.storage.settings import load_settings

    settings = load_settings()
    return {settings.default_model_dir.resolve(), settings.chinese_model_dir.resolve()}


def cmd_check(args: argparse.Namespace) -> None:
    from core.analyses.training_data.retraining import linear_datamodeling, removal_check
    from core.analyses.training_data.store import save_retraining

    methods = data_method_list(args.methods)
    loaded, training = _training(args)
    progress = quiet if args.json else progress_bar(args.kind)
    with _errors():
        if args.kind == "datamodeling":
            texts = [require_text(args.text)] if args.text else _check_texts(args, loaded)
            result = linear_datamodeling(loaded, training, texts, methods, target=args.target, subsets=args.subsets,
                                         seed=args.seed, progress=progress)
        else:
            if not args.text:
                raise CliError("The removal check retrains the whole model per method: give one input with --text.")
            fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
            if not fractions or not all(0 < f < 1 for f in fractions):
                raise CliError("--fractions are shares of the training set between 0 and 1, e.g. 0.01,0.05.")
            result = removal_check(loaded, training, require_text(args.text), methods, target=args.target,
                                   fractions=fractions, random_repeats=args.random_repeats, seed=args.seed,
                                   progress=progress)
    check_id = save_retraining(engine(), loaded, training, result)
    if args.json:
        print_json({"id": check_id, "kind": args.kind, **result.to_dict()})
        return
    if args.kind == "datamodeling":
        print(f"Linear datamodeling score over {result.subsets} retrained surrogates ({result.retrained}), "
              f"{len(result.inputs)} input(s); {result.seconds:.0f} s:")
        for row in sorted(result.methods, key=lambda r: -r.lds if r.lds == r.lds else 1):
            print(f"  {row.method:12} {row.lds:+.3f}  (95% interval {row.low:+.3f} .. {row.high:+.3f})")
    else:
        print(f"Target {result.target}: probability {result.probability:.3f}; retrained on every row "
              f"{result.full_retrain_probability:.3f}; {result.seconds:.0f} s:")
        for row in result.summary():
            extra = f" (range {row['low']:+.3f} .. {row['high']:+.3f}, {row['retrainings']} retrainings)" \
                if row["retrainings"] > 1 else ""
            print(f"  {row['fraction']:.0%} removed ({row['removed']} rows) {row['method']:12} "
                  f"change {row['change']:+.3f}{extra}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("training-data", aliases=["data"], help="training-data attribution: training sets, "
                          "the examples behind a prediction, checks").add_subparsers(
        dest="data_command", required=True)
    attach = data.add_parser("attach", help="attach a labelled training set (CSV or JSONL) to a model")
    attach.add_argument("file")
    add_model_arguments(attach)
    attach.add_argument("--name")
    attach.add_argument("--text-column", default="text")
    attach.add_argument("--label-column", default="label")
    attach.add_argument("--json", action="store_true")
    attach.set_defaults(func=cmd_attach)
    listing = data.add_parser("list", help="attached training sets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    show = data.add_parser("show", help="the model's training set: rows, labels, checkpoints")
    add_model_arguments(show)
    show.add_argument("--limit", type=int_argument("limit", 1, 10_000_000), default=10)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    prepare = data.add_parser("prepare", help="prepare representations, index, gradients and Hessian once")
    add_model_arguments(prepare)
    prepare.add_argument("--methods", help="comma-separated (default: all)")
    prepare.add_argument("--json", action="store_true")
    prepare.set_defaults(func=cmd_prepare)
    suspicious = data.add_parser("suspicious", help="training examples ranked by self-influence")
    add_model_arguments(suspicious)
    suspicious.add_argument("--method", default="tracin", help="tracin or influence")
    suspicious.add_argument("--k", type=int_argument("k", 1, 1_000), default=20)
    suspicious.add_argument("--json", action="store_true")
    suspicious.set_defaults(func=cmd_suspicious)

    check = data.add_parser("check", help="which method's account does retraining support?")
    check.add_argument("kind", choices=["datamodeling", "removal"])
    add_model_arguments(check)
    check.add_argument("--methods", help="comma-separated (default: all)")
    check.add_argument("--text", help="one input (removal needs one; datamodeling may use one)")
    check.add_argument("--texts-file", help="datamodeling: test inputs, one per line")
    check.add_argument("--inputs", type=int_argument("inputs", 1, 1_000_000), default=20, help="datamodeling on the default model: held-out inputs")
    check.add_argument("--target", help="label (default: each input's predicted label)")
    check.add_argument("--subsets", type=int_argument("subsets", 2, 100_000), default=50, help="datamodeling: retrained random halves")
    check.add_argument("--fractions", default="0.01,0.05", help="removal: shares of the training set removed")
    check.add_argument("--random-repeats", type=int_argument("random-repeats", 1, 100), default=2, help="removal: random removals per fraction")
    check.add_argument("--seed", type=int_argument("seed", 0, 4_294_967_295), default=0)
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    add_examples_arguments(data.add_parser("examples", help="training examples that pushed the model towards this "
                                                             "prediction (the Training data page)"))
    add_examples_arguments(sub.add_parser("influence", help="the same as `training-data examples` (kept for old "
                                                            "scripts)"))


def add_examples_arguments(influence: argparse.ArgumentParser) -> None:
    add_input_arguments(influence)
    add_model_arguments(influence)
    influence.add_argument("--methods", help="comma-separated: nearest, tracin, representer, influence (default: all)")
    influence.add_argument("--target", help="label (default: the predicted one)")
    influence.add_argument("--k", type=int_argument("k", 1, 1_000), default=10, help="proponents and opponents listed per method")
    influence.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, e.g. tracin.projection=256")
    influence.add_argument("--fresh", action="store_true", help="recompute instead of reading the store")
    influence.add_argument("--json", action="store_true")
    influence.set_defaults(func=cmd_influence)
