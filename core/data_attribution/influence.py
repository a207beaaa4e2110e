"""Influence functions (Koh and Liang 2017) on the final linear layer, with Captum's Arnoldi
inverse-Hessian approximation (Schioppa et al. 2022).

    influence(z, x) = grad L(x)^T H^-1 grad L(z),   H = sum_i hessian of L(z_i) (+ damping)

positive when up-weighting z lowers the loss of x on the target label (a proponent). Captum's
`ArnoldiInfluenceFunction` finds the top eigenvectors of H by Arnoldi iteration over Hessian-vector
products, so that H^-1 ~ R R^T; every training example gets an "influence embedding" grad L(z)^T R once
(stored), and a query is one gradient and one matrix product. Why Arnoldi here and not EK-FAC
(kronfluence): on the final layer the parameter count is small (labels x (d + 1)), so the
eigendecomposition is cheap and exact enough to be checked against the exact inverse Hessian.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.data_attribution.features import Prepared, Query
from core.data_attribution.registry import DataMethod
from core.methods.base import Option

OPTIONS = (
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


def arnoldi(prepared: Prepared, params: dict[str, Any], batch_size: int = 512) -> dict[str, np.ndarray]:
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


def _stored(prepared: Prepared, params: dict[str, Any]) -> dict[str, np.ndarray]:
    name = "influence-" + "-".join(f"{params[o.name]:g}" for o in OPTIONS)
    return prepared.extra(name, lambda: arnoldi(prepared, params))


def query_embedding(stored: dict[str, np.ndarray], probabilities: np.ndarray, activation: np.ndarray, target: int) -> np.ndarray:
    gradient = probabilities.astype(np.float64).copy()
    gradient[target] -= 1.0
    return flat_head_gradients(gradient[None, :], activation.astype(np.float64)[None, :])[0] @ stored["projection"]


def score(prepared: Prepared, query: Query, target: int, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    stored = _stored(prepared, params)
    embedding = query_embedding(stored, query.final_probabilities, query.activations[-1], target)
    return stored["embeddings"] @ embedding, {"rank": int(stored["projection"].shape[1]),
                                              "parameters": int(stored["projection"].shape[0])}


def self_influence(prepared: Prepared, params: dict[str, Any]) -> np.ndarray:
    """grad L(z)^T H^-1 grad L(z): how much the example fights the rest of the training set."""
    embeddings = _stored(prepared, params)["embeddings"]
    return (embeddings**2).sum(axis=1)


METHOD = DataMethod(
    name="influence",
    title="Influence functions",
    citation="Koh and Liang 2017, Understanding Black-box Predictions via Influence Functions (ICML); "
             "Schioppa et al. 2022, Scaling Up Influence Functions (AAAI)",
    summary="grad L(input)^T H^-1 grad L(example) on the final layer, H^-1 by Captum's Arnoldi approximation.",
    options=OPTIONS,
    score=score,
    self_influence=self_influence,
)
