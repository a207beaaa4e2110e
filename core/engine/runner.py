"""One way to run the model for every method: batching, caching, counting, progress.

- Dynamic padding: inputs are sorted by length and padded per batch, so short perturbations
  are not padded to the longest one.
- `torch.inference_mode` wherever no gradient is needed.
- A forward-pass counter: the number of examples actually sent through the model (cache hits
  are free and not counted); every Explanation reports its share.
- For classifiers that read only the first token, probabilities and gradients come from a view of
  the model whose last layer works at that position only (`core.engine.first_token`, ~14% less work on
  the default model, same numbers); attention weights always come from the full model.
- An LRU cache of output probabilities keyed by token ids, so repeated perturbations (LIME and
  SHAP often draw the same masks) are computed once.
- Attention interventions (`intervened`) run here too, counted like every other pass, with what to
  replace passed per call, never through shared state.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.engine.backends import FLOAT32, Forward, get_backend
from core.engine.first_token import first_token_model
from core.engine.interventions import (
    HEAD_KWARG,
    KWARG,
    AttentionIntervention,
    HeadMask,
    intervention_attention,
)
from core.engine.modelling import PROBABILITIES, LoadedModel
from core.explanation import split_words

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class PreparedText:
    """A text cut to what the model can read, with its words and tokens aligned."""

    text: str
    words: list[tuple[str, int, int]]
    input_ids: list[int]
    token_offsets: list[tuple[int, int]]
    tokens: list[str]
    special_mask: list[bool]
    truncated_words: int
    # The position attention is read from: 0 ([CLS]) for a classifier, the last prompt position (the one that
    # predicts what comes next) for a causal LM (LoadedModel.readout).
    readout: int = 0


class ModelRunner:
    def __init__(self, loaded: LoadedModel, batch_size: int = 32, cache_size: int = 50_000,
                 max_batch_tokens: int = 2048, first_token_shortcut: bool = True, backend: str | None = None) -> None:
        if backend is not None and backend != loaded.backend:
            get_backend(backend)  # an unknown or unavailable backend is refused before any pass
            loaded = loaded.with_backend(backend)
        self.loaded = loaded
        self.backend = loaded.backend
        self._plain_forward: Forward | None = None
        self.model = loaded.model
        # The shortcut is checked against the full model on probe inputs (model passes): on first use, so
        # that a runner made only to prepare text or read the store (a page) costs no pass at all.
        self._wants_shortcut = first_token_shortcut
        self._classifier: torch.nn.Module | None = None
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.batch_size = batch_size
        # Long inputs get smaller batches: on CPU, 32 x 512 tokens runs at half the speed of 4 x 512
        # (attention memory), while 32 x 128 is the fastest shape for short inputs.
        self.max_batch_tokens = max_batch_tokens
        self.forward_passes = 0  # examples actually run through the model
        # Plain forward passes and the time they took: the engine's stored pass time (core/engine/pass_time.py).
        self.timed_passes = 0
        self.forward_seconds = 0.0
        self.evaluations = 0  # examples asked for, cache hits included
        self._cache: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._attention_cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        mask_id = self.tokenizer.mask_token_id
        self.mask_id = mask_id if mask_id is not None else self.tokenizer.unk_token_id
        self.mask_token = self.tokenizer.mask_token or self.tokenizer.unk_token

    @property
    def classifier(self) -> torch.nn.Module:
        """What computes logits: the first-token shortcut where it gives the full model's numbers."""
        if self._classifier is None:
            self._require_weights()
            shortened = first_token_model(self.loaded.model) if self._wants_shortcut else None
            self._classifier = shortened if shortened is not None else self.loaded.model
        return self._classifier

    @property
    def plain_forward(self) -> Forward:
        """Logits of a batch with no gradient, through this runner's backend (built on first use)."""
        if self._plain_forward is None:
            with self.loaded.lock:
                self._plain_forward = get_backend(self.backend).build(self.loaded, self.classifier)
        return self._plain_forward

    def outputs_of(self, logits: torch.Tensor) -> torch.Tensor:
        """What the methods explain, from the model's logits (last dimension): the softmax for a classifier, the
        values themselves for a model whose outputs are log-probabilities already (LoadedModel.outputs)."""
        return torch.softmax(logits, dim=-1) if self.loaded.outputs == PROBABILITIES else logits

    def _require_weights(self) -> None:
        if not self.loaded.has_weights:
            raise RuntimeError(f"{self.loaded.name} is only described in this process (no weights): model work "
                               "runs on the workers, as a task.")

    @property
    def shortcut_checked(self) -> bool:
        """Whether this runner has checked the first-token shortcut (it does on its first pass)."""
        return self._classifier is not None

    @property
    def first_token_shortcut(self) -> bool:
        return self.classifier is not self.loaded.model

    # -- text preparation -------------------------------------------------------------------
    def prepare(self, text: str) -> PreparedText:
        """Tokenize `text`; if it is longer than the model reads, keep the words that fit whole."""
        full = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        budget = self.loaded.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        all_words = split_words(text)
        truncated_words = 0
        if len(full["input_ids"]) > budget:
            cut = full["offset_mapping"][budget - 1][1]
            kept = [w for w in all_words if w[2] <= cut]
            # A word split by the cut is dropped whole: keep text up to the last complete word.
            cut = kept[-1][2] if kept else 0
            truncated_words = len(all_words) - len(kept)
            text = text[:cut]
        encoding = self.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True,
                                  truncation=True, max_length=self.loaded.max_length)
        ids = list(encoding["input_ids"])
        readout = 0 if self.loaded.readout == "first" else len(ids) - 1 - int(getattr(self.tokenizer, "tail_length", 0))
        return PreparedText(
            text=text,
            words=split_words(text),
            input_ids=ids,
            token_offsets=[tuple(o) for o in encoding["offset_mapping"]],
            tokens=self.tokenizer.convert_ids_to_tokens(ids),
            special_mask=[bool(s) for s in encoding["special_tokens_mask"]],
            truncated_words=truncated_words,
            readout=readout,
        )

    # -- no-gradient forward passes -----------------------------------------------------------
    def probabilities(self, id_lists: Sequence[Sequence[int]], progress: ProgressFn | None = None) -> np.ndarray:
        """Class probabilities for each token-id sequence, shape (n, labels)."""
        keys = [tuple(int(i) for i in ids) for ids in id_lists]
        self.evaluations += len(keys)
        missing = sorted({k for k in keys if k not in self._cache}, key=len)
        done, start = 0, 0
        while start < len(missing):
            size = self.batch_size_for(len(missing[min(len(missing) - 1, start + self.batch_size - 1)]))
            # Even batches: 41 inputs at a cap of 20 run as 14+14+13, not 20+20+1 (a batch of one is slow).
            left = len(missing) - start
            size = math.ceil(left / math.ceil(left / size))
            batch = missing[start : start + size]
            start += len(batch)
            for key, row in zip(batch, self._run(batch), strict=True):
                self._remember(key, row)
            done += len(batch)
            if progress:
                progress(done / len(missing), f"{done}/{len(missing)} model inputs")
        out = np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, len(self.loaded.labels)))
        for k in set(keys):
            self._cache.move_to_end(k)
        return out

    def uncached_probabilities(self, input_ids: Sequence[int]) -> np.ndarray:
        """One counted pass that neither reads nor fills the cache: to check what the cache answered."""
        self.evaluations += 1
        return self._run([tuple(int(i) for i in input_ids)])[0]

    def batch_size_for(self, length: int) -> int:
        """Examples per batch for inputs of `length` tokens (the batch size, capped by the token budget)."""
        return max(1, min(self.batch_size, self.max_batch_tokens // max(1, length)))

    def probabilities_for_texts(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.loaded.max_length)["input_ids"]
        return self.probabilities(ids, progress)

    def _run(self, batch: list[tuple[int, ...]]) -> np.ndarray:
        width = max(len(k) for k in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, key in enumerate(batch):
            ids[row, : len(key)] = torch.tensor(key)
            mask[row, : len(key)] = 1
        with self.loaded.lock, torch.inference_mode():
            started = time.perf_counter()
            logits = self.plain_forward(ids.to(self.device), mask.to(self.device))
            self.forward_seconds += time.perf_counter() - started
        self.forward_passes += len(batch)
        self.timed_passes += len(batch)
        return self.outputs_of(logits.float()).cpu().numpy()

    def head_inputs(self, texts: Sequence[str], progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(what feeds the final linear layer, probabilities) per text, shapes (n, d) and (n, labels):
        the representation that training-data attribution compares. Counted, never cached."""
        from core.engine.modelling import final_linear

        head = final_linear(self.model)
        captured: list[torch.Tensor] = []
        hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.loaded.max_length)["input_ids"]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        features = np.zeros((len(encoded), head.in_features), dtype=np.float32)
        probabilities = np.zeros((len(encoded), len(self.loaded.labels)), dtype=np.float32)
        try:
            start = 0
            while start < len(order):
                size = self.batch_size_for(len(encoded[order[min(len(order) - 1, start + self.batch_size - 1)]]))
                batch = order[start : start + size]
                width = max(len(encoded[i]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                captured.clear()
                with self.loaded.lock, torch.inference_mode():
                    # The first-token view shares the head module, so the hook sees its input either way.
                    logits = self.classifier(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                # A head that sees every position (token classification style) would give 3-D inputs.
                features[batch] = captured[-1].reshape(len(batch), -1).float().cpu().numpy()
                probabilities[batch] = self.outputs_of(logits.float()).cpu().numpy()
                self.forward_passes += len(batch)
                start += len(batch)
                if progress:
                    progress(start / len(order), f"{start}/{len(order)} texts")
        finally:
            hook.remove()
        return features, probabilities

    def _remember(self, key: tuple[int, ...], row: np.ndarray) -> None:
        self._cache[key] = row
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # -- gradient-friendly forward passes -----------------------------------------------------
    def embed(self, input_ids: Sequence[int]) -> torch.Tensor:
        """Word embeddings (1, seq, dim) of the ids; position embeddings are added by the model."""
        self._require_weights()
        ids = torch.tensor([list(input_ids)], device=self.device)
        with torch.no_grad():
            return self.model.get_input_embeddings()(ids).detach().requires_grad_()

    def forward_embeddings(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities (batch, labels) from input embeddings, differentiable; counts the rows."""
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=self.device)
        elif attention_mask.shape[0] != inputs_embeds.shape[0]:
            attention_mask = attention_mask.expand(inputs_embeds.shape[0], -1)
        with self.loaded.lock:
            logits = self.classifier(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
        self.forward_passes += int(inputs_embeds.shape[0])
        self.evaluations += int(inputs_embeds.shape[0])
        return self.outputs_of(logits)

    def attentions(self, input_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(attention weights (layers, heads, seq, seq), probabilities) for one input.

        The pass also fills the probability cache, so the prediction costs nothing extra (on the float32 backend
        only: another backend's cache holds that backend's answers, never a float32 one); the last few results are
        kept for the next attention method on the same input.
        """
        key = tuple(int(i) for i in input_ids)
        self.evaluations += 1
        if key in self._attention_cache:
            return self._attention_cache[key]
        ids = torch.tensor([list(key)], device=self.device)
        with self.loaded.lock, torch.inference_mode():
            out = self.model(input_ids=ids, output_attentions=True)
        self.forward_passes += 1
        if not out.attentions:
            raise RuntimeError("The model returned no attention weights (load it with attn_implementation='eager').")
        weights = torch.stack([a[0].float() for a in out.attentions]).cpu().numpy()
        probabilities = self.outputs_of(out.logits[0].float()).cpu().numpy()
        if self.backend == FLOAT32:
            self._remember(key, probabilities)
        self._attention_cache[key] = (weights, probabilities)
        while len(self._attention_cache) > 4:
            self._attention_cache.pop(next(iter(self._attention_cache)))
        return weights, probabilities

    def attention_gradients(self, input_ids: Sequence[int], target: int) -> tuple[np.ndarray, np.ndarray]:
        """(attention weights, gradient of the target probability with respect to them), both
        (layers, heads, seq, seq), from one forward and one backward pass of the full model (two passes)."""
        ids = torch.tensor([list(input_ids)], device=self.device)
        with self.loaded.lock, torch.enable_grad():
            out = self.model(input_ids=ids, output_attentions=True)
            if not out.attentions:
                raise RuntimeError("The model returned no attention weights (load it with attn_implementation='eager').")
            for weights in out.attentions:
                weights.retain_grad()
            self.outputs_of(out.logits[0].float())[target].backward()
            weights = torch.stack([a[0].detach().float() for a in out.attentions]).cpu().numpy()
            gradients = torch.stack([a.grad[0].float() for a in out.attentions]).cpu().numpy()
            self.model.zero_grad(set_to_none=True)
        self.forward_passes += 2
        self.evaluations += 2
        return weights, gradients

    def head_masked(self, input_ids: Sequence[int], multipliers: np.ndarray,
                    progress: ProgressFn | None = None) -> np.ndarray:
        """Probabilities (n, labels) of one input run n times, run i with head h of layer l scaled by
        `multipliers[i, l, h]` (0 silences a head: Michel et al. 2019's head mask), batched."""
        multipliers = torch.as_tensor(np.asarray(multipliers, dtype=np.float32))
        n_layers, n_heads = self.loaded.config.num_hidden_layers, self.loaded.config.num_attention_heads
        if multipliers.ndim != 3 or tuple(multipliers.shape[1:]) != (n_layers, n_heads):
            raise ValueError(f"Head multipliers must have shape (n, {n_layers}, {n_heads}); got {tuple(multipliers.shape)}.")
        size = self.batch_size_for(len(input_ids))
        rows = []
        for start in range(0, len(multipliers), size):
            batch = multipliers[start : start + size]
            ids = torch.tensor([list(input_ids)] * len(batch), device=self.device)
            with self.loaded.lock, torch.inference_mode(), intervention_attention(self.model):
                logits = self.model(input_ids=ids, **{HEAD_KWARG: HeadMask(batch.to(self.device))}).logits
            rows.append(self.outputs_of(logits.float()).cpu().numpy())
            self.forward_passes += len(batch)
            self.evaluations += len(batch)
            if progress:
                progress(min(1.0, (start + len(batch)) / len(multipliers)), f"{start + len(batch)}/{len(multipliers)} heads")
        return np.concatenate(rows) if rows else np.zeros((0, len(self.loaded.labels)))

    def intervened(self, input_ids: Sequence[int], intervention: AttentionIntervention,
                   output_attentions: bool = False) -> tuple[np.ndarray, tuple[torch.Tensor, ...] | None]:
        """(probabilities, attention weights if asked) with `intervention` applied, on the full model."""
        n_layers = self.loaded.config.num_hidden_layers
        if not -n_layers <= intervention.layer < n_layers:
            raise ValueError(f"Layer {intervention.layer} does not exist: the model has {n_layers} layers.")
        ids = torch.tensor([list(input_ids)], device=self.device)
        with self.loaded.lock, torch.inference_mode(), intervention_attention(self.model):
            out = self.model(input_ids=ids, output_attentions=output_attentions, **{KWARG: intervention})
        self.forward_passes += 1
        self.evaluations += 1
        probabilities = self.outputs_of(out.logits[0].float()).cpu().numpy()
        return probabilities, (out.attentions if output_attentions else None)
