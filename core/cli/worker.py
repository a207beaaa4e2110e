"""`rashomon worker`: run the shared database's queued work, here, until stopped.

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

from core.cli.common import CliError, engine


def _exit_with(parent_pid: int) -> None:
    """End this process as soon as its parent (the server that started it) is gone."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)  # a task in flight keeps its lease until it expires; another worker takes it over

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def cmd_worker(args: argparse.Namespace) -> None:
    from core import corpus, tasks
    from core.cli.corpus import work_through

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.nice:
        os.nice(args.nice)
    if args.parent_pid:
        _exit_with(args.parent_pid)
    db = engine()
    runners = tasks.model_runners()

    def report(task: tasks.Task) -> None:
        line = f"task {task.id} ({task.kind}): {task.status} in {task.seconds:.1f} s, {task.forward_passes} passes"
        print(line + (f": {task.error}" if task.error else ""), flush=True)

    with contextlib.suppress(Exception):  # the configured model, loaded before the first task needs it
        runners("")
    print(f"rashomon worker {os.getpid()}: waiting for work", flush=True)
    while True:
        ran = tasks.work(db, runners, once=True, on_task=report)
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run queued page tasks and corpus jobs from the shared database")
    worker.add_argument("--workers", type=int, default=0, help="local worker processes per corpus job (0: this process)")
    worker.add_argument("--tasks-only", action="store_true", help="page tasks only, no corpus jobs")
    worker.add_argument("--once", action="store_true", help="run what is queued, then exit")
    worker.add_argument("--poll", type=float, default=0.5, help="seconds between looks for new work")
    worker.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    worker.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by this much "
                                                           "(a server's own workers use 10: pages come first)")
    worker.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    worker.add_argument("--json", action="store_true")
    worker.set_defaults(func=cmd_worker)
