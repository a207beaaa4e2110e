"""`rashomon snapshot|tag|import|export` commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import CliError, _print_json, progress_bar


def _library_call(fn, *args, **kwargs):
    from core.snapshots import LibraryError

    try:
        return fn(*args, **kwargs)
    except LibraryError as exc:
        raise CliError(str(exc)) from exc


def cmd_add(args: argparse.Namespace) -> None:
    from core.snapshots import snapshot_url

    outcome = _library_call(snapshot_url, args.url, args.tag or [])
    if args.json:
        _print_json(outcome.to_dict())
    if outcome.error:
        raise CliError(f"{outcome.link.url}: {outcome.error}")
    if not args.json:
        s = outcome.snapshot
        print(f"link {outcome.link.id}, snapshot {s.id}: {s.title or '(untitled)'} "
              f"[{len(s.text)} characters via {s.extractor}] tags: {', '.join(outcome.tags) or '-'}")


def cmd_list(args: argparse.Namespace) -> None:
    from core.snapshots import list_links

    views = _library_call(list_links, tags_all=args.tag or [], tags_any=args.any_tag or [], search=args.search or "")
    if args.json:
        _print_json([{**v.__dict__} for v in views])
        return
    for v in views:
        state = "failed: " + v.latest_error if v.latest_error else f"{v.snapshot_count} snapshot(s)"
        print(f"{v.id:5d}  {v.title[:50] or v.url:50}  [{', '.join(v.tags)}]  {state}")


def cmd_show(args: argparse.Namespace) -> None:
    from core.snapshots import get_snapshot

    snapshot = get_snapshot(args.id)
    if snapshot is None:
        raise CliError(f"No snapshot with id {args.id}.")
    data = snapshot.model_dump(exclude={"raw_html"})
    if args.json:
        _print_json(data)
        return
    for key in ("id", "link_id", "fetched_at", "final_url", "status_code", "title", "authors", "publish_date",
                "extractor", "text_sha256", "byte_size", "error"):
        print(f"{key}: {data[key]}")
    print()
    print(snapshot.text)


def cmd_refresh(args: argparse.Namespace) -> None:
    from core.snapshots import refresh_link

    outcome = _library_call(refresh_link, args.link_id)
    if outcome.error:
        raise CliError(f"{outcome.link.url}: {outcome.error}")
    print(f"link {outcome.link.id}: new snapshot {outcome.snapshot.id}")


def cmd_tag_rename(args: argparse.Namespace) -> None:
    from core.snapshots import rename_tag

    _library_call(rename_tag, args.old, args.new)
    print(f"renamed {args.old} -> {args.new}")


def cmd_tag_merge(args: argparse.Namespace) -> None:
    from core.snapshots import merge_tags

    moved = _library_call(merge_tags, args.source, args.target)
    print(f"merged {args.source} into {args.target} ({moved} links moved)")


def cmd_import(args: argparse.Namespace) -> None:
    from core.bookmarks import import_bookmarks

    try:
        content = Path(args.file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CliError(f"Cannot read {args.file}: {exc.strerror}.") from exc
    summary = import_bookmarks(content)
    print(f"{summary.added} links added, {summary.existing} already present, {len(summary.skipped)} skipped")
    for url, reason in summary.skipped:
        print(f"  skipped {url}: {reason}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> None:
    from core.bookmarks import export_links

    sys.stdout.write(_library_call(export_links, args.format))


def cmd_bulk(args: argparse.Namespace) -> None:
    from core.snapshots import snapshot_many

    lines = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
    summary = snapshot_many(lines, args.tag or [], progress=progress_bar("snapshots"))
    print(f"{summary.succeeded} snapshotted, {len(summary.failures)} failed")
    for url, reason in summary.failures:
        print(f"  {url}: {reason}")
    if summary.failures:
        raise CliError(f"{len(summary.failures)} link(s) failed")


def add_commands(sub: argparse._SubParsersAction) -> None:
    snapshot = sub.add_parser("snapshot", help="snapshot web pages").add_subparsers(dest="snapshot_command", required=True)
    add = snapshot.add_parser("add", help="fetch a link and store a snapshot")
    add.add_argument("url")
    add.add_argument("--tag", action="append")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)
    bulk = snapshot.add_parser("bulk", help="snapshot one link per line of FILE (- for stdin)")
    bulk.add_argument("file")
    bulk.add_argument("--tag", action="append")
    bulk.set_defaults(func=cmd_bulk)
    lst = snapshot.add_parser("list", help="list links")
    lst.add_argument("--tag", action="append", help="links with all of these tags")
    lst.add_argument("--any-tag", action="append", help="links with any of these tags")
    lst.add_argument("--search")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = snapshot.add_parser("show", help="show one snapshot")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    refresh = snapshot.add_parser("refresh", help="take a new snapshot of a link")
    refresh.add_argument("link_id", type=int)
    refresh.set_defaults(func=cmd_refresh)

    tag = sub.add_parser("tag", help="manage tags").add_subparsers(dest="tag_command", required=True)
    rename = tag.add_parser("rename")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(func=cmd_tag_rename)
    merge = tag.add_parser("merge", help="merge tag SOURCE into TARGET")
    merge.add_argument("source")
    merge.add_argument("target")
    merge.set_defaults(func=cmd_tag_merge)

    imp = sub.add_parser("import", help="import a Netscape bookmark file")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="export links with tags")
    exp.add_argument("--format", choices=("html", "json", "csv"), default="html")
    exp.set_defaults(func=cmd_export)
