"""The word layer (core/words.py): Chinese text is split into words, not clauses; every script keeps exact offsets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.words import SPACED, keyed_text, layer_for, split_words

SENTENCE = "这家酒店的服务很好，但是房间太脏了，我不会再来。"


def test_the_issue_sentence_is_split_into_words_not_clauses():
    """Before, the splitter cut only on spaces and punctuation: 6 "words", three of them whole clauses."""
    words = split_words(SENTENCE)
    assert len(words) == 17
    assert max(len(w) for w, _, _ in words) <= 4
    assert "".join(w for w, _, _ in words) == SENTENCE
    assert [w for w, _, _ in words][:4] == ["这家", "酒店", "的", "服务"] and ("房间", 12, 14) in words
    assert layer_for(SENTENCE).startswith("jieba3k 0.35.1 (Han)")


def test_traditional_characters_segment_as_simplified_ones_do():
    traditional = "這家酒店的服務很好，但是房間太髒了，我不會再來。"
    assert [(s, e) for _, s, e in split_words(traditional)] == [(s, e) for _, s, e in split_words(SENTENCE)]
    assert ("房間", 12, 14) in split_words(traditional)  # the words are the text's own characters


def test_mixed_scripts_are_split_span_by_span_and_japanese_never_goes_to_the_chinese_segmenter():
    assert [w for w, _, _ in split_words("我喜欢用Python写AI模型")] == ["我", "喜欢", "用", "Python", "写", "AI", "模型"]
    japanese = "私は東京に住んでいます。"
    assert layer_for(japanese).startswith("tinysegmenter")
    assert [w for w, _, _ in split_words(japanese)][:4] == ["私", "は", "東京", "に"]
    assert split_words("The acting wasn't great.") == [("The", 0, 3), ("acting", 4, 10), ("wasn't", 11, 17),
                                                       ("great", 18, 23), (".", 23, 24)]
    assert layer_for("한국어 문장입니다.") == SPACED  # Hangul is spaced: split as before
    assert [w for w, _, _ in split_words(SENTENCE, "characters")] == list(SENTENCE)


def test_stored_results_are_keyed_on_the_word_layer_for_unspaced_text_only():
    assert keyed_text("plain English") == "plain English"  # nothing stored before changes key
    assert keyed_text(SENTENCE) != SENTENCE and layer_for(SENTENCE) in keyed_text(SENTENCE)


SCRIPTS = st.sampled_from(["这家酒店的服务很好", "房間太髒", "東京に住んで", "Python", " ", "，", "。", "don't", "!",
                           "한국어", "ab1", "\n", "数据", "模型训练数据"])


@settings(max_examples=200, deadline=None)
@given(st.lists(SCRIPTS, max_size=12).map("".join))
def test_offsets_round_trip_on_any_mix_of_scripts(text):
    words = split_words(text)
    assert all(text[start:end] == word and word.strip() for word, start, end in words)
    assert all(a[2] <= b[1] for a, b in zip(words, words[1:], strict=False))  # in order, never overlapping
    covered = {i for _, start, end in words for i in range(start, end)}
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)  # nothing but spaces left out
