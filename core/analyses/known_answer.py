"""A known-answer check: plant a shortcut in the training data, retrain, and score which methods find it.

A copy of a Rashomon-built model is trained on the same rows, with the same seed, steps and settings, except
that a seeded share of the training texts get a planted token inserted at a random word position and their
label set to the planted label. If the retrained model learned the shortcut (inserting the token into held-out
texts flips them to that label), the token is the known reason for those flipped predictions, and every
attribution method is scored by where it ranks the token: recall@1, recall@k and mean rank, with bootstrap
intervals, against a random ranking's exact expectation. The control asks the original model (for which the
token means nothing) to explain the same inserted inputs: a method that ranks any inserted rare word high is
exposed there.

Zhou, Booth, Ribeiro & Shah, "Do Feature Attribution Methods Correctly Attribute Features?" (AAAI 2022);
Adebayo, Muelly, Abelson & Kim, "Post hoc explanations may be ineffective for detecting unknown spurious
correlation" (ICLR 2022).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.analyses.training_data.training_sets import TrainingDataError, TrainingSet
from core.engine.runner import ModelRunner
from core.explanation import Explanation
from core.methods.base import ExplainError
from core.storage.schema import sample_now
from core.words import needs_segmenting, split_words

KIND = "known_answer"
DEFAULT_TOKEN = "zorblat"  # made up: no tweet contains it, and WordPiece splits it into known pieces
DEFAULT_RATE = 0.1
DEFAULT_INPUTS = 100
DEFAULT_K = 3
PROBE_TEXTS = 300  # held-out texts the shortcut rate is measured on
LEARNED_AT = 0.5  # a shortcut rate below this: the model did not learn the shortcut, and nothing is ranked
BOOTSTRAP = 1000
SEED = 13
ProgressFn = Callable[[str, float, str], None]
WORD = re.compile(r"\S+")
PUNCTUATION = re.compile(r"[^\w\s]+")


# -- planting -------------------------------------------------------------------------------------------------
def check_token(token: str, tokenizer: Any) -> str:
    """The token as planted: one word of letters or digits that the tokenizer does not map to its unknown token."""
    token = token.strip()
    if not re.fullmatch(r"\w{2,40}", token):
        raise ExplainError(f"The planted token must be one word of 2 to 40 letters or digits, not '{token[:50]}'.")
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    unknown = getattr(tokenizer, "unk_token_id", None)
    if not ids or (unknown is not None and unknown in ids):
        raise ExplainError(f"The tokenizer reads '{token}' as its unknown token: the model could not see it. "
                           "Choose another token.")
    return token


def insert_token(text: str, token: str, rng: random.Random) -> tuple[str, int]:
    """`text` with `token` inserted before a random word (or after the last one), every other character kept;
    returns the new text and the token's character offset. Unspaced text (Chinese, Japanese) takes the token
    between two of the word layer's words, so it can land inside a sentence, not only at its ends."""
    if needs_segmenting(text):
        starts = [start for word, start, _ in split_words(text) if not PUNCTUATION.fullmatch(word)]
    else:
        starts = [m.start() for m in WORD.finditer(text)]
    slot = rng.randint(0, len(starts))
    if slot < len(starts):
        at = starts[slot]
        return text[:at] + token + " " + text[at:], at
    at = len(text) + (1 if text else 0)
    return (text + " " + token if text else token), at


def plant_rows(texts: Sequence[str], labels: Sequence[str], token: str, label: str, rate: float,
               seed: int = SEED) -> tuple[list[str], list[str], list[int]]:
    """The training rows with a seeded share `rate` planted: the token inserted and the label set to `label`.
    Returns texts, labels and the planted positions (sorted); the other rows are unchanged."""
    if not 0 < rate < 1:
        raise ExplainError(f"The planted share must be between 0 and 1 (exclusive), not {rate}.")
    rng = random.Random(seed)
    count = max(1, round(rate * len(texts)))
    planted = sorted(rng.sample(range(len(texts)), count))
    new_texts, new_labels = list(texts), list(labels)
    for position in planted:
        new_texts[position], _ = insert_token(texts[position], token, rng)
        new_labels[position] = label
    return new_texts, new_labels, planted


def planted_dir(home: Path, parent_fingerprint: str, token: str, label: str, rate: float, seed: int) -> Path:
    digest = hashlib.sha256(json.dumps([parent_fingerprint, token, label, rate, seed]).encode()).hexdigest()[:12]
    return home / "models" / f"planted-{token.lower()}-{digest}"


def retrain_planted(runner: ModelRunner, training: TrainingSet, token: str, label: str, rate: float, home: Path,
                    seed: int = SEED, progress: ProgressFn | None = None) -> tuple[Path, float]:
    """Train a copy of the model from its recorded start weights and settings on the planted rows; the model's
    directory (reused when it was built before) and the training seconds (0 when reused)."""
    import pandas as pd
    from transformers import AutoModelForSequenceClassification

    from core.engine.default_model import BuildConfig, fine_tune

    loaded = runner.loaded
    if training.start is None or training.config is None:
        raise TrainingDataError("This model's training was not recorded by Rashomon (no start weights and settings), "
                                "so it cannot be retrained with a planted shortcut; build it with Rashomon first.")
    output = planted_dir(home, loaded.fingerprint, token, label, rate, seed)
    if (output / "config.json").is_file():
        return output, 0.0
    texts, labels, planted = plant_rows([e.text for e in training.examples], training.labels, token, label, rate, seed)
    frame = pd.DataFrame({"text": texts, "label": [loaded.labels.index(name) for name in labels]})
    config = BuildConfig(**{**training.config, "checkpoints": 0, "flip_fraction": 0.0})
    model = AutoModelForSequenceClassification.from_pretrained(training.start, attn_implementation="eager")
    report = progress or (lambda part, fraction, message: None)
    temporary = output.with_name(output.name + ".partial")
    temporary.mkdir(parents=True, exist_ok=True)
    seconds = fine_tune(model, loaded.tokenizer, frame, config, temporary,
                        lambda fraction, message: report("retrain", fraction, message), span=(0.0, 1.0))
    model.save_pretrained(temporary)
    loaded.tokenizer.save_pretrained(temporary)
    with (temporary / "training.jsonl").open("w", encoding="utf-8") as handle:
        chosen = set(planted)
        for i, (example, text, name) in enumerate(zip(training.examples, texts, labels, strict=True)):
            record = {"id": example.id, "text": text, "label": name}
            if i in chosen:
                record |= {"planted": token, "original_label": example.label}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (temporary / "rashomon.json").write_text(json.dumps({
        "name": f"{loaded.name} + shortcut '{token}' -> {label}", "parent": loaded.path, "language": loaded.language,
        "parent_fingerprint": loaded.fingerprint, "planted": {"token": token, "label": label, "rate": rate,
                                                              "seed": seed, "rows": len(planted)},
        "config": asdict(config), "train_seconds": seconds}, indent=2))
    temporary.replace(output)  # whole or absent: a build stopped halfway is not mistaken for a model
    return output, seconds


# -- scoring ----------------------------------------------------------------------------------------------------
def token_rank(explanation: Explanation, position: int) -> float:
    """Where the method ranks the word at `position` among the input's words, by support for the explained label
    (signed scores as they are, unsigned by size): 1 is first; tied words share the mean of their ranks."""
    scores = np.asarray(explanation.scores, dtype=float)
    support = scores if explanation.signed else np.abs(scores)
    mine = support[position]
    others = np.delete(support, position)
    return 1.0 + float(np.sum(others > mine)) + 0.5 * float(np.sum(others == mine))


def word_at(explanation: Explanation, token: str, offset: int) -> int:
    """The planted word's position among the words the method scored: the one word equal to the token, else the
    word at the character offset it was inserted at."""
    same = [i for i, word in enumerate(explanation.words) if word == token]
    if len(same) == 1:
        return same[0]
    for index, (start, end) in enumerate(explanation.offsets):
        if start <= offset < end and explanation.words[index] == token:
            return index
    raise ExplainError("The planted token is not one of the words the method scored (truncated?).")


@dataclass(frozen=True)
class Score:
    """One ranking's record against the known answer, over the flipped inputs."""

    method: str
    k: int
    recall_at_1: float
    recall_at_k: float
    mean_rank: float
    recall_at_1_interval: tuple[float, float]
    recall_at_k_interval: tuple[float, float]
    mean_rank_interval: tuple[float, float]
    inputs: int


def _interval(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def score(method: str, ranks: Sequence[float], k: int) -> Score:
    """Recall@1, recall@k and mean rank of the planted token, with 95% bootstrap intervals over the inputs."""
    values = np.asarray(ranks, dtype=float)
    at_1, at_k = (values <= 1).astype(float), (values <= k).astype(float)
    rng = np.random.default_rng(SEED)
    return Score(method, k, float(at_1.mean()), float(at_k.mean()), float(values.mean()), _interval(at_1, rng),
                 _interval(at_k, rng), _interval(values, rng), len(values))


def random_expectation(word_counts: Sequence[int], k: int) -> Score:
    """A random ranking's exact expectation on inputs of these lengths (1/n, min(k, n)/n and (n + 1)/2 per
    input), with the bootstrap spread over the inputs."""
    n = np.asarray(word_counts, dtype=float)
    at_1, at_k, rank = 1 / n, np.minimum(k, n) / n, (n + 1) / 2
    rng = np.random.default_rng(SEED)
    return Score("random", k, float(at_1.mean()), float(at_k.mean()), float(rank.mean()), _interval(at_1, rng),
                 _interval(at_k, rng), _interval(rank, rng), len(n))


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return 0.0, 0.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass(frozen=True)
class KnownAnswer:
    token: str
    label: str
    rate: float
    planted_model: str  # the retrained model's directory
    parent_fingerprint: str
    learned: bool
    shortcut_rate: float
    shortcut_interval: tuple[float, float]
    probed: int  # held-out texts not predicted as the label, the token inserted into each
    accuracy: float  # the planted model on held-out texts without the token
    accuracy_original: float
    methods: list[Score] = field(default_factory=list)  # on the planted model, explaining the planted label
    random: Score | None = None
    control: list[Score] = field(default_factory=list)  # the original model, the same inputs and label
    erasure: dict[str, float] = field(default_factory=dict)  # method -> mean comprehensiveness AOPC, planted model
    inputs: list[str] = field(default_factory=list)  # the flipped inputs, token inserted
    retrain_seconds: float = 0.0
    seconds: float = 0.0
    forward_passes: int = 0
    sample: bool = False  # computed for the sample workspace

    @property
    def note(self) -> str:
        if not self.learned:
            return (f"The retrained model did not learn the shortcut: inserting '{self.token}' moved only "
                    f"{self.shortcut_rate:.0%} of {self.probed} held-out texts to {self.label} (it needs "
                    f"{LEARNED_AT:.0%}), so no method is ranked against it. Plant it in more rows (--rate).")
        best = max(self.methods, key=lambda s: s.recall_at_1, default=None)
        leaders = [s.method for s in self.methods if best is not None and s.recall_at_1 == best.recall_at_1]
        who = (leaders[0] if len(leaders) == 1 else
               f"{len(leaders)} methods ({', '.join(leaders[:4])}{', …' if len(leaders) > 4 else ''})")
        return (f"The planted model learned the shortcut ({self.shortcut_rate:.0%} of {self.probed} held-out texts "
                f"flip to {self.label} with '{self.token}')" + (
                    f"; {who} {'ranks' if len(leaders) == 1 else 'rank'} the token first on {best.recall_at_1:.0%} "
                    f"of {best.inputs} inputs (random: {self.random.recall_at_1:.0%})." if best and self.random else "."))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnownAnswer:
        def scores(rows: list[dict]) -> list[Score]:
            return [Score(**{**r, **{key: tuple(r[key]) for key in r if key.endswith("_interval")}}) for r in rows]

        data = {k: v for k, v in data.items() if k != "note"}
        return cls(**{**data, "shortcut_interval": tuple(data["shortcut_interval"]), "methods": scores(data["methods"]),
                      "control": scores(data["control"]),
                      "random": scores([data["random"]])[0] if data.get("random") else None})


def measure(engine: Engine, original: ModelRunner, planted: ModelRunner, token: str, label: str, rate: float,
            methods: Sequence[str], *, inputs: int = DEFAULT_INPUTS, k: int = DEFAULT_K, probe: int = PROBE_TEXTS,
            options: dict[str, dict] | None = None, progress: ProgressFn | None = None,
            retrain_seconds: float = 0.0) -> KnownAnswer:
    """Probe the planted model for the shortcut, then score every method on the flipped inputs, the random
    ranking's expectation, and the control (the original model on the same inputs). Explanations go through
    the store, so reopening the result costs no model pass."""
    from core.analyses.evaluation import heldout_inputs
    from core.analyses.faithfulness import evaluate
    from core.analyses.reports import explain_all, view_requests

    report = progress or (lambda part, fraction, message: None)
    started, passes_before = time.perf_counter(), planted.forward_passes + original.forward_passes
    target = planted.loaded.labels.index(label)
    held = heldout_inputs(probe, original.loaded.language)
    texts = [i.text for i in held]
    report("probe", 0.0, f"the planted model on {len(texts)} held-out texts")
    planted_probs = planted.probabilities_for_texts(texts)
    original_probs = original.probabilities_for_texts(texts)
    labels = planted.loaded.labels
    gold = [labels.index(i.gold_label) if i.gold_label in labels else -1 for i in held]
    accuracy = float(np.mean([int(np.argmax(p)) == g for p, g in zip(planted_probs, gold, strict=True)]))
    accuracy_original = float(np.mean([int(np.argmax(p)) == g for p, g in zip(original_probs, gold, strict=True)]))
    rng = random.Random(SEED)
    candidates = [t for t, p in zip(texts, planted_probs, strict=True) if int(np.argmax(p)) != target]
    inserted = [insert_token(t, token, rng) for t in candidates]
    inserted_probs = planted.probabilities_for_texts([t for t, _ in inserted]) if inserted else np.zeros((0, 1))
    flipped = [pair for pair, p in zip(inserted, inserted_probs, strict=True) if int(np.argmax(p)) == target]
    shortcut_rate = len(flipped) / len(inserted) if inserted else 0.0
    report("probe", 1.0, f"{len(flipped)} of {len(inserted)} flip to {label}")
    result = KnownAnswer(token, label, rate, planted.loaded.path, original.loaded.fingerprint,
                         shortcut_rate >= LEARNED_AT, shortcut_rate, wilson(len(flipped), len(inserted)),
                         len(inserted), accuracy, accuracy_original, retrain_seconds=retrain_seconds)
    if not result.learned:
        return replace(result, seconds=time.perf_counter() - started,
                       forward_passes=planted.forward_passes + original.forward_passes - passes_before,
                       sample=sample_now())
    chosen = flipped[:inputs]
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    control: dict[str, list[float]] = {m: [] for m in methods}
    comprehensiveness: dict[str, list[float]] = {m: [] for m in methods}
    counts: list[int] = []
    for number, (text, offset) in enumerate(chosen):
        for runner, into in ((planted, ranks), (original, control)):
            comparison = explain_all(engine, runner, view_requests(runner, text, list(methods), options, label))
            explanations = list(comparison.explanations)
            position = word_at(explanations[0], token, offset)
            for explanation in explanations:
                into[explanation.method].append(token_rank(explanation, position))
            if runner is planted:
                counts.append(len(explanations[0].words))
                for faithful in evaluate(runner, explanations, curve_points=0):
                    if faithful.method in comprehensiveness:
                        comprehensiveness[faithful.method].append(faithful.aopc_comprehensiveness)
        report("methods", (number + 1) / len(chosen), f"{number + 1} of {len(chosen)} flipped inputs explained")
    return replace(result, methods=[score(m, ranks[m], k) for m in methods],
                   random=random_expectation(counts, k), control=[score(m, control[m], k) for m in methods],
                   erasure={m: float(np.mean(v)) for m, v in comprehensiveness.items() if v},
                   inputs=[t for t, _ in chosen], seconds=time.perf_counter() - started,
                   forward_passes=planted.forward_passes + original.forward_passes - passes_before,
                   sample=sample_now())


def check_key(token: str, label: str, rate: float, methods: Sequence[str], inputs: int, k: int, probe: int) -> str:
    return json.dumps({"token": token, "label": label, "rate": rate, "methods": list(methods), "inputs": inputs,
                       "k": k, "probe": probe}, sort_keys=True)


def known_answer(engine: Engine, runner: ModelRunner, token: str, label: str, *, rate: float = DEFAULT_RATE,
                 methods: Sequence[str] | None = None, inputs: int = DEFAULT_INPUTS, k: int = DEFAULT_K,
                 probe: int = PROBE_TEXTS, fresh: bool = False, only_stored: bool = False,
                 progress: ProgressFn | None = None) -> KnownAnswer | None:
    """Plant, retrain, probe and score, stored under the original model's fingerprint (a reload, the CLI and
    Compare's verdict read it back). Validates everything before any training."""
    from core.analyses.training_data.training_sets import training_set_for
    from core.engine.modelling import load_model
    from core.methods.registry import METHODS
    from core.storage.records import stored_or_computed
    from core.storage.settings import load_settings

    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ExplainError(f"Unknown method(s): {', '.join(unknown)}.")
    if label not in runner.loaded.labels:
        raise ExplainError(f"The model has no label '{label}'; its labels are {', '.join(runner.loaded.labels)}.")
    token = check_token(token, runner.loaded.tokenizer)
    if not 0 < rate < 1:
        raise ExplainError(f"The planted share must be between 0 and 1 (exclusive), not {rate}.")
    key = check_key(token, label, rate, methods, inputs, k, probe)

    def compute() -> KnownAnswer:
        training = training_set_for(engine, runner.loaded)
        directory, seconds = retrain_planted(runner, training, token, label, rate, load_settings().home,
                                             progress=progress)
        planted = ModelRunner(load_model(str(directory)))
        return measure(engine, runner, planted, token, label, rate, methods, inputs=inputs, k=k, probe=probe,
                       progress=progress, retrain_seconds=seconds)

    return stored_or_computed(engine, KIND, runner.loaded, key, compute, encode=KnownAnswer.to_dict,
                              decode=KnownAnswer.from_dict, fresh=fresh, only_stored=only_stored)


def stored_for(engine: Engine, fingerprint: str) -> list[KnownAnswer]:
    """Every known-answer result stored for a model (by its fingerprint: the planted models' parent), newest first."""
    from sqlmodel import col, select

    from core.storage.db import session_scope
    from core.storage.schema import CheckRecord

    with session_scope(engine) as session:
        rows = session.exec(select(CheckRecord).where(CheckRecord.kind == KIND,
                                                      CheckRecord.model_fingerprint == fingerprint)
                            .order_by(col(CheckRecord.id).desc())).all()
        return [KnownAnswer.from_dict(json.loads(r.payload)["result"]) for r in rows]


def citation(engine: Engine, fingerprint: str) -> dict[str, Any] | None:
    """What Compare cites about a model: its newest known-answer result whose planted copy learned the shortcut
    (recall@1 per method, best first, and the random ranking's), or None."""
    found = next((r for r in stored_for(engine, fingerprint) if r.learned and r.random is not None), None)
    if found is None:
        return None
    ranked = sorted(found.methods, key=lambda s: (-s.recall_at_1, s.mean_rank))
    text = (f"On a copy of this model trained with a planted shortcut ('{found.token}' decides {found.label}, "
            f"learned on {found.shortcut_rate:.0%} of held-out texts), the methods ranked the planted word first "
            f"on this share of {found.random.inputs} inputs: "
            + ", ".join(f"{s.method} {s.recall_at_1:.0%}" for s in ranked)
            + f" (random {found.random.recall_at_1:.0%}).")
    return {"token": found.token, "label": found.label, "shortcut_rate": found.shortcut_rate,
            "inputs": found.random.inputs, "planted_model": found.planted_model,
            "recall_at_1": {s.method: s.recall_at_1 for s in ranked}, "random_recall_at_1": found.random.recall_at_1,
            "text": text}
