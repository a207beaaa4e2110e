"""Model specs and adapters without a trained LM (a random tiny GPT-2, built in under a second): specs, the model
list's LM entries, the prompt tokenizer, and a described LM finding what a worker stored under its weights."""

from __future__ import annotations

import json

import pytest

from core.engine.adapters import (
    AdapterSpecError,
    bind_spec,
    make_spec,
    request_fields,
    split_spec,
    with_request,
)
from core.engine.modelling import ModelLoadError, describe_model, load_model

TEMPLATE = "Tweet: {text} Sentiment:"


def test_specs_round_trip_and_bad_ones_are_one_sentence():
    spec = make_spec("lm_classifier", {"model": "m", "template": TEMPLATE, "labels": ["a", "b"], "chat": None})
    assert split_spec(spec) == ("lm_classifier", {"model": "m", "template": TEMPLATE, "labels": ["a", "b"]})
    assert split_spec("some/hub-id") == ("sequence_classifier", {"model": "some/hub-id"})
    assert split_spec("C:\\models\\x") == ("sequence_classifier", {"model": "C:\\models\\x"})
    with pytest.raises(AdapterSpecError, match="Unknown kind of model 'nonsense'"):
        split_spec('nonsense:{"model": "m"}')
    with pytest.raises(AdapterSpecError, match="not valid JSON"):
        split_spec('lm_classifier:{"model": ')
    with pytest.raises(ModelLoadError, match="Unknown kind of model"):
        load_model('nonsense:{"model": "m"}', record=False)


def test_a_continuation_takes_its_continuation_with_each_request(random_lm_dir):
    spec = make_spec("lm_continuation", {"model": str(random_lm_dir)})
    assert [name for name, _, _ in request_fields(spec)] == ["continuation", "contrast"]
    bound = with_request(spec, {"continuation": " yes", "contrast": " no", "other": "ignored"})
    assert split_spec(bound)[1] == {"model": str(random_lm_dir), "continuation": " yes", "contrast": " no"}
    assert bind_spec(bound, "any text") == bound  # a given continuation is kept; none given: the greedy one
    assert split_spec(bind_spec(spec, "good morning"))[1]["generated"] is True
    with pytest.raises(ModelLoadError, match="No continuation to explain"):
        describe_model(spec)


def test_the_prompt_tokenizer_adds_the_template_as_special_tokens(random_lm_dir):
    loaded = describe_model(make_spec("lm_classifier", {"model": str(random_lm_dir), "template": TEMPLATE,
                                                        "labels": ["bad", "good"]}))
    tokenizer = loaded.tokenizer
    encoded = tokenizer("nice day", return_offsets_mapping=True)
    n_before, n_after = len(tokenizer.before), len(tokenizer.after)
    assert encoded["special_tokens_mask"] == [1] * n_before + [0, 0] + [1] * n_after
    assert [tuple(o) for o in encoded["offset_mapping"][n_before:n_before + 2]] == [(0, 4), (5, 8)]
    cut = tokenizer("one two three four", truncation=True, max_length=n_before + n_after + 2)["input_ids"]
    assert cut[:n_before] == tokenizer.before and cut[-n_after:] == tokenizer.after and len(cut) == n_before + n_after + 2
    assert tokenizer("x", add_special_tokens=False)["input_ids"] == tokenizer.base("x", add_special_tokens=False)["input_ids"]


def test_a_described_lm_finds_the_fingerprint_a_worker_recorded(home, random_lm_dir):
    from core.engine.fingerprints import known_fingerprint
    from core.storage.db import get_engine

    spec = make_spec("lm_classifier", {"model": str(random_lm_dir), "template": TEMPLATE, "labels": ["bad", "good"]})
    described = describe_model(spec)
    assert described.model is None and described.labels == ["bad", "good"] and described.kind == "lm_classifier"
    assert described.fingerprint.startswith("unmeasured-")
    worker = load_model(spec)  # records its fingerprint where the pages look it up
    assert known_fingerprint(get_engine(), described.signature) == worker.fingerprint
    other = describe_model(make_spec("lm_classifier", {"model": str(random_lm_dir), "template": "{text} Label:",
                                                       "labels": ["bad", "good"]}))
    assert other.signature != described.signature  # another template: results stored apart
    assert load_model(other.path, record=False).fingerprint != worker.fingerprint


def test_the_model_list_offers_added_and_built_language_models(home, random_lm_dir):
    import shutil

    from core.engine.catalogue import add_language_model, language_models_file, model_choices, resolve

    add_language_model("mine", make_spec("lm_classifier", {"model": str(random_lm_dir), "template": TEMPLATE,
                                                           "labels": ["bad", "good"]}))
    built = home / "language_models" / "small-lm"
    shutil.copytree(random_lm_dir, built)
    (built / "rashomon.json").write_text(json.dumps({"kind": "causal-lm", "template": "{text} Sentiment:",
                                                     "labels": ["bad", "good"]}))
    choices = model_choices()
    assert split_spec(choices["mine"])[0] == "lm_classifier"
    assert split_spec(resolve("small-lm-classifier"))[1]["labels"] == ["bad", "good"]
    assert split_spec(resolve("small-lm-continuation"))[0] == "lm_continuation"
    language_models_file().write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        model_choices()
    with pytest.raises(ModelLoadError, match="not a model name"):
        add_language_model("../evil", "x")


@pytest.mark.parametrize(("page", "key"), [("pages/document.py", "doc_model"), ("pages/corpus.py", "corpus_model"),
                                           ("pages/checks.py", "checks_model")])
def test_pages_take_an_lm_from_the_model_list(home, random_lm_dir, page, key):
    """Whole document, Corpus and Checks with an LM chosen: no exception, the incompatible method named, and a
    continuation model asking for its continuation."""
    import shutil

    from tests.test_app import run_page

    built = home / "language_models" / "small-lm"
    shutil.copytree(random_lm_dir, built)
    (built / "rashomon.json").write_text(json.dumps({"kind": "causal-lm", "template": "{text} Sentiment:",
                                                     "labels": ["bad", "good"]}))
    app = run_page(page)
    app.selectbox(key=key).set_value("small-lm-classifier").run()
    assert not app.exception, app.exception
    assert any(c.value.startswith("Left out: Attention norm") for c in app.caption)
    app.selectbox(key=key).set_value("small-lm-continuation").run()
    assert not app.exception
    assert any(i.value.startswith("Continuation to explain: give it above") for i in app.info)


def test_a_long_few_shot_template_is_never_taken_for_a_file_name(random_lm_dir):
    """An adapter's spec is not a path: a 600-character template (longer than a file name may be) loads, and what
    reads the model's files reads the LM's directory."""
    from core.analyses.substitutes import substitutes_for

    shots = " ".join(f"Example {i}: a fine day indeed Sentiment: good" for i in range(12))
    loaded = load_model(make_spec("lm_classifier", {"model": str(random_lm_dir), "template": shots + " {text} Sentiment:",
                                                    "labels": ["bad", "good"]}), record=False)
    assert len(loaded.path) > 600 and loaded.directory == random_lm_dir and loaded.language == "en"
    assert substitutes_for(loaded) is not None
