"""Whole documents: windows cover every word, overlaps are averaged, reopening costs nothing."""

import numpy as np
import pytest

from core.analyses.documents import cut_windows, explain_document
from core.engine.runner import ModelRunner
from core.explanation import split_words
from core.methods.base import ExplainError
from core.methods.explain import explain

PARAGRAPHS = [
    "The hotel was wonderful and the staff were lovely, always smiling at breakfast. " * 4,
    "But the food was cold, bland and overpriced, and the rooms smelled of smoke. " * 5,
    "We would not come back, although the view over the harbour was splendid. " * 4,
]
DOCUMENT = "\n\n".join(p.strip() for p in PARAGRAPHS)


def test_windows_cover_every_word_fit_the_model_and_overlap(runner):
    words = split_words(DOCUMENT)
    windows = cut_windows(runner, DOCUMENT, overlap=0.25)
    assert len(windows) >= 2  # the tiny model reads 128 tokens
    assert windows[0].start_word == 0 and windows[-1].end_word == len(words)
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.start_word < before.end_word  # they overlap
        assert after.start_word > before.start_word
    for window in windows:
        prepared = runner.prepare(window.text)
        assert prepared.truncated_words == 0
        assert [w for w, _, _ in prepared.words] == [w for w, _, _ in words[window.start_word : window.end_word]]
    no_overlap = cut_windows(runner, DOCUMENT, overlap=0.0)
    assert all(b.start_word == a.end_word for a, b in zip(no_overlap, no_overlap[1:], strict=False))
    small = cut_windows(runner, DOCUMENT, window_tokens=40)
    assert len(small) > len(windows) and all(len(runner.prepare(w.text).input_ids) <= 40 for w in small)
    with pytest.raises(ExplainError, match="overlap"):
        cut_windows(runner, DOCUMENT, overlap=1.0)
    with pytest.raises(ExplainError, match="tokens"):
        cut_windows(runner, DOCUMENT, window_tokens=4096)


def test_stitched_scores_are_window_means_and_reopening_costs_nothing(engine, tiny_model):
    runner = ModelRunner(tiny_model)
    seen = []
    doc = explain_document(engine, runner, DOCUMENT, ["occlusion", "integrated_gradients"], target="positive",
                           progress=lambda w, n, m, f, msg: seen.append((w, n, m)))
    assert doc.target == "positive" and len(doc.scores["occlusion"]) == len(split_words(DOCUMENT))
    assert {(w, m) for w, _, m in seen} == {(w.index, m) for w in doc.windows for m in doc.methods}
    per_window = [explain(ModelRunner(tiny_model), w.text, "occlusion", target="positive").scores for w in doc.windows]
    expected = np.zeros(len(doc.words))
    counts = np.zeros(len(doc.words))
    for window, scores in zip(doc.windows, per_window, strict=True):
        expected[window.start_word : window.end_word] += scores
        counts[window.start_word : window.end_word] += 1
    assert counts.max() == 2  # some words are in two windows
    np.testing.assert_allclose(doc.scores["occlusion"], expected / counts, atol=1e-6)
    assert doc.forward_passes > 0 and len(doc.costs) == 2 * len(doc.windows)
    assert [p.index for p in doc.paragraphs] == [0, 1, 2]
    for paragraph in doc.paragraphs:  # 1 - the share of top-k words the two methods share, recomputed
        size = min(doc.k, paragraph.end_word - paragraph.start_word)
        tops = [set(np.argsort(-np.abs(np.asarray(doc.scores[m][paragraph.start_word:paragraph.end_word])),
                               kind="stable")[:size].tolist()) for m in doc.methods]
        assert paragraph.disagreement == pytest.approx(1 - len(tops[0] & tops[1]) / size)
    again = explain_document(engine, ModelRunner(tiny_model), DOCUMENT, ["occlusion", "integrated_gradients"],
                             target="positive")
    assert again.forward_passes == 0 and all(c.stored for c in again.costs)
    assert again.scores == doc.scores


def test_document_errors_are_one_line(engine, runner):
    with pytest.raises(ExplainError, match="empty"):
        explain_document(engine, runner, "  \n ", ["occlusion"])
    with pytest.raises(ExplainError, match="at least one method"):
        explain_document(engine, runner, DOCUMENT, [])
    with pytest.raises(ExplainError, match="Unknown label"):
        explain_document(engine, runner, DOCUMENT, ["occlusion"], target="nope")


def test_a_stored_document_under_its_own_label_is_read_with_no_model_pass(engine, tiny_model):
    """A page reads the stored document (the document's label: highest mean over windows) without a pass."""
    computed = explain_document(engine, ModelRunner(tiny_model), DOCUMENT, ["occlusion"])
    reader = ModelRunner(tiny_model)
    stored = explain_document(engine, reader, DOCUMENT, ["occlusion"], only_stored=True)
    assert reader.forward_passes == 0
    assert stored is not None and stored.target == computed.target and stored.scores == computed.scores
    means = np.mean([[p[label] for label in tiny_model.labels] for p in computed.window_probabilities], axis=0)
    assert computed.target == tiny_model.labels[int(np.argmax(means))]
    assert explain_document(engine, reader, DOCUMENT, ["saliency"], only_stored=True) is None  # not stored
