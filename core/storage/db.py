"""Database engine and migrations.

SQLite gets WAL (readers never block the writer) and foreign keys; any other SQLAlchemy URL,
PostgreSQL included, goes through the same code. The schema is owned by Alembic migrations,
applied on start, so upgrading never drops stored data.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import DateTime, Engine, TypeDecorator, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session, create_engine

from core.storage.settings import load_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# SQLite's full-text index is a set of FTS5 virtual tables that migration 0001 creates with raw SQL
# for that dialect only; the SQLModel metadata deliberately does not describe them.
# PostgreSQL's is an expression index (migration 0009), which the metadata cannot describe either.
UNMODELLED_TABLE_PREFIXES = ("snapshot_fts",)
UNMODELLED_INDEXES = ("ix_snapshot_search",)


def include_in_schema_comparison(name: str | None, type_: str, parent_names: dict) -> bool:
    """For Alembic's autogenerate/compare_metadata: skip the dialect-specific search tables and index."""
    if type_ == "index" and name in UNMODELLED_INDEXES:
        return False
    return not (type_ == "table" and name is not None and name.startswith(UNMODELLED_TABLE_PREFIXES))


def _compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type) -> bool | None:
    """SQLModel declares datetime fields as a TypeDecorator over DateTime; PostgreSQL reflects them as
    TIMESTAMP. Same stored type: no difference. Everything else: Alembic's own comparison (None)."""
    if isinstance(metadata_type, TypeDecorator) and isinstance(metadata_type.impl_instance, DateTime) \
            and isinstance(inspected_type, DateTime):
        return False
    return None


def schema_differences(engine: Engine) -> list:
    """What differs between the migrated database and the SQLModel classes (empty when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import core.storage.schema  # noqa: F401  (registers every table on the metadata)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": _compare_type, "include_name": include_in_schema_comparison})
        return compare_metadata(context, SQLModel.metadata)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`; a no-op when it is already there."""
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class DatabaseUnavailable(RuntimeError):
    """The database cannot be used; `str()` is one sentence naming the (password-masked) URL and the cause."""


_SECRET_WORDS = re.compile(r"(password|passwd|pwd|secret|token)", re.IGNORECASE)


def masked_url(url: str) -> str:
    """The URL with every password replaced by ***, wherever libpq lets it stand (the user-info part, or a
    `password=`/`sslpassword=` query value), for messages and the home page (never show a password)."""
    try:
        parsed = make_url(url)
        query = {key: ("***" if _SECRET_WORDS.search(key) else value) for key, value in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:  # not even parsable: show its scheme only
        return url.split(":", 1)[0] + ":…" if ":" in url else "(unparsable URL)"


def make_engine(url: str, *, run_migrations: bool = True) -> Engine:
    """A migrated engine for `url`; any problem (bad URL, missing driver, unreachable server, unwritable or
    corrupt file, a database from a newer Rashomon) is one `DatabaseUnavailable` sentence."""
    url = normalised_url(url)
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args=_postgres_bounds(url))
        if run_migrations:
            migrate(engine)
        return engine
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(f"The database {masked_url(url)} cannot be used: {_cause(exc)}") from exc


# An unreachable server, or a lock held by a stuck process, ends in an error within these bounds
# instead of a wait without end. A URL that sets its own (e.g. ?connect_timeout=3) keeps it.
POSTGRES_CONNECT_TIMEOUT_S = 10
POSTGRES_LOCK_TIMEOUT = "60s"


def _postgres_bounds(url: str) -> dict[str, object]:
    bounds: dict[str, object] = {}
    if "connect_timeout=" not in url:
        bounds["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    if "options=" not in url:
        bounds["options"] = f"-c lock_timeout={POSTGRES_LOCK_TIMEOUT}"
    return bounds


def _cause(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"its driver is not installed (no module '{exc.name}')."
    if isinstance(exc, ArgumentError):
        return "the URL is not a database URL (e.g. sqlite:///path/to/file.db or postgresql://host/db)."
    if isinstance(exc, CommandError):
        return "it was written by a newer Rashomon (its schema revision is unknown here)."
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{first[:200]}."


def forget_engine(url: str) -> None:
    """Close and drop the cached engine for `url` (its database is about to go away)."""
    with _lock:
        engine = _engines.pop(normalised_url(url), None)
    if engine is not None:
        engine.dispose()


def normalised_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg (3) driver, the one Rashomon installs;
    SQLAlchemy's own default for them is psycopg2."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def get_engine(url: str | None = None) -> Engine:
    """One migrated engine per URL per process."""
    url = normalised_url(url or load_settings().database_url)
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session on `engine` that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


def table_names(engine: Engine) -> list[str]:
    return inspect(engine).get_table_names()
