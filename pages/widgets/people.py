"""Who is on the page (from the deployment's authentication), and the note box every result can carry."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from core.render import md, note_markdown
from core.storage.notes import VERDICTS, NoteError, NoteView, add_note, edit_note, list_notes
from core.storage.people import Identity, current_person, identify, set_person
from core.storage.provenance import Seen
from core.storage.settings import load_settings


def _login_name() -> str | None:
    """The OpenID Connect user's name or e-mail when Streamlit's login is configured and they signed in."""
    try:
        if st.user.is_logged_in:
            return st.user.get("email") or st.user.get("name")
    except (AttributeError, KeyError, RuntimeError):  # no [auth] section: st.user has no login
        return None
    return None


def login_configured() -> bool:
    """Streamlit's OpenID Connect login is configured: an [auth] section in secrets.toml."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


def who_is_here() -> Identity:
    """Identify this page run's person and act for them (every row this run stores records them)."""
    settings = load_settings()
    identity = identify(dict(st.context.headers), st.context.ip_address, header=settings.auth_header,
                        proxies=settings.trusted_proxies, login_name=_login_name(), login=login_configured())
    set_person(identity.person)
    return identity


def show_person(identity: Identity) -> None:
    st.sidebar.markdown(f"👤 **{md(identity.person)}**")
    st.sidebar.caption(md(identity.how))
    if login_configured():
        if _login_name():
            st.sidebar.button("Log out", on_click=st.logout, key="people_logout")
        else:
            st.sidebar.button("Log in", on_click=st.login, key="people_login", type="primary")
    if not identity.believed:
        st.sidebar.warning("A user header came from an address that is not the authenticating proxy: it was "
                           "ignored.")


def asked_by(person: str, when: datetime | None = None, *, verb: str = "Asked for") -> None:
    """Who asked for the result shown (its first asker, never the reader), and when."""
    st.caption(f"👤 {verb} by **{md(person)}**" + (f" on {when:%Y-%m-%d %H:%M} UTC" if when else "") + ".")


def asked_by_seen(seen: list[Seen]) -> None:
    """`asked_by` for the stored result a page just read (`core.storage.provenance.watching`)."""
    if seen:
        asked_by(seen[-1].requested_by, seen[-1].created_at)


def _note_line(note: NoteView) -> str:
    verdict = f" · **{md(note.verdict_text)}**" if note.verdict else ""
    about = f" · on {md(note.ref)}" if note.ref else ""
    edited = f" · edited {note.updated_at}" if note.updated_at else ""
    when = note.created_at.replace("T", " ")[:16] + " UTC"
    return f"**{md(note.author)}** · {when}{about}{verdict}{edited}"


def show_note(engine, note: NoteView, *, key: str) -> None:
    """One note: who, when, verdict, what it is on (a link opens the result), its text rendered inert; its author
    can edit it."""
    with st.container(border=True):
        st.markdown(_note_line(note))
        st.markdown(note_markdown(note.text))
        if note.address:
            st.markdown(f"[Open the result →](./{note.address})")
        # a toggle, not an expander: notes also show inside expanders (an error group), which cannot nest
        if note.author == current_person() and st.toggle("Edit your note", key=f"edit_open_{key}_{note.id}"):
            with st.form(f"edit_{key}_{note.id}"):
                text = st.text_area("Note", note.text, key=f"edit_text_{key}_{note.id}")
                verdict = st.radio("Verdict", ["", *VERDICTS], index=["", *VERDICTS].index(note.verdict),
                                   format_func=lambda v: VERDICTS.get(v, "no verdict"), horizontal=True,
                                   key=f"edit_verdict_{key}_{note.id}")
                if st.form_submit_button("Save"):
                    try:
                        edit_note(engine, note.id, text=text, verdict=verdict)
                        st.rerun()
                    except NoteError as exc:
                        st.error(md(str(exc)))


def note_form(engine, *, ref: str = "", model: str = "", page: str = "", address: str = "", key: str,
              methods: list[str] | None = None, about: dict[str, str] | None = None) -> None:
    """Leave a note (and a verdict) on `ref`, or a finding on its own when `ref` is "". With `about` (label: ref,
    more than one) the person picks what the note is on: a comparison or one method within it."""
    if saved := st.session_state.pop(f"_note_saved_{key}", None):
        st.success(saved)
    with st.form(f"note_{key}", clear_on_submit=True):
        if about and len(about) > 1:
            ref = about[st.selectbox("About", list(about), key=f"note_about_{key}")]
        text = st.text_area("Your note (Markdown; no HTML or images)", key=f"note_text_{key}")
        # every verdict in sight: a small fixed set, read at a glance
        verdict = st.radio("Verdict", ["", *VERDICTS], format_func=lambda v: VERDICTS.get(v, "no verdict"),
                           horizontal=True, key=f"note_verdict_{key}")
        method = st.selectbox("Method (for 'method trustworthy here')", ["", *(methods or [])],
                              key=f"note_method_{key}") if methods else st.text_input(
            "Method (for 'method trustworthy here')", key=f"note_method_{key}")
        tags = st.text_input("Tags (comma-separated)", key=f"note_tags_{key}")
        if st.form_submit_button("Leave the note"):
            if not method and ref.startswith("method:") and verdict == "method_trustworthy":
                method = ref.rsplit(":", 1)[1]  # a note on one method is about that method
            try:
                note = add_note(engine, text, verdict=verdict, method=method, ref=ref, model=model, page=page,
                                address=address, tags=tuple(tags.split(",")))
            except NoteError as exc:
                st.error(md(str(exc)))
            else:  # run the page again: the new note is listed with the others (and counted) at once
                st.session_state[f"_note_saved_{key}"] = (f"Note {note.id} saved, by {md(note.author)}"
                                                          + (f", on {md(note.ref)}." if note.ref else "."))
                st.rerun()


def notes_on(engine, ref: str, *, model: str = "", page: str = "", address: str = "", key: str,
             methods: list[str] | None = None, about: dict[str, str] | None = None) -> None:
    """The notes on one result (or on any of `about`'s, label: ref) and a form to add one."""
    refs = tuple(about.values()) if about else ((ref,) if ref else ())
    for note in list_notes(engine, refs=refs) if refs else []:
        show_note(engine, note, key=key)
    note_form(engine, ref=ref, model=model, page=page, address=address, key=key, methods=methods, about=about)
