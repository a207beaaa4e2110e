"""How long a corpus run will take: forward passes from each method's declared cost model, times a measured pass."""

from __future__ import annotations

import time
from collections.abc import Sequence

from core.analyses.corpus.jobs import DEFAULT_FAITHFULNESS_INPUTS, faithfulness_positions
from core.analyses.faithfulness import ERASER_FRACTIONS
from core.engine.runner import ModelRunner
from core.methods.registry import corpus_options, methods_passes


def estimate_passes(runner: ModelRunner, methods: Sequence[str], texts: Sequence[str],
                    options: dict | None = None, faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS) -> float:
    """Forward passes a corpus run of `methods` over `texts` should need (gradient passes count double).

    Per input: one pass for the prediction, plus each method's own cost model (`Method.cost`, from
    the registry, at the options the run uses), and, on the inputs sampled for faithfulness, two
    masked passes per ERASER fraction for each method and the random ranking.
    """
    options = {**corpus_options(list(methods)), **(options or {})}
    word_counts = [len(runner.prepare(t).words) for t in texts]
    method_passes = sum(methods_passes(list(methods), options, n) for n in word_counts)
    faithfulness_sets = 2 * len(ERASER_FRACTIONS)
    measured = len(faithfulness_positions(len(texts), faithfulness_inputs))
    return len(texts) + method_passes + (len(methods) + 1) * faithfulness_sets * measured


def seconds_per_pass(runner: ModelRunner, texts: Sequence[str]) -> float:
    """One forward pass's time on inputs like these, measured on a batch of masked copies (the shape
    most passes of a run have); one warm-up batch first, since first calls pay one-off costs."""
    sample = [runner.prepare(t) for t in texts[:8]]
    if not sample:
        return 0.0
    sample = (sample * (8 // len(sample) + 1))[:8]  # a batch of eight, as a run would send
    fresh = ModelRunner(runner.loaded, batch_size=runner.batch_size, cache_size=64)
    fresh.probabilities([p.input_ids for p in sample])
    masked = [[fresh.mask_id if i % 7 == 3 + n % 3 else t for i, t in enumerate(p.input_ids)]
              for n, p in enumerate(sample)]
    started = time.perf_counter()
    fresh.probabilities(masked)
    return (time.perf_counter() - started) / len(masked)


def estimate_seconds(runner: ModelRunner, methods: Sequence[str], texts: Sequence[str],
                     options: dict | None = None, faithfulness_inputs: int = DEFAULT_FAITHFULNESS_INPUTS) -> float:
    """A rough time estimate: `estimate_passes` times a forward-pass time measured on these inputs."""
    return seconds_per_pass(runner, texts) * estimate_passes(runner, methods, texts, options, faithfulness_inputs)
