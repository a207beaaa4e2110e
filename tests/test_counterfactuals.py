"""Edits that flip the prediction: every counterfactual re-checked through the model, its constraints and
diff checked, and the known flip found on a model built so that one word decides."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analyses import edits as cf
from core.analyses.edit_checks import counterfactual_agreement, edit_report, fragility, stored_search
from core.analyses.sentence_similarity import default_encoder
from core.explanation import Explanation, split_words
from core.methods.base import ExplainError

KEYWORD = "wonderful"


@pytest.fixture(scope="session")
def keyword_model(tmp_path_factory):
    from core.engine.modelling import load_model
    from tests.support.tiny_model import build_keyword_model

    return load_model(str(build_keyword_model(tmp_path_factory.mktemp("models") / "keyword", keyword=KEYWORD)))


@pytest.fixture
def keyword_runner(keyword_model):
    from core.engine.runner import ModelRunner

    return ModelRunner(keyword_model)


def _check_counterfactual(runner, result, counterfactual) -> None:
    """What every returned counterfactual must satisfy, checked from scratch."""
    edited, diff = cf.apply_edits(result.text, counterfactual.edits)
    assert edited == counterfactual.text
    assert "".join(part for kind, part in counterfactual.diff if kind != "deleted") == counterfactual.text
    assert "".join(part for kind, part in counterfactual.diff if kind != "inserted") == result.text
    probabilities = cf.fresh_probabilities(runner, counterfactual.text)
    label = runner.loaded.labels[int(np.argmax(probabilities))]
    assert label == counterfactual.label
    assert label != result.predicted
    if result.goal != cf.ANY_OTHER:
        assert label == result.goal
    assert len(counterfactual.edits) <= result.params["max_edits"]
    similarity = float(default_encoder().similarity(result.text, [counterfactual.text])[0])
    assert similarity == pytest.approx(counterfactual.similarity, abs=1e-5)
    assert similarity >= result.params["similarity"]
    words = split_words(result.text)
    for edit in counterfactual.edits:
        assert words[edit.position][0] == edit.original
        assert edit.replacement != edit.original


def test_known_flip_is_found_on_a_model_where_one_word_decides(keyword_runner):
    text = "we saw the film at home and it was wonderful with friends"
    result = cf.search(keyword_runner, text, "negative")
    assert result.predicted == "positive"
    assert result.counterfactuals, result.stopped
    best = result.counterfactuals[0]
    keyword_position = [w for w, _, _ in split_words(text)].index(KEYWORD)
    assert [(e.position, e.kind) for e in best.edits] == [(keyword_position, "delete")]
    # Nothing else decides this model: every minimal flip edits the keyword, and only it.
    for counterfactual in result.counterfactuals:
        assert counterfactual.positions == {keyword_position}
        _check_counterfactual(keyword_runner, result, counterfactual)
    assert result.first_seconds is not None and result.first_passes <= result.forward_passes


def test_no_flip_where_no_edit_can_make_one(keyword_runner):
    # Without the keyword, only a swap *to* it could flip; with no substitutes at all nothing can.
    result = cf.search(keyword_runner, "the film was a day with friends", "positive", params={"substitutes": 0})
    assert result.predicted == "negative"
    assert result.counterfactuals == ()
    assert result.stopped


def test_ranking_from_a_method_orders_the_positions(keyword_runner):
    text = "my sister said the dinner was wonderful and then went out"
    scores = [1.0 if w == "said" else 0.0 for w, _, _ in split_words(text)]
    result = cf.search(keyword_runner, text, "negative", order="occlusion", ranking_scores=scores,
                       params={"positions": 3})
    assert result.ranking[0] == 2  # "said" first
    assert result.order == "occlusion"
    with pytest.raises(ExplainError, match="scores for"):
        cf.search(keyword_runner, text, "negative", ranking_scores=[1.0])


def test_every_counterfactual_on_a_three_label_model_is_verified(runner):
    text = "The staff were friendly but the room was noisy and the breakfast was cold"
    for target in (None, cf.ANY_OTHER):
        result = cf.search(runner, text, target, params={"max_edits": 2, "similarity": 0.5, "budget": 800})
        assert result.queries <= 800 + len(result.counterfactuals) + 1
        # The tiny model (fixed seed) flips on this text: a search that finds nothing fails here rather
        # than verifying an empty list.
        assert result.counterfactuals, result.stopped
        for counterfactual in result.counterfactuals:
            _check_counterfactual(runner, result, counterfactual)
        positions = [c.positions for c in result.counterfactuals]
        for a, b in itertools.permutations(positions, 2):
            assert not a < b  # no superset of another counterfactual: each is minimal


def test_bad_targets_and_options_are_one_clear_error(runner):
    predicted = runner.loaded.labels[int(np.argmax(runner.probabilities_for_texts(["a plain sentence"])[0]))]
    with pytest.raises(ExplainError, match="already predicts"):
        cf.search(runner, "a plain sentence", predicted)
    with pytest.raises(ExplainError, match="Unknown target label 'happy'"):
        cf.search(runner, "a plain sentence", "happy")
    with pytest.raises(ExplainError, match="no option colour"):
        cf.resolve_options({"colour": 1})
    with pytest.raises(ExplainError, match="at most 1.0"):
        cf.resolve_options({"similarity": 2})
    with pytest.raises(ExplainError, match="no words to edit"):
        cf.search(runner, "!!! ???")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "c,", "dd.", "e e", "f"]), min_size=1, max_size=8),
       st.data())
def test_diff_reproduces_both_texts(pieces, data):
    text = " ".join(pieces)
    words = split_words(text)
    chosen = data.draw(st.sets(st.integers(0, len(words) - 1), max_size=len(words)))
    edits = [cf.Edit(i, words[i][0], data.draw(st.sampled_from(["", "zz"])), words[i][1], words[i][2])
             for i in sorted(chosen)]
    edited, diff = cf.apply_edits(text, edits)
    assert "".join(p for kind, p in diff if kind != "deleted") == edited
    assert "".join(p for kind, p in diff if kind != "inserted") == text
    assert "  " not in edited or "  " in text


def test_random_touch_share_matches_enumeration():
    for n, e, k in [(6, 1, 2), (6, 2, 3), (5, 3, 3), (4, 1, 4), (7, 2, 1)]:
        subsets = list(itertools.combinations(range(n), k))
        touched = sum(bool(set(s) & set(range(e))) for s in subsets) / len(subsets)
        assert cf.random_touch_share(n, e, k) == pytest.approx(touched)


def _explanation(text: str, scores: list[float], method: str) -> Explanation:
    words = split_words(text)
    return Explanation(text=text, words=tuple(w for w, _, _ in words), offsets=tuple((s, e) for _, s, e in words),
                       scores=tuple(scores), tokens=(), token_scores=(), method=method, target="positive",
                       signed=True, probabilities={"negative": 0.1, "positive": 0.9}, seconds=0.0, forward_passes=0)


def test_counterfactual_agreement_counts_edits_touching_the_top_k(keyword_runner):
    text = "we saw the film at home and it was wonderful with friends"
    result = cf.search(keyword_runner, text, "negative")
    n = len(split_words(text))
    keyword_first = [1.0 if w == KEYWORD else 0.01 * i for i, (w, _, _) in enumerate(split_words(text))]
    keyword_last = [0.0 if w == KEYWORD else 1.0 + i for i, (w, _, _) in enumerate(split_words(text))]
    rows = counterfactual_agreement(result, [_explanation(text, keyword_first, "right"),
                                             _explanation(text, keyword_last, "wrong")], k=2)
    assert [r.share for r in rows] == [1.0, 0.0]
    assert rows[0].random_share == pytest.approx(cf.random_touch_share(n, 1, 2))
    assert rows[0].lift == pytest.approx(1.0 - rows[0].random_share)


def test_fragility_is_top_k_kept_and_rank_correlation():
    text = "one two three four"
    base = _explanation(text, [4, 3, 2, 1], "m")
    same = _explanation(text, [8, 6, 4, 2], "m")
    moved = _explanation(text, [1, 2, 3, 4], "m")
    [row] = fragility([base], [[same], [moved]], k=2)
    assert row.top_k_intersection == pytest.approx(0.5)  # kept fully once, not at all once
    assert row.spearman == pytest.approx(0.0)  # +1 and -1
    assert row.variants == 2 and not math.isnan(row.spearman)


def test_searches_are_stored_and_reopen_with_no_model_work(engine, runner):
    text = "The staff were friendly but the room was noisy"
    first, cached = stored_search(engine, runner, text, params={"max_edits": 1})
    assert not cached and first.forward_passes > 0
    passes = runner.forward_passes
    again, cached = stored_search(engine, runner, text, params={"max_edits": 1})
    assert cached and runner.forward_passes == passes
    assert again == first
    other, cached = stored_search(engine, runner, text, params={"max_edits": 2})
    assert not cached


def test_edit_report_explains_the_methods_and_their_fragility(engine, keyword_runner):
    text = "my sister said the dinner was wonderful and then went out with friends"
    report = edit_report(engine, keyword_runner, text, ["occlusion", "saliency"], target="negative", k=3)
    assert report.search.counterfactuals
    by_method = {row.method: row for row in report.agreement}
    assert set(by_method) == {"occlusion", "saliency"}
    # Occlusion deletes each word: on this model the keyword is its top word, and every flip edits it.
    assert by_method["occlusion"].share == 1.0
    for row in report.fragility:
        assert 0.0 <= row.top_k_intersection <= 1.0
        assert row.variants == len(report.variants)
    for variant in report.variants:
        assert len(split_words(variant)) == len(split_words(text))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counterfactual_agreement"][0]["counterfactuals"] == len(report.search.counterfactuals)


def test_corpus_attack_scores_every_input_and_aggregates(engine, keyword_runner):
    from core.analyses import corpus
    from core.analyses.corpus.inputs import Input

    texts = ["we saw the film and it was wonderful", "wonderful dinner in town with my sister",
             "the film was a day at home", "my sister said it was a week"]
    inputs = [Input(origin=f"row {i}", text=t, gold_label="") for i, t in enumerate(texts)]
    with pytest.raises(corpus.CorpusError, match="no option"):
        corpus.create_job(engine, "bad", inputs, ["occlusion"], edits={"colour": 1})
    job_id = corpus.create_job(engine, "attack", inputs, ["occlusion", "saliency"], k=2,
                               edits={"similarity": 0.5, "substitutes": 0})
    job = corpus.run_job(engine, keyword_runner, job_id)
    assert job.status == "done" and job.done == 4
    items = corpus.items_of(engine, job_id)
    for item in items:
        edits = item.result.edits
        direct = cf.search(keyword_runner, item.text, cf.ANY_OTHER, params=job.edits)
        assert edits.success == direct.found == (KEYWORD in item.text)  # only deleting the keyword flips it
        if edits.success:
            assert edits.words_changed == 1 and edits.agreement["occlusion"] == 1.0
            assert edits.random_share == pytest.approx(cf.random_touch_share(edits.words, 1, 2))
    rows = {r.label: r for r in corpus.attack_rows(engine, job_id)}
    assert (rows["all"].inputs, rows["all"].successes, rows["all"].success_rate) == (4, 2, 0.5)
    assert rows["positive"].success_rate == 1.0 and rows["negative"].success_rate == 0.0
    assert rows["all"].mean_words_changed == 1.0
    queries = sum(i.result.edits.queries for i in items)
    assert rows["all"].queries_per_success == pytest.approx(queries / 2)
    agreement = {r.method: r for r in corpus.edit_agreement_rows(engine, job_id)}
    assert agreement["occlusion"].inputs == 2 and agreement["occlusion"].share == 1.0
    assert agreement["occlusion"].lift == pytest.approx(1.0 - agreement["occlusion"].random_share)
    exported = json.loads(corpus.export_json(engine, job_id))
    assert exported["attack"][-1]["successes"] == 2
