"""Evaluation of the default model on its held-out split (2,000 rows), prediction only, as a stored job.

    python scripts/bench_evaluate.py [--limit 2000] [--out BENCHMARKS.md]
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
from core.analyses.evaluation import create_evaluation, evaluation, heldout_inputs  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    loaded = load_model(args.model)
    inputs = heldout_inputs(args.limit)
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(f"sqlite:///{home}/bench.db")
        started = time.perf_counter()
        job_id = create_evaluation(engine, "bench", inputs, loaded.labels)
        runner = ModelRunner(loaded)
        job = corpus.run_job(engine, runner, job_id)
        run_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = evaluation(engine, job_id, loaded.labels)
        metric_seconds = time.perf_counter() - started
        engine.dispose()
    assert job.status == "done", job.error
    report = (f"\n## Evaluation on the held-out split (`python scripts/bench_evaluate.py --limit {args.limit}`)\n\n"
              f"{os.cpu_count()} cores; model {loaded.name}; {result.inputs} labelled tweets as a stored job (one row "
              f"stored per input): {run_seconds:.1f} s ({runner.forward_passes} model passes), metrics "
              f"{metric_seconds:.2f} s. Accuracy {result.accuracy:.3f}, macro-F1 {result.macro_f1:.3f}, expected "
              f"calibration error {result.ece:.3f}; {len(result.errors)} errors.\n")
    print(report)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(report)


if __name__ == "__main__":
    main()
