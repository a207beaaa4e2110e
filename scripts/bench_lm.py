"""Causal LMs: model passes and seconds per method, on the tiny GPT-2 and on a randomly initialised model of GPT-2
small's size, at 64 and 256 prompt tokens, scoring a continuation against a contrast with and without the KV cache;
greedy generation with and without the cache; and inseq 0.7.1 on the same prompts and continuation (in a virtual
environment of its own, made on first use: it pins its own transformers).

    python scripts/bench_lm.py [--tiny DIR] [--sizes 64,256] [--no-inseq] [--json OUT]

Every method runs on a fresh runner (no cache shared between methods), so its passes are its own. On the tiny LM
every method runs with its default options. A GPT-2-small-sized model makes about three 64-token passes a second on
2 CPU cores, so there (`--budget N`, default 100) LIME, SHAP and KernelSHAP run N samples, not adaptively, and at
256 tokens the perturbation methods are left out (`--heavy-at 64`): their seconds follow from their passes and the
measured plain-pass time (`pass_ms`). Seconds vary with the machine's load: compare the columns of one run, as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSEQ_PACKAGES = ["torch==2.13.0", "inseq==0.7.1", "scikit-learn"]
INSEQ_METHODS = ["saliency", "input_x_gradient", "integrated_gradients", "deeplift", "gradient_shap", "occlusion",
                 "lime", "attention"]
CONTINUATION, CONTRAST = " negative", " positive"


def inseq_python(venv: Path) -> Path:
    """inseq 0.7.1 in a virtual environment of its own (it pins its own transformers), made once."""
    from scripts.side_venv import side_python

    return side_python(venv, INSEQ_PACKAGES)


def gpt2_small_random(tokenizer_dir: Path, output: Path) -> Path:
    """GPT-2 small's shape (12 layers, width 768, 12 heads, 50,257-token output layer), random weights, built from a
    config (no download), over the tiny LM's tokenizer (its ids fit the vocabulary)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    if not (output / "config.json").exists():
        model = GPT2LMHeadModel(GPT2Config())  # the defaults are GPT-2 small's
        model.save_pretrained(output)
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.model_max_length = 1024  # GPT-2 small's window, not the tiny LM's
        tokenizer.save_pretrained(output)
    return output


def prompt_of(tokenizer, tokens: int) -> str:
    """Tweets joined until the prompt has exactly `tokens` tokens (cut at a token boundary)."""
    from core.engine.default_model import load_corpus

    text = " ".join(" ".join(str(t).split()) for t in load_corpus()["text"][:400])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids)


PERTURBATION_BUDGET = {"lime": ("num_samples", "adaptive"), "kernel_shap": ("num_samples", "adaptive"),
                       "shap": ("max_evals", "adaptive")}


def method_plan(names: list[str], budget: int | None, heavy: bool) -> dict[str, dict | None]:
    """Each method's options for this run (None: left out)."""
    from core.methods.registry import get_method

    plan: dict[str, dict | None] = {}
    for name in names:
        if not heavy and get_method(name).family == "perturbation":
            plan[name] = None
        elif budget is not None and name in PERTURBATION_BUDGET:
            samples, adaptive = PERTURBATION_BUDGET[name]
            plan[name] = {samples: budget, adaptive: False}
        else:
            plan[name] = {}
    return plan


def pass_ms(model_dir: Path, prompt: str, cache: bool, rows: int = 8) -> float:
    """Milliseconds per plain pass (one masked prompt scored against the continuation and the contrast), batched."""
    from core.engine.adapters import make_spec
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner

    runner = ModelRunner(load_model(make_spec("lm_continuation", {
        "model": str(model_dir), "continuation": CONTINUATION, "contrast": CONTRAST,
        "use_cache": None if cache else False}), record=False))
    ids = runner.prepare(prompt).input_ids
    batch = [ids[:i] + [runner.mask_id] + ids[i + 1:] for i in range(1, rows + 1)]
    started = time.perf_counter()
    runner.probabilities(batch)
    return 1000 * (time.perf_counter() - started) / rows


def rashomon_rows(model_dir: Path, prompt: str, plan: dict[str, dict | None]) -> tuple[list[dict], list[dict]]:
    """Each compatible method with and without the KV cache, interleaved method by method (the machine's speed
    drifts: the two columns of a row are measured minutes apart at most)."""
    from core.engine.adapters import make_spec
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods.explain import explain
    from core.methods.registry import METHODS, split_compatible

    loaded = {}
    for cache in (True, False):
        spec = make_spec("lm_continuation", {"model": str(model_dir), "continuation": CONTINUATION,
                                             "contrast": CONTRAST, "use_cache": None if cache else False})
        loaded[cache] = load_model(spec, record=False)
    explain(ModelRunner(loaded[True]), "warm up", "shap", params={"max_evals": 20, "adaptive": False})  # first call
    rows: dict[bool, list[dict]] = {True: [], False: []}
    for name in split_compatible(list(METHODS), loaded[True])[0]:
        if plan.get(name, {}) is None:
            continue
        for cache in (True, False):
            runner = ModelRunner(loaded[cache])
            runner.probabilities([runner.prepare(prompt).input_ids])  # the prediction, as every view has it first
            before_tokens = loaded[cache].model.passes_tokens
            started = time.perf_counter()
            explanation = explain(runner, prompt, name, params=plan.get(name) or None)
            rows[cache].append({"method": name, "options": plan.get(name) or {}, "seconds": time.perf_counter() - started,
                                "passes": explanation.forward_passes,
                                "evaluations": explanation.diagnostics["evaluations"],
                                "tokens_through_model": loaded[cache].model.passes_tokens - before_tokens})
    return rows[True], rows[False]


def generation_seconds(model_dir: Path, prompt: str, steps: int = 20) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    out = {}
    for cache in (True, False, True):  # cached twice: before and after, for the machine's drift
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, min_new_tokens=steps,
                           do_sample=False, use_cache=cache, pad_token_id=tokenizer.eos_token_id)
        out.setdefault("cache" if cache else "no_cache", []).append(time.perf_counter() - started)
    return {"cache": min(out["cache"]), "no_cache": out["no_cache"][0], "steps": steps}


def inseq_rows(python: Path, model_dir: Path, prompt: str, methods: list[str]) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"model": str(model_dir), "prompts": [prompt], "continuation": CONTINUATION,
                   "methods": methods}, spec)
    out = subprocess.run([str(python), str(ROOT / "scripts" / "inseq_timing.py"), spec.name], capture_output=True,
                         text=True, cwd=ROOT, timeout=7200, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"inseq failed: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", help="the tiny LM's directory (default: build one, 400 steps)")
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--models", default="tiny,gpt2-small")
    parser.add_argument("--no-inseq", action="store_true")
    parser.add_argument("--budget", type=int, default=100, help="GPT-2 small: LIME/SHAP/KernelSHAP samples")
    parser.add_argument("--heavy-at", type=int, default=64, help="GPT-2 small: perturbation methods up to this size")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-lm-"))
    tiny = Path(args.tiny) if args.tiny else None
    results: dict = {"build": None, "runs": []}
    if tiny is None:
        from core.engine.tiny_lm import build_tiny_lm

        tiny = work / "tiny-lm"
        results["build"] = build_tiny_lm(tiny, steps=400)
        print(json.dumps({"build": results["build"]}), flush=True)
    models = {"tiny": tiny, "gpt2-small": gpt2_small_random(tiny, work / "gpt2-small-random")}
    python = None if args.no_inseq else inseq_python(Path(tempfile.gettempdir()) / "inseq-venv")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    for model_name in args.models.split(","):
        window = 128 if model_name == "tiny" else 1024  # the tiny LM reads 128 positions: 64 tokens only
        for size in (int(s) for s in args.sizes.split(",") if int(s) + 8 <= window):
            prompt = prompt_of(tokenizer, size)
            from core.methods.registry import METHODS

            small = model_name == "tiny"
            heavy = small or size <= args.heavy_at
            plan = method_plan(list(METHODS), None if small else args.budget, heavy)
            cached, whole = rashomon_rows(models[model_name], prompt, plan)
            theirs = [m for m in INSEQ_METHODS if heavy or m not in ("occlusion", "lime")]
            run = {"model": model_name, "prompt_tokens": size,
                   "pass_ms": {"cache": pass_ms(models[model_name], prompt, True),
                               "no_cache": pass_ms(models[model_name], prompt, False)},
                   "generation": generation_seconds(models[model_name], prompt),
                   "cache": cached, "no_cache": whole,
                   "inseq": [] if python is None else inseq_rows(python, models[model_name], prompt, theirs)}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
