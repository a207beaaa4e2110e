"""Cheaper passes, measured side by side in one run: every backend's fidelity gate on the default model, pass time
per backend on a randomly initialised BERT-base-sized model at 128 and 512 tokens (with occlusion and LIME on 3
inputs), and the cold start of a CLI process and of a worker.

    python scripts/bench_backends.py [--model PATH] [--inputs 2000] [--method-inputs 3] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.analyses.backend_gate import long_enough, measure  # noqa: E402
from core.analyses.evaluation import heldout_inputs  # noqa: E402
from core.engine.backends import BACKENDS, FLOAT32  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.explain import explain  # noqa: E402


def gates(model: str, inputs: int, method_inputs: int) -> list[str]:
    loaded = load_model(model)
    texts = [i.text for i in heldout_inputs(inputs)]
    longer = long_enough([i.text for i in heldout_inputs(None)], method_inputs)
    lines = [f"Default model `{loaded.name}`, {len(texts)} held-out tweets for labels, probabilities and pass time "
             f"(float32 and the backend alternate in chunks of 64), {len(longer)} of at least 15 words for the perturbation methods.",
             "", "| backend | labels kept (>= 99.5%) | max probability change (<= 0.02) | per pass float32 / backend |"
             " speed-up | methods (top-5 vs float32; bar) | gate |", "|---|---|---|---|---|---|---|"]
    for name in BACKENDS:
        if name == FLOAT32:
            continue
        result = measure(loaded, name, texts, method_texts=longer, every_criterion=True)
        methods = "; ".join(
            f"{m.method} {m.top_k_agreement:.0%} ({'seeds ' + format(m.reference, '.0%') if m.sampling else 'Spearman ' + format(m.spearman, '.3f')})"
            for m in result.methods)
        per_pass = result.seconds_per_pass
        lines.append(f"| {name} | {result.labels_kept:.1%} | {result.max_probability_difference:.3f} | "
                     f"{per_pass[FLOAT32] * 1000:.2f} / {per_pass[name] * 1000:.2f} ms | {result.speedup:.2f}x | "
                     f"{methods} | {'passes' if result.passed else 'refused'} |")
        print(lines[-1], flush=True)
    return lines


def bert_base(directory: Path, tokenizer_from: str) -> Path:
    """A BERT-base-sized classifier with random weights (no download) and the default model's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, num_labels=3,
                        id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2})
    BertForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(directory)
    return directory


def words_text(tokens: int) -> str:
    base = [i.text for i in heldout_inputs(400)]
    text = ""
    for tweet in base:
        if len(text.split()) * 1.3 >= tokens:
            break
        text += " " + tweet
    return text.strip()


def bigger_model(repeats: int, tokenizer_from: str) -> list[str]:
    lines = ["", "BERT-base size (12 layers, width 768, random weights), plain passes per backend, batches of 8 at 128 "
             "tokens and 2 at 512; occlusion and LIME (100 samples, fixed) on 3 inputs of about 60 words:", "",
             "| backend | ms per pass, 128 tokens | ms per pass, 512 tokens | occlusion, 3 inputs | LIME, 3 inputs |",
             "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RASHOMON_HOME"] = tmp  # the ONNX exports of the random model go there
        loaded = load_model(str(bert_base(Path(tmp) / "bert-base", tokenizer_from)))
        long_text = words_text(80)
        texts = [long_text[i * 60:] for i in range(3)]
        for name in BACKENDS:
            runner = ModelRunner(loaded, backend=name)
            timings = {}
            for length, batch in ((128, 8), (512, 2)):
                ids = torch.randint(1000, 20000, (batch, length))
                mask = torch.ones_like(ids)
                with torch.inference_mode():
                    runner.plain_forward(ids, mask)  # build and first call
                    samples = []
                    for _ in range(repeats):
                        started = time.perf_counter()
                        runner.plain_forward(ids, mask)
                        samples.append((time.perf_counter() - started) / batch)
                timings[length] = statistics.median(samples) * 1000
            started = time.perf_counter()
            for text in texts:
                explain(runner, text, "occlusion")
            occlusion = time.perf_counter() - started
            started = time.perf_counter()
            for text in texts:
                explain(runner, text, "lime", params={"num_samples": 100, "adaptive": False})
            lime = time.perf_counter() - started
            lines.append(f"| {name} | {timings[128]:.0f} | {timings[512]:.0f} | {occlusion:.1f} s | {lime:.1f} s |")
            print(lines[-1], flush=True)
    return lines


def cold_start(model: str) -> list[str]:
    """A CLI process that runs no SHAP never imports it; a fresh process's first SHAP call against a warmed one."""
    env = {**os.environ, "RASHOMON_MODEL": model}
    probe = ("import sys, time, json; from core.cli import main; t = time.perf_counter(); "
             "main(['compare', '--text', 'The room was clean and the staff were kind.', '--methods', 'occlusion', "
             "'--json']); print(json.dumps({'seconds': time.perf_counter() - t, 'shap': 'shap' in sys.modules}), "
             "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    occlusion_line = result.stderr.strip().splitlines()[-1]
    first_shap = ("import time, json; from core.engine.modelling import load_model; from core.engine.runner import "
                  "ModelRunner; from core.methods.explain import explain; from core.engine.warmup import warm_up; "
                  "import sys; loaded = load_model(sys.argv[1]); warm = sys.argv[2] == 'warm'; "
                  "warm and warm_up(loaded); r = ModelRunner(loaded); t = time.perf_counter(); "
                  "explain(r, 'The room was clean and the staff were kind, the food cold.', 'shap'); "
                  "print(json.dumps({'first_shap_seconds': time.perf_counter() - t}))")
    seconds = {}
    for state in ("cold", "warm"):
        out = subprocess.run([sys.executable, "-c", first_shap, model, state], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
        seconds[state] = out.stdout.strip().splitlines()[-1]
    return ["", f"Cold start: `rashomon compare --methods occlusion` in a fresh process: {occlusion_line} (shap not "
                f"imported unless false above). First SHAP explanation in a fresh process: {seconds['cold']}; in a "
                f"process warmed as a worker is before its first task: {seconds['warm']}."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(Path(os.environ.get("RASHOMON_HOME", "~/.rashomon")).expanduser()
                                               / "models" / "default-sentiment"))
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--method-inputs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-bigger", action="store_true")
    parser.add_argument("--skip-gates", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = [f"2 CPU cores, {time.strftime('%Y-%m-%d')}, torch threads {torch.get_num_threads()}.", ""]
    if not args.skip_gates:
        lines += gates(args.model, args.inputs, args.method_inputs)
    if not args.skip_cold:
        lines += cold_start(args.model)
    if not args.skip_bigger:
        lines += bigger_model(args.repeats, args.model)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
