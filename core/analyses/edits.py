"""Edits that flip the prediction: a beam search over word deletions and substitutions.

Counterfactuals (what would have to change for the model to decide otherwise; after Polyjuice, Wu et
al. 2021, and MiCE, Ross et al. 2021) and adversarial attacks (meaning-preserving edits that change
the decision; TextFooler, Jin et al. 2020; HotFlip, Ebrahimi et al. 2018) are the same search with
different goals: reach a chosen label, or leave the predicted one.

The search, as in TextFooler: rank the words (by how much deleting each alone moves the goal, or by
an attribution method's scores: "edit the words it calls important first"), take the top
`positions`, and for each consider deleting it or swapping it for one of its nearest words in the
classifier's embedding space (`core.analyses.substitutes`). Instead of TextFooler's single greedy path it
keeps a beam of the best `beam` edit sets per number of edited words, so several different minimal
edits are found. An edit set counts when the model predicts the goal label and the edited text's
sentence-embedding similarity to the original (`core.analyses.sentence_similarity`) is at least `similarity`;
supersets of an edit set already found are never reported (they are not minimal). Every
counterfactual returned is run through the model once more, uncached, and dropped if the re-run
disagrees; the passes of that check are counted too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from core.analyses.sentence_similarity import ENCODER_NAME, SentenceEncoder, default_encoder
from core.analyses.substitutes import substitutes_for
from core.engine.runner import ModelRunner
from core.explanation import split_words
from core.methods.base import ExplainError, Option
from core.words import needs_segmenting

SEARCH = "search"  # rank edit positions by the search's own leave-one-out deletions
ANY_OTHER = "any other"  # the attack goal: any label but the predicted one

OPTIONS: tuple[Option, ...] = (
    Option("max_edits", "int", 3, "Most words one counterfactual may change (deleted or swapped).", minimum=1, maximum=10),
    Option("similarity", "float", 0.8, f"Least cosine similarity of the edited text to the original ({ENCODER_NAME} "
           "sentence embeddings).", minimum=0.0, maximum=1.0),
    Option("count", "int", 5, "Most counterfactuals to return.", minimum=1, maximum=20),
    Option("positions", "int", 10, "Words the search may edit: the top of the ranking.", minimum=1, maximum=64),
    Option("substitutes", "int", 8, "Replacement words tried per position (nearest in the model's embeddings).",
           minimum=0, maximum=50),
    Option("beam", "int", 4, "Edit sets kept per number of edited words.", minimum=1, maximum=20),
    Option("budget", "int", 6000, "Most model queries the search may make (cache hits included).",
           minimum=50, maximum=200_000),
)
_OPTIONS = {o.name: o for o in OPTIONS}

CHUNK = 96  # edit sets per model call within one search level

SearchProgress = Callable[[float, str], None]


def resolve_options(params: dict[str, Any] | None) -> dict[str, Any]:
    """Every search option, the given ones checked and coerced; unknown names are refused."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(_OPTIONS))
    if unknown:
        raise ExplainError(f"The counterfactual search has no option {', '.join(unknown)}; "
                           f"it takes {', '.join(_OPTIONS)}.")
    return {name: option.coerce(params.get(name, option.default)) for name, option in _OPTIONS.items()}


@dataclass(frozen=True)
class Edit:
    """One word changed: deleted (`replacement` empty) or swapped."""

    position: int  # index of the word in `split_words(text)`
    original: str
    replacement: str
    start: int
    end: int

    @property
    def kind(self) -> str:
        return "delete" if not self.replacement else "swap"


@dataclass(frozen=True)
class Counterfactual:
    text: str
    edits: tuple[Edit, ...]
    probabilities: dict[str, float]  # from the uncached re-run
    label: str  # what the model predicts for `text`
    similarity: float
    diff: tuple[tuple[str, str], ...]  # ("same" | "deleted" | "inserted", text)
    found_after_seconds: float
    found_after_passes: int

    @property
    def positions(self) -> frozenset[int]:
        return frozenset(e.position for e in self.edits)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["edits"] = [asdict(e) for e in self.edits]
        data["diff"] = [list(d) for d in self.diff]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counterfactual:
        return cls(**{**data, "edits": tuple(Edit(**e) for e in data["edits"]),
                      "diff": tuple(tuple(d) for d in data["diff"])})


@dataclass(frozen=True)
class Variant:
    """An evaluated edit that kept the prediction and the meaning (for the fragility check)."""

    text: str
    edits: tuple[Edit, ...]
    similarity: float
    label: str


@dataclass(frozen=True)
class SearchResult:
    text: str
    words: tuple[str, ...]
    probabilities: dict[str, float]
    predicted: str
    goal: str  # a label, or ANY_OTHER
    order: str  # SEARCH or the method whose ranking chose the positions
    ranking: tuple[int, ...]  # word positions the search could edit, in the order tried
    counterfactuals: tuple[Counterfactual, ...]
    params: dict[str, Any]
    seconds: float
    forward_passes: int
    queries: int  # model queries asked for, cache hits included
    first_seconds: float | None
    first_passes: int | None
    stopped: str  # why the search ended
    unverified: int = 0  # found, then not confirmed by the uncached re-run (dropped)
    kept: tuple[Variant, ...] = field(default=())
    sample: bool = False  # computed for the sample workspace (core/work/samples.py)
    # "" when the similarity bound was applied; otherwise why it could not be (similarities are then NaN)
    similarity_unavailable: str = ""

    @property
    def found(self) -> bool:
        return bool(self.counterfactuals)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counterfactuals"] = [c.to_dict() for c in self.counterfactuals]
        data["kept"] = [{**asdict(v), "edits": [asdict(e) for e in v.edits]} for v in self.kept]
        data["words"], data["ranking"] = list(self.words), list(self.ranking)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        return cls(**{**data, "words": tuple(data["words"]), "ranking": tuple(data["ranking"]),
                      "counterfactuals": tuple(Counterfactual.from_dict(c) for c in data["counterfactuals"]),
                      "kept": tuple(Variant(**{**v, "edits": tuple(Edit(**e) for e in v["edits"])})
                                    for v in data.get("kept", []))})


# -- applying edits ----------------------------------------------------------------------------------------
def _deleted_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A deleted word takes one neighbouring space with it, so no double space is left behind."""
    if end < len(text) and text[end] == " ":
        return start, end + 1
    if start > 0 and text[start - 1] == " ":
        return start - 1, end
    return start, end


def apply_edits(text: str, edits: Sequence[Edit]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(edited text, diff): joining the "same" and "inserted" parts gives the edited text, the "same"
    and "deleted" parts the original."""
    diff: list[tuple[str, str]] = []
    cursor = 0
    for edit in sorted(edits, key=lambda e: e.start):
        start, end = _deleted_span(text, edit.start, edit.end) if edit.kind == "delete" else (edit.start, edit.end)
        start = max(start, cursor)  # two adjacent deletions never claim the same space twice
        if start > cursor:
            diff.append(("same", text[cursor:start]))
        diff.append(("deleted", text[start:end]))
        if edit.replacement:
            diff.append(("inserted", edit.replacement))
        cursor = end
    if cursor < len(text):
        diff.append(("same", text[cursor:]))
    edited = "".join(part for kind, part in diff if kind != "deleted")
    return edited, tuple(diff)


# -- the search ------------------------------------------------------------------------------------------------
def _goal_margin(probabilities: np.ndarray, goal: int | None, predicted: int) -> np.ndarray:
    """How far each row is from reaching the goal: > 0 once the model predicts it."""
    if goal is None:  # any label but the predicted one
        others = probabilities.copy()
        others[:, predicted] = -np.inf
        return others.max(axis=1) - probabilities[:, predicted]
    rest = probabilities.copy()
    rest[:, goal] = -np.inf
    return probabilities[:, goal] - rest.max(axis=1)


class _Found(NamedTuple):
    """A flipping edit set as the search met it (before the uncached re-check)."""

    edits: tuple[Edit, ...]
    text: str
    similarity: float
    seconds: float  # since the search started
    passes: int  # model passes since the search started

    @property
    def positions(self) -> frozenset[int]:
        return frozenset(e.position for e in self.edits)


def _subset_of_any(positions: frozenset[int], found: Sequence[frozenset[int]]) -> bool:
    return any(f < positions for f in found)  # strict: other swaps at the same positions are minimal too


def search(runner: ModelRunner, text: str, target: str | None = None, *, order: str = SEARCH,
           ranking_scores: Sequence[float] | None = None, params: dict[str, Any] | None = None,
           encoder: SentenceEncoder | None = None, progress: SearchProgress | None = None) -> SearchResult:
    """Search for minimal word edits that make the model predict `target`.

    `target`: a label other than the predicted one (default: the most probable other label), or
    `ANY_OTHER` for an attack. `order`: `SEARCH`, or the name of the method whose word scores for the
    predicted label (`ranking_scores`, one per word of `split_words(text)`) pick the positions.
    """
    options = resolve_options(params)
    progress = progress or (lambda fraction, message: None)
    started, passes_before, queries_before = time.perf_counter(), runner.forward_passes, runner.evaluations
    prepared = runner.prepare(text)
    text = prepared.text
    words = split_words(text)
    if not words:
        raise ExplainError("The text has no words to edit.")
    labels = runner.loaded.labels
    original = runner.probabilities([prepared.input_ids])[0]
    predicted = int(np.argmax(original))
    if target in (None, ""):
        goal: int | None = int(np.argsort(-original)[1]) if len(labels) > 1 else None
    elif target == ANY_OTHER:
        goal = None
    elif target in labels:
        goal = labels.index(target)
    else:
        raise ExplainError(f"Unknown target label '{target}'; the model's labels are {', '.join(labels)}.")
    if goal == predicted:
        raise ExplainError(f"The model already predicts {labels[goal]}: choose another target label.")
    goal_name = ANY_OTHER if goal is None else labels[goal]
    unavailable = similarity_unavailable(text)
    encoder = _Unmeasured() if unavailable else (encoder or default_encoder())
    substitutes = substitutes_for(runner.loaded)

    editable = [i for i, (word, _, _) in enumerate(words) if word[:1].isalnum()]
    if not editable:
        raise ExplainError("The text has no words to edit (only punctuation or symbols).")

    def margins(edit_sets: Sequence[tuple[Edit, ...]]) -> tuple[list[str], np.ndarray]:
        texts = [apply_edits(text, edits)[0] for edits in edit_sets]
        probabilities = runner.probabilities_for_texts(texts) if texts else np.zeros((0, len(labels)))
        return texts, probabilities

    def edit_at(position: int, replacement: str) -> Edit:
        word, start, end = words[position]
        return Edit(position, word, replacement, start, end)

    # Positions: the search's own leave-one-out deletion (one query per word), or a method's ranking.
    if ranking_scores is not None:
        if len(ranking_scores) != len(words):
            raise ExplainError(f"The ranking has {len(ranking_scores)} scores for {len(words)} words.")
        ranked = sorted(editable, key=lambda i: (-float(ranking_scores[i]), i))
    else:
        _, deleted = margins([(edit_at(i, ""),) for i in editable])
        gain = _goal_margin(deleted, goal, predicted)
        ranked = [editable[j] for j in sorted(range(len(editable)), key=lambda j: (-gain[j], j))]
    ranked = ranked[: options["positions"]]
    candidates = {p: ["", *substitutes.for_word(words[p][0], options["substitutes"])] for p in ranked}

    found: list[_Found] = []
    kept: list[Variant] = []
    beam: list[tuple[Edit, ...]] = [()]
    stopped = f"tried every edit of up to {options['max_edits']} words"
    budget = options["budget"]
    for size in range(1, options["max_edits"] + 1):
        seen: set[frozenset[tuple[int, str]]] = set()
        found_positions = [f.positions for f in found]
        expansions: list[tuple[Edit, ...]] = []
        for state in beam:
            used = {e.position for e in state}
            for position in ranked:
                if position in used:
                    continue
                for replacement in candidates[position]:
                    edits = (*state, edit_at(position, replacement))
                    key = frozenset((e.position, e.replacement) for e in edits)
                    if key not in seen and not _subset_of_any(frozenset(e.position for e in edits), found_positions):
                        seen.add(key)
                        expansions.append(edits)
        left = budget - (runner.evaluations - queries_before)
        if left <= 0:
            stopped = f"query budget of {budget} spent"
            break
        if len(expansions) > left:
            expansions, stopped = expansions[:left], f"query budget of {budget} spent"
        if not expansions:
            stopped = "no edits left to try"
            break
        # In chunks, best beam state and best-ranked position first, so the first flip is reported early.
        texts, rows = [], []
        for chunk_start in range(0, len(expansions), CHUNK):
            chunk = expansions[chunk_start : chunk_start + CHUNK]
            chunk_texts, chunk_probabilities = margins(chunk)
            chunk_margin = _goal_margin(chunk_probabilities, goal, predicted)
            flips = [int(i) for i in np.argsort(-chunk_margin, kind="stable") if chunk_margin[i] > 0]
            similarity = encoder.similarity(text, [chunk_texts[i] for i in flips])
            for i, sim in zip(flips, similarity, strict=True):
                positions = frozenset(e.position for e in chunk[i])
                if (unavailable or sim >= options["similarity"]) and not _subset_of_any(positions, found_positions):
                    found.append(_Found(chunk[i], chunk_texts[i], float(sim), time.perf_counter() - started,
                                        runner.forward_passes - passes_before))
                    found_positions.append(positions)
            texts += chunk_texts
            rows.append(chunk_probabilities)
            progress((size - 1 + (chunk_start + len(chunk)) / len(expansions)) / options["max_edits"],
                     f"{size} word(s) edited: {len(found)} counterfactual(s), "
                     f"{runner.evaluations - queries_before} queries")
        probabilities = np.concatenate(rows)
        margin = _goal_margin(probabilities, goal, predicted)
        order_by_margin = np.argsort(-margin, kind="stable")
        # The next beam: the best non-flipping edit sets that keep the text close enough, one per set of
        # positions (different replacements at the same positions are not different paths).
        beam, beam_positions = [], set()
        rest = [int(i) for i in order_by_margin if margin[i] <= 0]
        for chunk_start in range(0, len(rest), 4 * options["beam"]):
            chunk = rest[chunk_start : chunk_start + 4 * options["beam"]]
            similarity = encoder.similarity(text, [texts[i] for i in chunk])
            for i, sim in zip(chunk, similarity, strict=True):
                positions = frozenset(e.position for e in expansions[i])
                if (not unavailable and sim < options["similarity"]) or positions in beam_positions:
                    continue
                beam.append(expansions[i])
                beam_positions.add(positions)
                if len(kept) < 8 and all(e.kind == "swap" for e in expansions[i]) \
                        and int(np.argmax(probabilities[i])) == predicted:
                    kept.append(Variant(texts[i], expansions[i], float(sim), labels[predicted]))
                if len(beam) >= options["beam"]:
                    break
            if len(beam) >= options["beam"]:
                break
        if stopped.startswith("query budget"):
            break
        if len(found) >= options["count"]:
            stopped = f"{len(found)} flipping edit sets found with {size} or fewer edited words"
            break
        if not beam:
            stopped = "no edit set left within the similarity bound"
            break

    chosen = _diverse(found, options["count"])
    verified, unverified = _verify(runner, text, chosen, labels, goal, predicted)
    progress(1.0, f"{len(verified)} counterfactual(s)")
    first = min(verified, key=lambda c: c.found_after_seconds) if verified else None
    return SearchResult(
        text=text, words=tuple(w for w, _, _ in words),
        probabilities={label: float(p) for label, p in zip(labels, original, strict=True)},
        predicted=labels[predicted], goal=goal_name, order=order, ranking=tuple(ranked),
        counterfactuals=tuple(verified), params=options, seconds=time.perf_counter() - started,
        forward_passes=runner.forward_passes - passes_before, queries=runner.evaluations - queries_before,
        first_seconds=first.found_after_seconds if first else None,
        first_passes=first.found_after_passes if first else None,
        stopped=stopped, unverified=unverified, kept=tuple(kept), similarity_unavailable=unavailable)


def _diverse(found: list[_Found], count: int) -> list[_Found]:
    """Fewest edits first, then the most similar; a new set of positions before a repeat of one."""
    ranked = sorted(found, key=_closest_first)
    chosen, positions_seen = [], set()
    for entry in ranked:
        if entry.positions not in positions_seen:
            chosen.append(entry)
            positions_seen.add(entry.positions)
    chosen += [entry for entry in ranked if entry not in chosen][: max(0, count - len(chosen))]
    return sorted(chosen[:count], key=_closest_first)


def _closest_first(found: _Found) -> tuple[int, float, float]:
    similarity = found.similarity if not math.isnan(found.similarity) else 0.0  # unmeasured: by edits and time
    return len(found.edits), -similarity, found.seconds


def similarity_unavailable(text: str) -> str:
    """Why the sentence-similarity bound cannot be applied to edits of `text` ("" when it can): the encoder
    reads English only, and a bound computed on Chinese or Japanese by it would be silently meaningless."""
    if needs_segmenting(text):
        return (f"not applied: the sentence encoder ({ENCODER_NAME}) reads English only, so how similar a Chinese "
                "or Japanese edit stays cannot be measured here; edits are limited by their number only")
    return ""


class _Unmeasured:
    """Stands in for the sentence encoder where it cannot read the text: every similarity is unknown (NaN)."""

    def similarity(self, original: str, others: Sequence[str]) -> np.ndarray:
        return np.full(len(others), np.nan)


def _verify(runner: ModelRunner, text: str, chosen: list[_Found], labels: list[str], goal: int | None,
            predicted: int) -> tuple[list[Counterfactual], int]:
    """Run every chosen edit once more through the model, bypassing the cache; keep those that flip."""
    verified, dropped = [], 0
    for entry in chosen:
        probabilities = fresh_probabilities(runner, entry.text)
        label = int(np.argmax(probabilities))
        if (label == predicted) if goal is None else (label != goal):
            dropped += 1
            continue
        edits = tuple(sorted(entry.edits, key=lambda e: e.position))
        verified.append(Counterfactual(
            text=entry.text, edits=edits,
            probabilities={name: float(p) for name, p in zip(labels, probabilities, strict=True)},
            label=labels[label], similarity=entry.similarity, diff=apply_edits(text, edits)[1],
            found_after_seconds=entry.seconds, found_after_passes=entry.passes))
    return verified, dropped


def fresh_probabilities(runner: ModelRunner, text: str) -> np.ndarray:
    """One uncached forward pass of `text` (counted), for checking what the cache answered."""
    ids = runner.tokenizer([text], truncation=True, max_length=runner.loaded.max_length)["input_ids"][0]
    return runner.uncached_probabilities(ids)


def random_touch_share(n_words: int, edited: int, k: int) -> float:
    """Chance that a random ranking's top-k words include at least one of `edited` positions."""
    k = min(k, n_words)
    if edited <= 0 or n_words <= 0:
        return 0.0
    if n_words - edited < k:
        return 1.0
    return 1.0 - math.comb(n_words - edited, k) / math.comb(n_words, k)
