"""`rashomon corpus run|status|stop|resume|export`: the Corpus page from the command line.

`run` creates a job and works through it in this process (Ctrl-C stops it after the input in
flight; `resume` continues it, here or on the page). `stop` asks a job running elsewhere (a
server's background thread, another terminal) to stop after its current input.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from core.cli.common import (
    CliError,
    add_model_arguments,
    engine,
    method_list,
    one_line_errors,
    print_json,
    read_text_file,
    runner_for,
)
from core.cli.explain import parse_options
from core.params import float_argument, id_argument, int_argument

if TYPE_CHECKING:
    from core.analyses.corpus import Job


def _status(job_id: int) -> dict:
    from core.analyses import corpus

    db = engine()
    job = corpus.require_job(db, job_id)
    return {"job": job.to_dict(), "fraction": job.fraction, "seconds_left": corpus.seconds_left(job),
            "interrupted": corpus.is_stale(job),
            "leaderboard": [asdict(r) for r in corpus.leaderboard(db, job_id)],
            "cost": [asdict(r) for r in corpus.cost_rows(db, job_id)],
            "attack": [asdict(r) for r in corpus.attack_rows(db, job_id)],
            "counterfactual_agreement": [asdict(r) for r in corpus.edit_agreement_rows(db, job_id)],
            "fragility": [asdict(r) for r in corpus.fragility_rows(db, job_id)],
            "failed": [{"origin": i.origin, "error": i.error} for i in corpus.items_of(db, job_id, "failed")]}


def _print_status(data: dict) -> None:
    job = data["job"]
    print(f"job {job['id']} '{job['name']}': {job['shown_status']}, {job['done'] + job['failed']} of {job['total']} inputs "
          f"({job['failed']} failed); methods {', '.join(job['methods'])}")
    for row in data["leaderboard"]:
        print(f"  {row['method']:22} comprehensiveness {row['comprehensiveness']:+.4f} "
              f"[{row['comp_low']:+.4f}, {row['comp_high']:+.4f}] over {row['inputs']} inputs")
    for row in data["attack"]:
        print(f"  attack on {row['label']:10} success {row['success_rate']:.2f} [{row['rate_low']:.2f}, "
              f"{row['rate_high']:.2f}] of {row['inputs']}, {row['mean_words_changed']:.2f} words changed, "
              f"{row['mean_queries']:.0f} queries per input")
    for row in data["counterfactual_agreement"]:
        print(f"  {row['method']:22} counterfactual agreement {row['share']:.2f} (random {row['random_share']:.2f}, "
              f"lift {row['lift']:+.2f} [{row['lift_low']:+.2f}, {row['lift_high']:+.2f}])")
    for row in data["fragility"]:
        print(f"  {row['method']:22} top-k kept under swaps {row['top_k_kept']:.2f} "
              f"[{row['kept_low']:.2f}, {row['kept_high']:.2f}], Spearman {row['spearman']:.2f}")


def work_through(job_id: int, model: str, as_json: bool, workers: int = 0, report: bool = True) -> Job:
    """Run a job here until done (in this process, or as the driver of `workers` local processes or of
    Ray tasks when RASHOMON_RAY_ADDRESS is set); Ctrl-C asks it to stop after the inputs in flight."""
    from core.analyses import corpus
    from core.storage.settings import load_settings
    from core.work.fanout import run_job_parallel

    db = engine()
    ray_address = load_settings().ray_address
    runner = None if workers or ray_address else runner_for(model or None)

    def stop(signum, frame) -> None:
        corpus.request_stop(db, job_id)
        sys.stderr.write("\nstopping after the input in flight (resume with `rashomon corpus resume`)\n")

    def progress(done: int, total: int, origin: str) -> None:
        if not as_json:
            sys.stderr.write(f"\r{done}/{total} {origin[:60]:<60}")
            sys.stderr.flush()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        with one_line_errors(corpus.CorpusError):
            job = (corpus.run_job(db, runner, job_id, progress=progress) if runner is not None else
                   run_job_parallel(db, job_id, workers=max(1, workers), ray_address=ray_address, progress=progress))
    finally:
        signal.signal(signal.SIGINT, previous)
    if not as_json:
        sys.stderr.write("\n")
    if report:
        data = _status(job.id)
        if as_json:
            print_json(data)
        else:
            _print_status(data)
    return job


def cmd_run(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.analyses.corpus import CorpusError

    db = engine()
    methods = method_list(args.methods) if args.methods else corpus_default_methods()
    if args.csv:
        with one_line_errors(CorpusError):
            inputs = corpus.inputs_from_csv(read_text_file(args.csv), args.text_column, args.label_column or "")
        source = f"CSV {args.csv}"
    elif args.tag:
        runner = runner_for(args.model)
        inputs = corpus.inputs_from_snapshots(db, args.tag, lambda t: runner.prepare(t).truncated_words == 0)
        source = "snapshots tagged " + ", ".join(args.tag)
    else:
        raise CliError("Give the inputs: --csv FILE or --tag TAG (repeatable).")
    if not args.methods:  # the default list leaves out what cannot explain this model, and says so
        from core.cli.common import load_description
        from core.methods.registry import split_compatible

        methods, skipped = split_compatible(methods, load_description(args.model))
        for name, reason in skipped.items():
            print(f"Left out {name}: {reason}.", file=sys.stderr)
    with one_line_errors(CorpusError):
        job_id = corpus.create_job(db, args.name or "", inputs, methods, model=args.model or "",
                                   options=parse_options(args.option), k=args.k, source=source,
                                   faithfulness_inputs=args.faithfulness_inputs,
                                   edits=_edit_options(args))
    if not args.json:
        print(f"corpus job {job_id}: {len(inputs)} inputs, methods {', '.join(methods)}", file=sys.stderr)
    work_through(job_id, args.model or "", args.json, args.workers)


def _edit_options(args: argparse.Namespace) -> dict | None:
    """Search options when --edits is given (corpus defaults for the rest), else None."""
    if not args.edits:
        return None
    return {name: value for name, value in (("max_edits", args.edit_max), ("similarity", args.edit_similarity))
            if value is not None}


def corpus_default_methods() -> list[str]:
    from core.methods.registry import fast_methods

    return fast_methods()


def cmd_resume(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.analyses.corpus import CorpusError

    with one_line_errors(CorpusError):
        job = corpus.require_job(engine(), args.job)
    if job.status == "done" and job.finished >= job.total:
        raise CliError(f"Corpus job {args.job} is already done.")
    if job.status == "running" and not corpus.is_stale(job):
        raise CliError(f"Corpus job {args.job} is running elsewhere; stop it first or wait for it.")
    work_through(job.id, job.model, args.json, args.workers)


def cmd_status(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.analyses.corpus import CorpusError

    with one_line_errors(CorpusError):
        if args.job is None:
            jobs = [j.to_dict() for j in corpus.list_jobs(engine())]
            if args.json:
                print_json(jobs)
            for j in [] if args.json else jobs:
                print(f"{j['id']:5d}  {j['name'][:40]:40}  {j['shown_status']:11}  {j['done'] + j['failed']}/{j['total']}")
            return
        data = _status(args.job)
    if args.json:
        print_json(data)
    else:
        _print_status(data)


def cmd_stop(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.analyses.corpus import CorpusError

    with one_line_errors(CorpusError):
        asked = corpus.request_stop(engine(), args.job)
    if not asked:
        raise CliError(f"Corpus job {args.job} is not running.")
    if args.json:
        print_json({"job": args.job, "stop_requested": True})
    else:
        print(f"asked corpus job {args.job} to stop after the input in flight")


def cmd_export(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.analyses.corpus import CorpusError

    with one_line_errors(CorpusError):
        fmt = "json" if args.json else args.format
        sys.stdout.write(corpus.export_json(engine(), args.job) if fmt == "json" else corpus.export_csv(engine(), args.job))


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("corpus", help="corpus runs").add_subparsers(dest="corpus_command", required=True)
    run = group.add_parser("run", help="create a corpus run and work through it here")
    run.add_argument("--csv", help="a CSV file with a text column")
    run.add_argument("--text-column", default="text")
    run.add_argument("--label-column", default="")
    run.add_argument("--tag", action="append", help="snapshots with this tag (repeatable)")
    run.add_argument("--methods", help="comma-separated (default: the fast methods)")
    run.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, repeatable")
    add_model_arguments(run)
    run.add_argument("--name")
    run.add_argument("--k", type=int_argument("k", 1, 1_000), default=5)
    run.add_argument("--faithfulness-inputs", type=int_argument("faithfulness-inputs", 0, 10_000_000), default=50, help="random sample measured (0: all)")
    run.add_argument("--edits", action="store_true", help="also attack every input: success rate, words changed, "
                                                         "queries; counterfactual agreement and fragility per method")
    run.add_argument("--edit-max", type=int_argument("edit-max", 1, 10), help="with --edits: most words changed (default 3)")
    run.add_argument("--edit-similarity", type=float_argument("edit-similarity", 0, 1), help="with --edits: least sentence similarity (default 0.8)")
    run.add_argument("--workers", type=int_argument("workers", 0, 64), default=0, help="local worker processes (0: this process); "
                                                               "with RASHOMON_RAY_ADDRESS, Ray tasks")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run)
    status = group.add_parser("status", help="list runs, or show one")
    status.add_argument("job", type=id_argument("job"), nargs="?")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    stop = group.add_parser("stop", help="ask a running job to stop after its current input")
    stop.add_argument("job", type=id_argument("job"))
    stop.add_argument("--json", action="store_true")
    stop.set_defaults(func=cmd_stop)
    resume = group.add_parser("resume", help="continue a stopped or interrupted job here")
    resume.add_argument("job", type=id_argument("job"))
    resume.add_argument("--workers", type=int_argument("workers", 0, 64), default=0, help="local worker processes (0: this process)")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(func=cmd_resume)
    export = group.add_parser("export", help="a run's results as JSON or CSV")
    export.add_argument("job", type=id_argument("job"))
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.add_argument("--json", action="store_true", help="same as --format json")
    export.set_defaults(func=cmd_export)
