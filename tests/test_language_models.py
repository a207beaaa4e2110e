"""Causal LMs through the adapters, on a tiny GPT-2 trained here (tests/conftest.py `tiny_lm_dir`): every method
against its definition on the log-probability target, the LM-as-classifier probabilities against the logits,
Captum's own LLM attribution, the KV cache, the CLI, and a fourth adapter added as one module and one entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.engine.adapters import make_spec, split_spec
from core.engine.modelling import ModelLoadError, load_model
from core.engine.runner import ModelRunner
from core.engine.tiny_lm import TEMPLATE
from core.methods.explain import explain
from core.methods.registry import METHODS, split_compatible

pytestmark = pytest.mark.slow
LABELS = ["negative", "neutral", "positive"]
TEXT = "i love this day"  # four words, one token each in the tiny LM's vocabulary (checked below)


def classifier_spec(directory: Path, **extra) -> str:
    return make_spec("lm_classifier", {"model": str(directory), "template": TEMPLATE, "labels": LABELS, **extra})


def continuation_spec(directory: Path, **extra) -> str:
    return make_spec("lm_continuation", {"model": str(directory), "continuation": " positive", **extra})


@pytest.fixture(scope="module")
def base(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), attn_implementation="eager").eval(),
            AutoTokenizer.from_pretrained(str(tiny_lm_dir)))


def log_p(model, ids: list[int], continuation: list[int]) -> float:
    """log p(continuation | ids) straight from the LM's logits."""
    with torch.no_grad():
        logits = model(torch.tensor([ids + continuation])).logits[0]
    steps = torch.log_softmax(logits[len(ids) - 1 : len(ids) - 1 + len(continuation)], dim=-1)
    return float(sum(steps[t, c] for t, c in enumerate(continuation)))


def test_the_tiny_lm_really_classifies(tiny_lm_dir):
    card = json.loads((tiny_lm_dir / "rashomon.json").read_text())
    assert card["kind"] == "causal-lm" and card["template"] == TEMPLATE
    assert card["accuracy"] > card["majority_baseline"] + 0.03, card


def test_lm_classifier_probabilities_equal_a_direct_computation(tiny_lm_dir, base):
    model, tokenizer = base
    runner = ModelRunner(load_model(classifier_spec(tiny_lm_dir), record=False))
    texts = ["i love this day", "worst service ever , so angry", "the meeting is at noon"]
    got = runner.probabilities_for_texts(texts)
    prefix, suffix = TEMPLATE.split("{text}")
    label_ids = [tokenizer(suffix + " " + label)["input_ids"][len(tokenizer(suffix)["input_ids"])] for label in LABELS]
    for text, row in zip(texts, got, strict=True):
        ids = tokenizer(prefix)["input_ids"] + tokenizer(text)["input_ids"] + tokenizer(suffix)["input_ids"]
        with torch.no_grad():
            next_token = torch.softmax(model(torch.tensor([ids])).logits[0, -1], dim=-1)
        expected = next_token[label_ids] / next_token[label_ids].sum()
        assert np.allclose(row, expected.numpy(), atol=1e-5)
    assert runner.loaded.settings["label_tokens"] == {label: f"Ġ{label}" for label in LABELS}


def test_the_template_is_never_attributed(tiny_lm_dir):
    runner = ModelRunner(load_model(classifier_spec(tiny_lm_dir), record=False))
    explanation = explain(runner, TEXT, "occlusion")
    assert explanation.words == ("i", "love", "this", "day")
    prepared = runner.prepare(TEXT)
    assert sum(not s for s in prepared.special_mask) == 4 and prepared.readout == len(prepared.input_ids) - 1


def test_labels_whose_first_tokens_coincide_are_refused(tiny_lm_dir):
    with pytest.raises(ModelLoadError, match="start with the same token"):
        load_model(make_spec("lm_classifier", {"model": str(tiny_lm_dir), "template": TEMPLATE,
                                               "labels": ["positive", "positive!"]}), record=False)
    with pytest.raises(ModelLoadError, match="exactly once"):
        load_model(make_spec("lm_classifier", {"model": str(tiny_lm_dir), "template": "no slot",
                                               "labels": LABELS}), record=False)


def test_every_method_runs_on_both_adapters_or_says_why_not(tiny_lm_dir):
    for spec in (classifier_spec(tiny_lm_dir), continuation_spec(tiny_lm_dir, contrast=" negative")):
        loaded = load_model(spec, record=False)
        kept, skipped = split_compatible(list(METHODS), loaded)
        assert set(skipped) == {"attention_norm"} and "layout" in skipped["attention_norm"]
        runner = ModelRunner(loaded)
        for name in kept:
            explanation = explain(runner, TEXT, name, params={"num_samples": 200} if name == "lime" else None)
            assert explanation.words == ("i", "love", "this", "day") and np.isfinite(explanation.scores).all(), name


def test_continuation_outputs_are_log_probabilities_from_the_logits(tiny_lm_dir, base):
    model, tokenizer = base
    runner = ModelRunner(load_model(continuation_spec(tiny_lm_dir, contrast=" negative"), record=False))
    assert runner.loaded.labels[:3] == ["continuation", "contrast", "contrast continuation"]
    row = runner.probabilities([runner.prepare(TEXT).input_ids])[0]
    ids = tokenizer(TEXT)["input_ids"]
    a, b = log_p(model, ids, tokenizer(" positive")["input_ids"]), log_p(model, ids, tokenizer(" negative")["input_ids"])
    assert row[0] == pytest.approx(a, abs=1e-4) and row[1] == pytest.approx(a - b, abs=1e-4)
    assert row[2] == pytest.approx(b, abs=1e-4) and row[3:].sum() == pytest.approx(a, abs=1e-4)
    assert explain(runner, TEXT, "occlusion").target == "contrast"  # the default output: why A rather than B


def test_integrated_gradients_is_complete_on_the_log_probability(tiny_lm_dir):
    runner = ModelRunner(load_model(continuation_spec(tiny_lm_dir), record=False))
    explanation = explain(runner, TEXT, "integrated_gradients", params={"adaptive": False, "n_steps": 300})
    d = explanation.diagnostics
    assert d["f_input"] < 0  # a log-probability, explained as it is
    assert sum(explanation.token_scores) == pytest.approx(d["f_input"] - d["f_baseline"], abs=0.01 * abs(d["f_input"] - d["f_baseline"]))


def test_occlusion_equals_direct_masked_passes(tiny_lm_dir, base):
    model, tokenizer = base
    runner = ModelRunner(load_model(continuation_spec(tiny_lm_dir), record=False))
    explanation = explain(runner, TEXT, "occlusion")
    ids, target = tokenizer(TEXT)["input_ids"], tokenizer(" positive")["input_ids"]
    assert len(ids) == 4  # a word is a token: the masked passes below hide exactly one word each
    full = log_p(model, ids, target)
    for i, score in enumerate(explanation.scores):
        masked = ids[:i] + [tokenizer.eos_token_id] + ids[i + 1:]
        assert score == pytest.approx(full - log_p(model, masked, target), abs=1e-4)


def test_the_kv_cache_gives_the_same_numbers_and_gradients(tiny_lm_dir):
    cached = ModelRunner(load_model(continuation_spec(tiny_lm_dir, contrast=" not at all"), record=False))
    whole = ModelRunner(load_model(continuation_spec(tiny_lm_dir, contrast=" not at all", use_cache=False), record=False))
    assert cached.loaded.model.use_cache and not whole.loaded.model.use_cache
    texts = ["i love this day", "so angry", "the meeting is at noon , see you there"]  # rows of three lengths
    assert np.allclose(cached.probabilities_for_texts(texts), whole.probabilities_for_texts(texts), atol=1e-4)
    params = {"adaptive": False, "n_steps": 32}
    a, b = (explain(r, TEXT, "integrated_gradients", params=params) for r in (cached, whole))
    assert np.allclose(a.scores, b.scores, atol=1e-4)
    assert cached.loaded.model.passes_tokens < whole.loaded.model.passes_tokens  # the prompt ran once, not twice


def test_greedy_continuation_is_generated_when_none_is_given(tiny_lm_dir, base):
    from core.engine.adapters import bind_spec

    model, tokenizer = base
    spec = bind_spec(make_spec("lm_continuation", {"model": str(tiny_lm_dir), "template": TEMPLATE,
                                                   "max_new_tokens": 3}), TEXT)
    settings = split_spec(spec)[1]
    ids = tokenizer(TEXT + " Sentiment:")["input_ids"]
    expected = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False,
                              pad_token_id=tokenizer.eos_token_id)[0, len(ids):].tolist()
    expected = expected[: expected.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in expected else expected
    assert settings["generated"] is True and settings["continuation"] == tokenizer.decode(expected)
    loaded = load_model(spec, record=False)
    assert loaded.settings["generated"] and len(loaded.labels) == 1 + len(expected)


# -- Captum's LLM attribution computes the same quantities --------------------------------------------------
def test_occlusion_equals_captum_llm_feature_ablation(tiny_lm_dir, base):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    model, tokenizer = base
    ours = explain(ModelRunner(load_model(continuation_spec(tiny_lm_dir), record=False)), TEXT, "occlusion")
    theirs = LLMAttribution(FeatureAblation(model), tokenizer).attribute(
        TextTokenInput(TEXT, tokenizer, baselines=tokenizer.eos_token_id), target=" positive", forward_in_tokens=False)
    assert np.allclose(ours.scores, theirs.seq_attr.numpy(), atol=1e-4)


def test_kernel_shap_equals_captum_llm_shapley_values(tiny_lm_dir, base):
    """With every coalition drawn, KernelSHAP is the exact Shapley value; Captum's ShapleyValues enumerates them."""
    from captum.attr import LLMAttribution, ShapleyValues, TextTemplateInput

    model, tokenizer = base
    runner = ModelRunner(load_model(continuation_spec(tiny_lm_dir), record=False))
    ours = explain(runner, TEXT, "kernel_shap", params={"num_samples": 3000, "adaptive": False})
    template = TEXT
    for word in ours.words:
        template = template.replace(word, "{}", 1)
    theirs = LLMAttribution(ShapleyValues(model), tokenizer).attribute(
        TextTemplateInput(template, values=list(ours.words), baselines=[runner.mask_token] * len(ours.words)),
        target=" positive", forward_in_tokens=False)
    assert np.allclose(ours.scores, theirs.seq_attr.numpy(), atol=1e-3)


def test_integrated_gradients_equals_captum_llm_layer_integrated_gradients(tiny_lm_dir, base):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    model, tokenizer = base
    ours = explain(ModelRunner(load_model(continuation_spec(tiny_lm_dir, continuation=" positive ."), record=False)),
                   TEXT, "integrated_gradients", params={"adaptive": False, "n_steps": 64, "baseline": "mask"})
    theirs = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tokenizer).attribute(
        TextTokenInput(TEXT, tokenizer, baselines=tokenizer.eos_token_id), target=" positive .", n_steps=64)
    assert np.allclose(ours.token_scores[:4], theirs.seq_attr.numpy(), atol=1e-4)


# -- the CLI ---------------------------------------------------------------------------------------------------
@pytest.fixture
def cli(capsys, home):
    from core.cli import main

    def run(*args: str, ok: bool = True):
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        assert (code == 0) == ok, out.err
        return (json.loads(out.out) if "--json" in args else out.out) if ok else out.err

    return run


def test_cli_compare_reads_an_lm_as_a_classifier(cli, tiny_lm_dir):
    data = cli("compare", "--lm", str(tiny_lm_dir), "--template", TEMPLATE, "--labels", ",".join(LABELS),
               "--text", TEXT, "--methods", "occlusion,integrated_gradients,attention", "--json")
    assert set(data["prediction"]) == set(LABELS) and sum(data["prediction"].values()) == pytest.approx(1.0)
    assert all(e["words"] == ["i", "love", "this", "day"] for e in data["explanations"])
    assert data["model"]["kind"] == "lm_classifier" and data["model"]["template"] == TEMPLATE
    again = cli("compare", "--lm", str(tiny_lm_dir), "--template", TEMPLATE, "--labels", ",".join(LABELS),
                "--text", TEXT, "--methods", "occlusion,integrated_gradients,attention", "--json")
    assert again["cost"]["forward_passes_now"] == 0 and again["cost"]["from_store"]  # same model, template, labels


def test_cli_explains_a_continuation_against_a_contrast(cli, tiny_lm_dir):
    data = cli("explain", "--lm", str(tiny_lm_dir), "--text", TEXT, "--continuation", " positive",
               "--contrast", " negative", "--methods", "occlusion", "--json")
    (explanation,) = data["explanations"]
    assert explanation["target"] == "contrast" and explanation["words"] == ["i", "love", "this", "day"]
    tokens = cli("explain", "--lm", str(tiny_lm_dir), "--text", TEXT, "--continuation", " positive .",
                 "--methods", "occlusion", "--per-token", "--json")
    (view,) = tokens["per_token"]
    assert view["tokens"] == ["token 1 positive", "token 2 ."] and len(view["scores"][0]) == 4
    # the rows add up to the whole continuation's occlusion scores (log p is a sum over the tokens)
    whole = tokens["explanations"][0]["scores"]
    assert np.allclose(np.sum(view["scores"], axis=0), whole, atol=1e-4)
    said = cli("explain", "--lm", str(tiny_lm_dir), "--text", TEXT, "--continuation", " positive", "--contrast",
               " negative", "--methods", "occlusion")
    assert said.startswith("Log-probabilities: continuation -") and "Prediction" not in said
    compared = cli("compare", "--lm", str(tiny_lm_dir), "--text", TEXT, "--continuation", " positive",
                   "--contrast", " negative", "--methods", "occlusion,saliency", "--json")
    assert compared["summary"][0].startswith("The methods explain the model's output **contrast** = ")
    assert compared["prediction"]["contrast"] == pytest.approx(
        compared["prediction"]["continuation"] - compared["prediction"]["contrast continuation"], abs=1e-5)
    default = cli("explain", "--lm", str(tiny_lm_dir), "--text", TEXT, "--template", TEMPLATE,
                  "--max-new-tokens", "2", "--json")
    assert default["model"]["generated"] is True and "attention_norm" in default["incompatible"]


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "x", "--lm", "y"], "not both"),
    (["--model", "x", "--labels", "a,b"], "go with --lm"),
    (["--lm", "{dir}", "--labels", "a,b"], "needs --template"),
    (["--lm", "{dir}", "--template", TEMPLATE, "--labels", "positive,positive!"], "same token"),
    (["--lm", "{dir}", "--chat", "--continuation", " yes"], "no chat template"),
    (["--lm", "{dir}", "--labels", "a,b", "--template", TEMPLATE, "--contrast", "x"], "one or the other"),
])
def test_cli_refuses_bad_lm_arguments_in_one_line(cli, tiny_lm_dir, args, message):
    err = cli("explain", "--text", TEXT, *[a.replace("{dir}", str(tiny_lm_dir)) for a in args], ok=False)
    assert message in err and len(err.strip().splitlines()) == 1


# -- one module and one entry -----------------------------------------------------------------------------------
def test_a_fourth_adapter_is_one_module_and_one_entry(tiny_model_dir):
    """tests/support/tempered_adapter.py: a classifier read at a temperature. Registered, it loads from its spec and
    every method explains it, with no other change; nothing outside the adapters names a kind of model."""
    from tests.support import tempered_adapter

    loaded = load_model(make_spec("tempered", {"model": str(tiny_model_dir), "temperature": 2.0}), record=False)
    plain = load_model(str(tiny_model_dir), record=False)
    assert loaded.kind == "tempered" and loaded.fingerprint != plain.fingerprint
    runner, reference = ModelRunner(loaded), ModelRunner(plain)
    ids = [runner.prepare(TEXT).input_ids]
    with torch.no_grad():
        logits = plain.model(input_ids=torch.tensor(ids)).logits
    assert np.allclose(runner.probabilities(ids), torch.softmax(logits / 2.0, -1).numpy(), atol=1e-5)
    assert not np.allclose(runner.probabilities(ids), reference.probabilities(ids))
    for name in split_compatible(list(METHODS), loaded)[0]:
        explain(runner, TEXT, name, params={"num_samples": 100} if name == "lime" else None)
    assert tempered_adapter.ADAPTER.name == "tempered"
    root = Path(__file__).resolve().parent.parent / "core"
    for path in [*root.joinpath("methods").glob("*.py"), *root.joinpath("analyses").rglob("*.py"), root / "engine" / "runner.py"]:
        source = path.read_text()
        assert "lm_classifier" not in source and "lm_continuation" not in source and "loaded.kind" not in source, path


# -- the pages ---------------------------------------------------------------------------------------------------
@pytest.fixture
def lm_home(home, tiny_lm_dir):
    """The home fixture with the tiny LM built where `rashomon model build-tiny-lm` puts it: the model list then
    offers tiny-lm-classifier and tiny-lm-continuation."""
    import shutil

    shutil.copytree(tiny_lm_dir, home / "language_models" / "tiny-lm")
    return home


def test_compare_page_explains_an_lm_classifier_and_reopens_from_its_link(lm_home):
    from tests.test_app import frame_of, run_page

    methods = "occlusion,integrated_gradients,attention,attention_norm"
    app = run_page("pages/compare.py", text=TEXT, methods=methods, model="tiny-lm-classifier")
    assert not app.exception
    assert any(c.value.startswith("Left out: Attention norm") and "not of a known layout" in c.value for c in app.caption)  # said, not dropped
    app.button[0].click().run()
    assert not app.exception
    prediction = [s.value for s in app.subheader if s.value.startswith("Prediction:")]
    assert prediction and prediction[0].split()[1] in LABELS
    assert any("label words negative → Ġnegative" in c.value for c in app.caption)
    assert list(frame_of(app, "method")["method"]) == ["Occlusion (leave one word out)", "Integrated Gradients",
                                                      "Attention weights ([CLS] row)"]
    assert app.query_params["methods"] in ([methods], methods)  # the address keeps what was asked for

    import streamlit as st

    st.cache_resource.clear()
    shared = run_page("pages/compare.py", text=TEXT, methods=methods, model="tiny-lm-classifier")
    assert any(c.value.startswith("Model passes to show this view now: 0 ") for c in shared.caption)
    assert [s.value for s in shared.subheader if s.value.startswith("Prediction")] == prediction


def test_compare_page_explains_a_continuation_against_a_contrast(lm_home):
    from tests.test_app import run_page

    app = run_page("pages/compare.py", text=TEXT, methods="occlusion,lime", model="tiny-lm-continuation")
    assert not app.exception and any("Continuation to explain: give it above" in i.value for i in app.info)
    app = run_page("pages/compare.py", text=TEXT, methods="occlusion,lime", model="tiny-lm-continuation",
                   continuation=" positive", contrast=" negative")
    assert not app.exception
    app.button[0].click().run()
    assert not app.exception
    assert any(s.value.startswith("Explaining: contrast = ") for s in app.subheader)
    assert app.query_params["continuation"] in ([" positive"], " positive")
    next(b for b in app.button if b.label == "Explain each token").click().run()
    assert not app.exception
    assert any(c.value.startswith("Each row explains one generated token") for c in app.caption)
    import streamlit as st

    st.cache_resource.clear()
    shared = run_page("pages/compare.py", text=TEXT, methods="occlusion,lime", model="tiny-lm-continuation",
                      continuation=" positive", contrast=" negative")
    assert any(c.value.startswith("Model passes to show this view now: 0 ") for c in shared.caption)
