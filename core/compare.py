"""One comparison: every chosen method on one input, with agreement, faithfulness and attention checks.

The Compare page, the CLI and the share links all go through `run_comparison`, which reads
stored results where they exist, so a shared link reopens without recomputing.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlmodel import col, select

from core import agreement, attention_checks, faithfulness
from core.db import session_scope
from core.explainers import METHODS, ExplainError, get_method
from core.explanation import Explanation
from core.passages import PassageChoice
from core.runner import ModelRunner
from core.schema import Demo
from core.store import explain_stored

ProgressFn = Callable[[float, str], None]
DEFAULT_K = 5


class StopRequested(Exception):
    """The user pressed stop; finished methods are stored and kept."""


@dataclass
class ViewState:
    """Everything that defines a comparison view; mirrored into the page's query parameters."""

    snapshot: int | None = None
    text: str = ""
    passage: PassageChoice = field(default_factory=PassageChoice)
    model: str = ""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    target: str = ""
    k: int = DEFAULT_K

    def to_query(self) -> dict[str, str]:
        query: dict[str, str] = {"k": str(self.k), "methods": ",".join(self.methods)}
        if self.snapshot is not None:
            query["snapshot"] = str(self.snapshot)
            query["passage"] = self.passage.to_query()
        else:
            query["text"] = self.text
        if self.model:
            query["model"] = self.model
        if self.options:
            query["options"] = json.dumps(self.options, sort_keys=True, separators=(",", ":"))
        if self.target:
            query["target"] = self.target
        return query

    @classmethod
    def from_query(cls, query: dict[str, str]) -> ViewState:
        """Parse query parameters; malformed values fall back to defaults rather than failing."""
        state = cls()
        if query.get("snapshot", "").isdigit():
            state.snapshot = int(query["snapshot"])
            state.passage = PassageChoice.from_query(query.get("passage"))
        state.text = query.get("text", "")
        state.model = query.get("model", "")
        if query.get("methods"):
            state.methods = [m for m in query["methods"].split(",") if m in METHODS] or list(METHODS)
        try:
            options = json.loads(query.get("options") or "{}")
            state.options = {m: dict(v) for m, v in options.items() if m in METHODS and isinstance(v, dict)}
        except (ValueError, TypeError):
            state.options = {}
        state.target = query.get("target", "")
        k = query.get("k", "")
        state.k = int(k) if k.isdigit() and int(k) > 0 else DEFAULT_K
        return state


@dataclass
class Comparison:
    text: str
    explanations: list[Explanation]
    cached: dict[str, bool]
    k: int

    @property
    def methods(self) -> list[str]:
        return [e.method for e in self.explanations]

    @property
    def probabilities(self) -> dict[str, float]:
        return self.explanations[0].probabilities

    @property
    def predicted_label(self) -> str:
        return self.explanations[0].predicted_label

    @property
    def target(self) -> str:
        return self.explanations[0].target

    @property
    def truncated_words(self) -> int:
        return self.explanations[0].truncated_words

    @property
    def words(self) -> tuple[str, ...]:
        return self.explanations[0].words


def run_comparison(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
                   options: dict[str, dict[str, Any]] | None = None, target: str | None = None, k: int = DEFAULT_K,
                   *, fresh: bool = False, only_stored: bool = False, progress: Callable[[str, float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Comparison | None:
    """Explain `text` with every method in `methods` (stored results reused unless `fresh`).

    `only_stored=True` computes nothing and returns None unless every method has a stored result.
    """
    if not methods:
        raise ExplainError("Choose at least one method.")
    for name in methods:
        get_method(name)
    options = options or {}
    explanations, cached = [], {}
    for name in methods:
        if should_stop and should_stop():
            raise StopRequested(f"Stopped before {name}.")
        report = (lambda f, m, _n=name: progress(_n, f, m)) if progress else None
        stored = explain_stored(engine, runner, text, name, target or None, options.get(name), fresh=fresh,
                                only_stored=only_stored, progress=report)
        if stored is None:
            return None
        if report:
            report(1.0, "stored result" if stored.cached else f"{stored.explanation.seconds:.1f} s")
        explanations.append(stored.explanation)
        cached[name] = stored.cached
        target = stored.explanation.target  # later methods explain the same label
    return Comparison(text=explanations[0].text, explanations=explanations, cached=cached, k=k)


def normalised_rows(comparison: Comparison) -> np.ndarray:
    """Scores per method, each row divided by its largest |score| (so colours compare across rows)."""
    rows = np.array([e.scores for e in comparison.explanations], dtype=float)
    scale = np.abs(rows).max(axis=1, keepdims=True)
    return np.divide(rows, scale, out=np.zeros_like(rows), where=scale > 0)


def top_words(comparison: Comparison, k: int) -> dict[str, list[tuple[str, float]]]:
    return {e.method: [(e.words[i], e.scores[i]) for i in agreement.top_k(e.scores, k)]
            for e in comparison.explanations}


def matrices(comparison: Comparison, k: int) -> dict[str, np.ndarray]:
    return {name: agreement.agreement_matrix(comparison.explanations, name, k) for name in agreement.METRICS}


# -- written summary ---------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def summarise(comparison: Comparison, k: int, faith: Sequence[faithfulness.Faithfulness],
              attention_corr: Sequence[attention_checks.AttentionCorrelation],
              interventions: Sequence[attention_checks.Intervention], camp_threshold: float = 0.5) -> list[str]:
    """A plain-language account built only from numbers the page shows."""
    lines = []
    probs = comparison.probabilities
    label = comparison.predicted_label
    lines.append(f"The model predicts **{label}** with probability {probs[label]:.2f}"
                 + (f"; the methods explain **{comparison.target}**." if comparison.target != label else "."))
    tops = top_words(comparison, k)
    counts: dict[str, int] = {}
    for words in tops.values():
        for w, _ in words:
            counts[w] = counts.get(w, 0) + 1
    n = len(comparison.explanations)
    consensus = [w for w, c in sorted(counts.items(), key=lambda wc: -wc[1]) if c > n / 2]
    if consensus:
        lines.append(f"Most methods ({'more than half' if n > 2 else 'both'}) put "
                     + ", ".join(f"“{w}”" for w in consensus[:5]) + f" in their top {k}.")
    else:
        lines.append(f"No word is in the top {k} of more than half of the methods: they tell different stories.")
    fa = agreement.agreement_matrix(comparison.explanations, "feature_agreement", k)
    groups = agreement.camps(fa, comparison.methods, camp_threshold)
    if len(groups) > 1:
        lines.append(f"With feature agreement of at least {camp_threshold:.2f} at k={k}, the methods form "
                     f"{len(groups)} camps: " + "; ".join(", ".join(g) for g in groups) + ".")
    else:
        lines.append(f"All methods share at least {camp_threshold:.2f} feature agreement at k={k} with some other method.")
    real = [f for f in faith if f.method != faithfulness.RANDOM_NAME]
    random_ref = next((f for f in faith if f.method == faithfulness.RANDOM_NAME), None)
    if real:
        best = max(real, key=lambda f: f.aopc_comprehensiveness)
        suff = min(real, key=lambda f: f.aopc_sufficiency)
        text = (f"Removing its top words moves the prediction most for **{best.method}** "
                f"(comprehensiveness AOPC {_fmt(best.aopc_comprehensiveness)}")
        if random_ref:
            text += f", against {_fmt(random_ref.aopc_comprehensiveness)} for a random ranking"
        lines.append(text + f"); keeping only its top words preserves the prediction best for **{suff.method}** "
                     f"(sufficiency AOPC {_fmt(suff.aopc_sufficiency)}).")
        if random_ref:
            worse = [f.method for f in real if f.aopc_comprehensiveness <= random_ref.aopc_comprehensiveness]
            if worse:
                lines.append("No better than random at finding the words the prediction depends on: "
                             + ", ".join(worse) + ".")
    if attention_corr:
        strongest = max(attention_corr, key=lambda c: -1 if math.isnan(c.spearman) else c.spearman)
        lines.append(f"Attention and gradient/erasure scores agree at most at Spearman {_fmt(strongest.spearman)} "
                     f"({strongest.attention_method} vs {strongest.reference_method}).")
    if interventions:
        biggest = max(interventions, key=lambda i: i.total_variation)
        flips = sum(i.label_flipped for i in interventions)
        lines.append(f"Replacing one layer's attention moves the prediction by up to {_fmt(biggest.total_variation)} "
                     f"(total variation, layer {biggest.layer}, {biggest.mode}); {flips} of {len(interventions)} "
                     "interventions change the predicted label.")
    return lines


# -- export ---------------------------------------------------------------------------------------------
def to_json(comparison: Comparison, k: int, faith: Sequence[faithfulness.Faithfulness] = ()) -> str:
    mats = matrices(comparison, k)
    return json.dumps({
        "text": comparison.text, "target": comparison.target, "prediction": comparison.probabilities, "k": k,
        "explanations": [e.to_dict() for e in comparison.explanations],
        "agreement": {name: {"methods": comparison.methods,
                             "matrix": [[None if math.isnan(v) else v for v in row] for row in m.tolist()]}
                      for name, m in mats.items()},
        "faithfulness": [{**asdict(f), "comprehensiveness": {str(k_): v for k_, v in f.comprehensiveness.items()},
                          "sufficiency": {str(k_): v for k_, v in f.sufficiency.items()}} for f in faith],
    }, ensure_ascii=False, indent=2)


def to_csv(comparison: Comparison) -> str:
    """One row per word, one column per method (raw scores)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "word", "start", "end", *comparison.methods])
    first = comparison.explanations[0]
    for i, (word, (start, end)) in enumerate(zip(first.words, first.offsets, strict=True)):
        writer.writerow([i, word, start, end, *(e.scores[i] for e in comparison.explanations)])
    return buffer.getvalue()


def metrics_csv(comparison: Comparison, k: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "method_a", "method_b", "value"])
    for name, m in matrices(comparison, k).items():
        for i, a in enumerate(comparison.methods):
            for j, b in enumerate(comparison.methods):
                if i < j:
                    writer.writerow([name, a, b, "" if math.isnan(m[i, j]) else m[i, j]])
    return buffer.getvalue()


# -- demos ------------------------------------------------------------------------------------------------
def save_demo(engine: Engine, name: str, note: str, state: ViewState) -> Demo:
    name = name.strip()
    if not name:
        raise ExplainError("Give the demo a name.")
    with session_scope(engine) as session:
        demo = session.exec(select(Demo).where(Demo.name == name)).first() or Demo(name=name, query="")
        demo.note = note
        demo.query = json.dumps(state.to_query(), sort_keys=True)
        session.add(demo)
        session.flush()
        return demo


def list_demos(engine: Engine) -> list[Demo]:
    with session_scope(engine) as session:
        return list(session.exec(select(Demo).order_by(col(Demo.created_at).desc())).all())


def get_demo(engine: Engine, demo_id: int) -> Demo | None:
    with session_scope(engine) as session:
        return session.get(Demo, demo_id)
