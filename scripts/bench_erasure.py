"""Which erasure measures the methods rather than the mask? [MASK], deletion and a neutral filler, side by side.

    RASHOMON_HOME=... python scripts/bench_erasure.py [--inputs 40] [--methods fast] [--longer 10]

On the default model's held-out tweets (and, with `--longer`, on paragraphs made by joining held-out tweets
into 46-word texts like the issue's news paragraph), explains each input once with the chosen methods and
measures faithfulness three times, once per erasure, on the same explanations. Per erasure it prints:
- the shock: the mean drop in p(target) when a random 10% of the words are removed (what the erasure itself
  does to the model, whatever the ranking);
- how often the verdict is undecided (no method's comprehensiveness margin clears the random draws' spread);
- the mean number of methods that clear it, and the best method's margin in units of that spread;
- how often each erasure's best method is also the [MASK] one's (do the erasures agree on the winner?).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=40)
    parser.add_argument("--longer", type=int, default=10, help="also this many ~45-word paragraphs")
    parser.add_argument("--methods", default="fast", help="'fast' or a comma-separated list")
    args = parser.parse_args()

    import numpy as np
    import torch

    from core.analyses import faithfulness
    from core.analyses.evaluation import heldout_inputs
    from core.analyses.verdict import rank
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods.explain import explain
    from core.methods.registry import fast_methods
    from core.storage.settings import load_settings

    torch.set_num_threads(os.cpu_count() or 1)
    runner = ModelRunner(load_model(load_settings().resolved_model))
    methods = fast_methods() if args.methods == "fast" else args.methods.split(",")
    pool = [i.text for i in heldout_inputs(args.inputs + 6 * args.longer)]
    texts = {"tweets": pool[: args.inputs]}
    rest, paragraphs = pool[args.inputs:], []
    while rest and len(paragraphs) < args.longer:
        words: list[str] = []
        while rest and len(words) < 45:
            words += rest.pop(0).split()
        paragraphs.append(" ".join(words[:46]))
    if paragraphs:
        texts["paragraphs"] = paragraphs

    print(f"model {runner.loaded.path}; methods: {', '.join(methods)}")
    for group, inputs in texts.items():
        stats = {e: {"shock": [], "undecided": 0, "cleared": [], "best_in_spreads": [], "same_best": 0}
                 for e in faithfulness.ERASURES}
        started = time.perf_counter()
        for text in inputs:
            explanations = [explain(runner, text, m) for m in methods]
            prepared = runner.prepare(text)
            target = runner.loaded.labels.index(explanations[0].target)
            n = len(prepared.words)
            rng = np.random.default_rng(1)
            best_by = {}
            for erasure in faithfulness.ERASURES:
                eraser = faithfulness.Eraser(runner, prepared, target, erasure)
                tenth = max(1, round(0.1 * n))
                probs = eraser.probabilities([[]] + [list(rng.permutation(n)[:tenth]) for _ in range(5)])
                stats[erasure]["shock"].append(float(probs[0] - probs[1:].mean()))
                ranking = rank(faithfulness.evaluate(runner, explanations, erasure=erasure))
                cleared = [r for r in ranking if r.clears]
                stats[erasure]["undecided"] += not cleared
                stats[erasure]["cleared"].append(len(cleared))
                spread = ranking[0].spread or float("nan")
                stats[erasure]["best_in_spreads"].append(ranking[0].comprehensiveness_margin / spread)
                best_by[erasure] = ranking[0].method
            for erasure in faithfulness.ERASURES:
                stats[erasure]["same_best"] += best_by[erasure] == best_by["mask"]
        seconds = time.perf_counter() - started
        mean_words = statistics.mean(len(t.split()) for t in inputs)
        print(f"\n{group}: {len(inputs)} inputs, {mean_words:.0f} words on average, {seconds:.0f} s")
        print("| erasure | random 10% shock (mean drop in p) | undecided | methods clearing the spread (mean) | "
              "best margin / spread (median) | same best method as [MASK] |")
        print("|---|---|---|---|---|---|")
        for erasure, s in stats.items():
            print(f"| {erasure} | {statistics.mean(s['shock']):.3f} | {s['undecided']}/{len(inputs)} | "
                  f"{statistics.mean(s['cleared']):.1f} of {len(methods)} | "
                  f"{statistics.median(s['best_in_spreads']):.1f} | {s['same_best']}/{len(inputs)} |")


if __name__ == "__main__":
    main()
