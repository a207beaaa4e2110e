"""Nearest training examples in the classifier's own representation (the KNN view).

The representation is the input of the final linear layer at the final weights; similarity is
cosine, searched with faiss (exact inner product on unit vectors up to `exact_up_to` rows, an HNSW
graph beyond, so the index scales past what exact search handles in memory and time). A neighbour
labelled with the target scores +cosine, one labelled otherwise -cosine: proponents are near examples
of the target label, opponents near examples of other labels. The label distribution of the k
nearest is reported next to the model's prediction (Papernot and McDaniel 2018, deep k-nearest
neighbours: a prediction its neighbours disagree with deserves less trust).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.analyses.training_data.base import DataMethod
from core.analyses.training_data.features import Prepared, Query
from core.methods.base import Option

if TYPE_CHECKING:
    import faiss

OPTIONS = (
    Option("neighbours", "int", 50, "Training examples retrieved (scored); the rest score 0.", minimum=1, maximum=5000),
    Option("vote", "int", 10, "Neighbours whose labels form the label distribution.", minimum=1, maximum=1000),
    Option("exact_up_to", "int", 100_000, "Exact search up to this many rows, an HNSW graph beyond.", minimum=1),
)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def build_index(vectors: np.ndarray, exact_up_to: int = 100_000) -> faiss.Index:
    """A faiss inner-product index over unit rows: flat (exact) or HNSW (approximate) for large sets."""
    import faiss

    data = unit_rows(vectors)
    if len(data) <= exact_up_to:
        index = faiss.IndexFlatIP(data.shape[1])
    else:
        index = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    index.add(data)
    return index


def index_for(prepared: Prepared, exact_up_to: int) -> faiss.Index:
    import faiss

    def build() -> dict[str, np.ndarray]:
        return {"index": faiss.serialize_index(build_index(prepared.final.activations, exact_up_to))}

    stored = prepared.extra(f"nearest-{exact_up_to}", build)
    return faiss.deserialize_index(stored["index"])


def search(index: faiss.Index, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    similarities, rows = index.search(unit_rows(vector[None, :]), count)
    keep = rows[0] >= 0
    return rows[0][keep], similarities[0][keep]


def score(prepared: Prepared, query: Query, target: int, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    index = index_for(prepared, params["exact_up_to"])
    started = time.perf_counter()
    count = min(params["neighbours"], len(prepared.targets))
    rows, similarities = search(index, query.activations[-1], count)
    search_seconds = time.perf_counter() - started
    scores = np.zeros(len(prepared.targets))
    signs = np.where(prepared.targets[rows] == target, 1.0, -1.0)
    scores[rows] = signs * similarities
    voters = prepared.targets[rows[: params["vote"]]]
    distribution = {label: float(np.mean(voters == i)) if len(voters) else 0.0 for i, label in enumerate(prepared.labels)}
    predicted = prepared.labels[int(np.argmax(query.final_probabilities))]
    top = max(distribution.values())
    leaders = [label for label, share in distribution.items() if share == top]  # a tie names every leader
    return scores, {"label_distribution": distribution, "neighbours_agree": leaders == [predicted],
                    "majority_labels": leaders, "search_seconds": search_seconds,
                    "index": "exact (faiss flat)" if len(prepared.targets) <= params["exact_up_to"] else "HNSW (faiss)"}


METHOD = DataMethod(
    name="nearest",
    title="Nearest training examples",
    citation="Papernot and McDaniel 2018, Deep k-Nearest Neighbors (arXiv:1803.04765)",
    summary="Training examples closest to the input in the classifier's representation; +cosine when "
            "labelled with the target, -cosine otherwise.",
    options=OPTIONS,
    score=score,
)
