"""Notes and verdicts: what a person concluded about a stored result (or on their own: a finding), with its author.

A note points at a result by kind and id (`snapshot:12`, `comparison:40`, `method:40:shap`, ...); it lives in its
own table, so recomputing the result never touches it. Only its author edits it. Markdown in a note is rendered
through `core.render.note_markdown` (no raw HTML, no remote images).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, or_
from sqlmodel import col, select

from core.storage.db import session_scope
from core.storage.people import current_person
from core.storage.schema import CheckRecord, ComparisonReportRecord, CorpusJob, Note, Snapshot, utcnow

VERDICTS: dict[str, str] = {
    "method_trustworthy": "method trustworthy here",
    "model_error_data": "model error: data",
    "model_error_spurious": "model error: spurious feature",
    "label_wrong": "label wrong",
    "needs_review": "needs another look",
}
# What a note can be about, and the table whose row a plain id names (composite ids are checked for shape only).
REF_KINDS: dict[str, type | None] = {
    "snapshot": Snapshot, "comparison": ComparisonReportRecord, "method": None, "error_group": None,
    "training_example": None, "counterfactual": None, "check": CheckRecord, "corpus_run": CorpusJob,
    "evaluation": CorpusJob,
}
MAX_TEXT = 20_000


class NoteError(ValueError):
    """A note that cannot be stored as asked (empty, unknown verdict or reference, not the author)."""


@dataclass(frozen=True)
class NoteView:
    id: int
    author: str
    text: str
    verdict: str
    method: str
    ref_kind: str
    ref_id: str
    model: str
    page: str
    address: str
    tags: list[str]
    created_at: str
    updated_at: str | None

    @property
    def ref(self) -> str:
        return f"{self.ref_kind}:{self.ref_id}" if self.ref_kind else ""

    @property
    def verdict_text(self) -> str:
        if not self.verdict:
            return ""
        label = VERDICTS[self.verdict]
        return f"{self.method}: {label}" if self.verdict == "method_trustworthy" else label

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ref": self.ref, "verdict_text": self.verdict_text}

    @classmethod
    def from_row(cls, row: Note) -> NoteView:
        return cls(row.id, row.author, row.text, row.verdict, row.method, row.ref_kind, row.ref_id, row.model,
                   row.page, row.address, [t for t in row.tags.split(",") if t], _iso(row.created_at),
                   _iso(row.updated_at) if row.updated_at else None)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def parse_ref(ref: str) -> tuple[str, str]:
    """`KIND:ID` as (kind, id); "" is a note on its own."""
    ref = (ref or "").strip()
    if not ref:
        return "", ""
    kind, _, ident = ref.partition(":")
    if kind not in REF_KINDS:
        raise NoteError(f"A note is on KIND:ID with KIND one of {', '.join(REF_KINDS)}, not '{ref[:60]}'.")
    if not ident or len(ident) > 200 or any(ord(c) < 32 for c in ident):
        raise NoteError(f"'{ref[:60]}' names no {kind}: give KIND:ID, e.g. {kind}:12.")
    return kind, ident


def _check(engine: Engine, text: str, verdict: str, method: str, ref_kind: str, ref_id: str) -> None:
    if not text.strip():
        raise NoteError("A note needs some text.")
    if len(text) > MAX_TEXT:
        raise NoteError(f"A note is at most {MAX_TEXT:,} characters.")
    if verdict and verdict not in VERDICTS:
        raise NoteError(f"The verdict must be one of {', '.join(VERDICTS)}, not '{verdict[:40]}'.")
    if verdict == "method_trustworthy" and not method:
        raise NoteError("The verdict method_trustworthy needs the method (--method).")
    table = REF_KINDS.get(ref_kind)
    if table is not None:
        if not ref_id.isdigit():
            raise NoteError(f"A {ref_kind} is named by its number, not '{ref_id[:40]}'.")
        with session_scope(engine) as session:
            row = session.get(table, int(ref_id))
            # An evaluation is a corpus job with no methods (core/analyses/corpus/results.py `is_evaluation`).
            wrong_job = isinstance(row, CorpusJob) and (ref_kind == "evaluation") != (row.methods in ("", "[]"))
            if row is None or wrong_job:
                raise NoteError(f"There is no {ref_kind} {ref_id}.")


def add_note(engine: Engine, text: str, *, verdict: str = "", method: str = "", ref: str = "", model: str = "",
             page: str = "", address: str = "", tags: tuple[str, ...] = ()) -> NoteView:
    """Store a note by the current person (core/storage/people.py)."""
    ref_kind, ref_id = parse_ref(ref)
    _check(engine, text, verdict, method, ref_kind, ref_id)
    with session_scope(engine) as session:
        row = Note(author=current_person(), text=text, verdict=verdict, method=method if verdict else "",
                   ref_kind=ref_kind, ref_id=ref_id, model=model, page=page, address=address,
                   tags=",".join(t.strip() for t in tags if t.strip()))
        session.add(row)
        session.flush()
        return NoteView.from_row(row)


def edit_note(engine: Engine, note_id: int, *, text: str | None = None, verdict: str | None = None,
              method: str | None = None) -> NoteView:
    """Change a note's text or verdict: only its author may."""
    with session_scope(engine) as session:
        row = session.get(Note, note_id)
        if row is None:
            raise NoteError(f"There is no note {note_id}.")
        if row.author != current_person():
            raise NoteError(f"Note {note_id} is {row.author}'s: only its author can edit it.")
        new_text = row.text if text is None else text
        new_verdict = row.verdict if verdict is None else verdict
        new_method = row.method if method is None else method
        _check(engine, new_text, new_verdict, new_method, "", "")
        row.text, row.verdict, row.method, row.updated_at = new_text, new_verdict, new_method, utcnow()
        session.add(row)
        session.flush()
        return NoteView.from_row(row)


def list_notes(engine: Engine, *, person: str = "", verdict: str = "", tag: str = "", model: str = "", page: str = "",
               ref: str = "", refs: tuple[str, ...] = (), limit: int = 500) -> list[NoteView]:
    """Notes newest first, filtered by author, verdict, tag, model, page or the result they are on (`ref`, or
    any of `refs`: a comparison and the methods within it)."""
    with session_scope(engine) as session:
        statement = select(Note).order_by(col(Note.id).desc())
        if person:
            statement = statement.where(Note.author == person)
        if verdict:
            statement = statement.where(Note.verdict == verdict)
        if model:
            statement = statement.where(Note.model == model)
        if page:
            statement = statement.where(Note.page == page)
        if pairs := [parse_ref(r) for r in ((ref,) if ref else ()) + tuple(refs)]:
            statement = statement.where(or_(*(and_(Note.ref_kind == kind, Note.ref_id == ident) for kind, ident in pairs)))
        notes = [NoteView.from_row(r) for r in session.exec(statement).all()]
    if tag:
        notes = [n for n in notes if tag in n.tags]
    return notes[:limit]


def people(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return sorted(set(session.exec(select(Note.author)).all()))


def to_markdown(notes: list[NoteView]) -> str:
    """The notes as a Markdown document (each note's own Markdown quoted as written)."""
    lines = ["# Findings", ""]
    for note in notes:
        about = f" on {note.ref}" if note.ref else ""
        verdict = f" — **{note.verdict_text}**" if note.verdict else ""
        lines.append(f"## Note {note.id}: {note.author}, {note.created_at}{about}{verdict}")
        if note.address:
            lines.append(f"Opens: {note.address}")
        lines += ["", *[f"> {line}" for line in note.text.splitlines()], ""]
    return "\n".join(lines) + "\n"


def to_csv(notes: list[NoteView]) -> str:
    columns = ["id", "author", "created_at", "updated_at", "verdict", "method", "ref", "model", "page", "tags",
               "address", "text"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for note in notes:
        data = note.to_dict()
        writer.writerow([",".join(data[c]) if c == "tags" else data[c] for c in columns])
    return out.getvalue()
