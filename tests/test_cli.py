"""The `rashomon` command line, run as a real subprocess against a temporary home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def rashomon(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture
def here(capsys):
    """`rashomon ...` run in this process: the same `main` as `python -m core` (whose start-up the other tests
    cover) without an interpreter start per command; the result looks like `rashomon(...)`'s."""
    from core.cli import main

    def run(*args):
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.mark.processes
def test_methods_lists_every_method_with_options(home):
    from core.methods import METHODS

    result = rashomon("methods", "--json")
    assert result.returncode == 0
    methods = {m["name"]: m for m in json.loads(result.stdout)}
    assert list(methods) == list(METHODS)
    for name, spec in METHODS.items():
        listed = methods[name]
        assert (listed["family"], listed["speed"], listed["random"]) == (spec.family, spec.speed, spec.random)
        assert [o["name"] for o in listed["options"]] == [o.name for o in spec.options]
    for name, spec in METHODS.items():  # every option's default as the registry declares it
        assert {o["name"]: o["default"] for o in methods[name]["options"]} == {o.name: o.default for o in spec.options}


def test_model_info_reports_the_first_token_shortcut(home, here):
    result = here("model", "info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["first_token_shortcut"] is True and info["labels"] == ["negative", "neutral", "positive"]


def test_explain_json_then_stored(home, here):
    args = ("explain", "--text", "A lovely, thoughtful film.", "--methods", "attention,occlusion,lime", "--json")
    first = here(*args)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["model"]["labels"] == ["negative", "neutral", "positive"]
    assert data["prediction"]["label"] in data["prediction"]["probabilities"] and data["truncated"] == 0
    assert [e["method"] for e in data["explanations"]] == ["attention", "occlusion", "lime"]
    for e in data["explanations"]:
        assert {"words", "offsets", "scores", "signed", "target", "seconds", "forward_passes", "params",
                "diagnostics"} <= set(e)
        assert e["words"] == ["A", "lovely", ",", "thoughtful", "film", "."] and not e["cached"]
    second = json.loads(here(*args).stdout)
    assert all(e["cached"] for e in second["explanations"])
    assert [e["scores"] for e in second["explanations"]] == [e["scores"] for e in data["explanations"]]
    fresh = json.loads(here(*args, "--fresh").stdout)
    assert not any(e["cached"] for e in fresh["explanations"])


BAD_INVOCATIONS = [
    (("explain", "--text", "  "), "empty"),
    (("explain", "--text", "ok", "--methods", "tarot"), "Unknown method"),
    (("explain", "--text", "ok", "--target", "furious"), "Unknown label"),
    (("explain", "--text", "ok", "--model", "/nonexistent/model"), "No model directory"),
    (("explain", "--snapshot", "999"), "No snapshot"),
    (("tag", "rename", "nope", "other"), "no tag"),
    (("snapshot", "add", "ftp://example.com/"), "http"),
    (("snapshot", "add"), "at least one URL"),
    (("compare", "--text", "ok", "--methods", "attention", "--k", "0"), "'k' must be between 1 and 1,000, not 0"),
    (("compare", "--text", "ok", "--option", "lime.num_samples"), "METHOD.OPTION=VALUE"),
    (("compare", "--text", "ok", "--methods", "lime", "--option", "lime.num_samples=many"), "must be int"),
    (("corpus", "status", "77"), "no corpus job 77"),
    (("corpus", "stop", "77"), "no corpus job 77"),
    (("corpus", "run", "--methods", "attention"), "--csv FILE or --tag"),
    (("demo", "show", "5"), "No demo"),
    (("check", "stability", "--snapshot", "3"), "No snapshot"),
    (("counterfactual", "--text", "ok", "--similarity", "3"), "'similarity' must be between 0 and 1, not 3"),
    (("counterfactual", "--text", "ok", "--order", "tarot"), "Unknown method"),
    (("counterfactual", "--text", "ok", "--target", "furious"), "Unknown target label"),
    (("counterfactual", "--text", "?!"), "no words to edit"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INVOCATIONS)
def test_errors_exit_nonzero_with_one_line(bad_invocations, args, message):
    returncode, stderr = bad_invocations[json.dumps(args)]
    assert returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr


# Every bad invocation above in one real process (one interpreter start instead of twenty): `main` runs
# each in turn with its own stderr; anything escaping `main` is written out as its traceback, and fails.
ONE_PROCESS_DRIVER = """
import contextlib, io, json, sys, traceback
from core.cli import main
results = {}
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc(file=err)
            code = "raised"
    results[json.dumps(args)] = [code, err.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def bad_invocations(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("bad-invocations")
    cases = [list(args) for args, _ in BAD_INVOCATIONS]
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_MODEL": str(tiny_model_dir)}
    env.pop("RASHOMON_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", ONE_PROCESS_DRIVER, json.dumps(cases)], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    return {json.dumps(tuple(json.loads(k))): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


def test_snapshot_commands(home, web_server, tmp_path, here):
    added = here("snapshot", "add", f"{web_server}/article", "--tag", "news", "--json")
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert {"link_id", "snapshot_id", "url", "normalized_url", "final_url", "status", "title", "text",
            "extractor", "tags", "error"} <= set(data)
    assert data["tags"] == ["news"] and data["status"] == 200 and not data["error"]
    failed = here("snapshot", "add", f"{web_server}/doc.pdf")
    assert failed.returncode == 1 and "PDF" in failed.stderr
    listed = json.loads(here("snapshot", "list", "--tag", "news", "--json").stdout)
    assert [v["id"] for v in listed] == [data["link_id"]]
    assert here("snapshot", "refresh", str(data["link_id"])).returncode == 0
    assert "riverside" in here("snapshot", "show", str(data["snapshot_id"])).stdout
    assert here("tag", "rename", "news", "press").returncode == 0
    assert here("tag", "merge", "press", "media").returncode == 0
    exported = here("export", "--format", "html").stdout
    assert 'TAGS="media"' in exported
    (tmp_path / "b.html").write_text(exported)
    assert "0 links added, 2 already present" in here("import", str(tmp_path / "b.html")).stdout
    explained = here("explain", "--snapshot", str(data["snapshot_id"]), "--methods", "attention", "--json")
    assert json.loads(explained.stdout)["explanations"][0]["words"][:2] == ["City", "council"]


def test_explain_file_decodes_like_pages_and_refuses_binary(home, tmp_path, here):
    legacy = tmp_path / "review.txt"
    legacy.write_bytes(("Le café était délicieux et le thé très agréable. Nous y retournerons sûrement l'été "
                        "prochain, après les vacances, pour goûter à nouveau leurs crêpes à la crème fraîche.")
                       .encode("cp1252"))
    result = here("explain", "--file", str(legacy), "--methods", "attention", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["explanations"][0]["words"][:3] == ["Le", "café", "était"]
    binary = tmp_path / "photo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    refused = here("explain", "--file", str(binary), "--methods", "attention")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "binary" in refused.stderr and "Traceback" not in refused.stderr


def test_snapshot_add_takes_several_urls_and_a_file(home, web_server, tmp_path, here):
    many = here("snapshot", "add", f"{web_server}/article", f"{web_server}/doc.pdf", "--tag", "batch")
    assert many.returncode == 1
    assert f"ok      {web_server}/article" in many.stderr and f"failed  {web_server}/doc.pdf" in many.stderr
    assert "1 snapshotted, 1 failed" in many.stdout and "1 of 2 link(s) failed" in many.stderr
    (tmp_path / "urls.txt").write_text(f"# reading list\n{web_server}/legacy\n{web_server}/plain\n")
    listed = here("snapshot", "add", "--file", str(tmp_path / "urls.txt"), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["error"] for r in json.loads(listed.stdout)] == ["", ""]
    refreshed = here("snapshot", "refresh", str(json.loads(listed.stdout)[0]["link_id"]), "--json")
    assert refreshed.returncode == 0 and json.loads(refreshed.stdout)["snapshot_id"] > 0


def test_compare_json_is_the_pages_view(home, here):
    """`rashomon compare --json` and the Compare page show the same numbers for the same view."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app import ROOT

    text = "The staff were lovely but the food was cold and bland."
    methods = "occlusion,attention,saliency"
    result = here("compare", "--text", text, "--methods", methods, "--k", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [e["method"] for e in data["explanations"]] == methods.split(",")
    assert {"agreement", "faithfulness", "attention_correlations", "attention_interventions", "summary"} <= set(data)
    again = json.loads(here("compare", "--text", text, "--methods", methods, "--k", "3", "--json").stdout)
    assert again["cost"]["from_store"] and again["cost"]["forward_passes_now"] == 0
    assert again["faithfulness"] == data["faithfulness"]

    # The page on an empty database computes the same view itself and shows the same figures.
    import os

    from sqlmodel import Session, delete

    from core.storage.db import get_engine
    from core.storage.schema import ComparisonReportRecord, ExplanationRecord

    with Session(get_engine()) as session:
        session.exec(delete(ComparisonReportRecord))
        session.exec(delete(ExplanationRecord))
        session.commit()
    assert os.environ["RASHOMON_HOME"]
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.query_params.update(text=text, methods=methods, k="3")
    app.run()
    app = app.switch_page("pages/compare.py").run()
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception
    shown = next(d.value for d in app.dataframe if "comprehensiveness AOPC ↑" in d.value.columns)
    for row, f in zip(shown.itertuples(index=False), data["faithfulness"], strict=True):
        assert row[0] == f["method"] and row[1] == round(f["aopc_comprehensiveness"], 4)
        assert row[2] == round(f["aopc_sufficiency"], 4)
    from core.render import md
    from tests.support.compare_page import summary_lines, verdict_lines

    assert summary_lines(app) == data["summary"]
    # The verdict on the page is the JSON's, word for word, each with a button opening the tab that shows it.
    tabs = {"faithfulness": "Faithfulness", "side-by-side": "Words", "agreement": "Agreement", "attention": "Attention"}
    assert verdict_lines(app) == [(md(s), tabs[section]) for s, section in
                                  zip(data["verdict"]["sentences"], data["verdict"]["sections"], strict=True)]


def test_corpus_commands(home, tmp_path, here):
    (tmp_path / "reviews.csv").write_text("text,label\nLovely staff.,positive\nCold food.,negative\n"
                                          "Nothing special.,neutral\n")
    run = here("corpus", "run", "--csv", str(tmp_path / "reviews.csv"), "--methods", "attention,occlusion",
                   "--k", "3", "--edits", "--edit-max", "1", "--edit-similarity", "0.3", "--json")
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    assert status["job"]["status"] == "done" and status["job"]["done"] == 3 and status["fraction"] == 1.0
    assert {r["method"] for r in status["leaderboard"]} == {"attention", "occlusion", "random"}
    from core.analyses.corpus.jobs import CORPUS_EDIT_OPTIONS

    # corpus runs' own edit settings, from their one definition, not a copied number
    assert status["job"]["edits"]["max_edits"] == 1
    assert status["job"]["edits"]["positions"] == CORPUS_EDIT_OPTIONS["positions"]
    assert status["attack"][-1]["label"] == "all" and status["attack"][-1]["inputs"] == 3
    job = status["job"]["id"]
    listed = json.loads(here("corpus", "status", "--json").stdout)
    assert [j["id"] for j in listed] == [job]
    exported = json.loads(here("corpus", "export", str(job)).stdout)
    assert len(exported["items"]) == 3 and exported["job"]["methods"] == ["attention", "occlusion"]
    assert here("corpus", "export", str(job), "--format", "csv").stdout.startswith("position,origin")
    stopped = here("corpus", "stop", str(job))
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    resumed = here("corpus", "resume", str(job))
    assert resumed.returncode == 1 and "already done" in resumed.stderr


@pytest.mark.processes
def test_corpus_stop_and_resume_from_the_command_line(home, tmp_path):
    from core.analyses import corpus
    from core.storage.db import get_engine

    job = corpus.create_job(get_engine(), "cli", [corpus.Input(f"row {i}", t) for i, t in
                                                  enumerate(["Good.", "Bad.", "Fine."])], ["attention"])
    with get_engine().begin() as connection:  # as a server's thread would be: running
        connection.exec_driver_sql("UPDATE corpus_job SET status='running', heartbeat_at=CURRENT_TIMESTAMP")
    assert "asked corpus job" in rashomon("corpus", "stop", str(job)).stdout
    assert corpus.get_job(get_engine(), job).stop_requested
    busy = rashomon("corpus", "resume", str(job))
    assert busy.returncode == 1 and "running elsewhere" in busy.stderr
    with get_engine().begin() as connection:  # the server stopped it
        connection.exec_driver_sql("UPDATE corpus_job SET status='stopped', stop_requested=0")
    resumed = rashomon("corpus", "resume", str(job), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["job"]["done"] == 3


def test_check_commands(home, here):
    stability = here("check", "stability", "--text", "Lovely staff, cold food.", "--methods",
                         "integrated_gradients,saliency", "--quick", "--json")
    assert stability.returncode == 0, stability.stderr
    results = {r["method"]: r for r in json.loads(stability.stdout)}
    assert results["saliency"]["verdict"]["passed"] is True  # deterministic: rerun gives the same scores
    assert len(results["integrated_gradients"]["variants"]) == 2  # the registry's quick variants
    # Known answers on the fixed-seed tiny model, with the head and the top layer randomised: Integrated
    # Gradients changes (passes), saliency barely does (fails). --strict exits 1 exactly when one fails.
    args = ("check", "randomisation", "--text", "Lovely staff, cold food.", "--max-layers", "1")
    verdicts = json.loads(here(*args, "--methods", "integrated_gradients,saliency", "--json").stdout)["verdicts"]
    assert (verdicts["integrated_gradients"]["passed"], verdicts["saliency"]["passed"]) == (True, False)
    strict = here(*args, "--methods", "integrated_gradients,saliency", "--strict")
    assert strict.returncode == 1 and "failed the randomisation check" in strict.stderr
    assert all(v["sentence"] in strict.stdout for v in verdicts.values())
    alone = here(*args, "--methods", "integrated_gradients", "--strict")
    assert alone.returncode == 0 and "failed" not in alone.stderr


def test_demo_commands(home, here):
    from core.analyses.compare import ViewState, save_demo
    from core.storage.db import get_engine

    demo = save_demo(get_engine(), "walkthrough", "for the team", ViewState(text="hello there", methods=["attention"]))
    listed = json.loads(here("demo", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["walkthrough"]
    shown = json.loads(here("demo", "show", str(demo.id), "--json").stdout)
    assert shown["view"]["text"] == "hello there" and shown["view"]["methods"] == ["attention"]


@pytest.mark.processes
@pytest.mark.slow
def test_build_default_versions_and_compare_models(home, tmp_path, capsys):
    """A small default build, a second version with extra training rows beside it, both listed, then
    model vs model on held-out rows and on one input."""
    small = ("--train-rows", "60", "--heldout-rows", "30", "--checkpoints", "0")
    result = rashomon("model", "build-default", *small)
    assert result.returncode == 0, result.stderr
    assert "MISSING" not in result.stdout + result.stderr and "LOAD REPORT" not in result.stdout + result.stderr
    assert "a fresh head is expected" in result.stdout
    from core.cli import main

    extra = tmp_path / "extra.csv"
    extra.write_text("text,label\nthe flight was fine,neutral\nlovely crew,awful\n")
    assert main(["model", "build-default", "--extra-training", str(extra), *small]) == 1
    assert "'awful' (1)" in capsys.readouterr().err
    extra.write_text("text,label\nthe flight was fine,neutral\nlovely crew,positive\n")
    # the second build in this process: the first, above, covers the command's own start-up and output
    assert main(["model", "build-default", "--extra-training", str(extra), *small, "--json"]) == 0
    version = Path(json.loads(capsys.readouterr().out)["output_dir"])
    first = home / "models" / "default-sentiment"
    assert version == first.parent / "default-sentiment-v2"
    rows = [json.loads(line) for line in (version / "training.jsonl").read_text().split("\n") if line]
    assert len(rows) == 62 and [r["id"] for r in rows[-2:]] == ["extra-1", "extra-2"]
    assert main(["model", "list", "--json"]) == 0
    listed = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert listed["default-sentiment"]["extra_rows"] == 0 and listed["default-sentiment-v2"]["extra_rows"] == 2
    assert main(["model-compare", "--a", str(first), "--b", str(version), "--heldout", "--limit", "12",
                 "--text", "lovely crew, late flight", "--methods", "saliency", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["evaluation"]["inputs"] == 12 and compared["input"][0]["method"] == "saliency"
    assert main(["compare-models", "--a", str(first), "--b", str(version)]) == 1
    assert "Give a labelled set" in capsys.readouterr().err


def test_heads_and_document_commands(home, tmp_path, here, capsys):
    heads = here("heads", "--text", "A lovely, thoughtful film.", "--json")
    assert heads.returncode == 0, heads.stderr
    result = json.loads(heads.stdout)
    assert len(result["effects"]) == 2 and len(result["effects"][0]) == 2  # the tiny model's layers x heads
    assert result["forward_passes"] == 5
    bad = here("heads", "--text", "A film.", "--target", "nope")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Unknown label" in bad.stderr

    from tests.conftest import REVIEW_PARAGRAPHS

    document = tmp_path / "review.txt"
    document.write_text("\n\n".join(p.strip() for p in REVIEW_PARAGRAPHS), encoding="utf-8")
    first = here("document", "--file", str(document), "--methods", "occlusion,attention", "--target", "positive",
                     "--window", "64", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert len(doc["windows"]) > 3 and doc["forward_passes"] > 0 and len(doc["paragraphs"]) == 3
    again = here("document", "--file", str(document), "--methods", "occlusion,attention", "--target", "positive",
                     "--window", "64")
    assert again.returncode == 0, again.stderr
    assert "0 model passes" in again.stdout and again.stdout.count("disagreement") == 3
    with pytest.raises(SystemExit) as refused:  # argparse's one line, from the typed bound
        here("document", "--file", str(document), "--window", "100000")
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "argument --window: 'window' must be between 8 and 8,192, not 100000.")


def test_counterfactual_command(home, here):
    args = ("edits", "--text", "The staff were friendly but the room was noisy and cold",
            "--attack", "--max-edits", "2", "--similarity", "0.5", "--methods", "occlusion,saliency", "--json")
    first = here(*args, "--user", "ana")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    search = data["search"]
    assert search["goal"] == "any other" and not data["from_store"]
    assert data["requested_by"] == "ana" and data["stored"][0]["record"].startswith("check_record:")
    assert search["forward_passes"] > 0 and search["seconds"] > 0
    assert search["counterfactuals"], search["stopped"]  # the tiny model flips on this text
    for counterfactual in search["counterfactuals"]:
        assert counterfactual["label"] != search["predicted"] and len(counterfactual["edits"]) <= 2
    assert {row["method"] for row in data["counterfactual_agreement"]} == {"occlusion", "saliency"}
    again = json.loads(here(*args, "--user", "bo").stdout)
    assert again["from_store"] and again["search"] == search
    # bo reads ana's stored search: the output names who asked for it, not who reads it
    assert again["requested_by"] == "ana" and again["stored"] == data["stored"]
    text = here(*args[:-1])
    assert text.returncode == 0 and "counterfactual(s)" in text.stdout
