"""Benchmark the attention views, head importance, the new methods and whole documents on the default model.

- Layer x head grid and head view for a stored 128-token input: the model pass (none when stored in
  the runner's cache), the Altair specs, and the time until both charts are drawn in chromium.
- Head importance: model passes (bound: heads + 1) and seconds.
- LIME + KernelSHAP: passes alone and together (shared queries).
- DeepLIFT and GradientSHAP completeness gaps on held-out inputs (how far from their axioms on a transformer).
- A whole document: windows, passes and seconds for the fast methods.

    python scripts/bench_attention.py [--model PATH] [--out BENCHMARKS.md] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import charts  # noqa: E402
from core.analyses.attention_checks import head_importance  # noqa: E402
from core.analyses.attention_views import attention_view  # noqa: E402
from core.analyses.documents import explain_document  # noqa: E402
from core.engine.default_model import BuildConfig, load_corpus, split_corpus  # noqa: E402
from core.engine.modelling import load_model  # noqa: E402
from core.engine.runner import ModelRunner  # noqa: E402
from core.methods.explain import explain  # noqa: E402
from core.methods.registry import fast_methods  # noqa: E402
from core.storage.db import make_engine  # noqa: E402
from core.storage.settings import load_settings  # noqa: E402


def text_of_tokens(runner: ModelRunner, n_tokens: int, start: int = 0) -> str:
    words: list[str] = []
    for tweet in load_corpus()["text"].tolist()[start:]:
        words.extend(tweet.split())
        if len(runner.prepare(" ".join(words)).input_ids) >= n_tokens:
            break
    while len(runner.prepare(" ".join(words)).input_ids) > n_tokens:
        words.pop()
    return " ".join(words)


def browser_render_seconds(model: str, text: str) -> tuple[float, float] | None:
    """Median seconds (of 3) from switching the attention section on to both charts drawn in a real
    chromium, and from switching it off to it gone (the round trip of a click with nothing to draw)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        return None
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    home = tempfile.mkdtemp()
    port = free_port()
    env = {**os.environ, "RASHOMON_HOME": home, "RASHOMON_MODEL": model}
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
                               "--server.headless", "true", "--server.fileWatcherType", "none"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            expect.set_options(timeout=120_000)
            query = urlencode({"text": text, "methods": "attention", "k": "5"})
            for _ in range(60):
                try:
                    page.goto(f"http://127.0.0.1:{port}/Compare?{query}")
                    break
                except Exception:  # the server is still starting
                    time.sleep(1)
            page.get_by_role("button", name="Run", exact=True).click()
            expect(page.get_by_role("heading", name="Attention seen whole")).to_be_visible()
            before = 4  # cost, agreement, two faithfulness curves: wait until they are drawn
            expect(page.locator(".vega-embed canvas, .vega-embed svg")).to_have_count(before)
            # Wait until the page's run has finished (a section's rerun queues behind it).
            expect(page.get_by_role("button", name="Agreement metrics (CSV)")).to_be_visible()
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
            time.sleep(1)
            shown, hidden = [], []
            for _ in range(3):
                started = time.perf_counter()
                page.get_by_text("Show every layer and head").click()
                expect(page.locator(".vega-embed canvas, .vega-embed svg")).to_have_count(before + 2)
                shown.append(time.perf_counter() - started)
                started = time.perf_counter()  # the same click with nothing to draw: the round trip alone
                page.get_by_text("Show every layer and head").click()
                expect(page.get_by_text("Hide lines below this weight")).to_have_count(0)
                hidden.append(time.perf_counter() - started)
            browser.close()
            return statistics.median(shown), statistics.median(hidden)
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(load_settings().default_model_dir))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    loaded = load_model(args.model)
    runner = ModelRunner(loaded)
    lines = ["\n## Attention views, head importance, new methods, whole documents (`python scripts/bench_attention.py`)\n",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
             f"{__import__('torch').get_num_threads()}; model {loaded.name}.\n"]

    text = text_of_tokens(runner, 128)
    tokens = len(runner.prepare(text).input_ids)
    fresh = ModelRunner(loaded)
    started = time.perf_counter()
    view = attention_view(fresh, text)
    pass_seconds = time.perf_counter() - started
    specs = []
    for _ in range(5):
        started = time.perf_counter()
        charts.spec(charts.attention_grid(view))
        charts.spec(charts.head_view(view, view.layers - 1, 0))
        specs.append(time.perf_counter() - started)
    lines.append(f"- Layer x head grid + head view, {tokens}-token input: model pass {pass_seconds:.3f} s "
                 f"(0 when the input's attention is cached), both Altair specs {statistics.median(specs):.3f} s "
                 f"(median of 5).")
    if not args.no_browser:
        measured = browser_render_seconds(args.model, text)
        if measured is not None:
            lines.append(f"- In chromium (server, browser and Playwright on the same 2 cores), median of 3: from switching "
                         f"the section on to both charts drawn {measured[0]:.2f} s; switching it off (the same round "
                         f"trip, nothing to draw) {measured[1]:.2f} s, so drawing takes about "
                         f"{measured[0] - measured[1]:.2f} s.")

    heads_runner = ModelRunner(loaded)
    result = head_importance(heads_runner, text)
    n_heads = loaded.model.config.num_hidden_layers * loaded.model.config.num_attention_heads
    lines.append(f"- Head importance, {n_heads} heads, {tokens}-token input: {result.forward_passes} model passes "
                 f"(bound {n_heads + 1}), {result.seconds:.2f} s.")

    review = text_of_tokens(runner, 60, start=200)
    alone = explain(ModelRunner(loaded), review, "kernel_shap")
    shared_runner = ModelRunner(loaded)
    lime = explain(shared_runner, review, "lime")
    shared = explain(shared_runner, review, "kernel_shap")
    lines.append(f"- KernelSHAP on a {len(lime.words)}-word input: {alone.forward_passes} passes alone "
                 f"({alone.seconds:.2f} s); after LIME (500 samples, {lime.forward_passes} passes, {lime.seconds:.2f} s) "
                 f"{shared.forward_passes} passes ({shared.seconds:.2f} s): the same queries, a second regression.")

    gaps = {"deeplift": [], "gradient_shap": [], "integrated_gradients": []}
    _, heldout = split_corpus(load_corpus(), BuildConfig())
    texts = [t for t in heldout["text"].tolist() if len(t.split()) >= 12][:20]
    for t in texts:
        for method in gaps:
            e = explain(runner, t, method)
            key = "mean_convergence_delta" if method == "gradient_shap" else "convergence_delta"
            f_gap = sum(e.token_scores) - e.diagnostics[key]
            gaps[method].append(abs(e.diagnostics[key]) / max(abs(f_gap), 1e-12))
    lines.append("- Completeness gap |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)| on "
                 f"{len(texts)} held-out tweets, median / max: "
                 + "; ".join(f"{m} {statistics.median(v):.1%} / {max(v):.1%}" for m, v in gaps.items())
                 + ". DeepLIFT's rescale rule covers Captum's listed nonlinearities only; attention products, "
                   "GELU and layer norm pass plain gradients, so its summation-to-delta does not hold on a transformer. "
                   "GradientSHAP's holds in expectation (20 samples by default).")

    document = "\n\n".join(text_of_tokens(runner, 120, start=s) for s in (400, 450, 500, 550, 600))
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    for window in (128, 256):
        doc = explain_document(engine, ModelRunner(loaded), document, fast_methods(), window_tokens=window)
        lines.append(f"- Whole document, {len(doc.words)} words, {len(fast_methods())} fast methods, windows of "
                     f"{window} tokens: {len(doc.windows)} windows, {doc.forward_passes} passes, {doc.seconds:.1f} s.")
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(report)


if __name__ == "__main__":
    main()
