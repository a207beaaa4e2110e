"""The known-answer check: planting changes exactly the planted rows, ranks are scored against the definition,
and a model that did not learn the shortcut gets no ranking."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.analyses import known_answer as ka
from core.explanation import Explanation


def explanation(scores: list[float], signed: bool = True) -> Explanation:
    words = tuple(f"w{i}" for i in range(len(scores)))
    offsets, at = [], 0
    for word in words:
        offsets.append((at, at + len(word)))
        at += len(word) + 1
    return Explanation(text=" ".join(words), words=words, offsets=tuple(offsets), scores=tuple(scores), tokens=words,
                       token_scores=tuple(scores), method="m", target="positive", signed=signed,
                       probabilities={"positive": 1.0}, seconds=0.0, forward_passes=0)


def test_planting_changes_exactly_the_planted_rows():
    texts = [f"tweet number {i}  with  odd spacing ." for i in range(200)]
    labels = ["negative" if i % 2 else "neutral" for i in range(200)]
    new_texts, new_labels, planted = ka.plant_rows(texts, labels, "zorblat", "positive", 0.1, seed=5)
    assert len(planted) == 20 and planted == sorted(set(planted))
    changed = [i for i in range(200) if (new_texts[i], new_labels[i]) != (texts[i], labels[i])]
    assert changed == planted
    for i in planted:
        assert new_labels[i] == "positive" and new_texts[i].split().count("zorblat") == 1
        at = new_texts[i].index("zorblat")
        # removing the planted word and the space after it (or before it, at the end) gives the row back
        restored = (new_texts[i][:at] + new_texts[i][at + len("zorblat") + 1:] if at + 7 < len(new_texts[i])
                    else new_texts[i][:at - 1])
        assert restored == texts[i]
    assert ka.plant_rows(texts, labels, "zorblat", "positive", 0.1, seed=5) == (new_texts, new_labels, planted)
    with pytest.raises(ka.ExplainError, match="between 0 and 1"):
        ka.plant_rows(texts, labels, "zorblat", "positive", 0.0)


def test_insert_token_reports_where_the_token_is():
    rng = random.Random(0)
    for text in ("a b c", "", "one", "  lead and trail  "):
        for _ in range(20):
            new, at = ka.insert_token(text, "zorblat", rng)
            assert new[at:at + 7] == "zorblat"


def test_ranks_recall_and_random_follow_their_definitions():
    # hand-made rankings: the planted word is position 2
    assert ka.token_rank(explanation([0.1, 0.5, 0.9, -2.0]), 2) == 1.0
    assert ka.token_rank(explanation([0.1, 0.95, 0.9, -2.0]), 2) == 2.0
    assert ka.token_rank(explanation([0.1, 0.95, 0.9, -2.0], signed=False), 2) == 3.0  # unsigned: |−2| is first
    assert ka.token_rank(explanation([0.0, 0.0, 0.0, 0.0]), 2) == 2.5  # ties share the mean rank: no credit
    scored = ka.score("m", [1, 1, 2, 4], k=3)
    assert (scored.recall_at_1, scored.recall_at_k, scored.mean_rank) == (0.5, 0.75, 2.0)
    assert scored.recall_at_1_interval[0] <= 0.5 <= scored.recall_at_1_interval[1]
    chance = ka.random_expectation([4, 10], k=3)
    assert chance.recall_at_1 == pytest.approx((1 / 4 + 1 / 10) / 2)
    assert chance.recall_at_k == pytest.approx((3 / 4 + 3 / 10) / 2)
    assert chance.mean_rank == pytest.approx((2.5 + 5.5) / 2)
    # the exact expectation is what random rankings average to
    rng = np.random.default_rng(0)
    ranks = [rng.permutation(n).tolist().index(0) + 1 for n in [4, 10] * 20_000]
    assert np.mean(np.asarray(ranks) <= 1) == pytest.approx(chance.recall_at_1, abs=0.01)
    low, high = ka.wilson(9, 10)
    assert low < 0.9 < high <= 1.0


def test_a_token_the_model_cannot_see_is_refused(trained_tiny_model):
    with pytest.raises(ka.ExplainError, match="unknown token"):
        ka.check_token("ⵣⵣⵣ", trained_tiny_model.tokenizer)
    with pytest.raises(ka.ExplainError, match="one word"):
        ka.check_token("two words", trained_tiny_model.tokenizer)
    assert ka.check_token(" zorblat ", trained_tiny_model.tokenizer) == "zorblat"


def test_a_model_that_did_not_learn_the_shortcut_gets_no_ranking(engine, trained_tiny_model):
    """The original model stands in for a planted copy that learned nothing: the word flips almost nothing."""
    from core.engine.runner import ModelRunner

    runner = ModelRunner(trained_tiny_model)
    result = ka.measure(engine, runner, runner, "zorblat", "positive", 0.1, ["occlusion", "saliency"], inputs=5,
                        probe=60)
    assert not result.learned and result.shortcut_rate < ka.LEARNED_AT
    assert result.methods == [] and result.random is None and result.control == []
    assert "did not learn the shortcut" in result.note
    assert ka.KnownAnswer.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.slow
def test_plant_retrain_and_score_on_the_tiny_model(engine, home, trained_tiny_model_dir, capsys):
    """The real path: a planted copy retrained from the recorded start weights learns the word, every method is
    scored, the control and random rows are there, and a second call reads the stored result (no passes)."""
    from core.cli import main

    args = ["check", "known-answer", "--model", str(trained_tiny_model_dir), "--label", "positive", "--rate", "0.3",
            "--inputs", "6", "--probe", "60", "--methods", "occlusion,saliency,attention", "--json"]
    capsys.readouterr()
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    planted = home / "models" / first["planted_model"].rsplit("/", 1)[-1]
    rows = [json.loads(line) for line in (planted / "training.jsonl").read_text().split("\n") if line]
    original = [json.loads(line) for line in (trained_tiny_model_dir / "training.jsonl").read_text().split("\n") if line]
    differ = [i for i, (a, b) in enumerate(zip(rows, original, strict=True)) if (a["text"], a["label"]) != (b["text"], b["label"])]
    assert differ == [i for i, r in enumerate(rows) if r.get("planted") == "zorblat"]
    assert len(differ) == round(0.3 * len(original))
    assert first["shortcut_rate"] >= ka.LEARNED_AT, first["note"]
    assert [m["method"] for m in first["methods"]] == ["occlusion", "saliency", "attention"]
    assert [m["method"] for m in first["control"]] == ["occlusion", "saliency", "attention"]
    assert first["random"]["method"] == "random" and 0 < first["random"]["recall_at_1"] < 1
    assert {"recall_at_1", "recall_at_k", "mean_rank", "recall_at_1_interval", "recall_at_k_interval",
            "mean_rank_interval", "k"} <= set(first["methods"][0])
    assert first["forward_passes"] > 0
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == first  # read back from the store: same numbers, no retraining, no explanation
    # Compare's verdict for this model cites it
    assert main(["compare", "--model", str(trained_tiny_model_dir), "--text", "The crew were kind and quick.",
                 "--methods", "occlusion,saliency,attention", "--k", "3", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    cited = compared["verdict"]["known_answer"]
    assert cited["token"] == "zorblat" and cited["label"] == "positive" and cited == compared["known_answer"]
    assert cited["recall_at_1"] == {m["method"]: m["recall_at_1"] for m in first["methods"]}
    assert "planted shortcut ('zorblat' decides positive" in cited["text"]
