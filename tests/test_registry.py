"""The registry owns every method: everything else derives its lists from it.

These tests enumerate the registry and check that each estimate, check, page and command covers
every method, and that a method added as one registry entry appears everywhere with no other change.
"""

import math

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses import checks, corpus
from core.methods import METHODS, Attribution, Family, Method, Speed
from core.methods.explain import explain
from core.methods.registry import attention_methods, attention_reference_methods, fast_methods
from tests.test_app import ROOT

TEXTS = ["The staff were lovely.", "Cold food, warm welcome, long wait."]


def _every_word_by_position(runner, prepared, target, params, progress):
    """A toy method for the test: later words score higher (a deterministic, model-free account)."""
    return Attribution(word_scores=np.arange(1, len(prepared.words) + 1, dtype=float) * params["scale"])


@pytest.fixture
def added_method(monkeypatch):
    """A new method registered as one entry, as a contributor would add it."""
    from core.methods.base import Option

    method = Method(name="position", title="Word position", family=Family.PERTURBATION, signed=False,
                    citation="A test double; no paper.", options=(Option("scale", "float", 1.0, "Multiplier."),),
                    attribute=_every_word_by_position, cost=lambda params, n_words: 2 * n_words)
    monkeypatch.setitem(METHODS, method.name, method)
    return method


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_declares_what_the_rest_of_rashomon_needs(name, tiny_model):
    method = METHODS[name]
    assert isinstance(method.family, Family) and isinstance(method.speed, Speed)
    assert method.citation and method.title
    assert method.incompatibility(tiny_model) is None
    assert method.estimated_passes(None, 10) >= 0 and math.isfinite(method.estimated_passes(None, 10))
    assert len(method.variants()) >= 2 and len(method.variants(quick=True)) >= 2
    for variant in (*method.variants(), *method.variants(quick=True), method.corpus_params):
        method.resolve(variant)  # every declared setting is a valid one
    assert method.changed(method.resolve(None)) == {}


def test_estimates_checks_and_attention_lists_cover_every_method(runner):
    names = list(METHODS)
    assert set(checks.stability_variants()) == set(names)
    assert set(fast_methods()) | {m for m in names if METHODS[m].speed == Speed.SLOW} == set(names)
    assert set(attention_methods()) | set(attention_reference_methods()) | {
        m for m in names if METHODS[m].random} == set(names)
    texts = TEXTS
    words = [len(runner.prepare(t).words) for t in texts]
    for name in names:
        # The corpus estimate is the prediction plus the method's own cost model plus faithfulness.
        expected = (len(texts) + sum(METHODS[name].estimated_passes(METHODS[name].corpus_params, n) for n in words)
                    + 2 * 10 * len(texts))
        assert corpus.estimate_passes(runner, [name], texts) == pytest.approx(expected)


def _page(path: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()
    return app.switch_page(path).run()


def test_every_page_offers_every_method(home):
    compare = _page("pages/compare.py")
    assert list(compare.multiselect(key="methods").options) == [METHODS[m].title for m in METHODS]
    corpus_page = _page("pages/corpus.py")
    assert list(corpus_page.multiselect(key="corpus_methods").options) == [METHODS[m].title for m in METHODS]
    checks_page = _page("pages/checks.py")
    assert list(checks_page.multiselect(key="checks_stability_methods").options) == [METHODS[m].title for m in METHODS]
    assert list(checks_page.multiselect(key="checks_random_methods").options) == [METHODS[m].title for m in METHODS]


def test_a_method_added_as_one_registry_entry_appears_everywhere(added_method, runner, engine, home):
    e = explain(runner, "one two three", "position", params={"scale": 2.0})
    assert e.scores == (2.0, 4.0, 6.0) and e.method == "position" and not e.signed
    from core.analyses.reports import run_report

    report = run_report(engine, runner, "one two three", ["attention", "position"])
    assert [f.method for f in report.faithfulness] == ["attention", "position", "random"]
    assert "position" in checks.stability_variants() and "position" in fast_methods()
    assert corpus.estimate_passes(runner, ["position"], ["one two three"]) == 1 + 6 + 20
    job = corpus.create_job(engine, "new method", [corpus.Input("row", "one two three")], ["position", "attention"])
    done = corpus.run_job(engine, runner, job)
    assert done.done == 1 and "position vs attention" in corpus.items_of(engine, job)[0].result.pairs
    stable = checks.stability(runner, "one two three", checks.stability_variants(["position"]))[0]
    assert stable.verdict.passed
    from core.cli.common import method_list

    assert method_list("position,attention") == ["position", "attention"]  # the CLI accepts it
    page = _page("pages/compare.py")
    assert "Word position" in page.multiselect(key="methods").options
