"""Time inseq 0.7.1's attribution of a continuation, per method; run by `bench_lm.py` in inseq's own environment.

inseq pins its own transformers, so it runs apart from Rashomon and imports nothing from it. It reads a JSON file
{"model": path, "prompts": [...], "continuation": str, "methods": [...]} and prints one JSON line per prompt and
method: seconds, and rows through the model (a forward hook counts each batch's rows, backward passes not counted).
The attributed function is inseq's default, each generated token's probability given its prefix (its "crossentropy",
-log p, fails on several methods in 0.7.1 with a batch-size error): the same passes as Rashomon's log-probability.

    INSEQ_VENV/bin/python scripts/inseq_timing.py INPUTS.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    import inseq
    import torch

    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    model = inseq.load_model(spec["model"], "saliency")
    rows = [0]

    def count(module, inputs, output):
        rows[0] += int(output.logits.shape[0])

    model.model.register_forward_hook(count)
    for prompt in spec["prompts"]:
        for method in spec["methods"]:
            rows[0] = 0
            started = time.perf_counter()
            try:
                model.attribute(prompt, prompt + spec["continuation"], method=method, attributed_fn="probability",
                                show_progress=False)
                error = ""
            except Exception as exc:  # a method inseq cannot run on this model: reported, not fatal
                error = f"{type(exc).__name__}: {str(exc)[:160]}"
            print(json.dumps({"method": method, "seconds": time.perf_counter() - started, "rows": rows[0],
                              "error": error}), flush=True)


if __name__ == "__main__":
    main()
