"""`rashomon errors groups|slice|export JOB`: where an evaluated model is wrong, and whether the errors share a cause."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from core.cli.common import (
    CliError,
    add_model_arguments,
    engine,
    one_line_errors,
    print_json,
    progress_bar,
    quiet,
    runner_for,
)
from core.params import id_argument, int_argument


def _evaluation_runner(job_id: int, model: str | None):
    from core.analyses.corpus import get_job
    from core.analyses.corpus.inputs import CorpusError

    with one_line_errors(CorpusError):
        job = get_job(engine(), job_id)
    if job is None or not job.is_evaluation:
        raise CliError(f"There is no evaluation job {job_id} (`rashomon evaluate` starts one).")
    return runner_for(model or job.model or None)


def _groups(args: argparse.Namespace):
    from core.analyses.error_groups import DEFAULT_METHODS, stored_groups
    from core.analyses.evaluation import EvaluationError
    from core.methods.base import ExplainError

    runner = _evaluation_runner(args.job, args.model)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(DEFAULT_METHODS)
    with one_line_errors(EvaluationError, ExplainError):
        if args.min_size is not None and args.min_size < 2:
            raise CliError("--min-size must be at least 2.")
        return stored_groups(engine(), runner, args.job, methods=methods, k=args.k, reference=args.reference,
                             min_size=args.min_size, fresh=args.fresh, progress=quiet if args.json else progress_bar("groups"))


def cmd_groups(args: argparse.Namespace) -> None:
    result = _groups(args)
    if args.json:
        print_json(result.to_dict())
        return
    print(f"{result.errors} errors: {len(result.groups)} groups, {len(result.scattered)} scattered; "
          f"{result.clustering}; words from {', '.join(result.methods)} (top {result.k}) against "
          f"{result.reference_inputs} correct inputs; {result.seconds:.0f} s, {result.forward_passes} passes.")
    if result.note:
        print(result.note)
    for group in result.groups:
        print(f"\nGroup {group.id}: {group.size} errors, mostly {group.confusion} ({group.confusion_share:.0%})")
        if group.words:
            print("  words: " + ", ".join(f"{w.word} (x{w.lift:.1f}, {w.members} members)" for w in group.words))
        if group.neighbour_labels:
            print("  training neighbours' labels: " + ", ".join(f"{k} {v:.0%}" for k, v in group.neighbour_labels.items()))
        for n in group.neighbours[:3]:
            print(f"    [{n.gold}] {n.text[:90]}")
        for m in group.members[:3]:
            print(f"  - {m.confidence:.2f} {m.gold} -> {m.predicted}: {m.text[:90]}")


def cmd_slice(args: argparse.Namespace) -> None:
    from core.analyses.error_groups import evaluated_inputs, slice_report
    from core.analyses.evaluation import EvaluationError

    _evaluation_runner(args.job, None)
    with one_line_errors(EvaluationError):
        report = slice_report(evaluated_inputs(engine(), args.job), args.pattern, regex=args.regex)
    if args.json:
        print_json(asdict(report))
        return
    for name, side in (("matching", report.matching), ("rest", report.rest)):
        print(f"{name:9} {side.inputs:6} inputs, {side.errors:5} errors, accuracy {side.accuracy:.3f} "
              f"(95% interval {side.low:.3f}-{side.high:.3f})")
    for error in report.errors[:10]:
        print(f"  {error.confidence:.2f} {error.gold} -> {error.predicted}: {error.text[:90]}")


def cmd_export(args: argparse.Namespace) -> None:
    from core.analyses.error_groups import group_csv
    from core.analyses.evaluation import EvaluationError

    result = _groups(args)
    with one_line_errors(EvaluationError):
        content = group_csv(result, args.group)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        print(f"Wrote group {args.group} ({result.group(args.group).size} rows) to {args.output}")
    else:
        print(content, end="")


def add_commands(sub: argparse._SubParsersAction) -> None:
    errors = sub.add_parser("errors", help="group an evaluation's errors, slice it, export a group").add_subparsers(
        dest="errors_command", required=True)
    for name, func, help_text in (("groups", cmd_groups, "group the errors by shared cause"),
                                  ("export", cmd_export, "one group as CSV (text, gold, predicted, confidence, top words)")):
        command = errors.add_parser(name, help=help_text)
        command.add_argument("job", type=id_argument("job"), help="an evaluation job (rashomon evaluate)")
        if name == "export":
            command.add_argument("--group", type=int_argument("group", 0, 1_000_000), required=True)
            command.add_argument("--output", help="a file (default: standard output)")
        add_model_arguments(command, help="default: the job's model")
        command.add_argument("--methods", help="fast word-level methods for the lifted words")
        command.add_argument("--k", type=int_argument("k", 1, 1_000), default=3)
        command.add_argument("--reference", type=int_argument("reference", 1, 1_000_000), default=300, help="correctly classified inputs compared")
        command.add_argument("--min-size", type=int_argument("min-size", 2, 1_000_000), help="smallest group (HDBSCAN's min_cluster_size; default: "
                             "5 or one in 40 errors, whichever is larger)")
        command.add_argument("--fresh", action="store_true")
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=func)
    slicing = errors.add_parser("slice", help="accuracy on the inputs containing a word or pattern")
    slicing.add_argument("job", type=id_argument("job"))
    slicing.add_argument("pattern")
    slicing.add_argument("--regex", action="store_true", help="the pattern is a regular expression")
    slicing.add_argument("--json", action="store_true")
    slicing.set_defaults(func=cmd_slice)
