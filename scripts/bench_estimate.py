"""Corpus time estimates against measured runs on the default model; appends a table to BENCHMARKS.md.

The Corpus page shows `corpus.estimate_seconds` before a run starts. This script runs real corpus jobs
(short tweets and ~100-token passages; the fast methods, and LIME with SHAP) and records the ratio of
measured to estimated time, which must stay within 2x either way.

    python scripts/bench_estimate.py [--model PATH] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_corpus import passages  # noqa: E402

from core.analyses import corpus  # noqa: E402
from core.engine.default_model import load_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.registry import fast_methods  # noqa: E402
from core.storage.db import make_engine  # noqa: E402


def measure(loaded, name: str, texts: list[str], methods: list[str], faithfulness_inputs: int) -> tuple:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        runner = ModelRunner(loaded)
        estimate = corpus.estimate_seconds(runner, methods, texts, faithfulness_inputs=faithfulness_inputs)
        passes = corpus.estimate_passes(runner, methods, texts, faithfulness_inputs=faithfulness_inputs)
        job = corpus.create_job(engine, name, [corpus.Input(f"{i}", t) for i, t in enumerate(texts)], methods,
                                faithfulness_inputs=faithfulness_inputs)
        fresh = ModelRunner(loaded)
        started = time.perf_counter()
        corpus.run_job(engine, fresh, job)
        seconds = time.perf_counter() - started
    row = (name, len(texts), ", ".join(methods), estimate, seconds, seconds / estimate, passes, fresh.forward_passes)
    print(f"{name}: estimate {estimate:.0f} s, measured {seconds:.0f} s, ratio {seconds / estimate:.2f}; "
          f"passes {passes:.0f} estimated, {fresh.forward_passes} run", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args()
    loaded = load_model(args.model)
    tweets = [t for t in load_corpus()["text"].tolist() if len(t.split()) >= 8][:30]
    long = passages(loaded.tokenizer, 20, 100)
    rows = [
        measure(loaded, "tweets, fast methods", tweets, fast_methods(), 50),
        measure(loaded, "tweets, lime + shap", tweets[:15], ["lime", "shap"], 0),
        measure(loaded, "100-token passages, fast methods", long, fast_methods(), 50),
        measure(loaded, "100-token passages, lime + shap", long[:6], ["lime", "shap"], 0),
    ]
    lines = ["", "## Corpus time estimates against measured runs",
             "", f"`python scripts/bench_estimate.py` on {platform.processor() or platform.machine()}, default "
             "model, one run each, estimate taken just before the run (Corpus page's number). Faithfulness on a "
             "sample of 50 inputs for the fast methods, none for LIME + SHAP.", "",
             "| inputs | n | methods | estimate (s) | measured (s) | measured / estimate | passes estimated | "
             "passes run |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.0f} | {r[4]:.0f} | {r[5]:.2f} | {r[6]:.0f} | {r[7]} |"
              for r in rows]
    with open(args.out, "a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
