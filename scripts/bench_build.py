"""The default model's build with and without length-grouped batches, side by side in one run.

    python scripts/bench_build.py [--train-rows 8000]

Builds into temporary directories (the configured model is not touched) and prints, for each, the build's
seconds (training alone and the whole build) and the held-out accuracy and macro-F1, then the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=8000)
    args = parser.parse_args()

    import torch

    from core.engine.default_model import BuildConfig, build_default_model

    torch.set_num_threads(torch.get_num_threads())
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for grouped in (False, True):
            config = BuildConfig(train_rows=args.train_rows, group_by_length=grouped)
            report = build_default_model(Path(scratch) / f"grouped-{grouped}", config)
            results[grouped] = report
            print(f"group_by_length={grouped}: training {report.train_seconds:.1f} s, whole build "
                  f"{report.total_seconds:.1f} s, accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}",
                  flush=True)
    print(f"ratio (grouped / random order): training {results[True].train_seconds / results[False].train_seconds:.2f}, "
          f"whole build {results[True].total_seconds / results[False].total_seconds:.2f}")


if __name__ == "__main__":
    main()
