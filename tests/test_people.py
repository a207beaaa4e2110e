"""A team's shared memory: who is asking, who did what, and notes and verdicts that outlive recomputing."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select

from core.storage import notes as notes_module
from core.storage.db import make_engine, migrate, session_scope
from core.storage.people import ANONYMOUS, LOCAL, acting_as, clean_name, identify, request_log

# Rows that belong to another row a person caused (a corpus run's inputs, a training set's examples), and the two
# tables that are themselves the record of people (notes have authors, the request log has persons).
NOT_CAUSED_DIRECTLY = {"corpus_item": "an input of a corpus_job", "training_example": "a row of a training_set",
                       "note": "has its author", "request_log": "is the log of who asked"}


def test_identity_comes_from_the_login_or_a_trusted_proxy_never_from_a_forged_header():
    proxy = {"header": "X-Rashomon-User", "proxies": ("127.0.0.2", "10.0.0.0/8")}
    assert identify({}, "127.0.0.1").person == LOCAL  # nothing configured: one person on a laptop
    assert identify({"X-Rashomon-User": "ana"}, "127.0.0.1").person == LOCAL  # a header means nothing then
    through = identify({"x-rashomon-user": " ana "}, "127.0.0.2", **proxy)
    assert through.person == "ana" and through.believed
    assert identify({"X-Rashomon-User": "bo"}, "10.1.2.3", **proxy).person == "bo"  # a proxy network
    forged = identify({"X-Rashomon-User": "ana"}, "127.0.0.1", **proxy)
    assert forged.person == ANONYMOUS and not forged.believed and "ignored" in forged.how
    assert identify({}, "127.0.0.2", **proxy).person == ANONYMOUS  # the proxy sent no name
    assert identify({"X-Rashomon-User": "a\x00b"}, "127.0.0.2", **proxy).person == ANONYMOUS
    assert identify({"X-Rashomon-User": "bo"}, "127.0.0.2", login_name="carla@example.org", **proxy).person == \
        "carla@example.org"  # Streamlit's OIDC login wins
    with pytest.raises(ValueError):
        clean_name("x" * 200)


def test_every_table_a_person_causes_records_who_asked():
    import core.storage.schema  # noqa: F401  (registers every table)

    missing = {name for name, table in SQLModel.metadata.tables.items() if "requested_by" not in table.columns}
    assert missing == set(NOT_CAUSED_DIRECTLY), missing
    for name, table in SQLModel.metadata.tables.items():
        if name not in NOT_CAUSED_DIRECTLY:
            assert table.columns["requested_by"].server_default.arg == "unknown", name


def test_rows_record_the_person_and_a_shared_task_logs_both_askers(engine, runner):
    from core.library.snapshots import add_tags, list_links
    from core.storage.schema import ExplanationRecord, StoredText
    from core.storage.texts import remember_text
    from core.work import tasks

    with acting_as("ana"):
        key = remember_text(engine, "The staff were lovely.")
        first = tasks.submit(engine, "comparison", "", {"text": "The staff were lovely.", "methods": ["occlusion"],
                                                        "options": {}, "target": None})
    with acting_as("bo"):
        second = tasks.submit(engine, "comparison", "", {"text": "The staff were lovely.", "methods": ["occlusion"],
                                                         "options": {}, "target": None})
    assert second.id == first.id and first.requested_by == "ana"  # one computation, never keyed by person
    log = request_log(engine)
    assert [(r["person"], r["shared"]) for r in reversed(log)] == [("ana", False), ("bo", True)]
    with acting_as("carla"):  # the worker, whoever runs it, acts for the person who asked
        done = tasks.run_here(engine, runner, first.id)
    assert done.status == "done", done.error
    with session_scope(engine) as session:
        assert session.get(StoredText, key).requested_by == "ana"
        assert {r.requested_by for r in session.exec(select(ExplanationRecord)).all()} == {"ana"}
    from core.storage.schema import Link, LinkTag

    with acting_as("bo"):
        with session_scope(engine) as session:
            session.add(Link(url="https://a.example/", normalized_url="https://a.example/"))
        add_tags(engine, [list_links(engine)[0].id], ["ml"])  # inserted with ON CONFLICT: the column default
    assert list_links(engine)[0].requested_by == "bo"
    with session_scope(engine) as session:
        assert [t.requested_by for t in session.exec(select(LinkTag)).all()] == ["bo"]


def test_notes_have_authors_are_edited_only_by_them_and_outlive_a_recompute(engine, runner):
    from core.analyses.reports import run_report, stored_report_id

    text_ = "The staff were lovely but the room was cold."
    run_report(engine, runner, text_, ["occlusion", "saliency"], {})
    report_id = stored_report_id(engine, runner, text_, ["occlusion", "saliency"])
    with acting_as("ana"):
        note = notes_module.add_note(engine, "Occlusion is right **here**.", verdict="method_trustworthy",
                                     method="occlusion", ref=f"comparison:{report_id}", tags=("hotel",))
    with acting_as("bo"), pytest.raises(notes_module.NoteError, match="only its author"):
        notes_module.edit_note(engine, note.id, text="no")
    with acting_as("ana"):
        edited = notes_module.edit_note(engine, note.id, text="Occlusion is right here, and saliency agrees.")
    assert edited.author == "ana" and edited.updated_at is not None
    run_report(engine, runner, text_, ["occlusion", "saliency"], {}, fresh=True)  # recomputed
    assert stored_report_id(engine, runner, text_, ["occlusion", "saliency"]) == report_id
    [kept] = notes_module.list_notes(engine, ref=f"comparison:{report_id}")
    assert kept.text.endswith("saliency agrees.") and kept.verdict_text == "occlusion: method trustworthy here"
    for bad, message in (({"verdict": "great"}, "verdict must be one of"), ({"ref": "comparison:999"}, "no comparison"),
                         ({"ref": "planet:3"}, "KIND:ID"), ({"verdict": "method_trustworthy"}, "needs the method")):
        with pytest.raises(notes_module.NoteError, match=message):
            notes_module.add_note(engine, "x", **bad)
    assert [n.id for n in notes_module.list_notes(engine, tag="hotel", person="ana")] == [note.id]
    assert "## Note" in notes_module.to_markdown([kept]) and "author" in notes_module.to_csv([kept]).splitlines()[0]


def test_notes_survive_a_restart_and_rows_from_before_the_migration_say_unknown(backend_url):
    """On SQLite and PostgreSQL: a database made at 0016 is upgraded (its rows say who asked: "unknown"), a note
    written after it is there after the engine is made again (a server restart)."""
    from core.storage.db import forget_engine

    old = make_engine(backend_url, run_migrations=False)
    migrate(old, "0016")
    with old.begin() as connection:
        connection.execute(text("INSERT INTO link (url, normalized_url, title, notes, created_at) VALUES "
                                "('https://old.example/', 'https://old.example/', '', '', '2026-01-01')"))
    old.dispose()
    forget_engine(backend_url)
    upgraded = make_engine(backend_url)
    with upgraded.connect() as connection:
        assert connection.execute(text("SELECT requested_by FROM link")).scalar_one() == "unknown"
    with acting_as("ana"):
        note = notes_module.add_note(upgraded, "Kept across restarts.", verdict="needs_review")
    upgraded.dispose()
    forget_engine(backend_url)
    again = make_engine(backend_url)
    assert [(n.id, n.author, n.verdict) for n in notes_module.list_notes(again)] == [(note.id, "ana", "needs_review")]
    again.dispose()


def test_a_note_with_html_and_a_remote_image_renders_inert():
    from markdown_it import MarkdownIt

    from core.render import note_markdown

    hostile = "<script>alert(1)</script> ![x](http://evil.example/t.png) [go](javascript:alert(1)) <img src=x>"
    rendered = MarkdownIt("commonmark").render(note_markdown(hostile))
    assert "<script" not in rendered and "<img" not in rendered and "javascript:" not in rendered
    assert "&lt;script&gt;" in rendered and "http://evil.example/t.png" in rendered  # shown, never loaded


def test_cli_notes_take_the_person_from_user_or_the_environment(home, capsys, monkeypatch):
    from core.cli import main

    assert main(["notes", "add", "--text", "SHAP is right here", "--verdict", "method_trustworthy", "--method",
                 "shap", "--user", "ana", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["author"] == "ana" and added["verdict_text"] == "shap: method trustworthy here"
    monkeypatch.setenv("RASHOMON_USER", "bo")
    assert main(["notes", "add", "--text", "Spurious: the word 'hotel'", "--verdict", "model_error_spurious",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["author"] == "bo"
    assert main(["notes", "edit", str(added["id"]), "--text", "mine now", "--json"]) == 1  # bo is not the author
    assert "only its author" in capsys.readouterr().err
    assert main(["notes", "list", "--user", "ana", "--json"]) == 0
    assert [n["author"] for n in json.loads(capsys.readouterr().out)] == ["ana"]
    assert main(["notes", "export", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("id,author,")
    assert main(["notes", "add", "--text", "x", "--on", "snapshot:5"]) == 1
    assert "There is no snapshot 5" in capsys.readouterr().err
    assert main(["snapshot", "list", "--json", "--user", "bo"]) == 0


def test_findings_page_lists_notes_newest_first_filters_by_person_and_shows_them_inert(home):
    from streamlit.testing.v1 import AppTest

    from core.storage.db import get_engine

    with acting_as("ana"):
        notes_module.add_note(get_engine(), "<script>x()</script> ana's finding", verdict="label_wrong")
    with acting_as("bo"):
        notes_module.add_note(get_engine(), "bo's finding ![t](http://evil.example/t.png)")
    app = AppTest.from_file("../app.py", default_timeout=120)
    app.run()
    app.switch_page("pages/findings.py").run()
    assert not app.exception
    shown = [m.value for m in app.markdown]
    texts = [v for v in shown if "finding" in v]
    assert texts[0].startswith("bo's finding") and texts[1].endswith("ana's finding")  # newest first
    assert all("<script" not in v and not re.search(r"(?<!\\)!\[", v) for v in shown)  # images escaped
    assert any("**local**" in v for v in shown)  # no authentication configured: the one person is "local"
    filtered = AppTest.from_file("../app.py", default_timeout=120)  # a shared link: a new session
    filtered.query_params["person"] = "ana"
    filtered.run()
    filtered.switch_page("pages/findings.py").run()
    assert [v for v in (m.value for m in filtered.markdown) if "finding" in v] == [texts[1]]


def test_json_of_a_stored_result_names_who_first_asked_not_who_reads_it(engine):
    from core.storage.provenance import watching, with_requester
    from core.storage.records import find_keyed, save_keyed

    with acting_as("ana"), watching() as seen:
        save_keyed(engine, "search", "m", "fp", "key-1", {"answer": 1})
        save_keyed(engine, "pass-time", "m", "fp", "key-1", {"seconds": 1}, is_result=False)  # bookkeeping
    assert [s.requested_by for s in seen] == ["ana"] and seen[0].record.startswith("check_record:")
    with acting_as("bo"), watching() as seen:
        assert find_keyed(engine, "search", "fp", "key-1") == {"answer": 1}
        shown = with_requester({"answer": 1}, seen, "bo")
    assert shown["requested_by"] == "ana" and shown["stored"][0]["requested_by"] == "ana"
    assert with_requester({"answer": 2}, [], "bo")["requested_by"] == "bo"  # computed now, for bo
    assert with_requester([1, 2], seen, "bo") == [1, 2]  # a list keeps its shape
    assert find_keyed(engine, "search", "fp", "key-1") is not None  # outside watching(): nothing collected, no error
    from core.storage.provenance import MAX_SEEN, saw

    with watching() as seen:  # a long-running command keeps a bounded list
        for row in range(MAX_SEEN + 50):
            saw("check_record", row, "ana")
        saw("check_record", 0, "ana")  # a row used twice is named once
    assert len(seen) == MAX_SEEN and seen[0].record == "check_record:0"


def test_pages_say_who_asked_for_the_stored_result_they_show(home, runner):
    """Beside each stored result, its first asker: a corpus run (the run picker), a stability check reopened from
    its link, a stored comparison."""
    from streamlit.testing.v1 import AppTest

    from core.analyses import checks, corpus
    from core.analyses.reports import run_report
    from core.engine.fingerprints import remember
    from core.storage.db import get_engine

    text = "The staff were lovely but the food was cold."
    remember(get_engine(), runner.loaded)  # what a worker records on loading the weights: the pages read it
    with acting_as("ana"):
        job = corpus.create_job(get_engine(), "ana's run", [corpus.Input("row", "Fine.")], ["attention"])
        run_report(get_engine(), runner, text, ["occlusion"], {})
    with acting_as("bo"):
        check = checks.save_check(get_engine(), runner, "stability", [text])

    def opened(page: str, **query) -> AppTest:
        app = AppTest.from_file("../app.py", default_timeout=120)
        for key, value in query.items():
            app.query_params[key] = value
        app.run()
        app.switch_page(page).run()
        assert not app.exception
        return app

    captions = [c.value for c in opened("pages/corpus.py", job=str(job)).caption]
    assert any(c.startswith("👤 Started by **ana** on ") for c in captions)
    assert any(c.value.startswith("👤 Run by **bo**") for c in opened("pages/checks.py", stability=str(check)).caption)
    compare = opened("pages/compare.py", text=text, methods="occlusion")
    assert any(c.value.startswith("👤 Asked for by **ana**") for c in compare.caption)  # read by "local", asked by ana
