"""What defines a Training data view, mirrored in the page's address so that it is a share link."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from core.analyses.data_attribution.attribute import DEFAULT_METHODS
from core.analyses.data_attribution.registry import data_methods
from core.analyses.passages import PassageChoice

MAX_K = 50


@dataclass
class DataView:
    snapshot: int | None = None
    text: str = ""
    passage: PassageChoice = field(default_factory=PassageChoice)
    model: str = ""
    target: str = ""
    k: int = 10
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    problems: list[str] = field(default_factory=list, compare=False)

    def to_query(self) -> dict[str, str]:
        query: dict[str, str] = {"k": str(self.k), "methods": ",".join(self.methods)}
        if self.snapshot is not None:
            query |= {"snapshot": str(self.snapshot), "passage": self.passage.to_query()}
        else:
            query["text"] = self.text
        if self.model:
            query["model"] = self.model
        if self.target:
            query["target"] = self.target
        return query

    @classmethod
    def from_query(cls, query: dict[str, str]) -> DataView:
        """Parse an address; a malformed value falls back to its default and is named in `problems`."""
        view = cls(text=query.get("text", ""), model=query.get("model", ""), target=query.get("target", ""))
        if "snapshot" in query:
            if query["snapshot"].isdigit():
                view.snapshot = int(query["snapshot"])
                view.passage = PassageChoice.from_query(query.get("passage"))
            else:
                view.problems.append(f"The link's snapshot '{query['snapshot']}' is not a snapshot number.")
        if "k" in query:
            if query["k"].isdigit() and 1 <= int(query["k"]) <= MAX_K:
                view.k = int(query["k"])
            else:
                view.problems.append(f"The link's k '{query['k']}' is not a number from 1 to {MAX_K}; using 10.")
        if "methods" in query:
            names = [m for m in query["methods"].split(",") if m]
            unknown = [m for m in names if m not in data_methods()]
            if unknown:
                view.problems.append(f"The link names unknown training-data methods: {', '.join(unknown)}.")
            view.methods = [m for m in names if m in data_methods()] or list(DEFAULT_METHODS)
        return view

    def link(self) -> str:
        return "/Training_data?" + urlencode(self.to_query())


def compare_link(text: str, model: str = "") -> str:
    """Compare's address for one text (how every training example opens there)."""
    from core.analyses.compare import ViewState

    return "/Compare?" + urlencode(ViewState(text=text, model=model).to_query())
