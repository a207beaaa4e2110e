"""Adaptive sampling against fixed budgets, on held-out inputs of 40-128 tokens from the default model.

Per method: seconds, forward passes, samples (or IG steps) used, converged or not, and for LIME, SHAP and
KernelSHAP the top-5 feature agreement with a 5,000-sample fixed run of the same method (the reference).
Then the whole default comparison (every method + agreement + faithfulness), adaptive against the
pre-adaptive fixed settings and against ferret 0.4.2's explain + evaluate (installed on first use in a
virtual environment of its own, since it pins older transformers and numpy), side by side in one run, as
ratios. And the first-SHAP-call cold start.

    python scripts/bench_speed.py [--inputs 20] [--skip 10] [--model PATH] [--no-ferret] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
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

from core.analyses.reports import run_report  # noqa: E402
from core.engine.default_model import BuildConfig, load_corpus, split_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.explain import explain  # noqa: E402
from core.methods.registry import METHODS  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402

SAMPLED = ("lime", "shap", "kernel_shap")
BUDGET = {"lime": "num_samples", "shap": "max_evals", "kernel_shap": "num_samples"}
# The settings before adaptive sampling (what a comparison used until this change).
FIXED = {"lime": {"num_samples": 500, "adaptive": False}, "shap": {"max_evals": 500, "adaptive": False},
         "kernel_shap": {"num_samples": 500, "adaptive": False},
         "integrated_gradients": {"n_steps": 50, "adaptive": False}}


def top5(scores) -> set[int]:
    return set(np.argsort(-np.abs(np.asarray(scores)), kind="stable")[:5].tolist())


def heldout_inputs(runner: ModelRunner, n: int, skip: int) -> list[str]:
    _, heldout = split_corpus(load_corpus(), BuildConfig())
    chosen = [t for t in heldout["text"].tolist() if 40 <= len(runner.prepare(t).input_ids) <= 128]
    return chosen[skip:skip + n]


FERRET_PACKAGES = ["torch==2.13.0", "ferret-xai==0.4.2", "pyarrow<21"]  # ferret's numpy<2 needs a pyarrow built for it


def ferret_python(venv: Path) -> Path:
    """ferret 0.4.2 in a virtual environment of its own (it pins older transformers and numpy), made once."""
    from scripts.side_venv import side_python

    return side_python(venv, FERRET_PACKAGES)


def ferret_seconds(python: Path, model: str, texts: list[str]) -> list[dict]:
    """ferret's Benchmark.explain + evaluate_explanations per input, in its own environment."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"model": model, "texts": texts}, spec)
    out = subprocess.run([str(python), str(ROOT / "scripts" / "ferret_timing.py"), spec.name], capture_output=True,
                         text=True, cwd=ROOT, timeout=7200, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"ferret failed: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def comparison_seconds(loaded, texts: list[str], options: dict) -> list[float]:
    """The whole default comparison (every method + agreement + faithfulness + attention checks) per input,
    from a fresh database and a fresh runner each time (no stored or cached results)."""
    seconds = []
    for text in texts:
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/speed.db")
        started = time.perf_counter()
        run_report(engine, ModelRunner(loaded), text, list(METHODS), options)
        seconds.append(time.perf_counter() - started)
    return seconds


def comparison_runs(loaded, texts: list[str], options: dict, backend: str = "float32") -> list[tuple[float, int, object]]:
    """(seconds, passes, report) of the whole default comparison per input through `backend`, each from a fresh
    database and runner."""
    runs = []
    for text in texts:
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/speed.db")
        runner = ModelRunner(loaded, backend=backend)
        started = time.perf_counter()
        report = run_report(engine, runner, text, list(METHODS), options)
        runs.append((time.perf_counter() - started, runner.forward_passes, report))
    return runs


def backends_table(loaded, texts: list[str], ferret_python_path: Path | None, model: str) -> list[str]:
    """Every backend's whole default comparison on the same inputs, float32 before and after the others (and
    ferret), with the fidelity criteria read from the comparisons themselves: labels and probabilities of each
    input, and each perturbation method's top-5 against float32's (a second float32 run with other seeds is the
    bar for the sampling methods)."""
    from core.analyses.agreement import METRICS, feature_agreement, rank_agreement
    from core.analyses.backend_gate import served_methods
    from core.engine.backends import BACKENDS, FLOAT32

    sampled = [m for m in served_methods() if METHODS[m].random]
    reseeded = {m: {"seed": 1} for m in sampled}
    before = comparison_runs(loaded, texts, {})
    other_seeds = comparison_runs(loaded, texts, reseeded)
    runs = {name: comparison_runs(loaded, texts, {}, name) for name in BACKENDS if name != FLOAT32}
    ferret = ferret_seconds(ferret_python_path, model, texts) if ferret_python_path else []
    after = comparison_runs(loaded, texts, {})
    float32_mean = (sum(r[0] for r in before) + sum(r[0] for r in after)) / 2 / len(texts)

    def by_method(report) -> dict:
        return {e.method: e for e in report.comparison.explanations}

    def agreement(a_runs, b_runs, method, fn) -> float:
        return float(np.nanmean([fn(np.asarray(by_method(a[2])[method].scores), np.asarray(by_method(b[2])[method].scores), 5)
                                 for a, b in zip(a_runs, b_runs, strict=True)]))

    lines = ["", f"Whole default comparison per backend, {len(texts)} inputs, each from a fresh store and runner "
             f"(float32 before the others and after{' ferret' if ferret else ''}: {sum(r[0] for r in before):.1f} s and "
             f"{sum(r[0] for r in after):.1f} s):", "",
             "| backend | s per input | passes per input | ferret / this | labels kept | max probability change | "
             + " | ".join(f"{m} top-5 vs float32" for m in served_methods()) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(served_methods())]
    ferret_per_input = sum(r["explain"] + r["evaluate"] for r in ferret) / len(texts) if ferret else None
    bars = {m: agreement(before, other_seeds, m, feature_agreement) for m in sampled}
    rows = [("float32", [(a[0] + b[0]) / 2 for a, b in zip(before, after, strict=True)], before)] + \
           [(name, [r[0] for r in found], found) for name, found in runs.items()]
    for name, seconds, found in rows:
        labels = np.mean([max(a[2].comparison.explanations[0].probabilities, key=a[2].comparison.explanations[0].probabilities.get)
                          == max(b[2].comparison.explanations[0].probabilities, key=b[2].comparison.explanations[0].probabilities.get)
                          for a, b in zip(before, found, strict=True)])
        change = max(abs(a[2].comparison.explanations[0].probabilities[k] - b[2].comparison.explanations[0].probabilities[k])
                     for a, b in zip(before, found, strict=True) for k in a[2].comparison.explanations[0].probabilities)
        cells = []
        for method in served_methods():
            if METHODS[method].random:
                cells.append(f"{agreement(before, found, method, feature_agreement):.0%} (seeds {bars[method]:.0%})")
            else:
                spearman = agreement(before, found, method, METRICS['spearman'].fn)
                cells.append(f"{agreement(before, found, method, rank_agreement):.0%}, Spearman {spearman:.3f}")
        mean = float(np.mean(seconds))
        ratio = f"{ferret_per_input / mean:.2f}x" if ferret_per_input else "-"
        lines.append(f"| {name} | {mean:.2f} | {np.mean([r[1] for r in found]):.0f} | {ratio} | {labels:.0%} | "
                     f"{change:.3f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if ferret_per_input:
        lines.append(f"\nferret 0.4.2 in the same run: {ferret_per_input:.2f} s per input (float32 {float32_mean:.2f}).")
    return lines


def cold_start(model: str) -> str:
    code = ("import time; t = time.perf_counter(); import shap; i = time.perf_counter() - t; "
            "from core.engine.modelling import load_model; from core.engine.runner import ModelRunner; from core.methods.explain import explain; "
            f"m = load_model({model!r}); p = {{'adaptive': False, 'max_evals': 500}}; "
            "text = 'The staff were lovely but the food was cold and bland, and the room was noisy.'; "
            "t = time.perf_counter(); explain(ModelRunner(m), text, 'shap', params=p); a = time.perf_counter() - t; "
            "t = time.perf_counter(); explain(ModelRunner(m), text, 'shap', params=p); b = time.perf_counter() - t; "
            "print(f'{i:.2f} {a:.2f} {b:.2f}')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    imported, first, second = out.stdout.split()
    return (f"- Cold start (a fresh process, 18-word input): `import shap` {imported} s, then the first SHAP "
            f"explanation {first} s and the second {second} s. The server now pays both in a background thread "
            "when it loads a model (`core/engine/warmup.py`); a CLI process still pays them.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--inputs", type=int, default=20)
    parser.add_argument("--skip", type=int, default=10, help="held-out inputs to pass over first (the first 10 "
                        "chose SHAP's first round; these are measured on others)")
    parser.add_argument("--ferret-venv", default=str(load_settings().home / "ferret-venv"))
    parser.add_argument("--no-ferret", action="store_true")
    parser.add_argument("--backends", action="store_true", help="only the whole comparison per backend (and ferret)")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    loaded = load_model(args.model)
    texts = heldout_inputs(ModelRunner(loaded), args.inputs, args.skip)
    if args.backends:
        python = None if args.no_ferret else ferret_python(Path(args.ferret_venv))
        lines = [f"\n## Backends against float32 and ferret (`python scripts/bench_speed.py --backends --inputs {args.inputs}`)\n",
                 f"{len(texts)} held-out inputs of 40-128 tokens (held-out inputs {args.skip + 1}-{args.skip + len(texts)} "
                 f"of that length); {os.cpu_count()} cores; model {loaded.name}."]
        lines += backends_table(loaded, texts, python, args.model)
        report = "\n".join(lines) + "\n"
        print(report)
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(report)
        return
    lines = [f"\n## Adaptive sampling against fixed budgets and ferret (`python scripts/bench_speed.py --inputs {args.inputs}`)\n",
             f"{len(texts)} held-out inputs of 40-128 tokens (held-out inputs {args.skip + 1}-{args.skip + len(texts)} of "
             f"that length); {os.cpu_count()} cores; model {loaded.name}.\n",
             "| method | seconds (mean) | passes (mean) | samples / steps used (median) | converged | top-5 agreement with 5,000-sample reference |",
             "| --- | --- | --- | --- | --- | --- |"]
    # One 5,000-sample reference per sampled method and input; LIME's and KernelSHAP's share one runner
    # (KernelSHAP reads LIME's neighbourhood, so its reference costs no new passes).
    references: dict[tuple[str, str], list[float]] = {}
    for text in texts:
        shared = ModelRunner(loaded)
        for name in SAMPLED:
            runner = shared if name != "shap" else ModelRunner(loaded)
            references[name, text] = explain(runner, text, name, params={BUDGET[name]: 5000, "adaptive": False}).scores
    print("references done", flush=True)
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
                agreement.append(len(top5(e.scores) & top5(references[name, text])) / 5)
        lines.append(f"| {name} | {np.mean(seconds):.3f} | {np.mean(passes):.0f} | "
                     f"{statistics.median(used) if used else '-'} | "
                     f"{f'{sum(converged)}/{len(converged)}' if converged else '-'} | "
                     f"{f'{np.mean(agreement):.0%}' if agreement else '-'} |")
        print(lines[-1], flush=True)
    # Fixed budgets of the same methods, for comparison (their agreement with the same references).
    for name in SAMPLED:
        agreement, seconds, passes = [], [], []
        for text in texts:
            e = explain(ModelRunner(loaded), text, name, params=FIXED[name])
            agreement.append(len(top5(e.scores) & top5(references[name, text])) / 5)
            seconds.append(e.seconds)
            passes.append(e.forward_passes)
        lines.append(f"| {name} (fixed 500) | {np.mean(seconds):.3f} | {np.mean(passes):.0f} | 500 | | {np.mean(agreement):.0%} |")
        print(lines[-1], flush=True)

    # The whole comparison against ferret, side by side: ours before and after ferret's run, so a change of
    # the machine's speed during the run shows as a difference between the two.
    adaptive_before = comparison_seconds(loaded, texts, {})
    fixed = comparison_seconds(loaded, texts, FIXED)
    ferret = [] if args.no_ferret else ferret_seconds(ferret_python(Path(args.ferret_venv)), args.model, texts)
    adaptive_after = comparison_seconds(loaded, texts, {})
    ours = (sum(adaptive_before) + sum(adaptive_after)) / 2
    lines.append(f"\nWhole default comparison ({len(METHODS)} methods + agreement + faithfulness + attention checks), "
                 f"{len(texts)} inputs, total seconds in this run: adaptive (defaults) {sum(adaptive_before):.1f} before "
                 f"ferret's run and {sum(adaptive_after):.1f} after (mean {ours:.1f}, {ours / len(texts):.2f} s per input); "
                 f"fixed 500-sample budgets (the previous defaults) {sum(fixed):.1f}; "
                 f"ratio adaptive / fixed {ours / sum(fixed):.2f}.")
    if ferret:
        explain_s = sum(r["explain"] for r in ferret)
        evaluate_s = sum(r["evaluate"] for r in ferret)
        total = explain_s + evaluate_s
        lines.append(f"ferret 0.4.2 (`Benchmark.explain` + `evaluate_explanations`, its {ferret[0]['explainers']} default "
                     f"explainers and default evaluators, same inputs and predicted labels, its own environment): "
                     f"explain {explain_s:.1f} s + evaluate {evaluate_s:.1f} s = {total:.1f} s "
                     f"({total / len(texts):.2f} s per input). **Ratio ferret / Rashomon: {total / ours:.1f}x** "
                     f"(per input, median {statistics.median(f['explain'] + f['evaluate'] for f in ferret) / statistics.median(adaptive_before + adaptive_after):.1f}x).\n")
    lines.append(cold_start(args.model))
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(report)


if __name__ == "__main__":
    main()
