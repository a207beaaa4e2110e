"""Adaptive sampling against fixed budgets, on held-out inputs of 40-128 tokens from the default model.

Per method: seconds, forward passes, samples (or IG steps) used, converged or not, and for LIME, SHAP and
KernelSHAP the top-5 feature agreement with a 5,000-sample fixed run of the same method (the reference).
Then the whole default comparison (every method + agreement + faithfulness), adaptive against the
pre-adaptive fixed settings, side by side in one run, as a ratio. And the first-SHAP-call cold start.

    python scripts/bench_speed.py [--inputs 20] [--model PATH] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.db import make_engine  # noqa: E402
from core.default_model import BuildConfig, load_corpus, split_corpus  # noqa: E402
from core.explain import explain  # noqa: E402
from core.methods.registry import METHODS  # noqa: E402
from core.modelling import load_model  # noqa: E402
from core.reports import run_report  # noqa: E402
from core.runner import ModelRunner  # noqa: E402
from core.settings import load_settings  # noqa: E402

SAMPLED = ("lime", "shap", "kernel_shap")
BUDGET = {"lime": "num_samples", "shap": "max_evals", "kernel_shap": "num_samples"}
# The settings before adaptive sampling (what a comparison used until this change).
FIXED = {"lime": {"num_samples": 500, "adaptive": False}, "shap": {"max_evals": 500, "adaptive": False},
         "kernel_shap": {"num_samples": 500, "adaptive": False},
         "integrated_gradients": {"n_steps": 50, "adaptive": False}}


def top5(scores) -> set[int]:
    return set(np.argsort(-np.abs(np.asarray(scores)), kind="stable")[:5].tolist())


def heldout_inputs(runner: ModelRunner, n: int) -> list[str]:
    _, heldout = split_corpus(load_corpus(), BuildConfig())
    chosen = [t for t in heldout["text"].tolist() if 40 <= len(runner.prepare(t).input_ids) <= 128]
    return chosen[:n]


def cold_start(model: str) -> str:
    code = ("import time; t = time.perf_counter(); import shap; i = time.perf_counter() - t; "
            "from core.modelling import load_model; from core.runner import ModelRunner; from core.explain import explain; "
            f"m = load_model({model!r}); p = {{'adaptive': False, 'max_evals': 500}}; "
            "text = 'The staff were lovely but the food was cold and bland, and the room was noisy.'; "
            "t = time.perf_counter(); explain(ModelRunner(m), text, 'shap', params=p); a = time.perf_counter() - t; "
            "t = time.perf_counter(); explain(ModelRunner(m), text, 'shap', params=p); b = time.perf_counter() - t; "
            "print(f'{i:.2f} {a:.2f} {b:.2f}')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    imported, first, second = out.stdout.split()
    return (f"- Cold start (a fresh process, 18-word input): `import shap` {imported} s, then the first SHAP "
            f"explanation {first} s and the second {second} s. The server now pays both in a background thread "
            "when it loads a model (`core/warmup.py`); a CLI process still pays them.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--inputs", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    loaded = load_model(args.model)
    texts = heldout_inputs(ModelRunner(loaded), args.inputs)
    lines = [f"\n## Adaptive sampling against fixed budgets (`python scripts/bench_speed.py --inputs {args.inputs}`)\n",
             f"{len(texts)} held-out inputs of 40-128 tokens; {os.cpu_count()} cores; model {loaded.name}.\n",
             "| method | seconds (mean) | passes (mean) | samples / steps used (median) | converged | top-5 agreement with 5,000-sample reference |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in METHODS:
        seconds, passes, used, converged, agreement = [], [], [], [], []
        for text in texts:
            e = explain(ModelRunner(loaded), text, name)
            seconds.append(e.seconds)
            passes.append(e.forward_passes)
            d = e.diagnostics
            if "convergence_converged" in d:
                used.append(d.get("samples", d["convergence_samples"]))
                converged.append(d["convergence_converged"])
            elif "steps" in d:
                used.append(d["steps"])
                converged.append(d["converged"])
            if name in SAMPLED:
                reference = explain(ModelRunner(loaded), text, name, params={BUDGET[name]: 5000, "adaptive": False})
                agreement.append(len(top5(e.scores) & top5(reference.scores)) / 5)
        lines.append(f"| {name} | {np.mean(seconds):.3f} | {np.mean(passes):.0f} | "
                     f"{statistics.median(used) if used else '-'} | "
                     f"{f'{sum(converged)}/{len(converged)}' if converged else '-'} | "
                     f"{f'{np.mean(agreement):.0%}' if agreement else '-'} |")
        print(lines[-1], flush=True)
    # Fixed budgets of the same methods, for comparison (their agreement with the same references).
    for name in SAMPLED:
        agreement, seconds = [], []
        for text in texts:
            e = explain(ModelRunner(loaded), text, name, params=FIXED[name])
            reference = explain(ModelRunner(loaded), text, name, params={BUDGET[name]: 5000, "adaptive": False})
            agreement.append(len(top5(e.scores) & top5(reference.scores)) / 5)
            seconds.append(e.seconds)
        lines.append(f"| {name} (fixed 500) | {np.mean(seconds):.3f} | | 500 | | {np.mean(agreement):.0%} |")
        print(lines[-1], flush=True)

    totals = {}
    for label, options in (("adaptive (defaults)", {}), ("fixed (previous defaults)", FIXED)):
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/speed.db")
        started = time.perf_counter()
        for text in texts:
            run_report(engine, ModelRunner(loaded), text, list(METHODS), options)
        totals[label] = time.perf_counter() - started
    lines.append(f"\nWhole default comparison ({len(METHODS)} methods + agreement + faithfulness + attention checks) "
                 f"over the {len(texts)} inputs, one after the other in this run: "
                 + "; ".join(f"{k} {v:.1f} s" for k, v in totals.items())
                 + f"; ratio adaptive / fixed {totals['adaptive (defaults)'] / totals['fixed (previous defaults)']:.2f}.\n")
    lines.append(cold_start(args.model))
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(report)


if __name__ == "__main__":
    main()
