"""Training-data attribution on the default model: preparation cost, query cost, how each grows with the
training set, Arnoldi influence against the exact inverse Hessian, self-influence at finding flipped
labels, and the linear datamodeling score.

    .venv/bin/python scripts/bench_training_data.py [--sections prepare,query,exact,scale,suspicious,lds]

Needs the default model built by this version (training rows and checkpoints recorded) and, for
`suspicious`, the same build with 5% of labels flipped:
    rashomon model build-default --flip-fraction 0.05 --output ~/.rashomon/models/default-flipped5
Figures go to BENCHMARKS.md by hand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.analyses.evaluation import heldout_inputs  # noqa: E402
from core.analyses.training_data import influence, nearest, representer, tracin  # noqa: E402
from core.analyses.training_data.attribute import DEFAULT_METHODS, attribute, suspicious  # noqa: E402
from core.analyses.training_data.features import preparation_dir, prepare  # noqa: E402
from core.analyses.training_data.registry import data_method  # noqa: E402
from core.analyses.training_data.training_sets import training_set_for  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.storage.db import get_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def section_prepare(loaded, training) -> None:
    directory = preparation_dir(loaded, training)
    shutil.rmtree(directory, ignore_errors=True)
    print(f"## Preparation ({len(training.examples)} rows, {len(training.checkpoints)} checkpoints)")
    prepared, seconds = timed(lambda: prepare(loaded, training))
    print(f"representations at every checkpoint: {seconds:.1f} s ({prepared.passes} passes)")
    total = seconds
    for name, build in (("nearest (faiss index)", lambda: nearest.index_for(prepared, 100_000)),
                        ("representer (refit)", lambda: representer._fitted(prepared, 0.003)),
                        ("influence (exact inverse Hessian)", lambda: influence._stored(
                            prepared, data_method("influence").resolve({}))),
                        ("tracin self-influence", lambda: tracin.self_influence(prepared, {}))):
        _, seconds = timed(build)
        total += seconds
        print(f"{name}: {seconds:.1f} s")
    print(f"total preparation: {total:.1f} s; peak memory {peak_gib():.2f} GiB")


def section_query(loaded, training, texts) -> None:
    print(f"## Queries ({len(texts)} held-out inputs, k = 10)")
    prepare(loaded, training)
    attribute(loaded, training, texts[0], DEFAULT_METHODS)  # warm: checkpoint weights loaded once per process
    all_times, nearest_times, per_method = [], [], {m: [] for m in DEFAULT_METHODS}
    for text in texts:
        results, seconds = timed(lambda text=text: attribute(loaded, training, text, DEFAULT_METHODS))
        all_times.append(seconds)
        for r in results:
            per_method[r.method].append(r.seconds)
        _, seconds = timed(lambda text=text: attribute(loaded, training, text, ["nearest"]))
        nearest_times.append(seconds)
    print(f"all four methods: median {statistics.median(all_times):.2f} s, max {max(all_times):.2f} s")
    print(f"nearest alone: median {1000 * statistics.median(nearest_times):.0f} ms, max {1000 * max(nearest_times):.0f} ms")
    for method, values in per_method.items():
        print(f"  {method}: median {1000 * statistics.median(values):.0f} ms (first method carries the input's passes)")


def section_exact(loaded, training, texts) -> None:
    """The exact solver (the default on this head) against Captum's Arnoldi at several ranks."""
    print("## Influence: exact inverse Hessian of the final layer vs Captum's Arnoldi approximation")
    prepared = prepare(loaded, training)
    exact_params = data_method("influence").resolve({"solver": "exact"})
    _, seconds = timed(lambda: influence._stored(prepared, exact_params))
    print(f"exact: preparation {seconds:.1f} s (closed-form Hessian, 1,155 parameters, pseudo-inverse)")
    exact = [np.asarray(attribute(loaded, training, t, ["influence"], params={"influence": exact_params})[0].scores)
             for t in texts]
    for rank in (100, 300, 600):
        params = data_method("influence").resolve({"solver": "arnoldi", "projection_dim": rank,
                                                   "arnoldi_dim": min(1155, rank + 100)})
        _, seconds = timed(lambda params=params: influence._stored(prepared, params))
        correlations, overlaps = [], []
        for text, reference in zip(texts, exact, strict=True):
            scores = np.asarray(attribute(loaded, training, text, ["influence"], params={"influence": params})[0].scores)
            correlations.append(float(np.corrcoef(scores, reference)[0, 1]))
            overlaps.append(len(set(np.argsort(-scores)[:10]) & set(np.argsort(-reference)[:10])) / 10)
        print(f"Arnoldi rank {rank}: preparation {seconds:.1f} s; Pearson with exact median "
              f"{statistics.median(correlations):.3f} (min {min(correlations):.3f}); top-10 proponent overlap "
              f"median {statistics.median(overlaps):.2f}")


def section_scale(loaded, training) -> None:
    print("## Growth with the training set (synthetic rows: the default model's real representations resampled "
          "with 10% Gaussian noise per feature; 4 checkpoints)")
    real = prepare(loaded, training).final.activations
    rng = np.random.default_rng(0)
    spread = real.std(axis=0)

    def synthetic(count: int) -> np.ndarray:
        rows = real[rng.integers(0, len(real), count)]
        return (rows + 0.1 * spread * rng.standard_normal(rows.shape).astype(np.float32)).astype(np.float32)

    for rows in (8_000, 32_000, 200_000):
        vectors = synthetic(rows)
        queries = synthetic(20)
        flat, build_flat = timed(lambda v=vectors: nearest.build_index(v, exact_up_to=10**9))
        _, search_flat = timed(lambda f=flat, qs=queries: [nearest.search(f, q, 50) for q in qs])
        line = (f"{rows:>7,} rows: flat index {build_flat:.2f} s, query {1000 * search_flat / 20:.1f} ms")
        if rows >= 32_000:
            graph, build_graph = timed(lambda v=vectors: nearest.build_index(v, exact_up_to=0))
            found, search_graph = timed(lambda g=graph, qs=queries: [nearest.search(g, q, 50)[0] for q in qs])
            truth = [nearest.search(flat, q, 50)[0] for q in queries]
            recall = np.mean([len(set(f) & set(t)) / 50 for f, t in zip(found, truth, strict=True)])
            line += f"; HNSW {build_graph:.1f} s, query {1000 * search_graph / 20:.2f} ms, recall@50 {recall:.2f}"
        # TracIn's store: per checkpoint the representations (n x 384) and probabilities (n x 3), float32.
        store_bytes = 4 * rows * (384 + 3) * 4
        activations = [rng.standard_normal((rows, 384)).astype(np.float32) for _ in range(4)]
        gradients = [rng.standard_normal((rows, 3)) for _ in range(4)]
        a_t, g_t = queries[0], rng.standard_normal(3)

        def tracin_query(activations=activations, gradients=gradients, a_t=a_t, g_t=g_t) -> np.ndarray:
            return sum((g @ g_t) * ((a @ a_t).astype(np.float64) + 1.0) for a, g in zip(activations, gradients, strict=True))

        _, tracin_seconds = timed(tracin_query)
        print(line + f"; TracIn store {store_bytes / 2**20:.0f} MiB, one query {1000 * tracin_seconds:.0f} ms")
        del activations, gradients, flat
    print(f"peak memory {peak_gib():.2f} GiB")


def section_suspicious(engine) -> None:
    flipped_dir = load_settings().home / "models" / "default-flipped5"
    loaded = load_model(str(flipped_dir))
    training = training_set_for(engine, loaded)
    print(f"## Self-influence at finding flipped labels ({len(training.flipped)} of {len(training.examples)} flipped)")
    for method in ("tracin", "influence"):
        result, seconds = timed(lambda method=method: suspicious(loaded, training, method, 10))
        ranked = ", ".join(f"@{k} {v:.2f}" for k, v in result.precision.items())
        print(f"{method}: precision {ranked} (random {result.random_precision:.2f}); {seconds:.1f} s incl. preparation")


def section_lds(loaded, training, texts, subsets: int) -> None:
    from core.analyses.training_data.retraining import linear_datamodeling

    print(f"## Linear datamodeling score ({len(texts)} held-out inputs, {subsets} retrained surrogates)")
    result = linear_datamodeling(loaded, training, texts, DEFAULT_METHODS, subsets=subsets)
    for row in sorted(result.methods, key=lambda r: -r.lds):
        print(f"{row.method}: {row.lds:+.3f} (95% CI {row.low:+.3f} .. {row.high:+.3f})")
    print(f"{result.seconds:.0f} s; surrogate training accuracy {result.surrogate_accuracy:.3f}; retrained: {result.retrained}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", default="prepare,query,exact,scale,suspicious,lds")
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--subsets", type=int, default=50)
    args = parser.parse_args()
    sections = args.sections.split(",")
    engine = get_engine()
    loaded = load_model(str(load_settings().default_model_dir))
    training = training_set_for(engine, loaded)
    texts = [i.text for i in heldout_inputs(args.inputs)]
    if "prepare" in sections:
        section_prepare(loaded, training)
    if "query" in sections:
        section_query(loaded, training, texts)
    if "exact" in sections:
        section_exact(loaded, training, texts)
    if "scale" in sections:
        section_scale(loaded, training)
    if "suspicious" in sections:
        section_suspicious(engine)
    if "lds" in sections:
        section_lds(loaded, training, [i.text for i in heldout_inputs(20)], args.subsets)


if __name__ == "__main__":
    main()
