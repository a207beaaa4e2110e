"""Choosing a corpus run's inputs: passages of tagged snapshots, or rows of an uploaded CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from core.analyses.passages import paragraphs, sentences
from core.library.snapshots import latest_good_snapshot, list_links
from core.spreadsheet import original

MAX_ROWS = 100_000  # texts one upload may have: an upload is parsed in the server's memory


class CorpusError(ValueError):
    """Bad input to a corpus run (no inputs, a missing column, an unknown job)."""


@dataclass(frozen=True)
class Input:
    origin: str  # where it came from, for people: "snapshot 3, passage 2", "csv row 17"
    text: str
    gold_label: str = ""


def split_into_passages(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Paragraphs the model can read whole; a paragraph that does not fit is cut at sentence ends."""
    out = []
    for paragraph in paragraphs(text):
        if fits(paragraph):
            out.append(paragraph)
            continue
        chunk = ""
        for sentence in sentences(paragraph):
            candidate = f"{chunk} {sentence}".strip()
            if chunk and not fits(candidate):
                out.append(chunk)
                chunk = sentence
            else:
                chunk = candidate
        if chunk:
            out.append(chunk)  # a single over-long sentence is kept; the runner truncates it visibly
    return out


def inputs_from_snapshots(engine: Engine, tags: Sequence[str], fits: Callable[[str], bool]) -> list[Input]:
    inputs = []
    for view in list_links(engine, tags_any=tags):
        snap = latest_good_snapshot(engine, view.id)
        if snap is None:
            continue
        for i, passage in enumerate(split_into_passages(snap.text, fits)):
            inputs.append(Input(f"snapshot {snap.id}, passage {i + 1}", passage))
    return inputs


def inputs_from_csv(content: str, text_column: str = "text", label_column: str = "") -> list[Input]:
    reader = csv.DictReader(io.StringIO(content))
    if reader.fieldnames is None or text_column not in reader.fieldnames:
        raise CorpusError(f"The CSV has no column '{text_column}' (columns: {', '.join(reader.fieldnames or [])}).")
    rows = []
    for n, row in enumerate(reader, start=2):
        if len(rows) >= MAX_ROWS:
            raise CorpusError(f"The CSV has more than {MAX_ROWS:,} texts, the most one upload may have; split it.")
        text = original((row.get(text_column) or "").strip())
        if text:
            rows.append(Input(f"csv row {n}", text, (row.get(label_column) or "").strip() if label_column else ""))
    if not rows:
        raise CorpusError("The CSV has no non-empty texts.")
    return rows
