"""Counterfactual search and attacks on the default model, on its held-out split.

1. Time to the first counterfactual and to the end of the search, with model passes, on held-out tweets of
   about 30 words (28-32 whitespace-separated), each searched on a fresh runner (no cache), default options.
   The sentence encoder and the substitution table load once per process; that one-time cost is
   reported on its own.
2. A corpus run over held-out tweets with the fast methods and `--edits` (corpus defaults): attack success
   rate, words changed and queries per label, each method's counterfactual agreement (with a random
   ranking's share) and fragility, with 95% bootstrap intervals.

    python scripts/bench_edits.py [--long 10] [--corpus 100] [--model PATH] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.analyses import corpus  # noqa: E402
from core.analyses import edits as cf  # noqa: E402
from core.analyses.corpus.inputs import Input  # noqa: E402
from core.analyses.sentence_similarity import default_encoder  # noqa: E402
from core.analyses.substitutes import substitutes_for  # noqa: E402
from core.engine.default_model import BuildConfig, load_corpus, split_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.registry import fast_methods  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402


def heldout() -> list[tuple[str, str]]:
    _, frame = split_corpus(load_corpus(), BuildConfig())
    return list(zip(frame["text"].tolist(), frame["label"].astype(str).tolist(), strict=True))


def long_inputs(rows: list[tuple[str, str]], n: int) -> list[str]:
    return [t for t, _ in rows if 28 <= len(t.split()) <= 32][:n]


def timing_table(loaded, texts: list[str]) -> list[str]:
    started = time.perf_counter()
    default_encoder()
    substitutes_for(loaded)
    setup = time.perf_counter() - started
    lines = ["| input | words | prediction -> goal | first found (s) | passes to first | search (s) | passes | "
             "queries | counterfactuals | ended |", "|---|---|---|---|---|---|---|---|---|---|"]
    firsts, totals = [], []
    for i, text in enumerate(texts):
        runner = ModelRunner(loaded)
        result = cf.search(runner, text)
        first = "none" if result.first_seconds is None else f"{result.first_seconds:.2f}"
        if result.first_seconds is not None:
            firsts.append(result.first_seconds)
        totals.append(result.seconds)
        lines.append(f"| {i + 1} | {len(result.words)} | {result.predicted} -> {result.goal} | {first} | "
                     f"{result.first_passes or ''} | {result.seconds:.2f} | {result.forward_passes} | "
                     f"{result.queries} | {len(result.counterfactuals)} | {result.stopped} |")
        print(lines[-1], flush=True)
    lines.append(f"\nFirst counterfactual: median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s "
                 f"({len(firsts)} of {len(texts)} inputs had one). Whole search: median "
                 f"{statistics.median(totals):.2f} s, max {max(totals):.2f} s. One-time per process: sentence encoder "
                 f"+ substitution table {setup:.2f} s.")
    return lines


def corpus_tables(loaded, rows: list[tuple[str, str]], n: int) -> list[str]:
    rng = np.random.default_rng(0)
    chosen = [rows[i] for i in rng.choice(len(rows), size=n, replace=False)]
    methods = fast_methods()
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(f"sqlite:///{home}/bench.db")
        job_id = corpus.create_job(engine, "bench edits", [Input(f"heldout {i}", t, g) for i, (t, g) in enumerate(chosen)],
                                   methods, k=5, faithfulness_inputs=1, edits={})
        started = time.perf_counter()
        job = corpus.run_job(engine, ModelRunner(loaded), job_id,
                             progress=lambda d, t, o: print(f"{d}/{t}", end="\r", file=sys.stderr, flush=True))
        wall = time.perf_counter() - started
        attack = corpus.attack_rows(engine, job_id)
        agreement = corpus.edit_agreement_rows(engine, job_id)
        fragility = corpus.fragility_rows(engine, job_id)
        items = corpus.items_of(engine, job_id, "done")
    search_seconds = [i.result.edits.seconds for i in items]
    lines = [f"\n{job.done} held-out tweets (seeded sample), methods: {', '.join(methods)}; options "
             f"{job.edits}. Run wall time {wall / 60:.1f} min (search alone: mean {np.mean(search_seconds):.1f} s "
             f"per input).\n",
             "| predicted label | inputs | attack success (95% interval) | mean words changed | share of words "
             "changed | queries per input | queries per success |", "|---|---|---|---|---|---|---|"]
    for r in attack:
        lines.append(f"| {r.label} | {r.inputs} | {r.success_rate:.2f} ({r.rate_low:.2f}-{r.rate_high:.2f}) | "
                     f"{r.mean_words_changed:.2f} | {r.mean_share_changed:.2f} | {r.mean_queries:.0f} | "
                     f"{r.queries_per_success:.0f} |")
    lines += ["", "| method | counterfactual agreement (95% interval) | random ranking | lift (95% interval) | "
              "top-5 kept under a swap (95% interval) | Spearman |", "|---|---|---|---|---|---|"]
    frail = {f.method: f for f in fragility}
    for r in agreement:
        f = frail.get(r.method)
        kept = f"{f.top_k_kept:.2f} ({f.kept_low:.2f}-{f.kept_high:.2f})" if f else "n/a"
        lines.append(f"| {r.method} | {r.share:.2f} ({r.share_low:.2f}-{r.share_high:.2f}) | {r.random_share:.2f} | "
                     f"{r.lift:+.2f} ({r.lift_low:+.2f} to {r.lift_high:+.2f}) | {kept} | "
                     f"{f.spearman:.2f} |" if f else "| |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=10, help="~30-word inputs for the timing table")
    parser.add_argument("--corpus", type=int, default=100, help="held-out tweets for the corpus run (0: skip)")
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    loaded = load_model(args.model)
    rows = heldout()
    lines = [f"\n## Counterfactuals and attacks (`python scripts/bench_edits.py --long {args.long} "
             f"--corpus {args.corpus}`)\n",
             f"{os.cpu_count()} cores; model {loaded.name}; default search options "
             f"{cf.resolve_options(None)}.\n"]
    lines += timing_table(loaded, long_inputs(rows, args.long))
    if args.corpus:
        lines += corpus_tables(loaded, rows, args.corpus)
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(report)


if __name__ == "__main__":
    main()
