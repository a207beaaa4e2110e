"""Findings: the team's notes and verdicts, newest first, each opening the result it is about."""

import streamlit as st

from core.render import md
from core.storage.notes import VERDICTS, NoteError, list_notes, parse_ref, people, to_csv, to_markdown
from core.storage.people import current_person
from pages.widgets.people import note_form, show_note
from pages.widgets.resources import engine
from pages.widgets.ui import address

st.title("Findings")
st.caption("What the team concluded: notes and verdicts on comparisons, methods, error groups, training examples, "
           "edits and snapshots, and findings of their own. Each opens the result it is about.")
db = engine()
asked = address("pages/findings.py")
everyone = people(db)
left, middle, right = st.columns(3)
people_shown = ["", *sorted(set(everyone) | ({asked["person"]} if asked["person"] else set()))]
person = left.selectbox("Person", people_shown, index=people_shown.index(asked["person"]),
                        format_func=lambda p: p or "everyone", key="findings_person")
verdict = middle.selectbox("Verdict", ["", *VERDICTS], index=["", *VERDICTS].index(asked["verdict"]),
                           format_func=lambda v: VERDICTS.get(v, "any verdict"), key="findings_verdict")
tag = right.text_input("Tag", asked["tag"], key="findings_tag")
model, page, ref = asked["model"], asked["page"], asked["ref"]
try:
    parse_ref(ref)
except NoteError as exc:  # a bad result reference in the address: said, and every note shown
    st.warning(md(f"In this address, {exc} Notes on every result are shown."))
    ref = ""
notes = list_notes(db, person=person, verdict=verdict, tag=tag.strip(), model=model, page=page, ref=ref)
st.query_params.from_dict({k: v for k, v in (("person", person), ("verdict", verdict), ("tag", tag.strip()),
                                             ("model", model), ("page", page), ("ref", ref)) if v})
filters = [f"{name} {md(value)}" for name, value in (("model", model), ("page", page), ("on", ref)) if value]
st.caption(f"{len(notes)} note{'s' if len(notes) != 1 else ''}" + (f" ({', '.join(filters)})" if filters else "")
           + f". You are {md(current_person())}.")
download_md, download_csv = st.columns(2)
download_md.download_button("Download as Markdown", to_markdown(notes), "findings.md", "text/markdown")
download_csv.download_button("Download as CSV", to_csv(notes), "findings.csv", "text/csv")
with st.expander("Write a finding of your own (not tied to one result)", expanded=not notes):
    note_form(db, key="findings_new", page="findings")
for note in notes:
    show_note(db, note, key="board")
