"""What defines a Training data view, mirrored in the page's address so that it is a share link."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from core.analyses.passages import PassageChoice
from core.analyses.training_data.attribute import DEFAULT_METHODS
from core.analyses.training_data.registry import data_methods
from core.engine.catalogue import model_choices
from core.params import Param, read_query

MAX_K = 50
# What a Training data address may carry, parsed once (core/params.py).
VIEW_PARAMS = (
    Param("snapshot", "id", help="a snapshot's number"),
    Param("passage", "text", default="", max_length=64),
    Param("text", "text", default=""),
    Param("t", "text", default="", max_length=32, help="the key of a stored free text (core/storage/texts.py)"),
    Param("model", "choice", default="", choices=lambda: list(model_choices()), help="one of the server's models"),
    Param("target", "text", default="", max_length=300),
    Param("k", "int", default=10, minimum=1, maximum=MAX_K, help="training examples shown"),
    Param("methods", "names", default=None, choices=lambda: list(data_methods()), help="training-data methods"),
)


@dataclass
class DataView:
    snapshot: int | None = None
    text: str = ""
    passage: PassageChoice = field(default_factory=PassageChoice)
    model: str = ""
    target: str = ""
    k: int = 10
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    # The stored text's key (core/storage/texts.py): when set, the address names the text by it (`t=`) instead of
    # carrying the text; a page sets it once the text is stored.
    text_key: str = field(default="", compare=False)
    problems: list[str] = field(default_factory=list, compare=False)

    def to_query(self) -> dict[str, str]:
        query: dict[str, str] = {"k": str(self.k), "methods": ",".join(self.methods)}
        if self.snapshot is not None:
            query |= {"snapshot": str(self.snapshot), "passage": self.passage.to_query()}
        elif self.text_key:
            query["t"] = self.text_key
        else:
            query["text"] = self.text
        if self.model:
            query["model"] = self.model
        if self.target:
            query["target"] = self.target
        return query

    @classmethod
    def from_query(cls, query: dict[str, str]) -> DataView:
        """Parse an address (`VIEW_PARAMS`); a malformed value falls back to its default and is named in `problems`."""
        parsed = read_query(VIEW_PARAMS, query)
        view = cls(text=parsed["text"], model=parsed["model"], target=parsed["target"], k=parsed["k"],
                   methods=parsed["methods"] or list(DEFAULT_METHODS), problems=parsed.problems)
        view.snapshot = parsed["snapshot"]
        view.text_key = parsed["t"] if view.snapshot is None else ""
        if view.snapshot is not None:
            view.passage = PassageChoice.from_query(parsed["passage"])
        return view

    def link(self) -> str:
        return "/Training_data?" + urlencode(self.to_query())


def compare_link(text: str, model: str = "") -> str:
    """Compare's address for one text (how every training example opens there)."""
    from core.analyses.compare import ViewState

    return "/Compare?" + urlencode(ViewState(text=text, model=model).to_query())
