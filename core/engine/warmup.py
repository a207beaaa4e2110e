"""Pay the first-use costs of the explanation libraries once, in the background, when a model loads.

Measured on the default model (2-core CPU, scripts/bench_speed.py): the first SHAP explanation in a
process costs about 4 s more than later ones: importing shap (about 2 s) and numba compiling shap's
Partition tree routines on first call (shap's `@njit` functions are not cached to disk, so every new
process compiles them again). A worker process (`rashomon worker`) warms up before it takes its first
task, and a server that runs explanations itself (RASHOMON_TASK_WORKERS=0) in a daemon thread right after
loading a model, so a person's first comparison does not pay it; a CLI process still does.
"""

from __future__ import annotations

import contextlib
import threading

from core.engine.modelling import LoadedModel

WARM_UP_TEXT = "A short warm-up sentence, not shown to anyone."


def warm_up(loaded: LoadedModel) -> None:
    """Run a tiny SHAP and LIME explanation on a throwaway runner (its passes are counted nowhere)."""
    from core.engine.runner import ModelRunner
    from core.methods.explain import explain
    from core.methods.perturbation import needs_mask_token

    if needs_mask_token(loaded) is not None:
        return
    runner = ModelRunner(loaded)
    explain(runner, WARM_UP_TEXT, "shap", params={"max_evals": 40, "adaptive": False})
    explain(runner, WARM_UP_TEXT, "lime", params={"num_samples": 20, "adaptive": False})


def warm_up_in_background(loaded: LoadedModel) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(Exception):  # a failed warm-up only means the first real call pays the cost
            warm_up(loaded)

    thread = threading.Thread(target=run, name="rashomon-warm-up", daemon=True)
    thread.start()
    return thread
