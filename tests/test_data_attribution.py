"""Training-data attribution checked against its definitions on the tiny model and 90 training tweets:
nearest neighbours against brute force, TracIn against direct gradient dot products and Captum's
TracInCPFast, representer values summing to the refitted logit, influence against the exact inverse
Hessian; training sets from the model directory or attached, with clear errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from core.analyses.training_data.attribute import agreement, attribute, suspicious
from core.analyses.training_data.features import prepare, query
from core.analyses.training_data.registry import data_method
from core.analyses.training_data.training_sets import (
    FINAL_WEIGHTS_ONLY,
    TrainingDataError,
    attach,
    read_examples,
    training_set_for,
)
from core.engine.modelling import final_linear, load_weights
from core.methods.base import ExplainError

TEXT = "I love this airline, the crew was great and the flight on time"


@pytest.fixture
def training(engine, trained_tiny_model):
    return training_set_for(engine, trained_tiny_model)


@pytest.fixture
def prepared(trained_tiny_model, training):
    return prepare(trained_tiny_model, training)


def test_training_rows_and_checkpoints_are_recorded(training, trained_tiny_model_dir):
    assert len(training.examples) == 90 and training.source == "model directory"
    assert [c.step for c in training.checkpoints] == [12, 24, 36]  # 3 epochs of 12 batches, evenly spaced
    assert training.checkpoints[-1].path == str(trained_tiny_model_dir.resolve())
    assert all(c.learning_rate > 0 for c in training.checkpoints)
    assert {e.label for e in training.examples} == {"negative", "neutral", "positive"}


def test_preparation_is_stored_and_read_back(trained_tiny_model, training, prepared):
    from core.analyses.training_data import features

    assert prepare(trained_tiny_model, training) is prepared  # kept in memory within a process
    features._PREPARED.clear()  # a new process reads the stored arrays back
    again = prepare(trained_tiny_model, training)
    # one pass per training example and checkpoint, and none when read back
    assert again.seconds == 0 and again.passes == 0
    assert prepared.passes == len(training.examples) * len(training.checkpoints)
    for first, second in zip(prepared.states, again.states, strict=True):
        np.testing.assert_array_equal(first.activations, second.activations)


def test_nearest_equals_brute_force_cosine(trained_tiny_model, training, prepared):
    [result] = attribute(trained_tiny_model, training, TEXT, ["nearest"], params={"nearest": {"neighbours": 20}})
    seen = query(trained_tiny_model, prepared, TEXT)
    a = prepared.final.activations / np.linalg.norm(prepared.final.activations, axis=1, keepdims=True)
    q = seen.activations[-1] / np.linalg.norm(seen.activations[-1])
    cosine = a @ q
    brute = np.argsort(-cosine)[:20]
    scores = np.asarray(result.scores)
    assert set(np.flatnonzero(scores)) == set(brute)
    np.testing.assert_allclose(np.abs(scores[brute]), cosine[brute], rtol=1e-5)
    target = trained_tiny_model.labels.index(result.target)
    assert all((scores[r] > 0) == (prepared.targets[r] == target) for r in brute)
    votes = result.diagnostics["label_distribution"]
    assert sum(votes.values()) == pytest.approx(1.0)
    leaders = [label for label, share in votes.items() if share == max(votes.values())]
    assert result.diagnostics["majority_labels"] == leaders  # a tie is reported as a tie, never as agreement
    assert result.diagnostics["neighbours_agree"] == (leaders == [result.predicted_label])
    # The approximate (HNSW) index finds the same neighbours on a set this small.
    [approximate] = attribute(trained_tiny_model, training, TEXT, ["nearest"],
                              params={"nearest": {"neighbours": 20, "exact_up_to": 10}})
    assert approximate.diagnostics["index"].startswith("HNSW")
    assert len(set(np.flatnonzero(approximate.scores)) & set(brute)) >= 18


def _head_gradient(model, text_or_ids, label: int) -> torch.Tensor:
    """d CE / d (final layer weight, bias) by autograd through the whole network."""
    head = final_linear(model.model)
    model.model.zero_grad()
    encoded = model.tokenizer(text_or_ids, return_tensors="pt", truncation=True, max_length=model.max_length)
    logits = model.model(**encoded).logits
    torch.nn.functional.cross_entropy(logits, torch.tensor([label])).backward()
    return torch.cat([head.weight.grad.flatten(), head.bias.grad.flatten()]).clone()


def test_tracin_equals_direct_gradient_dot_products(trained_tiny_model, training):
    [result] = attribute(trained_tiny_model, training, TEXT, ["tracin"], target="positive")
    target = trained_tiny_model.labels.index("positive")
    for row in (0, 17, 45, 89):
        example = training.examples[row]
        direct = 0.0
        for checkpoint in training.checkpoints:
            model = load_weights(trained_tiny_model, checkpoint.path)
            g_train = _head_gradient(model, example.text, trained_tiny_model.labels.index(example.label))
            g_test = _head_gradient(model, TEXT, target)
            direct += checkpoint.learning_rate * float(g_train @ g_test)
        assert result.scores[row] == pytest.approx(direct, rel=1e-4, abs=1e-9)


def test_tracin_equals_captum_tracincp_fast(trained_tiny_model, training, prepared, tmp_path):
    from captum.influence import TracInCPFast
    from torch.utils.data import TensorDataset

    from core.analyses.training_data.tracin import checkpoint_scores

    seen = query(trained_tiny_model, prepared, TEXT)
    target = 2
    for c, state in enumerate(prepared.states):
        head = torch.nn.Linear(state.weight.shape[1], state.weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(torch.tensor(state.weight))
            head.bias.copy_(torch.tensor(state.bias))
        path = tmp_path / f"head{c}.pt"
        torch.save(head.state_dict(), path)

        def load(model, file, lr=state.learning_rate):
            model.load_state_dict(torch.load(file))
            return lr

        tracin = TracInCPFast(head, head, TensorDataset(torch.tensor(state.activations), torch.tensor(prepared.targets)),
                              [str(path)], checkpoints_load_func=load,
                              loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=30)
        expected = tracin.influence((torch.tensor(seen.activations[c])[None, :], torch.tensor([target]))).numpy()[0]
        ours = state.learning_rate * checkpoint_scores(state, prepared.targets, seen.activations[c], seen.probabilities[c], target)
        # TracInCPFast takes the layer's weight only; ours adds the bias's gradient product g_z . g_x.
        g_test = seen.probabilities[c].astype(np.float64) - np.eye(3)[target]
        bias_part = state.learning_rate * (state.loss_gradients(prepared.targets) @ g_test)
        np.testing.assert_allclose(ours - bias_part, expected, rtol=1e-3, atol=1e-7)


def test_tracin_projection_approximates_the_exact_scores(trained_tiny_model, training):
    exact, projected = (attribute(trained_tiny_model, training, TEXT, ["tracin"], params={"tracin": p})[0]
                        for p in ({}, {"projection": 2048, "seed": 1}))
    assert np.corrcoef(exact.scores, projected.scores)[0, 1] > 0.95
    assert projected.diagnostics["gradients"] == "projected to 2048"


def test_representer_values_sum_to_the_refitted_logit(trained_tiny_model, training):
    for target in trained_tiny_model.labels:
        [result] = attribute(trained_tiny_model, training, TEXT, ["representer"], target=target)
        # Exact at the stationary point; the fit stops within a relative error of about 1e-5 of it.
        assert result.diagnostics["decomposition_error"] < 1e-4
        assert sum(result.scores) == pytest.approx(result.diagnostics["refitted_logit"], rel=1e-4, abs=1e-6)
        assert result.diagnostics["fidelity"] > 0.9  # the refitted layer predicts what the model predicts


def test_influence_matches_the_exact_inverse_hessian(trained_tiny_model, training, prepared):
    """Both solvers against an inverse Hessian built by autograd: the exact solver to rounding, Captum's
    Arnoldi at full rank closely (it drops eigenvalues below its tolerance)."""
    state = prepared.final
    a = torch.tensor(state.activations, dtype=torch.float64)
    y = torch.tensor(prepared.targets)
    w0 = torch.cat([torch.tensor(state.weight, dtype=torch.float64).flatten(), torch.tensor(state.bias, dtype=torch.float64)])
    labels, d = state.weight.shape

    def losses(flat: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight, bias = flat[: labels * d].view(labels, d), flat[labels * d :]
        return torch.nn.functional.cross_entropy(inputs @ weight.T + bias, targets, reduction="none")

    hessian = torch.autograd.functional.hessian(lambda flat: losses(flat, a, y).sum(), w0)
    seen = query(trained_tiny_model, prepared, TEXT)
    test_input = torch.tensor(seen.activations[-1], dtype=torch.float64)[None, :]
    g_test = torch.autograd.functional.jacobian(lambda f: losses(f, test_input, torch.tensor([0])).sum(), w0)
    g_train = torch.stack([torch.autograd.functional.jacobian(lambda f, i=i: losses(f, a[i : i + 1], y[i : i + 1]).sum(), w0)
                           for i in range(len(y))])
    # Exact influence on the Hessian's range (per-example gradients have no component in its null
    # space: softmax ignores a constant added to every logit).
    inverse = torch.linalg.pinv(hessian + 1e-3 * torch.eye(len(w0)), hermitian=True, rtol=1e-10)
    exact = (g_train @ inverse @ g_test).numpy()
    [solved] = attribute(trained_tiny_model, training, TEXT, ["influence"], target="negative")
    assert solved.diagnostics["solver"] == "exact"  # auto: 99 parameters
    np.testing.assert_allclose(solved.scores, exact, rtol=1e-5, atol=1e-8 * np.abs(exact).max())
    from core.analyses.training_data.influence import self_influence

    expected_self = torch.einsum("np,pq,nq->n", g_train, inverse, g_train).numpy()
    np.testing.assert_allclose(self_influence(prepared, data_method("influence").resolve({})), expected_self, rtol=1e-5)
    params = {"solver": "arnoldi", "projection_dim": 98, "arnoldi_dim": 99}
    [approximate] = attribute(trained_tiny_model, training, TEXT, ["influence"], target="negative",
                              params={"influence": params})
    scores = np.asarray(approximate.scores)
    assert approximate.diagnostics["solver"] == "arnoldi"
    assert np.corrcoef(scores, exact)[0, 1] > 0.99
    assert set(np.argsort(-scores)[:5]) == set(np.argsort(-exact)[:5])


def test_results_carry_cost_lists_and_shared_words(trained_tiny_model, training):
    results = attribute(trained_tiny_model, training, TEXT, k=4)
    assert [r.method for r in results] == ["nearest", "tracin", "representer", "influence"]
    assert results[0].forward_passes == len(training.checkpoints)  # one pass per checkpoint, charged once
    [alone] = attribute(trained_tiny_model, training, TEXT, ["nearest"])
    assert alone.forward_passes == 1  # no method reads earlier checkpoints: the final weights only
    for result in results:
        assert result.seconds > 0 and len(result.scores) == len(training.examples)
        assert len(result.proponents) <= 4 and all(p.score > 0 for p in result.proponents)
        assert all(o.score < 0 for o in result.opponents)
        assert result.proponents == tuple(sorted(result.proponents, key=lambda p: -p.score))
        for listed in result.proponents + result.opponents:
            words = {w.lower() for w in TEXT.replace(",", " ").split()}
            assert set(listed.shared_words) <= words and listed.text == training.examples[listed.position].text
        # Stored scores keep 7 decimals: the stored form round-trips exactly, the scores to that precision.
        restored = type(result).from_dict(result.to_dict())
        assert restored.to_dict() == result.to_dict()
        assert restored.scores == pytest.approx(result.scores, abs=5e-8)
        assert (restored.proponents, restored.opponents) == (result.proponents, result.opponents)
    matrix = agreement(results, k=4)
    # Each pair's overlap recomputed from the scores: the share of top-4 examples both methods rank there.
    tops = [set(sorted(range(len(r.scores)), key=lambda i, r=r: -r.scores[i])[:4]) for r in results]
    for i, j in itertools.product(range(len(results)), repeat=2):
        assert matrix.overlap[i][j] == pytest.approx(len(tops[i] & tops[j]) / 4)


def test_agreement_on_hand_made_rankings():
    from core.explanation import TrainingAttribution

    def result(name: str, scores: list[float]) -> TrainingAttribution:
        return TrainingAttribution(text="x", method=name, target="a", probabilities={"a": 1.0}, training_set="s",
                                   training_sha256="", scores=tuple(scores), proponents=(), opponents=(),
                                   seconds=0.0, forward_passes=0)

    same = agreement([result("a", [5, 4, 3, 2, 1]), result("b", [50, 40, 30, 2, 1])], k=3)
    assert same.overlap[0][1] == 1.0 and same.rank[0][1] == pytest.approx(1.0)
    opposite = agreement([result("a", [5, 4, 3, 0, 0]), result("b", [0, 0, 3, 4, 5])], k=3)
    assert opposite.overlap[0][1] == pytest.approx(1 / 3) and opposite.rank[0][1] < 0


def test_suspicious_ranks_by_self_influence(trained_tiny_model, training, prepared):
    from core.analyses.training_data.tracin import self_influence

    listed = suspicious(trained_tiny_model, training, "tracin", k=5)
    values = self_influence(prepared, {})
    assert [e.position for e in listed.examples] == list(np.argsort(-values)[:5])
    assert not listed.flipped_known and listed.precision == {}
    with pytest.raises(ExplainError, match="no self-influence"):
        suspicious(trained_tiny_model, training, "nearest")


def test_bad_requests_are_one_clear_error(trained_tiny_model, training):
    with pytest.raises(ExplainError, match="Unknown training-data method 'knn'"):
        attribute(trained_tiny_model, training, TEXT, ["knn"])
    with pytest.raises(ExplainError, match="Unknown target label 'happy'"):
        attribute(trained_tiny_model, training, TEXT, ["tracin"], target="happy")
    with pytest.raises(ExplainError, match="has no option"):
        attribute(trained_tiny_model, training, TEXT, ["tracin"], params={"tracin": {"steps": 3}})
    with pytest.raises(ExplainError, match="empty"):
        attribute(trained_tiny_model, training, "  ", ["tracin"])


def test_attached_training_set_for_a_model_without_rows(engine, tiny_model):
    with pytest.raises(TrainingDataError, match="rashomon data attach"):
        training_set_for(engine, tiny_model)
    with pytest.raises(TrainingDataError, match="'happy' \\(2\\), 'sad' \\(1\\)"):
        read_examples("text,label\na,happy\nb,happy\nc,sad\nd,negative\n", "rows.csv", tiny_model.labels)
    rows = read_examples('{"text": "good day", "label": "positive"}\n{"text": "bad day", "label": "negative"}\n'
                         '{"text": "a day", "label": "neutral"}\n', "rows.jsonl", tiny_model.labels)
    attach(engine, tiny_model, rows, "three rows")
    training = training_set_for(engine, tiny_model)
    assert training.source == "attached" and [e.text for e in training.examples] == ["good day", "bad day", "a day"]
    assert training.checkpoint_note == FINAL_WEIGHTS_ONLY and len(training.checkpoints) == 1
    [result] = attribute(tiny_model, training, "a good day", ["tracin"], k=2)
    assert result.diagnostics["note"] == FINAL_WEIGHTS_ONLY and len(result.scores) == 3


@pytest.mark.processes
def test_cli_influence_data_and_suspicious(home, tiny_model_dir, trained_tiny_model_dir, tmp_path, monkeypatch, capsys):
    from core.cli import main
    from tests.test_cli import rashomon

    def cli(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    env = {"RASHOMON_MODEL": str(trained_tiny_model_dir)}
    first = rashomon("influence", "--text", TEXT, "--k", "3", "--json", env=env)  # once as a real process
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert [r["method"] for r in report["results"]] == ["nearest", "tracin", "representer", "influence"]
    assert not report["from_store"] and all(len(r["proponents"]) <= 3 for r in report["results"])
    assert report["results"][0]["forward_passes"] == 3 and len(report["agreement"]["overlap"]) == 4

    monkeypatch.setenv("RASHOMON_MODEL", str(trained_tiny_model_dir))
    again = json.loads(cli("influence", "--text", TEXT, "--k", "3", "--json")[1])
    assert again["from_store"] and again["results"][1]["proponents"] == report["results"][1]["proponents"]
    status, out, _ = cli("influence", "--text", TEXT, "--methods", "tracin", "--target", "negative")
    assert status == 0 and "proponents:" in out and "target negative" in out
    shown = json.loads(cli("training-data", "show", "--json")[1])
    assert shown["rows"] == 90 and len(shown["checkpoints"]) == 3 and shown["prepared"]
    listed = json.loads(cli("data", "suspicious", "--k", "4", "--json")[1])
    assert len(listed["examples"]) == 4 and listed["examples"][0]["score"] >= listed["examples"][-1]["score"]
    for args, message in ((("influence", "--text", TEXT, "--methods", "knn"), "Unknown training-data method"),
                          (("influence", "--text", TEXT, "--target", "happy"), "Unknown target label"),
                          (("data", "suspicious", "--method", "nearest"), "no self-influence")):
        status, _, err = cli(*args)
        assert status == 1 and message in err and "Traceback" not in err

    monkeypatch.setenv("RASHOMON_MODEL", str(tiny_model_dir))  # the untrained tiny model: no training rows
    status, _, err = cli("influence", "--text", TEXT)
    assert status == 1 and "rashomon data attach" in err
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\ngood,positive\nbad,awful\n")
    status, _, err = cli("data", "attach", str(rows))
    assert status == 1 and "'awful' (1)" in err
    rows.write_text("text,label\ngood day,positive\nbad day,negative\n")
    status, out, _ = cli("data", "attach", str(rows), "--json")
    assert status == 0 and json.loads(out)["rows"] == 2
    assert json.loads(cli("data", "list", "--json")[1])[0]["rows"] == 2
    assert cli("influence", "--text", "a good day", "--methods", "tracin,nearest", "--k", "1")[0] == 0


def test_lds_and_margins_on_hand_made_cases():
    from core.analyses.training_data.retraining import bootstrap_interval, lds, margins

    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    np.testing.assert_allclose(margins(logits, [0, 1]), [2.0 - np.log(2.0), 1.0 - np.logaddexp(0.0, 1.0)])
    actual = np.array([[0.1, 3.0], [0.5, 2.0], [0.9, 1.0], [1.3, 0.0]])
    assert lds(actual * 10, actual).tolist() == [1.0, 1.0]
    assert lds(-actual, actual).tolist() == [-1.0, -1.0]
    assert np.isnan(lds(np.ones_like(actual), actual)).all()  # a constant prediction ranks nothing
    low, high = bootstrap_interval(np.array([0.2, 0.4, 0.6, 0.8]))
    assert 0.2 <= low < 0.5 < high <= 0.8


def test_a_retraining_on_every_row_repeats_the_model_exactly(trained_tiny_model, training):
    from core.analyses.training_data.retraining import retrain_without

    again = retrain_without(trained_tiny_model, training, [])
    for (name, original), retrained in zip(trained_tiny_model.model.state_dict().items(),
                                           again.model.state_dict().values(), strict=True):
        torch.testing.assert_close(retrained, original, msg=name)
    without = retrain_without(trained_tiny_model, training, range(45))
    assert not torch.equal(final_linear(without.model).weight, final_linear(trained_tiny_model.model).weight)


def test_removal_and_datamodeling_checks_are_stored(engine, trained_tiny_model, training):
    from core.analyses.training_data.retraining import linear_datamodeling, removal_check
    from core.analyses.training_data.store import retraining_checks, save_retraining

    removal = removal_check(trained_tiny_model, training, TEXT, ["tracin", "nearest"], fractions=(0.1,), random_repeats=2)
    assert removal.full_retrain_probability == pytest.approx(removal.probability, abs=1e-6)
    assert [(r.method, r.removed) for r in removal.removals] == [("tracin", 9), ("nearest", 9), ("random", 9), ("random", 9)]
    summary = {row["method"]: row for row in removal.summary()}
    assert summary["random"]["retrainings"] == 2 and summary["random"]["low"] <= summary["random"]["high"]
    texts = [TEXT, "worst flight ever, delayed again", "my bag is lost"]
    result = linear_datamodeling(trained_tiny_model, training, texts, ["tracin", "influence"], subsets=8)
    assert result.subsets == 8 and len(result.targets) == 3 and 0.5 < result.surrogate_accuracy <= 1.0
    for row in result.methods:  # a score per input, and one that is defined (two surrogates gave a ranking)
        assert len(row.per_input) == 3 and not all(np.isnan(v) for v in row.per_input)
    save_retraining(engine, trained_tiny_model, training, removal)
    save_retraining(engine, trained_tiny_model, training, result)
    stored = retraining_checks(engine, trained_tiny_model, training)
    assert [s.to_dict() for s in stored] == [result.to_dict(), removal.to_dict()]  # newest first, as stored


def test_training_example_cards_escape_everything_an_example_contributes():
    from core.explanation import TrainingExampleScore
    from core.render import training_examples

    hostile = TrainingExampleScore(id='x"><img src=x onerror=alert(1)>', position=0, gold="<b>neg</b>",
                                   predicted="pos", score=0.5, shared_words=("script",),
                                   text="<script>alert('script')</script> & friends")
    html = training_examples([hostile], ['/Compare?text="><script>'], scale=1.0)
    assert "<script>" not in html and "<img" not in html and "<b>neg</b>" not in html
    assert "&lt;script&gt;" in html and "&amp; friends" in html and "&lt;b&gt;neg&lt;/b&gt;" in html
    assert "<b>script</b>" in html  # the shared word is bold, its text still escaped
    assert 'href="/Compare?text=&quot;&gt;&lt;script&gt;"' in html
