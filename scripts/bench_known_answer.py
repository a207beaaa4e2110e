"""The known-answer check on the default model, as a task: plant a shortcut, retrain, score every method.

    RASHOMON_HOME=... python scripts/bench_known_answer.py [--token zorblat] [--label positive] [--rate 0.1]
                                                           [--inputs 30] [--k 3]

Submits a `known_answer` task for the configured model and runs it here as a worker would, then reads the
stored result back as the CLI does (counting passes: reopening must cost none) and prints the tables for
BENCHMARKS.md: each method's recall@1, recall@k and mean rank with 95% intervals, the control, the random
ranking's expectation, the retraining time, and how erasure faithfulness (comprehensiveness on the same inputs)
would have ranked the methods.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("RASHOMON_COUNT_PASSES", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", default="zorblat")
    parser.add_argument("--label", default="positive")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--inputs", type=int, default=30)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()

    import torch

    from core.analyses.known_answer import known_answer
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods.registry import METHODS
    from core.storage.db import get_engine
    from core.storage.settings import load_settings
    from core.work import tasks

    torch.set_num_threads(os.cpu_count() or 1)
    engine = get_engine()
    runner = ModelRunner(load_model(load_settings().resolved_model))
    params = {"token": args.token, "label": args.label, "rate": args.rate, "methods": list(METHODS),
              "inputs": args.inputs, "k": args.k, "probe": 300}
    submitted = tasks.submit(engine, "known_answer", runner.loaded.path, params)
    started = time.perf_counter()
    task = tasks.run_here(engine, runner, submitted.id)
    print(f"task {task.id}: {task.status} in {task.seconds:.0f} s ({time.perf_counter() - started:.0f} s wall), "
          f"{task.forward_passes} passes on the original model's runner {task.error}")
    passes = runner.forward_passes
    result = known_answer(engine, runner, args.token, args.label, rate=args.rate, methods=list(METHODS),
                          inputs=args.inputs, k=args.k, only_stored=True)
    print(f"reopened from the store: {runner.forward_passes - passes} passes")
    print(result.note)
    print(f"\nshortcut rate {result.shortcut_rate:.3f} (95% {result.shortcut_interval[0]:.3f}-"
          f"{result.shortcut_interval[1]:.3f}, {result.probed} held-out texts); held-out accuracy without the word: "
          f"planted {result.accuracy:.3f}, original {result.accuracy_original:.3f}; retraining "
          f"{result.retrain_seconds:.0f} s; whole check {result.seconds:.0f} s, {result.forward_passes:,} passes")
    if not result.learned:
        return
    control = {s.method: s for s in result.control}
    erasure_order = sorted(result.erasure, key=lambda m: -result.erasure[m])
    print(f"\n| method | recall@1 (95%) | recall@{args.k} (95%) | mean rank (95%) | control recall@1 | "
          "erasure AOPC (rank) |\n| --- | --- | --- | --- | --- | --- |")
    for s in sorted(result.methods, key=lambda s: (-s.recall_at_1, s.mean_rank)):
        print(f"| {s.method} | {s.recall_at_1:.2f} ({s.recall_at_1_interval[0]:.2f}-{s.recall_at_1_interval[1]:.2f}) "
              f"| {s.recall_at_k:.2f} ({s.recall_at_k_interval[0]:.2f}-{s.recall_at_k_interval[1]:.2f}) "
              f"| {s.mean_rank:.2f} ({s.mean_rank_interval[0]:.2f}-{s.mean_rank_interval[1]:.2f}) "
              f"| {control[s.method].recall_at_1:.2f} "
              f"| {result.erasure.get(s.method, float('nan')):.3f} ({erasure_order.index(s.method) + 1}) |")
    r = result.random
    print(f"| random (exact) | {r.recall_at_1:.2f} | {r.recall_at_k:.2f} | {r.mean_rank:.2f} | | |")
    print(json.dumps({"erasure_first": erasure_order[:3],
                      "known_answer_first": [s.method for s in sorted(result.methods, key=lambda s: -s.recall_at_1)][:3]}))


if __name__ == "__main__":
    main()
