"""`rashomon samples list|start|remove`: the sample workspace the workers compute after the default model's build."""

from __future__ import annotations

import argparse

from core.cli.common import engine, one_line_errors, print_json
from core.params import int_argument


def cmd_list(args: argparse.Namespace) -> None:
    from core.work import samples

    found = samples.workspace(engine())
    data = {"sample": True, "demos": [{"id": d.id, "name": d.name, "note": d.note} for d in found.demos],
            "corpus_job": found.corpus_job, "evaluation_job": found.evaluation_job,
            "training_text": found.training_text,
            "computing": ({"task": found.live.id, "step": found.live.params.get("step"), "status": found.live.status}
                          if found.live else None),
            "things_to_try": [{"title": s.title, "why": s.why, "address": s.address} for s in found.things_to_try()]}
    if args.json:
        print_json(data)
        return
    if found.empty and found.live is None:
        print("No samples (they are computed after the default model's build; `rashomon samples start`).")
    for d in found.demos:
        print(f"demo {d.id:5d}  {d.name}")
    for label, job in (("corpus run", found.corpus_job), ("evaluation", found.evaluation_job)):
        if job is not None:
            print(f"{label} {job}")
    if found.live is not None:
        print(f"computing: task {found.live.id}, step {found.live.params.get('step')} ({found.live.status})")


def cmd_start(args: argparse.Namespace) -> None:
    from core.storage.settings import load_settings
    from core.work import samples, tasks

    settings = load_settings()
    with one_line_errors(tasks.TaskError):
        task = samples.submit_samples(engine(), settings.resolved_model, inputs=args.inputs,
                                      heldout=args.heldout if args.heldout is not None else settings.sample_heldout)
    if args.json:
        print_json({"task": task.id, "status": task.status, "model": task.model})
    else:
        print(f"task {task.id}: the sample workspace, queued for {task.model} (`rashomon worker` computes it)")


def cmd_remove(args: argparse.Namespace) -> None:
    from core.work import samples

    removed = samples.remove_samples(engine())
    if args.json:
        print_json({"removed": removed})
    else:
        print("Removed " + ", ".join(f"{count} {table}" for table, count in removed.items() if count) if any(
            removed.values()) else "There were no samples.")


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("samples", help="the sample workspace computed after the default model's build") \
        .add_subparsers(dest="samples_command", required=True)
    lst = group.add_parser("list", help="what the sample workspace holds, and three things to try")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    start = group.add_parser("start", help="queue the samples for the configured model (a worker computes them)")
    start.add_argument("--inputs", type=int_argument("inputs", 1, 1000), default=50,
                       help="held-out tweets in the sample corpus run (default 50)")
    start.add_argument("--heldout", type=int_argument("heldout", 0, 100_000), default=None,
                       help="held-out rows evaluated (default: RASHOMON_SAMPLE_HELDOUT, 0 = all)")
    start.add_argument("--json", action="store_true")
    start.set_defaults(func=cmd_start)
    remove = group.add_parser("remove", help="delete every sample (your own results are kept)")
    remove.add_argument("--json", action="store_true")
    remove.set_defaults(func=cmd_remove)
