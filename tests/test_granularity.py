"""Scores at token, word, sentence and paragraph level, on hand-made explanations: the sums, the units, and
agreement computed on the chosen units."""

import pytest

from core.analyses.agreement import agreement_matrix
from core.analyses.granularity import LEVELS, LevelError, at_level, comparison_at_level
from core.analyses.reports import Comparison
from core.explanation import Explanation

TEXT = "Good food. Bad service!\n\nWould return."


def explanation(method: str, scores: list[float], token_scores: tuple[float, ...] = ()) -> Explanation:
    words = ["Good", "food", ".", "Bad", "service", "!", "Would", "return", "."]
    offsets, cursor = [], 0
    for word in words:
        start = TEXT.index(word, cursor)
        offsets.append((start, start + len(word)))
        cursor = start + len(word)
    return Explanation(text=TEXT, words=tuple(words), offsets=tuple(offsets), scores=tuple(scores), tokens=(),
                       token_scores=token_scores, method=method, target="positive", signed=True,
                       probabilities={"negative": 0.3, "positive": 0.7}, seconds=0.0, forward_passes=0)


A = explanation("a", [0.5, 0.25, 0.0, -0.5, -0.25, 0.0, 0.125, 0.125, 0.0])


def test_sentences_and_paragraphs_sum_their_words():
    sentences = at_level(A, "sentence")
    assert sentences.words == ("Good food.", "Bad service!", "Would return.")
    assert sentences.scores == pytest.approx((0.75, -0.75, 0.25))
    paragraphs = at_level(A, "paragraph")
    assert paragraphs.words == ("Good food. Bad service!", "Would return.")
    assert paragraphs.scores == pytest.approx((0.0, 0.25))  # support and opposition cancel inside a unit
    assert [TEXT[s:e] for s, e in paragraphs.offsets] == list(paragraphs.words)
    assert at_level(A, "word") is A


def test_tokens_take_the_methods_own_token_scores_and_leave_out_specials():
    # [CLS] Good fo ##od . [SEP]: offsets as a fast tokenizer gives them; specials have empty offsets
    offsets = [(0, 0), (0, 4), (5, 7), (7, 9), (9, 10), (0, 0)]
    special = [True, False, False, False, False, True]
    e = explanation("a", [0.0] * 9, token_scores=(9.0, 1.0, 2.0, 3.0, 4.0, 9.0))
    tokens = at_level(e, "token", offsets, special)
    assert tokens.words == ("Good", "fo", "od", ".") and tokens.scores == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(LevelError, match="token level needs"):
        at_level(e, "token")
    with pytest.raises(LevelError, match="Unknown level"):
        at_level(e, "chapter")


def test_agreement_at_a_level_compares_the_units():
    # b disagrees with a on every word's order inside the sentences, but ranks the sentences the same way
    b = explanation("b", [0.25, 0.5, 0.0, -0.25, -0.5, 0.0, 0.0, 0.25, 0.0])
    comparison = Comparison(TEXT, (A, b), {})
    words = agreement_matrix(comparison.explanations, "rank_agreement", 2)
    sentences = agreement_matrix(comparison_at_level(comparison, "sentence").explanations, "rank_agreement", 2)
    assert words[0, 1] < 1.0 and sentences[0, 1] == 1.0
    assert set(LEVELS) == {"token", "word", "sentence", "paragraph"}
