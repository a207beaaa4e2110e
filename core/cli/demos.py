"""`rashomon demo list|show`: saved Compare views."""

from __future__ import annotations

import argparse
import json

from core.cli.common import CliError, engine, print_json
from core.params import id_argument


def _demo_dict(demo) -> dict:
    return {"id": demo.id, "name": demo.name, "note": demo.note, "query": json.loads(demo.query),
            "created_at": demo.created_at.isoformat(), "sample": demo.sample}


def cmd_list(args: argparse.Namespace) -> None:
    from core.analyses.compare import list_demos

    demos = [_demo_dict(d) for d in list_demos(engine())]
    if args.json:
        print_json(demos)
        return
    for d in demos:
        print(f"{d['id']:5d}  {d['name'][:40]:40}  {d['note'][:60]}")


def cmd_show(args: argparse.Namespace) -> None:
    from core.analyses.compare import ViewState, get_demo

    demo = get_demo(engine(), args.id)
    if demo is None:
        raise CliError(f"No demo with id {args.id}.")
    data = _demo_dict(demo)
    state = ViewState.from_query(data["query"])
    data["view"] = {"snapshot": state.snapshot, "text": state.text, "model": state.model, "methods": state.methods,
                    "options": state.options, "target": state.target, "k": state.k}
    if args.json:
        print_json(data)
        return
    print(f"{data['name']}: {data['note']}")
    for key, value in data["view"].items():
        print(f"  {key}: {value}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("demo", help="saved Compare views").add_subparsers(dest="demo_command", required=True)
    lst = group.add_parser("list")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = group.add_parser("show")
    show.add_argument("id", type=id_argument("id"))
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
