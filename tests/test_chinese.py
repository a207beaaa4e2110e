"""Chinese as a first-class language: the Chinese model's build, and every method on Chinese words."""

from __future__ import annotations

import json

import pytest

from core.words import split_words

REVIEW = "这家酒店的服务很好，但是房间太脏了，我不会再来。"


@pytest.fixture(scope="module")
def chinese_runner(chinese_tiny_model_dir):
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    return ModelRunner(load_model(str(chinese_tiny_model_dir)))


def test_the_chinese_build_reads_chinese_and_is_saved_like_the_english_model(chinese_tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chinese_tiny_model_dir)
    tokens = tokenizer.tokenize(REVIEW)
    assert tokens.count("[UNK]") <= 2 and tokens[:4] == ["这", "家", "酒", "店"]  # before: 30 of 43 tokens were [UNK]
    card = json.loads((chinese_tiny_model_dir / "rashomon.json").read_text())
    assert card["language"] == "zh" and card["config"]["heldout_rows"] == 100 and 0 <= card["accuracy"] <= 1
    rows = [json.loads(line) for line in (chinese_tiny_model_dir / "training.jsonl").read_text().splitlines()]
    assert len(rows) == 400 and rows[0]["id"].startswith("review-") and {r["label"] for r in rows} == {"negative",
                                                                                                          "positive"}
    checkpoints = json.loads((chinese_tiny_model_dir / "checkpoints.json").read_text())
    assert len(checkpoints["checkpoints"]) == 2 and checkpoints["start"] == "checkpoints/start"  # for TracIn
    assert "snownlp" in (chinese_tiny_model_dir / "README.md").read_text()


def test_every_registry_method_explains_chinese_words(chinese_runner):
    """Every method scores the word layer's 17 words (not 6 clauses), with exact offsets and the layer named."""
    from core.methods.explain import explain
    from core.methods.registry import METHODS

    words = split_words(REVIEW)
    for name in METHODS:
        explanation = explain(chinese_runner, REVIEW, name)
        assert list(explanation.words) == [w for w, _, _ in words], name
        assert [tuple(o) for o in explanation.offsets] == [(s, e) for _, s, e in words], name
        assert all(REVIEW[s:e] == w for w, (s, e) in zip(explanation.words, explanation.offsets, strict=True))
        assert explanation.word_layer.startswith("jieba3k") and len(explanation.scores) == 17, name
        assert any(abs(s) > 0 for s in explanation.scores), name


def test_build_default_language_zh_builds_default_zh_and_the_server_offers_it(home, capsys):
    """`rashomon model build-default --language zh` builds into RASHOMON_HOME/models/default-sentiment-zh, and the
    server's model list names it `default-zh` (links carry that name, never the path)."""
    from core.cli import main
    from core.engine.catalogue import CHINESE_NAME, model_choices, resolve

    assert main(["model", "build-default", "--language", "zh", "--encoder", "x"]) == 1
    assert "--language zh trains its own small encoder" in capsys.readouterr().err
    small = ["--train-rows", "200", "--heldout-rows", "60", "--checkpoints", "1", "--max-length", "48"]
    assert main(["model", "build-default", "--language", "zh", *small, "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["built"] and built["output_dir"] == str(home / "models" / "default-sentiment-zh")
    assert resolve(CHINESE_NAME) == built["output_dir"] and CHINESE_NAME in model_choices()
    config = json.loads((home / "models" / "default-sentiment-zh" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["max_position_embeddings"] == 48
    assert json.loads((home / "models" / "default-sentiment-zh" / "rashomon.json").read_text())["config"][
        "max_length"] == 48  # --max-length: the window the model reads, and trains on
    with pytest.raises(SystemExit):
        main(["model", "build-default", "--language", "zh", "--max-length", "4"])
    assert "max-length" in capsys.readouterr().err


def test_edits_of_a_chinese_review_change_words_from_its_own_embeddings_and_state_the_bound(chinese_runner):
    """Deletions and swaps work on Chinese words; swap candidates are words of the model's own training rows near
    the word in its embeddings; the English sentence encoder's bound is said to be unavailable, never applied."""
    from core.analyses.edits import ANY_OTHER, search
    from core.analyses.substitutes import substitutes_for

    table = substitutes_for(chinese_runner.loaded)
    assert len(table.words) > 50 and all(2 <= len(w) <= 4 for w in table.words)
    swaps = table.for_word("房间", 5)
    assert swaps and "房间" not in swaps and all(w in table.words for w in swaps)
    result = search(chinese_runner, REVIEW, ANY_OTHER, params={"max_edits": 3, "similarity": 0.99})
    assert "reads English only" in result.similarity_unavailable
    words = [w for w, _, _ in split_words(REVIEW)]
    assert result.words == tuple(words)
    for counterfactual in result.counterfactuals:  # re-verified through the model by the search itself
        assert counterfactual.label != result.predicted
        assert all(e.position < len(words) and e.original == words[e.position] for e in counterfactual.edits)


def test_evaluation_error_groups_corpus_runs_and_training_examples_work_on_the_chinese_model(
        engine, chinese_runner, chinese_tiny_model_dir):
    """The Chinese model through the bad-case loop: its own held-out reviews evaluated, the errors grouped with
    Chinese words, a corpus run of the fast methods, and the training examples behind one prediction."""
    from core.analyses import corpus
    from core.analyses.error_groups import error_groups
    from core.analyses.evaluation import create_evaluation, evaluation, heldout_inputs
    from core.analyses.training_data.attribute import attribute
    from core.analyses.training_data.training_sets import training_set_for

    reviews = heldout_inputs(40, "zh")
    assert len(heldout_inputs(None, "zh")) == 2000 and {i.gold_label for i in reviews} == {"negative", "positive"}
    labels = chinese_runner.loaded.labels
    job = create_evaluation(engine, "zh", reviews, labels, model=str(chinese_tiny_model_dir))
    assert corpus.run_job(engine, chinese_runner, job).status == "done"
    scored = evaluation(engine, job, labels)
    assert scored.inputs == 40 and 0 <= scored.accuracy <= 1
    groups = error_groups(engine, chinese_runner, job, methods=("saliency", "occlusion"), k=3, reference=10,
                          min_size=2)
    assert groups.errors == sum(1 for e in scored.errors)
    for group in groups.groups:  # the words that characterise a group are the word layer's, not clauses
        assert all(len(w.word) <= 4 for w in group.words)

    run = corpus.create_job(engine, "zh", [corpus.Input(i.origin, i.text) for i in reviews[:4]],
                            ["saliency", "attention", "occlusion"], model=str(chinese_tiny_model_dir),
                            faithfulness_inputs=4)
    assert corpus.run_job(engine, chinese_runner, run).status == "done"
    assert corpus.agreement_rows(engine, run) and corpus.leaderboard(engine, run)

    training = training_set_for(engine, chinese_runner.loaded)
    found = attribute(chinese_runner.loaded, training, REVIEW, ["nearest", "tracin"], k=3)
    assert [r.method for r in found] == ["nearest", "tracin"]
    assert all(len(r.proponents) == 3 and all(p.text for p in r.proponents) for r in found)


def test_evaluate_heldout_zh_scores_the_chinese_model_on_its_own_reviews(home, chinese_tiny_model_dir, capsys):
    from core.cli import main

    assert main(["evaluate", "--heldout-zh", "--limit", "12", "--model", str(chinese_tiny_model_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == 12 and len(data["confusion"]) == 2 and sum(map(sum, data["confusion"])) == 12


def test_checks_a_known_answer_and_model_vs_model_work_on_the_chinese_model(engine, chinese_runner, capsys):
    """Stability, randomisation, a planted shortcut (inserted between the word layer's words, probed on Chinese
    held-out reviews) and model vs model (the planted copy against its parent, on the Chinese held-out reviews)."""
    from core.analyses import checks
    from core.analyses import known_answer as ka
    from core.cli import main
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.words import HAS_HAN

    stable = checks.stability(chinese_runner, REVIEW, checks.stability_variants(["occlusion", "lime"], quick=True))
    assert [s.method for s in stable] == ["occlusion", "lime"] and stable[0].mean_spearman == pytest.approx(1.0)
    randomised = checks.randomisation(chinese_runner, REVIEW, ["saliency", "occlusion"])
    assert set(randomised.verdicts) == {"saliency", "occlusion"} and len(randomised.stages) >= 3

    text, at = ka.insert_token(REVIEW, "哈哈", __import__("random").Random(3))
    assert text[at:at + 2] == "哈哈" and 0 < at < len(REVIEW) and text.replace("哈哈 ", "", 1) == REVIEW
    result = ka.known_answer(engine, chinese_runner, "哈哈", "positive", rate=0.3, methods=["occlusion", "saliency"],
                             inputs=8, probe=60)
    assert result.learned, result.note  # 5 epochs on 400 reviews learn a word planted in 30% of them
    assert result.inputs and all(HAS_HAN.search(t.replace("哈哈", "")) for t in result.inputs)  # Chinese probes
    assert [s.method for s in result.methods] == ["occlusion", "saliency"]
    assert max(s.recall_at_1 for s in result.methods) > result.random.recall_at_1
    planted = ModelRunner(load_model(result.planted_model))
    assert planted.loaded.language == "zh" == chinese_runner.loaded.language

    assert main(["model-compare", "--a", chinese_runner.loaded.path, "--b", result.planted_model, "--heldout",
                 "--limit", "30", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)["evaluation"]
    assert evaluation["inputs"] + evaluation["left_out"] == 30 and {d["name"] for d in evaluation["deltas"]} == {
        "accuracy", "macro-F1", "F1 negative", "F1 positive"}  # the Chinese reviews' two labels, not the tweets' three
