"""Typed results of a corpus run: what one input contributes, and the job as readers see it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.storage.leases import lease_expired
from core.storage.schema import CorpusItem, CorpusJob


@dataclass(frozen=True)
class PairAgreement:
    spearman: float | None = None
    feature_agreement: float | None = None


@dataclass(frozen=True)
class FaithfulnessScores:
    comprehensiveness: float
    sufficiency: float


@dataclass(frozen=True)
class EditScores:
    """One input's attack (any label but the predicted one) and what its flipping edits say about the methods."""

    success: bool
    words: int  # words in the input
    words_changed: int | None  # in the smallest counterfactual found (None: no success)
    queries: int  # model queries the search asked for (cache hits included)
    forward_passes: int
    seconds: float
    counterfactuals: int
    agreement: dict[str, float] = field(default_factory=dict)  # method -> share of edits touching its top-k
    random_share: float | None = None
    fragility: dict[str, list[float | None]] = field(default_factory=dict)  # method -> [top-k kept, Spearman]


@dataclass(frozen=True)
class ItemResult:
    """What one input contributes to the corpus view (stored as JSON on its `CorpusItem`)."""

    target: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, PairAgreement] = field(default_factory=dict)  # "a vs b" -> agreement
    faithfulness: dict[str, FaithfulnessScores] = field(default_factory=dict)  # method (and "random") -> AOPC
    seconds: dict[str, float] = field(default_factory=dict)  # per method, as first computed
    forward_passes: dict[str, int] = field(default_factory=dict)
    reused: dict[str, bool] = field(default_factory=dict)  # the method's result came from the store
    completeness_gap: dict[str, float] = field(default_factory=dict)
    truncated_words: int = 0
    edits: EditScores | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ItemResult:
        data = json.loads(text) if text else {}
        return cls(
            target=data.get("target", ""), probabilities=data.get("probabilities", {}),
            pairs={pair: PairAgreement(**values) for pair, values in data.get("pairs", {}).items()},
            faithfulness={m: FaithfulnessScores(**v) for m, v in data.get("faithfulness", {}).items()},
            seconds=data.get("seconds", {}), forward_passes=data.get("forward_passes", {}),
            reused=data.get("reused", {}), completeness_gap=data.get("completeness_gap", {}),
            truncated_words=data.get("truncated_words", 0),
            edits=EditScores(**data["edits"]) if data.get("edits") else None)


@dataclass(frozen=True)
class Job:
    """A corpus job as readers see it: methods and options parsed once, progress that never exceeds 1."""

    id: int
    name: str
    source: str
    model: str
    methods: list[str]
    options: dict[str, dict[str, Any]]
    k: int
    faithfulness_inputs: int
    status: str
    stop_requested: bool
    error: str
    total: int
    done: int
    failed: int
    seconds: float
    created_at: datetime
    heartbeat_at: datetime | None
    owner: str = ""
    edits: dict[str, Any] | None = None  # search options when inputs are searched for flipping edits
    sample: bool = False  # part of the sample workspace (core/work/samples.py)
    requested_by: str = "unknown"  # who started it (core/storage/people.py)

    @classmethod
    def from_row(cls, row: CorpusJob) -> Job:
        return cls(id=row.id, name=row.name, source=row.source, model=row.model, methods=json.loads(row.methods),
                   options=json.loads(row.options), k=row.k, faithfulness_inputs=row.faithfulness_inputs,
                   status=row.status, stop_requested=row.stop_requested, error=row.error, total=row.total,
                   done=row.done, failed=row.failed, seconds=row.seconds, created_at=row.created_at,
                   heartbeat_at=row.heartbeat_at, owner=row.owner, edits=json.loads(row.edits) if row.edits else None,
                   sample=row.sample, requested_by=row.requested_by)

    @property
    def shown_status(self) -> str:
        """The status as a person should read it: a "running" job whose runner is gone (its process dead, its
        heartbeat stopped) is "interrupted"; a running job asked to stop is "stopping"."""
        if self.status == "running" and lease_expired(self.owner, self.heartbeat_at):
            return "interrupted"
        return "stopping" if self.status == "running" and self.stop_requested else self.status

    @property
    def is_evaluation(self) -> bool:
        """A prediction-only job (`core.analyses.evaluation`): no methods to compare."""
        return not self.methods

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def fraction(self) -> float:
        return min(1.0, self.finished / self.total) if self.total else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shown_status": self.shown_status, "created_at": self.created_at.isoformat(),
                "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None}


@dataclass(frozen=True)
class Item:
    """One input of a job with its typed result (empty until done)."""

    id: int
    position: int
    origin: str
    text: str
    gold_label: str
    status: str
    predicted_label: str
    seconds: float
    error: str
    result: ItemResult

    @classmethod
    def from_row(cls, row: CorpusItem) -> Item:
        return cls(id=row.id, position=row.position, origin=row.origin, text=row.text, gold_label=row.gold_label,
                   status=row.status, predicted_label=row.predicted_label, seconds=row.seconds, error=row.error,
                   result=ItemResult.from_json(row.result))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
