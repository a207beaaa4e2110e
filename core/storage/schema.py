"""Database tables (SQLModel). Every change here needs a migration in core/storage/migrations/versions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.storage.people import UNKNOWN, current_person


def utcnow() -> datetime:
    return datetime.now(UTC)


# Rows made while the workers compute the sample workspace are samples (core/work/samples.py): every stored
# result made inside `making_samples()` says so, and one click removes them all.
_MAKING_SAMPLES: ContextVar[bool] = ContextVar("making_samples", default=False)


@contextmanager
def making_samples() -> Iterator[None]:
    token = _MAKING_SAMPLES.set(True)
    try:
        yield
    finally:
        _MAKING_SAMPLES.reset(token)


def sample_now() -> bool:
    return _MAKING_SAMPLES.get()


class LinkTag(SQLModel, table=True):
    __tablename__ = "link_tag"
    link_id: int = Field(foreign_key="link.id", primary_key=True, ondelete="CASCADE")
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, ondelete="CASCADE")
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class Link(SQLModel, table=True):
    __tablename__ = "link"
    id: int | None = Field(default=None, primary_key=True)
    url: str
    normalized_url: str = Field(unique=True, index=True)
    title: str = ""
    notes: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class Tag(SQLModel, table=True):
    __tablename__ = "tag"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class Snapshot(SQLModel, table=True):
    __tablename__ = "snapshot"
    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="link.id", index=True)
    fetched_at: datetime = Field(default_factory=utcnow)
    final_url: str = ""
    status_code: int | None = None
    content_type: str = ""
    title: str = ""
    authors: str = ""  # comma-separated, as extracted
    publish_date: str = ""
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    raw_html: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # zlib-compressed
    extractor: str = ""
    extractor_version: str = ""
    text_sha256: str = ""
    byte_size: int = 0
    error: str = ""
    # Title and text with words separated by spaces, for full-text search, when the script does not separate them
    # (Chinese, Japanese); "" otherwise (the title and text are searched as they are). core/words.py `spaced`.
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, default="", server_default=""))
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class ExplanationRecord(SQLModel, table=True):
    __tablename__ = "explanation_record"
    __table_args__ = (
        UniqueConstraint("model_fingerprint", "text_sha256", "method", "params_key", "target"),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_name: str
    model_fingerprint: str = Field(index=True)
    text_sha256: str = Field(index=True)
    method: str
    params_key: str
    target: str
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the Explanation as JSON
    seconds: float
    forward_passes: int
    sample: bool = Field(default_factory=sample_now)  # computed for the sample workspace
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class ComparisonReportRecord(SQLModel, table=True):
    """Everything one Compare view shows (explanations, faithfulness, attention checks), as JSON."""

    __tablename__ = "comparison_report"
    __table_args__ = (UniqueConstraint("model_fingerprint", "text_sha256", "view_key", "target"),)
    id: int | None = Field(default=None, primary_key=True)
    model_name: str
    model_fingerprint: str = Field(index=True)
    text_sha256: str = Field(index=True)
    view_key: str = Field(sa_column=Column(Text, nullable=False))  # methods with their resolved options, as JSON
    target: str  # "" = the predicted label
    payload: str = Field(sa_column=Column(Text, nullable=False))
    sample: bool = Field(default_factory=sample_now)  # computed for the sample workspace
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class CheckRecord(SQLModel, table=True):
    """A stability or randomisation check as it was run, so that it survives a reload and can be shared."""

    __tablename__ = "check_record"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "stability" | "randomisation"
    model_name: str
    model_fingerprint: str = Field(index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # inputs, settings and results as JSON
    sample: bool = Field(default_factory=sample_now)  # computed for the sample workspace
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class Demo(SQLModel, table=True):
    __tablename__ = "demo"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    note: str = ""
    query: str = Field(sa_column=Column(Text, nullable=False))  # the view state as JSON
    sample: bool = Field(default_factory=sample_now)  # computed for the sample workspace
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class StoredText(SQLModel, table=True):
    """Free text a Compare or Training data address refers to by a short key (sha256 of the text, 16 hex
    characters), so that a link stays short however long the text (core/storage/texts.py)."""

    __tablename__ = "stored_text"
    key: str = Field(primary_key=True, max_length=16)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class CorpusJob(SQLModel, table=True):
    """A run of several methods over many inputs; items are stored one by one as they finish."""

    __tablename__ = "corpus_job"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    source: str = ""  # what the inputs came from, for people
    model: str = ""  # model spec ("" = configured default)
    methods: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    options: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON
    k: int = 5
    faithfulness_inputs: int = 0  # size of the seeded random sample that gets faithfulness metrics; 0 = all
    status: str = "queued"  # queued | running | stopped | done | failed
    stop_requested: bool = False
    error: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0  # compute time of finished items
    sample: bool = Field(default_factory=sample_now)  # computed for the sample workspace
    created_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime | None = None
    owner: str = ""  # "host:pid" of the process running it, so a dead runner is seen at once
    # Search options (JSON) when each input is also searched for flipping edits; "" = no search.
    edits: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class CorpusItem(SQLModel, table=True):
    __tablename__ = "corpus_item"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="corpus_job.id", index=True, ondelete="CASCADE")
    position: int
    origin: str = ""  # e.g. "snapshot 3, passage 2" or "csv row 17"
    text: str = Field(sa_column=Column(Text, nullable=False))
    gold_label: str = ""
    status: str = "pending"  # pending | done | failed
    predicted_label: str = ""
    result: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # JSON metrics
    seconds: float = 0.0
    error: str = ""


class TrainingSetRecord(SQLModel, table=True):
    """A labelled training set attached to a model, for training-data attribution."""

    __tablename__ = "training_set"
    id: int | None = Field(default=None, primary_key=True)
    model_path: str = Field(index=True)  # the model's directory or hub id, as load_model resolves it
    model_name: str
    name: str
    rows: int
    sha256: str  # over ids, texts and labels: prepared indexes and gradients are keyed by it
    created_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class TrainingExampleRecord(SQLModel, table=True):
    __tablename__ = "training_example"
    id: int | None = Field(default=None, primary_key=True)
    set_id: int = Field(foreign_key="training_set.id", index=True, ondelete="CASCADE")
    position: int
    example_id: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    label: str


LIVE_TASK = "status IN ('queued', 'running')"


class TaskRecord(SQLModel, table=True):
    """One piece of page work (a comparison, a check) run by a worker process; the page shows its progress."""

    __tablename__ = "task"
    # One live task per key, held by the database itself (a partial unique index; migration 0012).
    __table_args__ = (Index("ux_task_live_key", "key", unique=True, sqlite_where=text(LIVE_TASK),
                            postgresql_where=text(LIVE_TASK)),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # a name in core.work.tasks.KINDS
    model: str = ""  # model spec as the worker loads it
    params: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    key: str = Field(index=True)  # what the task computes (kind, model, params that matter): one live task per key
    status: str = "queued"  # queued | running | done | failed | stopped
    stop_requested: bool = False
    progress: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON: part -> [fraction, message]
    result: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # JSON the kind returns
    error: str = ""
    owner: str = ""
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0  # claims so far: a task taken over from a dead worker counts twice
    seconds: float = 0.0  # wall time of the last attempt
    forward_passes: int = 0
    requested_by: str = Field(default_factory=current_person, sa_column_kwargs={"server_default": UNKNOWN, "default": current_person})  # who asked


class Note(SQLModel, table=True):
    """A person's note and verdict on a stored result (`ref_kind`, `ref_id`), or standing alone (both empty).
    Kept in its own table: recomputing a result never touches it."""

    __tablename__ = "note"
    id: int | None = Field(default=None, primary_key=True)
    author: str = Field(index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    verdict: str = ""  # one of core.storage.notes.VERDICTS, or ""
    method: str = ""  # with the verdict method_trustworthy: which method
    ref_kind: str = Field(default="", index=True)  # snapshot, comparison, method, error_group, ...
    ref_id: str = ""
    model: str = ""  # the model the result is about, for filtering
    page: str = ""  # the page the result is shown on
    address: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # opens the result
    tags: str = ""  # comma-separated
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = None


class RequestLog(SQLModel, table=True):
    """Every time a person asked for a piece of work, whether it was computed or shared with an earlier
    request: who asked is never part of a result's key, so this is where a second asker is seen."""

    __tablename__ = "request_log"
    id: int | None = Field(default=None, primary_key=True)
    person: str = Field(index=True)
    kind: str
    ref: str = ""  # e.g. "task:12"
    shared: bool = False  # the work was already done or under way for someone else
    created_at: datetime = Field(default_factory=utcnow)
