"""The `rashomon` command line, run as a real subprocess against a temporary home."""

import json
import os
import subprocess
import sys

import pytest


def rashomon(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_methods_lists_every_method_with_options(home):
    result = rashomon("methods", "--json")
    assert result.returncode == 0
    methods = {m["name"]: m for m in json.loads(result.stdout)}
    assert set(methods) == {"lime", "shap", "integrated_gradients", "saliency", "input_x_gradient",
                            "occlusion", "attention", "attention_rollout"}
    assert {o["name"]: o["default"] for o in methods["integrated_gradients"]["options"]}["n_steps"] == 50


def test_model_info_reports_the_first_token_shortcut(home):
    result = rashomon("model", "info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["first_token_shortcut"] is True and info["labels"] == ["negative", "neutral", "positive"]


def test_explain_json_then_stored(home):
    args = ("explain", "--text", "A lovely, thoughtful film.", "--methods", "attention,occlusion,lime", "--json")
    first = rashomon(*args)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["model"]["labels"] == ["negative", "neutral", "positive"]
    assert data["prediction"]["label"] in data["prediction"]["probabilities"] and data["truncated"] == 0
    assert [e["method"] for e in data["explanations"]] == ["attention", "occlusion", "lime"]
    for e in data["explanations"]:
        assert {"words", "offsets", "scores", "signed", "target", "seconds", "forward_passes", "params",
                "diagnostics"} <= set(e)
        assert e["words"] == ["A", "lovely", ",", "thoughtful", "film", "."] and not e["cached"]
    second = json.loads(rashomon(*args).stdout)
    assert all(e["cached"] for e in second["explanations"])
    assert [e["scores"] for e in second["explanations"]] == [e["scores"] for e in data["explanations"]]
    fresh = json.loads(rashomon(*args, "--fresh").stdout)
    assert not any(e["cached"] for e in fresh["explanations"])


@pytest.mark.parametrize(("args", "message"), [
    (("explain", "--text", "  "), "empty"),
    (("explain", "--text", "ok", "--methods", "tarot"), "Unknown method"),
    (("explain", "--text", "ok", "--target", "furious"), "Unknown label"),
    (("explain", "--text", "ok", "--model", "/nonexistent/model"), "No model directory"),
    (("explain", "--snapshot", "999"), "No snapshot"),
    (("tag", "rename", "nope", "other"), "no tag"),
    (("snapshot", "add", "ftp://example.com/"), "http"),
])
def test_errors_exit_nonzero_with_one_line(home, args, message):
    result = rashomon(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_snapshot_commands(home, web_server, tmp_path):
    added = rashomon("snapshot", "add", f"{web_server}/article", "--tag", "news", "--json")
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert {"link_id", "snapshot_id", "url", "normalized_url", "final_url", "status", "title", "text",
            "extractor", "tags", "error"} <= set(data)
    assert data["tags"] == ["news"] and data["status"] == 200 and not data["error"]
    failed = rashomon("snapshot", "add", f"{web_server}/doc.pdf")
    assert failed.returncode == 1 and "PDF" in failed.stderr
    listed = json.loads(rashomon("snapshot", "list", "--tag", "news", "--json").stdout)
    assert [v["id"] for v in listed] == [data["link_id"]]
    assert rashomon("snapshot", "refresh", str(data["link_id"])).returncode == 0
    assert "riverside" in rashomon("snapshot", "show", str(data["snapshot_id"])).stdout
    assert rashomon("tag", "rename", "news", "press").returncode == 0
    assert rashomon("tag", "merge", "press", "media").returncode == 0
    exported = rashomon("export", "--format", "html").stdout
    assert 'TAGS="media"' in exported
    (tmp_path / "b.html").write_text(exported)
    assert "0 links added, 2 already present" in rashomon("import", str(tmp_path / "b.html")).stdout
    explained = rashomon("explain", "--snapshot", str(data["snapshot_id"]), "--methods", "attention", "--json")
    assert json.loads(explained.stdout)["explanations"][0]["words"][:2] == ["City", "council"]
