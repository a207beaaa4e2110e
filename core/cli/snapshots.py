"""`rashomon snapshot|tag|import|export`: the Snapshots page from the command line."""

from __future__ import annotations

import argparse
import sys

from core.cli.common import CliError, engine, one_line_errors, print_json, progress_bar, quiet, read_text_file
from core.library.snapshots import LibraryError
from core.params import id_argument


def cmd_add(args: argparse.Namespace) -> None:
    """One or more URLs (and/or a file of them): a progress bar and one result line per URL."""
    from core.library.snapshots import snapshot_many

    urls = list(args.url or [])
    if args.file:
        urls += (sys.stdin.read() if args.file == "-" else read_text_file(args.file)).splitlines()
    if not any(u.strip() and not u.strip().startswith("#") for u in urls):
        raise CliError("Give at least one URL (as arguments or with --file).")
    single = len(urls) == 1 and not args.file
    results = []

    def line(url: str, outcome, error: str) -> None:
        results.append(outcome.to_dict() if outcome else {"url": url, "error": error})
        if args.json or single:
            return
        if error:
            sys.stderr.write(f"\rfailed  {url}: {error}\n")
        else:
            s = outcome.snapshot
            sys.stderr.write(f"\rok      {url} -> link {outcome.link.id}, snapshot {s.id}: {s.title or '(untitled)'}\n")

    with one_line_errors(LibraryError):
        summary = snapshot_many(engine(), urls, args.tag or [], on_result=line, progress=quiet if args.json or single else progress_bar("snapshots"))
    if args.json:
        print_json(results[0] if single else results)
    if single:
        if summary.failures:
            url, reason = summary.failures[0]
            raise CliError(f"{url}: {reason}")
        if not args.json:
            outcome = summary.outcomes[0]
            s = outcome.snapshot
            print(f"link {outcome.link.id}, snapshot {s.id}: {s.title or '(untitled)'} "
                  f"[{len(s.text)} characters via {s.extractor}] tags: {', '.join(outcome.tags) or '-'}")
        return
    if not args.json:
        print(f"{summary.succeeded} snapshotted, {len(summary.failures)} failed")
    if summary.failures:
        raise CliError(f"{len(summary.failures)} of {len(results)} link(s) failed")


def cmd_list(args: argparse.Namespace) -> None:
    from core.library.snapshots import list_links

    with one_line_errors(LibraryError):
        views = list_links(engine(), tags_all=args.tag or [], tags_any=args.any_tag or [], search=args.search or "")
    if args.json:
        print_json([{**v.__dict__} for v in views])
        return
    for v in views:
        state = "failed: " + v.latest_error if v.latest_error else f"{v.snapshot_count} snapshot(s)"
        print(f"{v.id:5d}  {v.title[:50] or v.url:50}  [{', '.join(v.tags)}]  {state}")


def cmd_show(args: argparse.Namespace) -> None:
    from core.library.snapshots import get_snapshot

    snapshot = get_snapshot(engine(), args.id)
    if snapshot is None:
        raise CliError(f"No snapshot with id {args.id}.")
    data = snapshot.model_dump(exclude={"raw_html"})
    if args.json:
        print_json(data)
        return
    for key in ("id", "link_id", "fetched_at", "final_url", "status_code", "title", "authors", "publish_date",
                "extractor", "text_sha256", "byte_size", "error"):
        print(f"{key}: {data[key]}")
    print()
    print(snapshot.text)


def cmd_refresh(args: argparse.Namespace) -> None:
    from core.library.snapshots import refresh_link

    with one_line_errors(LibraryError):
        outcome = refresh_link(engine(), args.link_id)
    if args.json:
        print_json(outcome.to_dict())
    if outcome.error:
        raise CliError(f"{outcome.link.url}: {outcome.error}")
    if not args.json:
        print(f"link {outcome.link.id}: new snapshot {outcome.snapshot.id}")


def cmd_tag_rename(args: argparse.Namespace) -> None:
    from core.library.snapshots import rename_tag

    with one_line_errors(LibraryError):
        rename_tag(engine(), args.old, args.new)
    if args.json:
        print_json({"renamed": args.old, "to": args.new})
    else:
        print(f"renamed {args.old} -> {args.new}")


def cmd_tag_merge(args: argparse.Namespace) -> None:
    from core.library.snapshots import merge_tags

    with one_line_errors(LibraryError):
        merged = merge_tags(engine(), args.source, args.target)
    if args.json:
        print_json({"merged": args.source, "into": args.target, "links_moved": merged.moved,
                    "links_already_tagged": merged.already_tagged})
    else:
        print(merged.sentence(args.source, args.target))


def cmd_import(args: argparse.Namespace) -> None:
    from core.library.bookmarks import import_bookmarks

    summary = import_bookmarks(engine(), read_text_file(args.file))
    if args.json:
        print_json({"added": summary.added, "existing": summary.existing,
                    "skipped": [{"url": u, "reason": r} for u, r in summary.skipped]})
        return
    print(f"{summary.added} links added, {summary.existing} already present, {len(summary.skipped)} skipped")
    for url, reason in summary.skipped:
        print(f"  skipped {url}: {reason}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> None:
    from core.library.bookmarks import export_links

    with one_line_errors(LibraryError):
        sys.stdout.write(export_links(engine(), "json" if args.json else args.format))


def add_commands(sub: argparse._SubParsersAction) -> None:
    snapshot = sub.add_parser("snapshot", help="snapshot web pages").add_subparsers(dest="snapshot_command", required=True)
    add = snapshot.add_parser("add", help="fetch links and store a snapshot of each")
    add.add_argument("url", nargs="*")
    add.add_argument("--file", help="a file with one link per line (- for stdin)")
    add.add_argument("--tag", action="append")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)
    bulk = snapshot.add_parser("bulk", help="the same as `add --file FILE` (kept for old scripts)")
    bulk.add_argument("file")
    bulk.add_argument("--tag", action="append")
    bulk.add_argument("--json", action="store_true")
    bulk.set_defaults(func=cmd_add, url=[])
    lst = snapshot.add_parser("list", help="list links")
    lst.add_argument("--tag", action="append", help="links with all of these tags")
    lst.add_argument("--any-tag", action="append", help="links with any of these tags")
    lst.add_argument("--search")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = snapshot.add_parser("show", help="show one snapshot")
    show.add_argument("id", type=id_argument("id"))
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    refresh = snapshot.add_parser("refresh", help="take a new snapshot of a link")
    refresh.add_argument("link_id", type=id_argument("link_id"))
    refresh.add_argument("--json", action="store_true")
    refresh.set_defaults(func=cmd_refresh)

    tag = sub.add_parser("tag", help="manage tags").add_subparsers(dest="tag_command", required=True)
    rename = tag.add_parser("rename")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.add_argument("--json", action="store_true")
    rename.set_defaults(func=cmd_tag_rename)
    merge = tag.add_parser("merge", help="merge tag SOURCE into TARGET")
    merge.add_argument("source")
    merge.add_argument("target")
    merge.add_argument("--json", action="store_true")
    merge.set_defaults(func=cmd_tag_merge)

    imp = sub.add_parser("import", help="import a Netscape bookmark file")
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="export links with tags")
    exp.add_argument("--format", choices=("html", "json", "csv"), default="html")
    exp.add_argument("--json", action="store_true", help="same as --format json")
    exp.set_defaults(func=cmd_export)
