"""Time ferret's explain + evaluate on given inputs; run by `bench_speed.py` in ferret's own virtual environment.

ferret 0.4.2 pins older transformers and numpy, so it cannot share Rashomon's environment; this script
imports nothing from Rashomon. It reads a JSON file {"model": path, "texts": [...]} and prints one JSON
line per input: seconds for `Benchmark.explain` and for `Benchmark.evaluate_explanations`, and the target.

    FERRET_VENV/bin/python scripts/ferret_timing.py INPUTS.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    import torch
    from ferret import Benchmark
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["model"]).eval()
    bench = Benchmark(model, tokenizer)
    for text in spec["texts"]:
        with torch.no_grad():
            logits = model(**tokenizer(text, return_tensors="pt", truncation=True)).logits
        target = int(logits.argmax(-1))  # the predicted label, as Rashomon explains by default
        started = time.perf_counter()
        explanations = bench.explain(text, target=target, show_progress=False)
        explained = time.perf_counter() - started
        started = time.perf_counter()
        bench.evaluate_explanations(explanations, target=target, show_progress=False)
        evaluated = time.perf_counter() - started
        print(json.dumps({"explain": explained, "evaluate": evaluated, "target": target,
                          "explainers": len(explanations)}), flush=True)


if __name__ == "__main__":
    main()
