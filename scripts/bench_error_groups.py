"""Error groups of the default model on its held-out split: the evaluation job, then the grouping with the
fast methods' lifted words and the training neighbours (prints the groups; figures go to BENCHMARKS.md).

    python scripts/bench_error_groups.py [--limit 2000] [--methods saliency,input_x_gradient,occlusion]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyses import corpus  # noqa: E402
from core.analyses.error_groups import DEFAULT_METHODS, error_groups  # noqa: E402
from core.analyses.evaluation import create_evaluation, heldout_inputs  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--reference", type=int, default=300)
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    args = parser.parse_args()
    loaded = load_model(args.model)
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(f"sqlite:///{home}/bench.db")
        started = time.perf_counter()
        job_id = create_evaluation(engine, "bench", heldout_inputs(args.limit), loaded.labels)
        job = corpus.run_job(engine, ModelRunner(loaded), job_id)
        evaluation_seconds = time.perf_counter() - started
        assert job.status == "done", job.error
        runner = ModelRunner(loaded)
        started = time.perf_counter()
        result = error_groups(engine, runner, job_id, methods=args.methods.split(","), reference=args.reference)
        group_seconds = time.perf_counter() - started
        engine.dispose()
    print(f"{os.cpu_count()} cores; {args.limit} held-out rows: evaluation {evaluation_seconds:.1f} s; grouping "
          f"{group_seconds:.1f} s ({runner.forward_passes} passes) with {args.methods}, {args.reference} correct inputs")
    print(f"{result.errors} errors: {len(result.groups)} groups, {len(result.scattered)} in no group; {result.clustering}")
    for group in result.groups:
        words = ", ".join(f"{w.word} x{w.lift:.1f} ({w.members})" for w in group.words[:6])
        labels = ", ".join(f"{k} {v:.0%}" for k, v in group.neighbour_labels.items())
        print(f"group {group.id}: {group.size} errors, {group.confusion} ({group.confusion_share:.0%}); words: {words}; "
              f"neighbours' labels: {labels}")
        for member in group.members[:2]:
            print(f"    {member.gold} -> {member.predicted}: {member.text[:100]}")


if __name__ == "__main__":
    main()
