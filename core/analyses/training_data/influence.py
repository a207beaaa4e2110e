"""Influence functions (Koh and Liang 2017) on the final linear layer, with Captum's Arnoldi
inverse-Hessian approximation (Schioppa et al. 2022).

    influence(z, x) = grad L(x)^T H^-1 grad L(z),   H = sum_i hessian of L(z_i) (+ damping)

positive when up-weighting z lowers the loss of x on the target label (a proponent). Two solvers:

- `exact`: the final layer's Hessian in closed form, sum_i (diag(p_i) - p_i p_i^T) kron [a_i, 1][a_i, 1]^T,
  pseudo-inverted once (its null direction, a constant added to every logit, carries no gradient);
  labels x (d + 1) parameters (1,155 on the default model) make this cheaper than any approximation.
- `arnoldi`: Captum's `ArnoldiInfluenceFunction` finds the top eigenvectors of H by Arnoldi iteration
  over Hessian-vector products, so that H^-1 ~ R R^T; every training example gets an "influence
  embedding" grad L(z)^T R once (stored), and a query is one gradient and one matrix product. It scales
  to heads too large to invert, at a cost measured in BENCHMARKS.md: keeping the top 100 of 770
  eigen-directions on the default model correlates only ~0.3 with exact influence, because H^-1 is
  dominated by the small eigenvalues Arnoldi drops.

`auto` (default) is exact up to 5,000 parameters. EK-FAC (kronfluence) was not adopted: it
approximates large layers' Hessian blocks, which the final layer does not need, and it depends on
torchvision and accelerate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.analyses.training_data.base import DataMethod
from core.analyses.training_data.features import Prepared, Query
from core.methods.base import Option

EXACT_UP_TO = 5000

OPTIONS = (
    Option("solver", "str", "auto", "exact inverse Hessian, Captum's Arnoldi approximation, or exact up to "
           f"{EXACT_UP_TO:,} parameters.", choices=("auto", "exact", "arnoldi")),
    Option("projection_dim", "int", 100, "Top Hessian eigenvectors kept (the rank of the inverse).", minimum=1,
           maximum=4096),
    Option("arnoldi_dim", "int", 200, "Arnoldi (Krylov) subspace size; at least projection_dim.", minimum=2,
           maximum=8192),
    Option("damping", "float", 1e-3, "Added to the Hessian's diagonal (Captum's hessian_reg).", minimum=0.0),
    Option("tolerance", "float", 1e-6, "Arnoldi stops when a new direction's norm falls below this; eigenvalues "
           "below it are dropped (Captum's arnoldi_tol and hessian_inverse_tol).", minimum=0.0),
    Option("seed", "int", 0, "Seed of the Arnoldi start vector.", minimum=0),
)


def head_module(weight: np.ndarray, bias: np.ndarray) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return layer


def flat_head_gradients(loss_gradients: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Per-example gradients in Captum's parameter order (weight row-major, then bias): (n, labels * d + labels)."""
    weight = (loss_gradients[:, :, None] * activations[:, None, :]).reshape(len(loss_gradients), -1)
    return np.concatenate([weight, loss_gradients], axis=1)


def arnoldi(prepared: Prepared, params: dict[str, Any], batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Captum's Arnoldi influence on the final layer: R flattened (P, k) and every training embedding (n, k)."""
    import tempfile
    import warnings

    # Captum 0.9.0 ships it without exporting it from captum.influence.
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction
    from torch.utils.data import DataLoader, TensorDataset

    state = prepared.final
    layer = head_module(state.weight, state.bias)
    dataset = TensorDataset(torch.tensor(state.activations, dtype=torch.float64), torch.tensor(prepared.targets))
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")  # inside Captum
        checkpoint = f"{directory}/head.pt"
        torch.save(layer.state_dict(), checkpoint)
        parameters = layer.weight.numel() + layer.bias.numel()
        arnoldi_dim = min(params["arnoldi_dim"], parameters)
        influence = ArnoldiInfluenceFunction(
            layer, dataset, checkpoint, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
            batch_size=batch_size, projection_dim=min(params["projection_dim"], arnoldi_dim - 1),
            arnoldi_dim=arnoldi_dim, hessian_reg=params["damping"], seed=params["seed"],
            arnoldi_tol=params["tolerance"], hessian_inverse_tol=params["tolerance"])
        embeddings = influence.compute_intermediate_quantities(DataLoader(dataset, batch_size=batch_size))
    projection = np.stack([np.concatenate([t.detach().cpu().numpy().ravel() for t in column]) for column in influence.R],
                          axis=1)
    return {"projection": projection, "embeddings": embeddings.detach().cpu().numpy()}


def exact_inverse(prepared: Prepared, damping: float) -> np.ndarray:
    """The pseudo-inverse of the final layer's (damped) summed-loss Hessian, in Captum's parameter order."""
    state = prepared.final
    a = torch.tensor(state.activations, dtype=torch.float64)
    p = torch.tensor(state.probabilities, dtype=torch.float64)
    labels, d = state.weight.shape
    extended = torch.cat([a, torch.ones(len(a), 1, dtype=torch.float64)], dim=1)
    curvature = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    hessian = torch.zeros(labels, d + 1, labels, d + 1, dtype=torch.float64)
    for start in range(0, len(a), 2048):  # chunks keep the (n, labels, labels, d+1, d+1) product small
        rows = slice(start, start + 2048)
        hessian += torch.einsum("nij,nk,nl->ikjl", curvature[rows], extended[rows], extended[rows])
    hessian = hessian.reshape(labels * (d + 1), labels * (d + 1))
    order = [c * (d + 1) + j for c in range(labels) for j in range(d)] + [c * (d + 1) + d for c in range(labels)]
    hessian = hessian[order][:, order] + damping * torch.eye(len(order), dtype=torch.float64)
    return torch.linalg.pinv(hessian, hermitian=True, rtol=1e-10).numpy()


def solver_for(prepared: Prepared, params: dict[str, Any]) -> str:
    size = prepared.final.weight.size + prepared.final.bias.size
    return params["solver"] if params["solver"] != "auto" else ("exact" if size <= EXACT_UP_TO else "arnoldi")


def _stored(prepared: Prepared, params: dict[str, Any]) -> dict[str, np.ndarray]:
    if solver_for(prepared, params) == "exact":
        return prepared.extra(f"influence-exact-{params['damping']:g}",
                              lambda: {"inverse": exact_inverse(prepared, params["damping"])})
    name = "influence-arnoldi-" + "-".join(f"{params[o.name]:g}" for o in OPTIONS if o.name != "solver")
    return prepared.extra(name, lambda: arnoldi(prepared, params))


def _train_gradients(prepared: Prepared, rows: slice = slice(None)) -> np.ndarray:
    """Per-example final-layer gradients of the training rows `rows` (Captum's parameter order)."""
    state = prepared.final
    return flat_head_gradients(state.loss_gradients(prepared.targets)[rows], state.activations[rows].astype(np.float64))


def query_gradient(probabilities: np.ndarray, activation: np.ndarray, target: int) -> np.ndarray:
    gradient = probabilities.astype(np.float64).copy()
    gradient[target] -= 1.0
    return flat_head_gradients(gradient[None, :], activation.astype(np.float64)[None, :])[0]


def score(prepared: Prepared, query: Query, target: int, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    stored = _stored(prepared, params)
    gradient = query_gradient(query.final_probabilities, query.activations[-1], target)
    if "inverse" in stored:
        direction = stored["inverse"] @ gradient  # H^-1 grad L(x), then one product per training chunk
        scores = np.concatenate([_train_gradients(prepared, slice(s, s + 8192)) @ direction
                                 for s in range(0, len(prepared.targets), 8192)])
        return scores, {"solver": "exact", "parameters": int(len(gradient))}
    return stored["embeddings"] @ (gradient @ stored["projection"]), {
        "solver": "arnoldi", "rank": int(stored["projection"].shape[1]), "parameters": int(stored["projection"].shape[0])}


def self_influence(prepared: Prepared, params: dict[str, Any]) -> np.ndarray:
    """grad L(z)^T H^-1 grad L(z): how much the example fights the rest of the training set."""
    stored = _stored(prepared, params)
    if "inverse" in stored:
        parts = []
        for start in range(0, len(prepared.targets), 4096):
            gradients = _train_gradients(prepared, slice(start, start + 4096))
            parts.append(((gradients @ stored["inverse"]) * gradients).sum(axis=1))
        return np.concatenate(parts)
    return (stored["embeddings"] ** 2).sum(axis=1)


METHOD = DataMethod(
    name="influence",
    title="Influence functions",
    citation="Koh and Liang 2017, Understanding Black-box Predictions via Influence Functions (ICML); "
             "Schioppa et al. 2022, Scaling Up Influence Functions (AAAI)",
    summary="grad L(input)^T H^-1 grad L(example) on the final layer (exact inverse Hessian, or Captum's Arnoldi "
            "approximation for large heads).",
    options=OPTIONS,
    score=score,
    self_influence=self_influence,
)
