"""Evaluation on a labelled set: metrics equal scikit-learn's, calibration by hand, the confusion-cell filter,
clear errors for labels the model does not have, and the job machinery (a stored, resumable job)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from core.analyses import corpus
from core.analyses.corpus.inputs import Input
from core.analyses.evaluation import (
    EvaluationError,
    calibration,
    check_labels,
    create_evaluation,
    evaluation,
    inputs_from_file,
)

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["The staff were lovely.", "Cold food and a rude waiter.", "It was a room.", "Wonderful view, awful bed.",
         "Never again.", "Fine, I suppose.", "Best stay ever!", "The lift was broken for days."]
GOLD = ["positive", "negative", "neutral", "neutral", "negative", "neutral", "positive", "negative"]


def labelled() -> list[Input]:
    return [Input(f"row {i}", t, g) for i, (t, g) in enumerate(zip(TEXTS, GOLD, strict=True))]


def test_metrics_equal_scikit_learn_and_errors_are_confidently_wrong_first(engine, runner):
    job_id = create_evaluation(engine, "eval", labelled(), LABELS)
    job = corpus.run_job(engine, runner, job_id)
    assert job.status == "done" and job.done == len(TEXTS)
    result = evaluation(engine, job_id, LABELS)
    predicted = [runner.loaded.labels[int(np.argmax(p))] for p in runner.probabilities_for_texts(TEXTS)]
    assert [i.predicted_label for i in corpus.items_of(engine, job_id)] == predicted
    precision, recall, f1, support = precision_recall_fscore_support(GOLD, predicted, labels=LABELS, zero_division=0)
    assert [c.precision for c in result.per_class] == pytest.approx(list(precision))
    assert [c.recall for c in result.per_class] == pytest.approx(list(recall))
    assert [c.f1 for c in result.per_class] == pytest.approx(list(f1))
    assert [c.support for c in result.per_class] == list(support)
    assert result.macro_f1 == pytest.approx(f1_score(GOLD, predicted, labels=LABELS, average="macro", zero_division=0))
    assert result.accuracy == pytest.approx(np.mean([g == p for g, p in zip(GOLD, predicted, strict=True)]))
    assert result.confusion == confusion_matrix(GOLD, predicted, labels=LABELS).tolist()
    assert len(result.errors) == sum(g != p for g, p in zip(GOLD, predicted, strict=True))
    confidences = [e.confidence for e in result.errors]
    assert confidences == sorted(confidences, reverse=True)
    for gold in LABELS:  # the page's confusion-cell filter: exactly that cell's errors
        for guess in LABELS:
            cell = result.errors_in(gold, guess)
            assert len(cell) == (0 if gold == guess else result.confusion[LABELS.index(gold)][LABELS.index(guess)])
            assert all(e.gold == gold and e.predicted == guess for e in cell)
    assert json.loads(json.dumps(result.to_dict()))["inputs"] == len(TEXTS)


def test_calibration_by_hand():
    confidence = np.array([0.95, 0.92, 0.55, 0.51, 0.75])
    correct = np.array([True, False, True, True, False])
    ece, bins = calibration(confidence, correct, bins=2)
    # Bin (0, 0.5]: empty. Bin (0.5, 1]: all five, mean confidence 0.736, accuracy 0.6.
    assert [b.inputs for b in bins] == [0, 5]
    assert ece == pytest.approx(abs(0.6 - 0.736))
    ece, bins = calibration(confidence, correct, bins=4)
    # (0.5, 0.75]: 0.55, 0.51, 0.75 -> acc 2/3, conf 0.6033; (0.75, 1]: 0.95, 0.92 -> acc 0.5, conf 0.935
    assert ece == pytest.approx(3 / 5 * abs(2 / 3 - 0.6033333) + 2 / 5 * abs(0.5 - 0.935))


def test_labels_the_model_does_not_have_are_listed_in_one_error(engine):
    inputs = labelled() + [Input("x", "Meh.", "mixed"), Input("y", "Hm.", "mixed"), Input("z", "Ok.", "POS")]
    with pytest.raises(EvaluationError, match=r"Labels the model does not have: 'mixed' \(2\), 'POS' \(1\)"):
        create_evaluation(engine, "bad", inputs, LABELS)
    with pytest.raises(EvaluationError, match="1 of 1 inputs have no label"):
        check_labels([Input("a", "text")], LABELS)


def test_labelled_files_csv_and_jsonl(tmp_path):
    rows = inputs_from_file("text,label\nGood.,positive\nBad.,negative\n,neutral\n", "set.csv")
    assert [(r.text, r.gold_label) for r in rows] == [("Good.", "positive"), ("Bad.", "negative")]
    rows = inputs_from_file('{"text": "Good.", "label": "positive"}\n\n{"text": "Bad.", "label": "negative"}\n',
                            "set.jsonl")
    assert [r.gold_label for r in rows] == ["positive", "negative"]
    with pytest.raises(EvaluationError, match="no column 'label'"):
        inputs_from_file("text,gold\nGood.,positive\n", "set.csv")
    with pytest.raises(EvaluationError, match="Line 2 of set.jsonl is not JSON"):
        inputs_from_file('{"text": "a", "label": "positive"}\n{oops\n', "set.jsonl")


@pytest.mark.processes
def test_evaluate_command(home, tmp_path, capsys):
    from core.cli import main
    from tests.test_cli import rashomon

    path = tmp_path / "set.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{g}\n' for t, g in zip(TEXTS, GOLD, strict=True)))
    result = rashomon("evaluate", "--file", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["inputs"] == len(TEXTS) and len(data["confusion"]) == 3
    assert sum(map(sum, data["confusion"])) == len(TEXTS)
    # the rest in this process (the call above covers the command's start-up)
    assert main(["evaluate", "--file", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "macro-F1" in shown and "confusion" in shown
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nGood.,great\n")
    assert main(["evaluate", "--file", str(bad)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'great' (1)" in lines[0]


def test_the_default_models_heldout_split_is_labelled_with_its_label_names():
    from core.analyses.evaluation import heldout_inputs
    from core.engine.default_model import LABELS as DEFAULT_LABELS

    rows = heldout_inputs()
    assert len(rows) == 2000
    check_labels(rows, DEFAULT_LABELS)  # names, not class indices
    assert {r.gold_label for r in rows} == set(DEFAULT_LABELS)


def test_snapshots_tagged_with_a_label_are_a_labelled_set(engine, runner):
    from core.analyses.evaluation import labelled_snapshot_inputs
    from core.library.snapshots import add_tags, list_links, remove_tags, snapshot_url
    from tests.support.servers import text_pages

    pages = {"https://l.example/a": "The staff were lovely and the view was wonderful.",
             "https://l.example/b": "Cold food and a rude waiter.",
             "https://l.example/c": "No label on this one."}

    fetcher = text_pages(pages)

    fits = lambda text: runner.prepare(text).truncated_words == 0  # noqa: E731
    with pytest.raises(EvaluationError, match="No snapshot carries a label tag"):
        labelled_snapshot_inputs(engine, LABELS, fits)
    snapshot_url(engine, "https://l.example/a", ["label:Positive", "travel"], fetcher)
    snapshot_url(engine, "https://l.example/b", ["label:negative"], fetcher)
    snapshot_url(engine, "https://l.example/c", ["travel"], fetcher)
    inputs = labelled_snapshot_inputs(engine, LABELS, fits)
    assert sorted((i.text, i.gold_label) for i in inputs) == [(pages["https://l.example/b"], "negative"),
                                                             (pages["https://l.example/a"], "positive")]
    job_id = create_evaluation(engine, "tagged", inputs, LABELS)
    assert corpus.run_job(engine, runner, job_id).status == "done"
    assert evaluation(engine, job_id, LABELS).inputs == 2
    link = next(v for v in list_links(engine) if v.url.endswith("/b"))
    add_tags(engine, [link.id], ["label:positive"])
    with pytest.raises(EvaluationError, match="tagged with two labels: https://l.example/b"):
        labelled_snapshot_inputs(engine, LABELS, fits)
    remove_tags(engine, [link.id], ["label:positive", "label:negative"])
    add_tags(engine, [link.id], ["label:sarcastic"])  # a label the model lacks: refused like any labelled set
    with pytest.raises(EvaluationError, match="'sarcastic' \\(1\\)"):
        create_evaluation(engine, "tagged", labelled_snapshot_inputs(engine, LABELS, fits), LABELS)
