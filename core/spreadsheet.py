"""CSV cells that a spreadsheet will not run: a text cell beginning with = + - @ (or a tab or carriage return)
is a formula to Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)` in a page title, a tweet, a training
row). Such a cell is written with a leading apostrophe, which spreadsheets show as text; reading Rashomon's own
CSV back (an error group as extra training rows) takes the apostrophe off again."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """`value` as a CSV cell a spreadsheet shows as written."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def original(value: str) -> str:
    """The text a neutralised cell stood for (other text unchanged)."""
    return value[1:] if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_STARTS) else value


class SafeWriter:
    """csv.writer whose rows are neutralised cell by cell."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])


class SafeDictWriter(csv.DictWriter):
    """csv.DictWriter whose values are neutralised (the header is Rashomon's own)."""

    def writerow(self, rowdict: dict[str, Any]) -> Any:
        return super().writerow({key: cell(value) for key, value in rowdict.items()})
