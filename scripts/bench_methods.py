"""Benchmark every explanation method against its forward-pass bound; writes BENCHMARKS.md.

The *forward-pass bound* of a run is the time this machine needs for the same number of model
passes at the best batch size (forward only for perturbation methods, forward + backward for
gradient methods). A method at 1.0x spends nothing beyond the model itself.

    python scripts/bench_methods.py [--model PATH] [--lengths 32,128,512] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.analyses.store import explain_stored  # noqa: E402
from core.engine.default_model import load_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods import METHODS, Family  # noqa: E402
from core.methods.explain import explain  # noqa: E402
from core.storage.db import make_engine  # noqa: E402

GRADIENT = {name for name, m in METHODS.items() if m.family == Family.GRADIENT}  # passes run backward too
BATCHES = (1, 2, 4, 8, 16, 32, 64)


def text_of_tokens(tokenizer, n_tokens: int) -> str:
    """Concatenate corpus tweets until the text is `n_tokens` word pieces (specials included)."""
    tweets = load_corpus()["text"].tolist()
    words: list[str] = []
    for tweet in tweets:
        words.extend(tweet.split())
        if len(tokenizer(" ".join(words))["input_ids"]) >= n_tokens:
            break
    while len(tokenizer(" ".join(words))["input_ids"]) > n_tokens:
        words.pop()
    return " ".join(words)


def seconds_per_example(model, seq_len: int, batch: int, backward: bool, repeats: int = 3) -> float:
    ids = torch.randint(1000, 20000, (batch, seq_len))
    embeddings = model.get_input_embeddings()
    timings = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if backward:
            embeds = embeddings(ids).detach().requires_grad_()
            model(inputs_embeds=embeds).logits.softmax(-1)[:, 0].sum().backward()
        else:
            with torch.inference_mode():
                model(input_ids=ids)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings[1:])) / batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    loaded = load_model(args.model)
    rows, bounds = [], {}
    for length in [int(x) for x in args.lengths.split(",")]:
        text = text_of_tokens(loaded.tokenizer, length)
        for backward in (False, True):
            # Backward at 512 tokens and batch 32+ needs many GB and minutes; it is never the best shape.
            batches = [b for b in BATCHES if not (backward and b * length > 8192)]
            per = {b: seconds_per_example(loaded.model, length, b, backward) for b in batches}
            bounds[(length, backward)] = per
            best = min(per, key=per.get)
            print(f"{length} tokens, {'fwd+bwd' if backward else 'fwd'}: best batch {best}, "
                  f"{1 / per[best]:.1f} examples/s", flush=True)
        total = 0.0
        for name in METHODS:
            runner = ModelRunner(loaded)  # a fresh cache: no method profits from another's passes
            explain(runner, "warm up", name)
            runner = ModelRunner(loaded)
            e = explain(runner, text, name)  # every method at its registry defaults
            # The best batch size a run of this many passes could use (2 passes cannot batch by 32).
            per = bounds[(length, name in GRADIENT)]
            bound = e.forward_passes * min(v for b, v in per.items() if b <= max(1, e.forward_passes))
            total += e.seconds
            rows.append((length, name, e.seconds, e.forward_passes, bound, e.seconds / bound if bound else float("nan")))
            print(f"  {name:22} {e.seconds:7.2f}s {e.forward_passes:5d} passes  bound {bound:6.2f}s "
                  f"ratio {rows[-1][-1]:.2f}", flush=True)
        rows.append((length, f"ALL {len(METHODS)}", total, 0, 0.0, float("nan")))
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        runner = ModelRunner(loaded)
        text = text_of_tokens(loaded.tokenizer, 128)
        explain_stored(engine, runner, text, "lime")
        start = time.perf_counter()
        stored = explain_stored(engine, ModelRunner(loaded), text, "lime")
        stored_seconds = time.perf_counter() - start
        assert stored.cached
    lines = [
        "# Benchmarks", "",
        f"`python scripts/bench_methods.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU threads, torch {torch.__version__}; model: {loaded.name}. "
        "every method at its registry defaults (lime 500 samples, shap 500 evaluations, integrated gradients 50 steps).",
        "", "| tokens | method | seconds | forward passes | forward-pass bound (s) | ratio to bound |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for length, name, seconds, passes, bound, ratio in rows:
        if name == "ALL EIGHT":
            lines.append(f"| {length} | **all eight together** | **{seconds:.2f}** | | | |")
        else:
            lines.append(f"| {length} | {name} | {seconds:.3f} | {passes} | {bound:.3f} | {ratio:.2f} |")
    lines += ["", f"A stored result (lime, 128 tokens) comes back in {stored_seconds * 1000:.0f} ms "
              "(a fresh runner: the text is tokenized and hashed, the result read from the database; no forward pass).", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
