"""Corpus benchmark: 100 passages of about 100 tokens with the fast methods; appends to BENCHMARKS.md.

    python scripts/bench_corpus.py [--model PATH] [--passages 100] [--tokens 100]
                                   [--faithfulness-inputs 50] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.analyses import corpus  # noqa: E402
from core.engine.default_model import load_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.registry import fast_methods  # noqa: E402
from core.storage.db import make_engine  # noqa: E402


def passages(tokenizer, count: int, tokens: int) -> list[str]:
    """Consecutive corpus tweets joined into passages of about `tokens` word pieces.

    A passage ends at the tweet boundary nearest to `tokens` (before or after it), so the mean
    length is close to `tokens` rather than always above it.
    """

    def length(words: list[str]) -> int:
        return len(tokenizer(" ".join(words))["input_ids"])

    out: list[str] = []
    words: list[str] = []
    for tweet in load_corpus()["text"].tolist():
        longer = words + tweet.split()
        if length(longer) < tokens:
            words = longer
            continue
        if words and tokens - length(words) < length(longer) - tokens:
            out.append(" ".join(words))
            words = tweet.split()
        else:
            out.append(" ".join(longer))
            words = []
        if len(out) == count:
            break
    return out


def pass_rate(loaded, texts: list[str]) -> float:
    """Full-model forward passes per second on 60 distinct inputs of these passages.

    A measure of this VM's speed at the time (it varies), so it uses the full model, as earlier runs did.
    """
    runner = ModelRunner(loaded, first_token_shortcut=False)
    rows = []
    for text in texts[:6]:
        ids = runner.prepare(text).input_ids
        rows.extend([[runner.mask_id if i == j else t for i, t in enumerate(ids)] for j in range(1, 11)])
    runner.probabilities(rows[:20])  # warm-up
    started = time.perf_counter()
    runner.probabilities(rows[20:])
    return (len(rows) - 20) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--passages", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--faithfulness-inputs", type=int, default=corpus.DEFAULT_FAITHFULNESS_INPUTS,
                        help="inputs sampled for faithfulness metrics (0 = every input); the page's default")
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args()
    loaded = load_model(args.model)
    texts = passages(loaded.tokenizer, args.passages, args.tokens)
    mean_tokens = sum(len(loaded.tokenizer(t)["input_ids"]) for t in texts) / len(texts)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        job_id = corpus.create_job(engine, "bench", [corpus.Input(f"passage {i}", t) for i, t in enumerate(texts)],
                                   fast_methods(), k=5, faithfulness_inputs=args.faithfulness_inputs)
        rate_before = pass_rate(loaded, texts)
        runner = ModelRunner(loaded)
        estimate = corpus.estimate_seconds(runner, fast_methods(), texts,
                                           faithfulness_inputs=args.faithfulness_inputs)
        started = time.perf_counter()
        job = corpus.run_job(engine, runner, job_id,
                             progress=lambda done, total, origin: print(f"\r{done}/{total}", end="", flush=True))
        seconds = time.perf_counter() - started
        print()
        gap = next((asdict(g) for g in corpus.completeness_gaps(engine, job_id) if g.method == "integrated_gradients"), None)
        costs = [asdict(c) for c in corpus.cost_rows(engine, job_id)]
        rate_after = pass_rate(loaded, texts)
    line = (f"\nCorpus run (`python scripts/bench_corpus.py`): {len(texts)} passages of {mean_tokens:.0f} tokens on average, "
            f"methods {', '.join(fast_methods())}, plus agreement metrics on every passage and faithfulness "
            f"metrics on {len(corpus.faithfulness_positions(len(texts), args.faithfulness_inputs))} of them: "
            f"**{seconds:.0f} s** ({seconds / len(texts):.2f} s per passage; {job.done} done, {job.failed} failed). "
            f"{runner.forward_passes} forward passes ({runner.forward_passes / len(texts):.0f} per passage; "
            f"first-token shortcut {'on' if runner.first_token_shortcut else 'off'}). "
            + (f"IG completeness gap median {gap['median']:.2%}, 90th percentile {gap['p90']:.2%}. " if gap else "")
            + "Time per method: " + ", ".join(f"{c['method']} {c['total_seconds']:.0f} s" for c in costs)
            + f" (the rest is agreement and faithfulness). The page's estimate before starting was {estimate:.0f} s. Plain forward passes ran at "
            f"{rate_before:.0f}/s before the run and {rate_after:.0f}/s after it.\n")
    with Path(args.out).open("a") as handle:
        handle.write(line)
    print(line)


if __name__ == "__main__":
    main()
