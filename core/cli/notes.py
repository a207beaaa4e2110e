"""`rashomon notes add|list|edit|export`: the team's notes and verdicts, by the person `--user` or RASHOMON_USER names."""

from __future__ import annotations

import argparse

from core.cli.common import CliError, add_model_arguments, engine, print_json
from core.params import int_argument


def _verdicts() -> list[str]:
    from core.storage.notes import VERDICTS

    return list(VERDICTS)


def cmd_add(args: argparse.Namespace) -> None:
    from core.addresses import note_address
    from core.storage.notes import NoteError, add_note, parse_ref

    database = engine()
    try:
        kind, ident = parse_ref(args.on or "")
        note = add_note(database, args.text, verdict=args.verdict or "", method=args.method or "", ref=args.on or "",
                        model=args.model or "", page=args.page or "", tags=tuple((args.tags or "").split(",")),
                        address=note_address(database, kind, ident) if kind else "")
    except NoteError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json(note.to_dict())
    else:
        print(f"Note {note.id} by {note.author}" + (f" on {note.ref}" if note.ref else "")
              + (f": {note.verdict_text}" if note.verdict else "") + ".")


def cmd_edit(args: argparse.Namespace) -> None:
    from core.storage.notes import NoteError, edit_note

    try:
        note = edit_note(engine(), args.id, text=args.text, verdict=args.verdict, method=args.method)
    except NoteError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json(note.to_dict())
    else:
        print(f"Note {note.id} edited by {note.author}.")


def _listed(args: argparse.Namespace):
    from core.storage.notes import NoteError, list_notes

    try:
        # `notes list --user ana` lists ana's notes (the spelling); --by does the same without acting as her.
        return list_notes(engine(), person=args.by or args.user or "", verdict=args.verdict or "", tag=args.tag or "",
                          model=args.model or "", page=args.page or "", ref=args.on or "")
    except NoteError as exc:
        raise CliError(str(exc)) from exc


def cmd_list(args: argparse.Namespace) -> None:
    notes = _listed(args)
    if args.json:
        print_json([n.to_dict() for n in notes])
        return
    if not notes:
        print("No notes yet: `rashomon notes add --text ...`.")
    for note in notes:
        about = f" on {note.ref}" if note.ref else ""
        verdict = f" [{note.verdict_text}]" if note.verdict else ""
        print(f"#{note.id} {note.created_at} {note.author}{about}{verdict}: {note.text.splitlines()[0][:100]}")


def cmd_export(args: argparse.Namespace) -> None:
    from core.storage.notes import to_csv, to_markdown

    notes = _listed(args)
    print(to_markdown(notes) if args.format == "md" else to_csv(notes), end="")


def _filters(parser: argparse.ArgumentParser) -> None:
    # --user is who is asking (every command has it); --by picks whose notes are listed.
    parser.add_argument("--by", "--person", dest="by", help="notes by this person")
    parser.add_argument("--verdict", choices=_verdicts())
    parser.add_argument("--tag")
    add_model_arguments(parser)
    parser.add_argument("--page")
    parser.add_argument("--on", help="notes on one result, KIND:ID")


def add_commands(sub: argparse._SubParsersAction) -> None:
    notes = sub.add_parser("notes", help="the team's notes and verdicts on results").add_subparsers(
        dest="notes_command", required=True)
    add = notes.add_parser("add", help="leave a note (and a verdict) on a result, or on its own")
    add.add_argument("--on", help="KIND:ID: snapshot, comparison, method, error_group, training_example, "
                                  "counterfactual, check, corpus_run or evaluation (e.g. comparison:12)")
    add.add_argument("--text", required=True, help="the note (Markdown; rendered without HTML or images)")
    add.add_argument("--verdict", choices=_verdicts())
    add.add_argument("--method", help="with --verdict method_trustworthy: the method")
    add_model_arguments(add, help="the model the note is about (for filtering)")
    add.add_argument("--page", help="the page the result is shown on (for filtering)")
    add.add_argument("--tags", help="comma-separated")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)
    edit = notes.add_parser("edit", help="change your own note's text or verdict")
    edit.add_argument("id", type=int_argument("id", 1, 2**62))
    edit.add_argument("--text")
    edit.add_argument("--verdict", choices=_verdicts())
    edit.add_argument("--method")
    edit.add_argument("--json", action="store_true")
    edit.set_defaults(func=cmd_edit)
    listing = notes.add_parser("list", help="notes newest first")
    _filters(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    export = notes.add_parser("export", help="notes as Markdown or CSV")
    _filters(export)
    export.add_argument("--format", choices=("md", "csv"), default="md")
    export.set_defaults(func=cmd_export)
