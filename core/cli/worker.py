"""`rashomon worker`: run the shared database's queued work, here, until stopped; `rashomon tasks`: see and
stop that work.

A team runs this on any machine that reaches the database: it takes page tasks (comparisons, checks)
first, since someone is waiting on a page, then queued or interrupted corpus jobs. A server starts
its own local workers with `--tasks-only --parent-pid` (they end when the server does).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

from core.cli.common import CliError, engine, print_json
from core.params import float_argument, id_argument, int_argument


def _exit_with(parent_pid: int) -> None:
    """End this process as soon as its parent (the server that started it) is gone."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)  # a task in flight keeps its lease until it expires; another worker takes it over

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def cmd_worker(args: argparse.Namespace) -> None:
    from core.analyses import corpus
    from core.cli.corpus import work_through
    from core.work import tasks

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.nice:
        os.nice(args.nice)
    if args.parent_pid:
        _exit_with(args.parent_pid)
    db = engine()
    runners = tasks.model_runners()
    try:
        kinds = tasks.kinds_for(args.kinds, shares_home=not args.no_home_kinds)
    except tasks.TaskError as exc:
        raise CliError(str(exc)) from exc

    def report(task: tasks.Task) -> None:
        line = f"task {task.id} ({task.kind}): {task.status} in {task.seconds:.1f} s, {task.forward_passes} passes"
        print(line + (f": {task.error}" if task.error else ""), flush=True)

    with contextlib.suppress(Exception):  # the configured model, loaded and warmed up before the first task
        from core.engine.pass_time import measure_pass_time

        loaded = runners("").loaded
        measure_pass_time(db, runners(""))  # what every page's time estimate for this model reads
        if not args.no_warm_up:
            from core.engine.warmup import warm_up

            warm_up(loaded)
    print(f"rashomon worker {os.getpid()}: waiting for work", flush=True)
    while True:
        ran = tasks.work(db, runners, once=True, on_task=report, kinds=kinds)
        if not args.tasks_only:
            waiting = [j for j in reversed(corpus.list_jobs(db))
                       if (j.status == "queued" or corpus.is_stale(j)) and j.finished < j.total]
            for job in waiting[:1]:  # one job, then look at the tasks again
                try:
                    work_through(job.id, job.model, args.json, args.workers)
                    ran += 1
                except CliError as exc:  # another worker claimed it first: fine, look for the next
                    print(f"rashomon worker: {exc}", file=sys.stderr)
        if args.once and not ran:
            return
        if not ran:
            time.sleep(args.poll)


def _task_row(task) -> dict:
    return {"id": task.id, "kind": task.kind, "status": task.status, "progress": round(task.fraction, 3),
            "attempts": task.attempts, "seconds": round(task.seconds, 1), "forward_passes": task.forward_passes,
            "worker": task.owner, "created": str(task.created_at), "error": task.error, "result": task.result}


def cmd_tasks(args: argparse.Namespace) -> None:
    from core.work import tasks

    rows = [_task_row(t) for t in tasks.list_tasks(engine(), limit=args.limit)]
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("No tasks yet: comparisons and checks started on a page appear here.")
    for row in rows:
        line = (f"#{row['id']:<5} {row['kind']:<14} {row['status']:<8} {row['progress']:>4.0%}  "
                f"{row['seconds']:>7.1f} s  {row['forward_passes']:>7} passes  {row['worker']}")
        print(line + (f"  {row['error']}" if row["error"] else ""))


def cmd_task_stop(args: argparse.Namespace) -> None:
    from core.work import tasks

    db = engine()
    if tasks.get_task(db, args.task) is None:
        raise CliError(f"There is no task {args.task}.")
    if not tasks.request_stop(db, args.task):
        raise CliError(f"Task {args.task} has already ended.")
    print(f"Asked task {args.task} to stop.")


def cmd_task_kinds(args: argparse.Namespace) -> None:
    from core.work import tasks

    rows = [{"kind": k.name, "title": k.title, "needs_model": k.needs_model, "writes_home": k.writes_home}
            for k in tasks.KINDS.values()]
    if args.json:
        print_json(rows)
        return
    for row in rows:
        notes = [note for note, on in (("no model loaded", not row["needs_model"]),
                                       ("writes under RASHOMON_HOME", row["writes_home"])) if on]
        print(f"{row['kind']}: {row['title']}" + (f" ({'; '.join(notes)})" if notes else ""))


def add_commands(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("tasks", help="heavy work (comparisons, checks, groups, builds...): the newest first, or stop one")
    listing.add_argument("--limit", type=int_argument("limit", 1, 10_000_000), default=20)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_tasks)
    task_commands = listing.add_subparsers(dest="tasks_command")
    kinds = task_commands.add_parser("kinds", help="the kinds of heavy work, from the task registry")
    kinds.add_argument("--json", action="store_true")
    kinds.set_defaults(func=cmd_task_kinds)
    stop = task_commands.add_parser("stop", help="stop a queued or running task (finished parts are kept)")
    stop.add_argument("task", type=id_argument("task"))
    stop.set_defaults(func=cmd_task_stop)
    worker = sub.add_parser("worker", help="run queued page tasks and corpus jobs from the shared database")
    worker.add_argument("--workers", type=int_argument("workers", 0, 64), default=0, help="local worker processes per corpus job (0: this process)")
    worker.add_argument("--tasks-only", action="store_true", help="page tasks only, no corpus jobs")
    worker.add_argument("--kinds", default="", help="comma-separated task kinds this worker takes (default: all; "
                                                    "`rashomon tasks kinds` lists them)")
    worker.add_argument("--no-home-kinds", action="store_true",
                        help="this worker does not share the server's RASHOMON_HOME (another machine): leave the "
                             "kinds that write model files or preparations there to workers that do")
    worker.add_argument("--once", action="store_true", help="run what is queued, then exit")
    worker.add_argument("--poll", type=float_argument("poll", 0.01, 3600), default=0.5, help="seconds between looks for new work")
    worker.add_argument("--threads", type=int_argument("threads", 0, 1_024), default=0, help="torch threads (0: torch's default)")
    worker.add_argument("--nice", type=int_argument("nice", 0, 19), default=0, help="lower this process's CPU priority by this much "
                                                           "(a server's own workers use 10: pages come first)")
    worker.add_argument("--no-warm-up", action="store_true", help="skip the first SHAP call's compilation at start")
    worker.add_argument("--parent-pid", type=int_argument("parent-pid", 0, 2_147_483_647), default=0, help=argparse.SUPPRESS)
    worker.add_argument("--json", action="store_true")
    worker.set_defaults(func=cmd_worker)
