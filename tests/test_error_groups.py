"""Error groups and slices: the lift on a hand-made case, slices with Wilson intervals, and the whole grouping
on the trained tiny model (groups partition the errors, follow the clustering, carry training neighbours,
export as CSV)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from core.analyses import corpus
from core.analyses.error_groups import (
    cluster,
    error_groups,
    evaluated_inputs,
    group_csv,
    lifted_words,
    slice_report,
    wilson_interval,
)
from core.analyses.evaluation import EvaluatedInput, EvaluationError, create_evaluation, heldout_inputs
from core.engine.runner import ModelRunner


def test_lift_on_a_hand_made_case():
    members = [{"not": 1.0, "good": 0.5}, {"not": 0.5, "bad": 1.0}, {"not": 1.0}, {"good": 1.0}]
    reference = [{"good": 1.0}, {"not": 0.5}, {"the": 1.0}, {"good": 0.5}]
    words = {w.word: w for w in lifted_words(members, reference)}
    # "not": group share (1 + 0.5 + 1) / 4 = 0.625, reference 0.5 / 4 = 0.125, smoothing 1 / 8.
    assert words["not"].group_share == pytest.approx(0.625) and words["not"].reference_share == pytest.approx(0.125)
    assert words["not"].lift == pytest.approx((0.625 + 0.125) / (0.125 + 0.125))
    assert words["not"].members == 3
    assert "bad" not in words  # one member only: below the floor of two
    assert list(words)[0] == "not" and words["good"].lift == pytest.approx((0.375 + 0.125) / (0.375 + 0.125))


def test_slices_with_wilson_intervals():
    def item(n: int, text: str, right: bool) -> EvaluatedInput:
        return EvaluatedInput(n, f"row {n}", text, "negative", "negative" if right else "positive", 0.5 + n / 100)

    inputs = [item(n, "I did not like it", n < 8) for n in range(10)] + \
             [item(10 + n, "Nothing to add, fine", n < 18) for n in range(20)]
    report = slice_report(inputs, "not")  # a whole word: "Nothing" does not match
    assert (report.matching.inputs, report.matching.errors, report.rest.inputs) == (10, 2, 20)
    assert report.matching.accuracy == pytest.approx(0.8)
    assert (report.matching.low, report.matching.high) == pytest.approx((0.490, 0.943), abs=1e-3)
    assert [e.position for e in report.errors] == [9, 8]
    assert slice_report(inputs, r"\bnot\w*", regex=True).matching.inputs == 30
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # nan: no inputs, no interval
    with pytest.raises(EvaluationError, match="not a valid regular expression"):
        slice_report(inputs, "(unclosed", regex=True)
    with pytest.raises(EvaluationError, match="Give a word"):
        slice_report(inputs, "  ")


def test_error_groups_on_the_trained_tiny_model(engine, trained_tiny_model, trained_tiny_model_dir, capsys, tmp_path):
    runner = ModelRunner(trained_tiny_model)
    job_id = create_evaluation(engine, "held-out", heldout_inputs(80), trained_tiny_model.labels,
                               model=str(trained_tiny_model_dir))
    assert corpus.run_job(engine, runner, job_id).status == "done"
    inputs = evaluated_inputs(engine, job_id)
    errors = [i for i in inputs if i.gold != i.predicted]
    result = error_groups(engine, runner, job_id, methods=("saliency", "occlusion"), k=3, reference=20, min_size=3)
    assert result.errors == len(errors) and result.reference_inputs == 20
    grouped = [m.position for g in result.groups for m in g.members] + [m.position for m in result.scattered]
    assert sorted(grouped) == sorted(e.position for e in errors)  # every error once
    vectors, _ = runner.head_inputs([e.text for e in errors])
    labels = cluster(vectors, 3)
    by_position = {e.position: int(label) for e, label in zip(errors, labels, strict=True)}
    assert len(result.groups) == len(set(labels.tolist()) - {-1}) >= 1
    for group in result.groups:
        assert len({by_position[m.position] for m in group.members}) == 1  # one cluster per group
        pairs = [f"{m.gold} -> {m.predicted}" for m in group.members]
        assert pairs.count(group.confusion) == max(pairs.count(p) for p in pairs)
        assert group.neighbours and sum(group.neighbour_labels.values()) == pytest.approx(1.0)
        assert all(w.members >= 2 for w in group.words)
    assert [g.size for g in result.groups] == sorted((g.size for g in result.groups), reverse=True)
    assert type(result).from_dict(result.to_dict()) == result
    rows = list(csv.DictReader(io.StringIO(group_csv(result, 1))))  # there is a group: asserted above
    assert len(rows) == result.groups[0].size and set(rows[0]) >= {"text", "gold", "predicted", "top_words"}
    with pytest.raises(EvaluationError, match="no error group 99"):
        group_csv(result, 99)
    assert np.isfinite(result.seconds) and result.forward_passes > 0

    # The command line: groups (stored, so the second call reads them back), a slice, an export.
    from core.cli import main

    def cli(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, out, err = cli("errors", "groups", str(job_id), "--methods", "saliency", "--reference", "10",
                           "--min-size", "3", "--json")
    assert status == 0, err
    groups = json.loads(out)
    assert groups["errors"] == len(errors) and groups["methods"] == ["saliency"]
    status, out, _ = cli("errors", "groups", str(job_id), "--methods", "saliency", "--reference", "10", "--min-size", "3")
    assert status == 0 and f"{len(errors)} errors" in out
    status, out, _ = cli("errors", "slice", str(job_id), "the", "--json")
    sliced = json.loads(out)
    assert sliced["matching"]["inputs"] + sliced["rest"]["inputs"] == len(inputs)
    # The same errors and vectors as above: the command finds the same clusters, so a group to export.
    assert len(groups["groups"]) == len(result.groups)
    target = tmp_path / "group.csv"
    status, out, _ = cli("errors", "export", str(job_id), "--group", "1", "--methods", "saliency",
                         "--reference", "10", "--min-size", "3", "--output", str(target))
    assert status == 0 and len(list(csv.DictReader(target.open()))) == len(groups["groups"][0]["members"])
    for args, message in ((("errors", "groups", "999"), "no evaluation job 999"),
                          (("errors", "slice", str(job_id), "(", "--regex"), "not a valid regular expression"),
                          (("errors", "groups", str(job_id), "--methods", "nope"), "nope")):
        status, _, err = cli(*args)
        assert status == 1 and message in err and "Traceback" not in err
