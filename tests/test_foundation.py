"""Settings, database engine, migrations and model loading."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from core.engine.modelling import ModelLoadError, load_model
from core.storage.db import (
    current_revision,
    head_revision,
    make_engine,
    migrate,
    schema_differences,
    table_names,
)
from core.storage.settings import load_settings


def test_settings_defaults_and_environment(monkeypatch, tmp_path):
    for name in ("RASHOMON_HOME", "RASHOMON_DATABASE_URL", "RASHOMON_MODEL", "RASHOMON_ALLOWED_INTERNAL_HOSTS",
                 "RASHOMON_TASK_WORKERS", "RASHOMON_JOB_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    assert (defaults.task_workers, defaults.job_workers) == (2, 1)  # a server's heavy work leaves its process
    assert defaults.home == Path.home() / ".rashomon"
    assert defaults.database_url == f"sqlite:///{Path.home() / '.rashomon' / 'rashomon.db'}"
    assert defaults.resolved_model == str(defaults.default_model_dir)
    monkeypatch.setenv("RASHOMON_HOME", str(tmp_path))
    monkeypatch.setenv("RASHOMON_MODEL", "org/some-model")
    monkeypatch.setenv("RASHOMON_ALLOWED_INTERNAL_HOSTS", "127.0.0.1, intranet.local,10.0.0.0/8")
    custom = load_settings()
    assert custom.database_url == f"sqlite:///{tmp_path / 'rashomon.db'}"
    assert custom.resolved_model == "org/some-model"
    assert custom.allowed_internal_hosts == ("127.0.0.1", "intranet.local", "10.0.0.0/8")
    monkeypatch.setenv("RASHOMON_TASK_WORKERS", "0")
    monkeypatch.setenv("RASHOMON_JOB_WORKERS", "lots")
    assert (load_settings().task_workers, load_settings().job_workers) == (0, 1)  # a bad count: the default


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):
            connection.execute(text("INSERT INTO snapshot (link_id, fetched_at) VALUES (999, '2026-01-01')"))
    assert {"link", "snapshot", "tag", "link_tag", "snapshot_fts", "explanation_record"} <= set(table_names(engine))


def test_migrations_upgrade_keeps_existing_data(backend_url):
    """A database made at the first revision, with a link, a tag and a snapshot in it, upgraded to head,
    on SQLite and on PostgreSQL."""
    old = make_engine(backend_url, run_migrations=False)
    migrate(old, "0001")
    assert current_revision(old) == "0001"
    with old.begin() as connection:
        connection.execute(text("INSERT INTO link (url, normalized_url, title, notes, created_at) "
                                "VALUES ('https://a.example/', 'https://a.example/', 'kept', 'a note', '2026-01-01')"))
        connection.execute(text("INSERT INTO tag (name) VALUES ('news')"))
        connection.execute(text("INSERT INTO link_tag (link_id, tag_id) VALUES (1, 1)"))
        connection.execute(text("INSERT INTO snapshot (link_id, fetched_at, title, text, text_sha256) "
                                "VALUES (1, '2026-01-02', 'Old page', 'Old text survives.', 'abc')"))
    old.dispose()
    upgraded = make_engine(backend_url)  # applies the remaining migrations on start
    assert current_revision(upgraded) == head_revision()
    with upgraded.connect() as connection:
        assert connection.execute(text("SELECT title, notes FROM link")).one() == ("kept", "a note")
        assert connection.execute(text("SELECT name FROM tag JOIN link_tag ON tag.id = tag_id")).scalar() == "news"
        assert connection.execute(text("SELECT text FROM snapshot")).scalar() == "Old text survives."
    assert schema_differences(upgraded) == []
    from core.library.snapshots import list_links

    assert [v.title for v in list_links(upgraded)] == ["kept"]  # the core reads the old rows
    if upgraded.dialect.name == "postgresql":  # a row from before the search index is found through it
        assert [v.title for v in list_links(upgraded, search="survives")] == ["kept"]
    make_engine(backend_url)  # a second start is a no-op
    with make_engine(backend_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM link")).scalar() == 1
    upgraded.dispose()


def test_migrated_schema_matches_the_sqlmodel_classes(backend_url):
    """One source of truth: an empty database migrated to head has exactly the tables, columns, types,
    indexes and constraints that the SQLModel classes declare (Alembic's compare_metadata), on both backends."""
    engine = make_engine(backend_url)
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
    engine.dispose()


def test_migrations_downgrade_to_empty_and_up_again(backend_url):
    engine = make_engine(backend_url)
    migrate(engine, "head")
    from alembic import command

    from core.storage.db import alembic_config

    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert current_revision(engine) is None
    migrate(engine)
    assert schema_differences(engine) == []
    engine.dispose()


def test_schema_comparison_notices_a_missing_migration(tmp_path):
    """The comparison above can fail: a column the classes declare but no migration creates is reported."""
    engine = make_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE demo DROP COLUMN note"))
    assert any(d[0] == "add_column" and d[3].name == "note" for d in schema_differences(engine))


def test_tiny_model_loads_with_labels_and_attention(tiny_model):
    assert tiny_model.labels == ["negative", "neutral", "positive"]
    assert tiny_model.model.config._attn_implementation == "eager"
    assert len(tiny_model.fingerprint) == 16
    assert tiny_model.source == "local directory" and tiny_model.name == "tiny-bert-seed0"


def test_fingerprint_depends_on_weights(tmp_path, tiny_model):
    from tests.support.tiny_model import build_tiny_model

    other = load_model(str(build_tiny_model(tmp_path / "other", seed=1)))
    assert other.fingerprint != tiny_model.fingerprint


def test_missing_default_model_says_how_to_build_it(home):
    with pytest.raises(ModelLoadError, match="build-default"):
        load_model(str(load_settings().default_model_dir))


def test_unknown_hub_id_offline_gives_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not a local directory"):
        load_model("nobody-here/no-such-model-xyz")


def test_encoder_without_head_is_not_a_classifier():
    from core.engine.default_model import encoder_dir

    with pytest.raises(ModelLoadError, match="not a classifier"):
        load_model(str(encoder_dir()))


def test_corrupt_directory_gives_clear_message(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a readable model directory"):
        load_model(str(tmp_path))


@pytest.mark.slow
def test_default_model_build_on_a_small_slice(tmp_path):
    """The whole build path (data, split, training, scoring, saving, card) on a few rows."""
    from core.engine.default_model import BuildConfig, build_default_model

    steps = []
    report = build_default_model(tmp_path / "m", BuildConfig(train_rows=96, heldout_rows=60, max_length=32),
                                 progress=lambda f, m: steps.append(f))
    card = (tmp_path / "m" / "README.md").read_text()
    assert "macro-F1" in card and f"{report.macro_f1:.4f}" in card and "seed 13" in card
    assert "training time" in card and "transformers" in card
    assert steps[-1] == 1.0
    model = load_model(str(tmp_path / "m"))
    # The reported scores, recomputed from the saved model on the same held-out rows.
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from core.engine.default_model import load_corpus, split_corpus

    _, heldout = split_corpus(load_corpus(), report.config)
    batch = model.tokenizer(list(heldout["text"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model.model(**batch).logits.argmax(-1).numpy()
    truth = heldout["label"].to_numpy()
    assert report.macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-6)
    assert report.accuracy == pytest.approx(accuracy_score(truth, predicted), abs=1e-6)
    assert model.labels == ["negative", "neutral", "positive"] and model.card == card
    # What training-data attribution needs: the exact rows, and checkpoints with their learning rates.
    rows = [json.loads(line) for line in (tmp_path / "m" / "training.jsonl").read_text().split("\n") if line]
    assert len(rows) == 96 and {r["label"] for r in rows} <= set(model.labels) and rows[0]["id"].startswith("tweet-")
    checkpoints = json.loads((tmp_path / "m" / "checkpoints.json").read_text())["checkpoints"]
    assert [c["step"] for c in checkpoints] == [1, 2, 3] and checkpoints[-1]["path"] == "."
    assert (tmp_path / "m" / "checkpoints" / "step-00001" / "config.json").exists()


def test_migrations_have_exactly_one_head(tmp_path):
    """Several branches of work add migrations at once: two heads would leave `migrate` unable to choose.
    The same check on a scratch copy with a second migration off the same parent finds two."""
    import shutil

    from alembic.script import ScriptDirectory

    from core.storage.db import MIGRATIONS_DIR, alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    heads = scripts.get_heads()
    assert heads == [head_revision()]
    chain = [revision.revision for revision in scripts.walk_revisions()]  # head back to base, one line
    files = [p for p in (MIGRATIONS_DIR / "versions").glob("*.py") if p.name != "__init__.py"]
    assert len(chain) == len(files)

    scratch = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    parent = scripts.get_revision(heads[0]).down_revision
    (scratch / "versions" / "9999_parallel_branch.py").write_text(
        f'revision = "9999"\ndown_revision = "{parent}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n")
    config = alembic_config()
    config.set_main_option("script_location", str(scratch))
    assert sorted(ScriptDirectory.from_config(config).get_heads()) == sorted([heads[0], "9999"])


def test_tasks_from_before_the_live_key_index_and_the_kind_rename_upgrade(tmp_path):
    """Migrations 0012 to 0014 on a database with duplicate live tasks (what the submit race left) and tasks
    of old kind names: the newest live twin is kept, the others end as stopped, the kinds are renamed."""
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    old = make_engine(url, run_migrations=False)
    migrate(old, "0011")
    columns = ("kind, model, params, key, status, stop_requested, progress, result, error, owner, created_at, "
               "attempts, seconds, forward_passes")
    with old.begin() as connection:
        for kind, status in (("comparison", "queued"), ("comparison", "queued"), ("training_examples", "done"),
                             ("build", "done")):
            connection.execute(text(f"INSERT INTO task ({columns}) VALUES ('{kind}', 'm', '{{}}', "
                                    f"'{'same' if kind == 'comparison' else 'other'}', '{status}', 0, '{{}}', '', '', "
                                    "'', '2026-01-01', 0, 0, 0)"))
    old.dispose()
    upgraded = make_engine(url)
    with upgraded.connect() as connection:
        rows = connection.execute(text("SELECT id, kind, status FROM task ORDER BY id")).all()
    assert [(kind, status) for _, kind, status in rows] == [("comparison", "stopped"), ("comparison", "queued"),
                                                            ("training_data", "done"), ("model_build", "done")]
    upgraded.dispose()


def test_snapshots_stored_before_the_search_migration_are_found_by_stem_and_by_chinese_word(tmp_path):
    """Migration 0016 on a database made at 0015: the FTS5 table is rebuilt (stemmed) and filled again, and a Chinese
    snapshot gets its spaced `search_text`, so words inside its sentences are found after the upgrade."""
    from core.library.snapshots import list_links

    url = f"sqlite:///{tmp_path / 'search.db'}"
    old = make_engine(url, run_migrations=False)
    migrate(old, "0015")
    pages = ((1, "https://zh.example/hotel", "酒店评价", "可是房间本身让人失望。"),
             (2, "https://en.example/park", "Council news", "The council approves a new riverside park."))
    with old.begin() as connection:
        for link_id, url_, title, body in pages:
            connection.execute(text("INSERT INTO link (id, url, normalized_url, title, notes, created_at) VALUES "
                                    "(:id, :u, :u, :t, '', '2026-01-01')"), {"id": link_id, "u": url_, "t": title})
            connection.execute(text("INSERT INTO snapshot (id, link_id, fetched_at, final_url, title, authors, "
                                    "publish_date, text, extractor, extractor_version, text_sha256, byte_size, "
                                    "error, content_type) VALUES (:id, :id, '2026-01-01', :u, :t, '', '', :b, '', '', "
                                    "'', 0, '', 'text/html')"), {"id": link_id, "u": url_, "t": title, "b": body})
            connection.execute(text("INSERT INTO snapshot_fts(rowid, title, text) VALUES (:id, :t, :b)"),
                               {"id": link_id, "t": title, "b": body})
    with old.connect() as connection:  # a run of Han characters was one token: the word inside was not found
        assert connection.execute(text("SELECT rowid FROM snapshot_fts WHERE snapshot_fts MATCH '\"房间\"'")).all() == []
    old.dispose()
    upgraded = make_engine(url)
    assert [v.id for v in list_links(upgraded, search="房间")] == [1]
    assert [v.id for v in list_links(upgraded, search="parks")] == [2]
    upgraded.dispose()
