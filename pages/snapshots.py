import pandas as pd
import streamlit as st

from core.library.bookmarks import export_links, import_bookmarks
from core.library.fetch import SAMPLES_PATH, sample_pages
from core.library.snapshots import (
    LibraryError,
    add_tags,
    delete_tag,
    diff_snapshots,
    list_links,
    list_tags,
    merge_tags,
    raw_html,
    refresh_link,
    remove_tags,
    rename_tag,
    same_text_as,
    set_tags,
    snapshot_many,
    snapshots_of,
    update_notes,
)
from core.render import md
from core.storage.notes import list_notes
from pages.widgets.people import notes_on
from pages.widgets.resources import engine
from pages.widgets.ui import address, flash, show_flashes, streamlit_progress

db = engine()
st.title("Snapshots")
st.caption("Paste links; Rashomon fetches each page and keeps a snapshot of its text. "
           "Snapshots are never overwritten: refreshing adds a version.")


def library_action(fn, *args, success: str = "", where: str = "page", **kwargs):
    """Run a library call; its one-sentence error or its success message is kept across the rerun that
    refreshes the page (a message shown and then rerun away is a message never seen), and shown at `where`."""
    try:
        result = fn(*args, **kwargs)
    except LibraryError as exc:
        flash("error", md(str(exc)), where)
        return None
    if success:
        flash("success", md(success), where)
    return result


with st.expander("Add links", expanded=True):
    with st.form("add-links", clear_on_submit=False):
        urls = st.text_area("Links, one per line", placeholder="https://example.com/article", key="add_urls")
        new_tags = st.text_input("Tags for these links (comma-separated)", key="add_tags")
        submitted = st.form_submit_button("Snapshot", type="primary")
    st.caption("No internet here? These sample pages ship with Rashomon and can be snapshotted offline "
               "(read from the app's own files; every other internal address stays refused):")
    st.code("\n".join(f"http://127.0.0.1:{st.get_option('server.port')}{SAMPLES_PATH}{name}"
                       for name in sample_pages()), language=None)
    if submitted:
        bar = st.progress(0.0, text="Starting")
        tags = [t for t in new_tags.split(",") if t.strip()]
        summary = library_action(snapshot_many, db, urls, tags, progress=streamlit_progress(bar))
        if summary is not None:
            if summary.succeeded:
                st.success(f"{summary.succeeded} link(s) snapshotted.")
            for url, reason in summary.failures:
                st.error(md(f"{url}: {reason}"))
            for notice in {o.notice for o in summary.outcomes if o.notice}:
                st.info(notice)

with st.sidebar:
    st.subheader("Filter")
    tag_names = [name for name, _ in list_tags(db)]
    all_of = st.multiselect("With all of these tags", tag_names, key="filter_all")
    any_of = st.multiselect("With any of these tags", tag_names, key="filter_any")
    search = st.text_input("Search title and text", key="filter_search")

views = list_links(db, all_of, any_of, search)
st.subheader(f"Links ({len(views)})")
if not views:
    st.info("No links match." if (all_of or any_of or search) else "No links yet: add some above.")
else:
    table = pd.DataFrame([{
        # a failed fetch has no title: it is named by its address, and its status says why it failed
        "id": v.id, "title": v.title or (f"(fetch failed) {v.url}" if v.latest_error else "(no title) " + v.url),
        "url": v.url, "tags": ", ".join(v.tags),
        "snapshots": v.snapshot_count, "last fetch": v.latest_fetched_at,
        "status": ("failed: " + v.latest_error) if v.latest_error else "ok",
    } for v in views])
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row",
                         width="stretch", key="links_table",
                         column_config={"url": st.column_config.LinkColumn("url")})
    selected_ids = [int(table.iloc[i]["id"]) for i in event.selection.rows] if event else []

    with st.expander(f"Tag selected links ({len(selected_ids)} selected)"):
        tag_text = st.text_input("Tags (comma-separated)", key="bulk_tags")
        a, b = st.columns(2)
        if a.button("Add tags", disabled=not selected_ids):
            library_action(add_tags, db, selected_ids, tag_text.split(","), success="Tags added")
            st.rerun()
        if b.button("Remove tags", disabled=not selected_ids):
            library_action(remove_tags, db, selected_ids, tag_text.split(","), success="Tags removed")
            st.rerun()

    focus_options = {v.id: f"#{v.id} {v.title or v.url}" for v in views}
    default_focus = selected_ids[0] if selected_ids else address("pages/snapshots.py")["link"]
    if default_focus is not None and default_focus not in focus_options:
        st.error(f"Link {default_focus} does not exist; the newest link is shown.")
    default_index = list(focus_options).index(default_focus) if default_focus in focus_options else 0
    focus = st.selectbox("Open link", list(focus_options), index=default_index, format_func=focus_options.get,
                         key="focus_link")
    st.query_params["link"] = str(focus)
    link = next(v for v in views if v.id == focus)
    snapshots = snapshots_of(db, link.id)

    st.markdown("---")
    st.subheader(md(link.title or link.url), anchor=False)
    st.text(f"{link.url}\nTags: {', '.join(link.tags) or '—'}\n{len(snapshots)} snapshot(s)\n"
            f"Added by: {link.requested_by}")
    c1, c2 = st.columns([1, 3])
    if c1.button("Re-snapshot now", key="refresh"):
        with st.spinner("Fetching…"):
            outcome = library_action(refresh_link, db, link.id, where="link")
        count = len(snapshots_of(db, link.id))  # this link's versions, the new one included
        if outcome is not None and outcome.error:
            flash("error", f"The new snapshot failed ({md(link.url)}): {md(outcome.error)} It is kept as version "
                           f"{count} (failed); earlier versions are unchanged.", "link")
        elif outcome is not None and outcome.unchanged_since is not None:
            same = outcome.unchanged_since
            flash("info", f"Fetched again: the text is unchanged since snapshot #{same.id} of "
                          f"{same.fetched_at:%Y-%m-%d %H:%M:%S}; kept as version {count} (#{outcome.snapshot.id}), "
                          "marked as the same text.", "link")
        elif outcome is not None:
            flash("success", f"New version {count} (snapshot #{outcome.snapshot.id}) stored; it is shown below.",
                  "link")
        st.session_state.pop(f"version_{link.id}", None)  # show the newest version, not the one picked before
        st.rerun()
    show_flashes("link")
    notes = c2.text_input("Notes", value=link.notes, key=f"notes_{link.id}")
    if notes != link.notes:
        update_notes(db, link.id, notes)
    t1, t2 = st.columns([3, 1])
    link_tags = t1.text_input("Tags of this link (comma-separated)", value=", ".join(link.tags), key=f"tags_{link.id}")
    saved = t2.button("Save tags", key=f"save_tags_{link.id}")
    if saved and library_action(set_tags, db, link.id, link_tags.split(","), success="Tags saved") is not None:
        st.rerun()

    if snapshots:
        same_as = same_text_as(snapshots)
        # Versions are numbered per link, oldest 1 (snapshot ids are global: #12 may be this link's second)
        order = sorted(snapshots, key=lambda s: (s.fetched_at, s.id))
        number = {s.id: i + 1 for i, s in enumerate(order)}
        labels = {s.id: f"version {number[s.id]} of {len(snapshots)} · #{s.id} · {s.fetched_at:%Y-%m-%d %H:%M:%S}"
                  + (" · failed" if s.error else "")
                  + (f" · same text as version {number.get(same_as[s.id], '?')}" if s.id in same_as else "")
                  for s in snapshots}
        chosen = st.selectbox("Version", list(labels), format_func=labels.get, key=f"version_{link.id}")
        snap = next(s for s in snapshots if s.id == chosen)
        if snap.error:
            st.error(f"This fetch of {md(snap.final_url or link.url)} failed: {md(snap.error)}")
        else:
            st.text(f"Title: {snap.title}\nAuthors: {snap.authors or '—'}\nPublished: {snap.publish_date or '—'}\n"
                    f"Final URL: {snap.final_url} (HTTP {snap.status_code}, {snap.content_type})\n"
                    f"Extractor: {snap.extractor} {snap.extractor_version}\nSHA-256: {snap.text_sha256}\n"
                    f"Size: {snap.byte_size:,} bytes\nTaken by: {snap.requested_by}")
            st.page_link("pages/compare.py", label="Explain this snapshot on Compare", icon="⚖️",
                         query_params={"snapshot": str(snap.id)})
            st.page_link("pages/document.py", label="Explain the whole document, window by window", icon="📄",
                         query_params={"snapshot": str(snap.id)})
            tab_text, tab_html = st.tabs(["Text", "Raw HTML (escaped)"])
            tab_text.text(snap.text)
            tab_html.code(raw_html(snap)[:200_000], language="html")
            on_snapshot = list_notes(db, ref=f"snapshot:{snap.id}")
            if st.toggle(f"Notes on this version ({len(on_snapshot)})", key=f"snapshot_notes_{snap.id}"):
                notes_on(db, f"snapshot:{snap.id}", page="snapshots", key=f"snapshot_{snap.id}",
                         address=f"Compare?snapshot={snap.id}")
        good = [s for s in snapshots if not s.error]
        if len(good) >= 2:
            with st.expander("Compare two versions"):
                ids = [s.id for s in good]
                x, y = st.columns(2)
                old = x.selectbox("Older", ids, index=len(ids) - 1, format_func=labels.get, key="diff_old")
                new = y.selectbox("Newer", ids, index=0, format_func=labels.get, key="diff_new")
                patch = diff_snapshots(next(s for s in good if s.id == old), next(s for s in good if s.id == new))
                st.code(patch or "The texts are identical.", language="diff", wrap_lines=True)

st.markdown("---")
left, right = st.columns(2)
with left:
    st.subheader("Tags")
    tags = list_tags(db)
    st.text("\n".join(f"{name} ({n})" for name, n in tags) or "No tags yet.")
    names = [n for n, _ in tags]
    with st.form("tag-admin"):
        action = st.radio("Action", ["Rename", "Merge into", "Delete"], horizontal=True)
        source = st.selectbox("Tag", names)
        target = st.text_input("New name / target tag")
        if st.form_submit_button("Apply") and source:
            if action == "Rename":
                library_action(rename_tag, db, source, target, where="tags",
                               success=f"Renamed tag '{source}' to '{target.strip()}'.")
            elif action == "Merge into":
                merged = library_action(merge_tags, db, source, target, where="tags")
                if merged is not None:
                    flash("success", md(merged.sentence(source, target.strip())), "tags")
            else:
                library_action(delete_tag, db, source, where="tags", success=f"Deleted tag '{source}'; its links stay.")
            st.rerun()
    show_flashes("tags")
with right:
    st.subheader("Import and export")
    upload = st.file_uploader("Netscape bookmark file (browsers, linkding)", type=["html", "htm"])
    if upload is not None and st.button("Import bookmarks"):
        summary = import_bookmarks(db, upload.getvalue().decode("utf-8", errors="replace"))
        flash("success", f"{summary.added} links added, {summary.existing} already present.", "import")
        for url, reason in summary.skipped:
            flash("warning", md(f"Skipped {url}: {reason}"), "import")
        st.rerun()
    show_flashes("import")  # the link list and the tag filters above must show the imported links
    for fmt, mime in (("html", "text/html"), ("json", "application/json"), ("csv", "text/csv")):
        st.download_button(f"Export {fmt.upper()}", export_links(db, fmt), file_name=f"rashomon-links.{fmt}",
                           mime=mime, key=f"export_{fmt}")
