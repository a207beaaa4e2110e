"""Each page's address: the query parameters it reads, declared once (core/params.py parses them).

The pages read their parameters through `read_query(PAGE_PARAMS[page], ...)`; the fuzz tests send hostile
values for every parameter listed here, so a new parameter is declared here and fuzzed with no more code.
"""

from __future__ import annotations

from core.analyses.compare import VIEW_PARAMS as COMPARE_PARAMS
from core.analyses.training_data.view import VIEW_PARAMS as TRAINING_DATA_PARAMS
from core.methods.registry import METHODS
from core.params import Param


def model_names() -> list[str]:
    from core.engine.catalogue import model_choices

    return list(model_choices())


MODEL = Param("model", "choice", default="", choices=model_names, help="one of the server's models, by name")
DOCUMENT_PARAMS = (
    Param("snapshot", "id", help="the snapshot explained"),
    Param("methods", "names", default=None, choices=lambda: list(METHODS)),
    Param("window", "int", default=None, minimum=8, maximum=8192, help="tokens per window"),
    Param("target", "text", default="", max_length=300),
    MODEL,
)
CHECKS_PARAMS = (
    Param("stability", "id", help="a stored stability check"),
    Param("randomisation", "id", help="a stored randomisation check"),
    Param("stability_task", "id", help="the task computing a stability check"),
    Param("randomisation_task", "id", help="the task computing a randomisation check"),
)
MODELS_PARAMS = (
    Param("a", "choice", default="", choices=model_names, help="model A, by name"),
    Param("b", "choice", default="", choices=model_names, help="model B, by name"),
    Param("limit", "int", default=2000, minimum=1, maximum=2000, help="held-out rows"),
    Param("text", "text", default=""),
)
def _verdicts() -> list[str]:
    from core.storage.notes import VERDICTS

    return list(VERDICTS)


FINDINGS_PARAMS = (
    Param("person", "text", default="", max_length=120, help="notes by this person"),
    Param("verdict", "choice", default="", choices=_verdicts, help="notes with this verdict"),
    Param("tag", "text", default="", max_length=80),
    Param("model", "text", default="", max_length=300),
    Param("page", "text", default="", max_length=80),
    Param("ref", "text", default="", max_length=220, help="notes on one result, KIND:ID"),
)
PAGE_PARAMS: dict[str, tuple[Param, ...]] = {
    "pages/home.py": (),
    "pages/snapshots.py": (Param("link", "id", help="the link shown"),),
    "pages/compare.py": (*COMPARE_PARAMS, Param("demo", "id", help="a saved view")),
    "pages/document.py": DOCUMENT_PARAMS,
    "pages/corpus.py": (Param("job", "id", help="the corpus run shown"),),
    "pages/evaluation.py": (Param("job", "id", help="the evaluation shown"),),
    "pages/training_data.py": TRAINING_DATA_PARAMS,
    "pages/models.py": MODELS_PARAMS,
    "pages/checks.py": CHECKS_PARAMS,
    "pages/findings.py": FINDINGS_PARAMS,
}


def note_address(engine, kind: str, ident: str) -> str:
    """The page address that shows a note's result (relative, e.g. `Corpus?job=3`), or "" when none does."""
    import json
    from urllib.parse import urlencode

    from core.storage.db import session_scope
    from core.storage.schema import ComparisonReportRecord
    from core.storage.texts import remember_text

    if kind == "snapshot":
        return f"Compare?snapshot={ident}"
    if kind in ("corpus_run", "evaluation"):
        return f"{'Corpus' if kind == 'corpus_run' else 'Evaluation'}?job={ident}"
    if kind in ("comparison", "method"):
        number = ident.split(":", 1)[0]
        if not number.isdigit():
            return ""
        with session_scope(engine) as session:
            row = session.get(ComparisonReportRecord, int(number))
            payload = json.loads(row.payload) if row is not None else None
        if payload is None:
            return ""
        methods = ",".join(e["method"] for e in payload["explanations"])
        return "Compare?" + urlencode({"t": remember_text(engine, payload["text"]), "methods": methods})
    return ""
