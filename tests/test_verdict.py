"""Compare's verdict agrees with the faithfulness table it is computed from, says "undecided" when no method
clears the random rankings' spread, and warns about near-zero methods and methods no better than random."""

from __future__ import annotations

import json
from dataclasses import replace

from core.analyses import faithfulness, verdict
from core.analyses.reports import Comparison, ComparisonReport
from tests.test_compare import expl


def faithful(method: str, comprehensiveness: float, sufficiency: float, spread: float | None = None):
    fractions = faithfulness.ERASER_FRACTIONS
    return faithfulness.Faithfulness(method, dict.fromkeys(fractions, comprehensiveness),
                                     dict.fromkeys(fractions, sufficiency), [], [], spread, spread)


def report(*rows, explanations=None) -> ComparisonReport:
    explanations = explanations or tuple(expl(r.method, [0.9, 0.1, -0.2, 0.05]) for r in rows
                                         if r.method != faithfulness.RANDOM_NAME)
    return ComparisonReport(Comparison(explanations[0].text, tuple(explanations), {}), faithfulness=tuple(rows),
                            measured=True)


def test_the_ranking_is_the_faithfulness_table_sorted_by_margin_over_random():
    decided = verdict.decide(report(faithful("lime", 0.50, 0.10), faithful("occlusion", 0.70, 0.05),
                                    faithful("attention", 0.30, 0.40), faithful("random", 0.35, 0.30, 0.05)), k=2)
    assert [r.method for r in decided.ranking] == ["occlusion", "lime", "attention"]
    assert [round(r.comprehensiveness_margin, 6) for r in decided.ranking] == [0.35, 0.15, -0.05]
    assert [round(r.sufficiency_margin, 6) for r in decided.ranking] == [0.25, 0.2, -0.1]
    assert not decided.undecided and decided.erasure == "mask"
    assert decided.sentences[0].startswith("The model supports occlusion, lime most")
    assert [w["method"] for w in decided.warnings if w["kind"] == "no_better_than_random"] == ["attention"]
    assert json.loads(json.dumps(decided.to_dict()))["ranking"][0]["method"] == "occlusion"


def test_no_method_clearing_the_spread_is_undecided():
    decided = verdict.decide(report(faithful("lime", 0.42, 0.10), faithful("occlusion", 0.44, 0.05),
                                    faithful("random", 0.40, 0.12, 0.05)), k=2)
    assert decided.undecided and decided.agreed_words == []
    assert decided.sentences[0].startswith("Undecided: no method's top words move")


def test_a_method_with_near_zero_scores_is_flagged_not_read_as_finding_nothing():
    explanations = (expl("lime", [0.9, 0.1, -0.2, 0.05]), expl("deeplift", [1e-7, -2e-7, 0.0, 1e-8]),
                    expl("occlusion", [0.5, 0.3, 0.1, 0.0]))
    decided = verdict.decide(report(faithful("lime", 0.6, 0.1), faithful("deeplift", 0.5, 0.1),
                                    faithful("occlusion", 0.6, 0.1), faithful("random", 0.3, 0.3, 0.02),
                                    explanations=explanations), k=2)
    assert [w["method"] for w in decided.warnings if w["kind"] == "near_zero"] == ["deeplift"]


def test_an_unmeasured_view_has_no_verdict():
    measured = report(faithful("lime", 0.6, 0.1), faithful("random", 0.3, 0.3, 0.02))
    assert verdict.decide(replace(measured, measured=False), k=2) is None


def test_the_verdict_of_a_real_view_is_in_compare_json(runner, engine):
    """On the tiny model: the verdict in `report_to_dict` is the one computed from the stored faithfulness, and the
    random rankings' spread is recorded."""
    from core.analyses import compare
    from core.analyses.reports import run_report

    real = run_report(engine, runner, "The crew were kind but the seats were broken and dirty.",
                      ["occlusion", "saliency", "attention"])
    random_row = next(f for f in real.faithfulness if f.method == "random")
    spread = random_row.comprehensiveness_spread
    assert spread is not None and spread >= 0
    # The random band holds its mean curve at every point (the lowest and highest of the draws).
    for curve in ("deletion", "insertion"):
        band = getattr(random_row, f"{curve}_band")
        assert len(band) == len(getattr(random_row, curve))
        assert all(lo - 1e-9 <= y <= hi + 1e-9 for (lo, hi), (_, y) in zip(band, getattr(random_row, curve), strict=True))
    assert any(lo < hi for lo, hi in random_row.deletion_band)  # the draws differ: a band, not a line
    data = compare.report_to_dict(real, 3)
    assert data["verdict"] == verdict.decide(real, 3).to_dict()
    table = {f["method"]: f["aopc_comprehensiveness"] for f in data["faithfulness"]}
    assert [r["method"] for r in data["verdict"]["ranking"]] == sorted(
        (m for m in table if m != "random"), key=lambda m: -table[m])
    assert data["verdict"]["undecided"] == all(r["comprehensiveness_margin"] <= spread
                                               for r in data["verdict"]["ranking"])
    assert {f["erasure"] for f in data["faithfulness"]} == {"mask"}
    assert set(data["verdict"]["by_erasure"]) == {"delete", "filler"}  # the same test with the other erasures


def test_each_row_states_its_scale_and_a_shared_scale_draws_tiny_methods_pale():
    from core.analyses import compare

    comparison = Comparison("w0 w1 w2", (expl("lime", [0.5, -0.25, 0.0]), expl("deeplift", [2e-7, -1e-7, 0.0]),
                                         expl("occlusion", [0.2, 0.1, 0.05])), {})
    own = compare.grid_rows(comparison, 2)
    assert own[1].values == [1.0, -0.5, 0.0]  # per-method: the tiny method fills the range
    assert "colours ÷ 2e-07, its largest |score|" in own[1].note and "near zero" in own[1].note
    assert "near zero" not in own[0].note
    shared = compare.grid_rows(comparison, 2, shared=True)
    assert shared[0].values == [1.0, -0.5, 0.0] and max(abs(v) for v in shared[1].values) < 1e-5
    assert "the largest |score| of any method (its own: 2e-07)" in shared[1].note


def test_the_three_erasures_remove_words_as_named(runner):
    from core.analyses.faithfulness import Eraser

    prepared = runner.prepare("The crew were kind")
    target = 0
    masked, deleted, filled = (Eraser(runner, prepared, target, e).ids_without([1]) for e in ("mask", "delete", "filler"))
    tokens = list(prepared.input_ids)
    crew = [i for i, t in enumerate(runner.tokenizer.convert_ids_to_tokens(tokens)) if t == "crew"]
    assert masked[crew[0]] == runner.mask_id and len(masked) == len(tokens)
    assert deleted == tokens[:crew[0]] + tokens[crew[0] + 1:]
    assert filled[crew[0]] == runner.tokenizer.convert_tokens_to_ids("the") and len(filled) == len(tokens)
    rows = faithfulness.evaluate(runner, [expl("m", [0.1, 0.9, 0.2, 0.3], words=["The", "crew", "were", "kind"],
                                               target=runner.loaded.labels[0])], curve_points=0, erasure="delete")
    assert {f.erasure for f in rows} == {"delete"}
    assert faithfulness.Faithfulness.from_dict(rows[0].to_dict()).erasure == "delete"


def test_the_verdict_reads_stored_stability_checks_and_the_default_edit_search(runner, engine):
    """A method a stored Checks run found unstable is a warning (with the check's numbers), and the edit search
    Compare shows by default adds each method's counterfactual lift to the ranking and one sentence; the JSON
    carries both. Nothing is computed to find them."""
    from core.analyses import checks, compare
    from core.analyses.edit_checks import edit_report
    from core.analyses.reports import run_report

    text = "The crew were kind but the seats were broken and dirty."
    methods = ["occlusion", "saliency", "attention"]
    report = run_report(engine, runner, text, methods)
    assert verdict.gather(engine, runner, report, 3) == verdict.Evidence()  # nothing stored yet

    shaky = checks.StabilityResult("saliency", [{"seed": 0}, {"seed": 1}], 0.41, 0.2, 0.3,
                                   checks.Verdict(False, 0.41, checks.STABLE_SPEARMAN, "saliency: UNSTABLE"))
    steady = checks.StabilityResult("occlusion", [{}], 1.0, 1.0, 1.0, checks.Verdict(True, 1.0, 0.8, "stable"))
    check_id = checks.save_check(engine, runner, "stability", [text], stability=[shaky, steady])
    request = verdict.default_edit_request(report.comparison.probabilities)
    searched = edit_report(engine, runner, text, methods, k=3, **request)  # what "Search for edits" stores

    passes = runner.forward_passes
    evidence = verdict.gather(engine, runner, report, 3)
    assert runner.forward_passes == passes  # read from the store
    assert [u["method"] for u in evidence.unstable] == ["saliency"]
    assert f"check {check_id}: mean Spearman 0.41" in evidence.unstable[0]["text"]
    decided = verdict.decide(report, 3, evidence=evidence)
    assert [(w["kind"], w["method"]) for w in decided.warnings if w["kind"] == "unstable"] == [("unstable", "saliency")]
    assert "checks" in decided.sections
    assert searched.agreement, "the tiny model has flipping edits for this text"
    lifts = {a.method: a.lift for a in searched.agreement}
    assert {r.method: r.counterfactual_lift for r in decided.ranking} == lifts
    assert any(s.startswith(f"The stored edit search towards {request['target']}") for s in decided.sentences)
    data = compare.report_to_dict(report, 3, evidence)
    assert data["verdict"] == decided.to_dict()
