"""Representer points (Yeh et al. 2018): the final layer rewritten as a sum over training examples.

The final linear layer is refitted, with an L2 penalty, to reproduce the model's own predictions on
the training set from their representations f (with a constant 1 appended for the bias):

    min_W  1/n sum_i CE(softmax(W f_i), p_i) + lambda |W|^2

At its stationary point W = sum_i alpha_i f_i^T with alpha_i = -(softmax(W f_i) - p_i) / (2 lambda n), so
the refitted logit of any input x is exactly sum_i alpha_i (f_i . f_x): the representer value of
training example i for the target label is alpha_i[target] (f_i . f_x). `decomposition_error` reports
how far the fit is from stationarity; `fidelity` how often the refitted head agrees with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.analyses.training_data.base import DataMethod
from core.analyses.training_data.features import Prepared, Query
from core.analyses.training_data.tracin import with_bias
from core.methods.base import Option

OPTIONS = (
    Option("l2", "float", 0.003, "L2 penalty (lambda) of the refitted final layer.", minimum=1e-6, maximum=10.0),
)


def fit(features: np.ndarray, probabilities: np.ndarray, initial: np.ndarray, l2: float,
        iterations: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(W, alpha): the refitted layer (labels, d + 1) and each example's representer weights (n, labels)."""
    f = torch.tensor(features, dtype=torch.float64)
    p = torch.tensor(probabilities, dtype=torch.float64)
    weight = torch.tensor(initial, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight], lr=1.0, max_iter=iterations, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")
    n = len(f)

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        loss = -(p * torch.log_softmax(f @ weight.T, dim=1)).sum() / n + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimiser.step(objective)
    with torch.no_grad():
        alpha = -(torch.softmax(f @ weight.T, dim=1) - p) / (2 * l2 * n)
    return weight.detach().numpy(), alpha.numpy()


def _fitted(prepared: Prepared, l2: float) -> dict[str, np.ndarray]:
    def build() -> dict[str, np.ndarray]:
        state = prepared.final
        features = with_bias(state.activations.astype(np.float64))
        initial = np.concatenate([state.weight, state.bias[:, None]], axis=1)
        weight, alpha = fit(features, state.probabilities.astype(np.float64), initial, l2)
        rebuilt = alpha.T @ features
        error = float(np.linalg.norm(rebuilt - weight) / max(np.linalg.norm(weight), 1e-12))
        fidelity = float(np.mean((features @ weight.T).argmax(1) == state.probabilities.argmax(1)))
        return {"weight": weight, "alpha": alpha, "decomposition_error": np.array(error), "fidelity": np.array(fidelity)}

    return prepared.extra(f"representer-{l2:g}", build)


def score(prepared: Prepared, query: Query, target: int, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    fitted = _fitted(prepared, params["l2"])
    features = with_bias(prepared.final.activations.astype(np.float64))
    x = with_bias(query.activations[-1].astype(np.float64))
    values = fitted["alpha"][:, target] * (features @ x)
    return values, {"refitted_logit": float(fitted["weight"][target] @ x), "sum_of_values": float(values.sum()),
                    "decomposition_error": float(fitted["decomposition_error"]),
                    "fidelity": float(fitted["fidelity"])}


METHOD = DataMethod(
    name="representer",
    title="Representer points",
    citation="Yeh et al. 2018, Representer Point Selection for Explaining Deep Neural Networks (NeurIPS)",
    summary="The refitted final layer's logit for the target as a sum over training examples: "
            "alpha_i x (f_i . f_input).",
    options=OPTIONS,
    score=score,
)
