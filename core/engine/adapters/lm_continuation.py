"""A causal LM's continuation of a prompt: why the model answers A, and why A rather than B.

The outputs explained are log-probabilities (values, not normalised): `continuation` = log p(A | prompt) summed
over A's tokens; with a contrast B, `contrast` = log p(A | prompt) - log p(B | prompt) (Yin & Neubig 2022,
"Interpreting language models with contrastive explanations") and `contrast continuation` = log p(B | prompt);
then one output per token of A, log p(a_t | prompt, a_<t), for the per-token view (which prompt words drove each
generated token). The default target is the contrast when there is one, else the continuation.

A is scored by teacher forcing: the tokenizer appends A's tokens to every (perturbed) prompt as special tokens, so
perturbations never touch them and gradient baselines keep them. Without a given continuation, A is the model's
greedy continuation of the prompt (at most `max_new_tokens`), generated before anything is explained (`bind`).

With a contrast, `use_cache` (default) runs the prompt once and both continuations from its key/value cache,
instead of running prompt+A and prompt+B whole: the same numbers (tests), fewer tokens through the model
(BENCHMARKS.md measures it). Attention weights always come from the whole prompt+A pass.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from core.engine.adapters import Adapter, make_spec
from core.engine.adapters.prompts import (
    TEXT_SLOT,
    PromptedLM,
    PromptTokenizer,
    Template,
    causal_lm,
    lm_pass,
    loaded_lm,
    rendered_template,
    skeleton,
)
from core.engine.modelling import VALUES, LoadedModel, ModelLoadError

NAME = "lm_continuation"
DEFAULT_MAX_NEW_TOKENS = 20
CONTINUATION, CONTRAST, CONTRAST_CONTINUATION = "continuation", "contrast", "contrast continuation"


def _gather(log_probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log_probs (rows, T, vocab) at tokens (T,) -> (rows, T)."""
    return log_probs.gather(-1, tokens.view(1, -1, 1).expand(log_probs.shape[0], -1, 1)).squeeze(-1)


class ContinuationScorer(PromptedLM):
    """Rows hold prompt + A (A's T tokens last). Outputs per row: [log p(A)] (+ [log p(A) - log p(B), log p(B)])
    + [log p(a_t)] for t < T."""

    def __init__(self, lm: torch.nn.Module, continuation: list[int], contrast: list[int], prompt_ids: list[int],
                 use_cache: bool) -> None:
        super().__init__(lm)
        self.register_buffer("continuation_ids", torch.tensor(continuation, dtype=torch.long))
        self.register_buffer("contrast_ids", torch.tensor(contrast, dtype=torch.long))
        self.register_buffer("prompt_ids", torch.tensor(prompt_ids, dtype=torch.long))  # keys the fingerprint
        self.use_cache = use_cache
        self.passes_tokens = 0  # tokens sent through the LM (what the cache saves), for the benchmark

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool = False, **attention_kwargs: Any) -> Any:
        reference = input_ids if input_ids is not None else inputs_embeds
        if attention_mask is None:
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        lengths = attention_mask.long().sum(dim=1)
        prompt_lengths = lengths - len(self.continuation_ids)
        embeds = inputs_embeds if inputs_embeds is not None else self.get_input_embeddings()(input_ids)
        has_contrast = len(self.contrast_ids) > 0
        if has_contrast and self.use_cache and not output_attentions and not attention_kwargs:
            a_scores, b_scores = self._cached(embeds, attention_mask, prompt_lengths)
            attentions = None
        else:
            out = lm_pass(self.lm, None, embeds, attention_mask, output_attentions, **attention_kwargs)
            self.passes_tokens += int(lengths.sum())
            a_scores = self._scores(out.logits, prompt_lengths, self.continuation_ids)
            attentions = out.attentions
            b_scores = self._whole(embeds, prompt_lengths, self.contrast_ids, attention_kwargs) if has_contrast else None
        total = a_scores.sum(dim=1, keepdim=True)
        parts = [total]
        if b_scores is not None:
            b_total = b_scores.sum(dim=1, keepdim=True)
            parts += [total - b_total, b_total]
        return SequenceClassifierOutput(logits=torch.cat(parts + [a_scores], dim=1), attentions=attentions)

    @staticmethod
    def _scores(logits: torch.Tensor, prompt_lengths: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(token_t) at the positions that predict them: row i's prompt_len_i - 1 + t."""
        steps = torch.arange(len(tokens), device=logits.device)
        where = (prompt_lengths.unsqueeze(1) - 1 + steps.unsqueeze(0))  # (rows, T)
        picked = logits[torch.arange(logits.shape[0], device=logits.device).unsqueeze(1), where].float()
        return _gather(torch.log_softmax(picked, dim=-1), tokens)

    def _whole(self, embeds: torch.Tensor, prompt_lengths: torch.Tensor, tokens: torch.Tensor,
               attention_kwargs: dict[str, Any]) -> torch.Tensor:
        """Scores of `tokens` after each row's prompt, by running prompt + tokens whole (no cache)."""
        extra = self.get_input_embeddings()(tokens.unsqueeze(0))[0]
        rows = [torch.cat([embeds[i, : int(n)], extra]) for i, n in enumerate(prompt_lengths)]
        width = max(len(r) for r in rows)
        batch = embeds.new_zeros((len(rows), width, embeds.shape[-1]))
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=embeds.device)
        for i, row in enumerate(rows):
            batch[i, : len(row)], mask[i, : len(row)] = row, 1
        out = lm_pass(self.lm, None, batch, mask, False, **attention_kwargs)
        self.passes_tokens += int(mask.sum())
        return self._scores(out.logits, prompt_lengths, tokens)

    def _cached(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                prompt_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt once, with its key/value cache; then A and B (padded to one length) from that cache."""
        rows, width = len(prompt_lengths), int(prompt_lengths.max())
        prompt_mask = (torch.arange(width, device=embeds.device).unsqueeze(0) < prompt_lengths.unsqueeze(1)).long()
        positions = torch.arange(width, device=embeds.device).unsqueeze(0).expand(rows, -1)
        first = self.lm(inputs_embeds=embeds[:, :width], attention_mask=prompt_mask, position_ids=positions,
                        use_cache=True)
        self.passes_tokens += int(prompt_mask.sum())
        next_token = torch.log_softmax(first.logits[torch.arange(rows), prompt_lengths - 1].float(), dim=-1)
        a, b = self.continuation_ids, self.contrast_ids
        steps = max(len(a), len(b))
        pad = int(a[0])
        tokens = torch.full((2 * rows, steps), pad, dtype=torch.long, device=embeds.device)
        tokens[0::2, : len(a)], tokens[1::2, : len(b)] = a, b
        cont_mask = torch.zeros((2 * rows, steps), dtype=torch.long, device=embeds.device)
        cont_mask[0::2, : len(a)], cont_mask[1::2, : len(b)] = 1, 1
        cache = first.past_key_values
        cache.batch_repeat_interleave(2)
        doubled = prompt_lengths.repeat_interleave(2)
        second = self.lm(input_ids=tokens, past_key_values=cache,
                         attention_mask=torch.cat([prompt_mask.repeat_interleave(2, dim=0), cont_mask], dim=1),
                         position_ids=doubled.unsqueeze(1) + torch.arange(steps, device=embeds.device).unsqueeze(0),
                         use_cache=True)
        self.passes_tokens += int(cont_mask.sum())
        later = torch.log_softmax(second.logits.float(), dim=-1)  # position t predicts token t + 1

        def scores(offset: int, ids: torch.Tensor) -> torch.Tensor:
            head = next_token[:, ids[0]].unsqueeze(1)
            if len(ids) == 1:
                return head
            rest = _gather(later[offset::2, : len(ids) - 1], ids[1:])
            return torch.cat([head, rest], dim=1)

        return scores(0, a), scores(1, b)


def _prompt_tokenizer(settings: dict[str, Any], lm: Any, tail: list[int]) -> PromptTokenizer:
    chat = bool(settings.get("chat"))
    template = Template.parse(rendered_template(lm.tokenizer, str(settings.get("template") or TEXT_SLOT), chat))
    return PromptTokenizer(lm.tokenizer, template, chat=chat, tail=tail)


def _tokens(lm: Any, text: str, what: str) -> list[int]:
    ids = list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    if not ids:
        raise ModelLoadError(f"The {what} is empty: give it some words.")
    return ids


def _build(settings: dict[str, Any], weights: bool) -> LoadedModel:
    if not settings.get("continuation"):
        raise ModelLoadError("No continuation to explain: give one (--continuation), or explain a text, whose "
                             "greedy continuation is generated first.")
    lm = causal_lm(settings["model"], weights=weights)
    continuation = _tokens(lm, str(settings["continuation"]), "continuation")
    contrast = _tokens(lm, str(settings["contrast"]), "contrast") if settings.get("contrast") else []
    if contrast == continuation:
        raise ModelLoadError("The contrast is the continuation itself: give another one.")
    tokenizer = _prompt_tokenizer(settings, lm, continuation)
    pieces = lm.tokenizer.convert_ids_to_tokens(continuation)
    labels = [CONTINUATION] + ([CONTRAST, CONTRAST_CONTINUATION] if contrast else []) + [
        f"token {t + 1} {lm.tokenizer.decode([i]).strip() or piece}" for t, (i, piece) in enumerate(zip(continuation, pieces, strict=True))]
    use_cache = settings.get("use_cache", True) is not False
    clean = {"model": settings["model"], "template": settings.get("template") if settings.get("template") != TEXT_SLOT else None,
             "continuation": settings["continuation"], "contrast": settings.get("contrast"),
             "chat": bool(settings.get("chat")) or None, "use_cache": None if use_cache else False,
             "generated": settings.get("generated") or None}
    spec = make_spec(NAME, clean)
    body = lm.model if weights else skeleton(lm.config)
    module = ContinuationScorer(body, continuation, contrast, tokenizer.before + [-1] + tokenizer.after, use_cache) \
        if body is not None else None
    shown = {"template": settings.get("template") or TEXT_SLOT, "continuation": settings["continuation"],
             "contrast": settings.get("contrast") or "", "chat": bool(settings.get("chat")),
             "continuation_tokens": pieces, "generated": bool(settings.get("generated")),
             "target": "log-probability of the continuation (summed over its tokens; per token: one output each)"
                       + ("; contrast: log p(continuation) - log p(contrast)" if contrast else "")}
    return loaded_lm(lm, spec, module, tokenizer, labels, kind=NAME, outputs=VALUES,
                       readout="last", default_output=1 if contrast else 0, settings=shown,
                       per_token_outputs=tuple(range(len(labels) - len(continuation), len(labels))))


def greedy_continuation(settings: dict[str, Any], text: str) -> str:
    """The model's greedy continuation of the prompt made from `text` (at most `max_new_tokens`), KV cache on."""
    lm = causal_lm(settings["model"], weights=True)
    tokenizer = _prompt_tokenizer(settings, lm, [])
    ids = torch.tensor([tokenizer(text)["input_ids"]], device=lm.model.device)
    steps = int(settings.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= steps <= 512:
        raise ModelLoadError("--max-new-tokens must be between 1 and 512.")
    with torch.inference_mode():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, do_sample=False,
                                use_cache=True, pad_token_id=tokenizer.pad_token_id)
    new = [int(i) for i in out[0, ids.shape[1]:]]
    eos = lm.tokenizer.eos_token_id
    if eos in new:
        new = new[: new.index(eos)]
    if not new:
        raise ModelLoadError("The model ends the text at once (its first token is end-of-text): give a continuation.")
    return str(lm.tokenizer.decode(new))


def _bind(settings: dict[str, Any], text: str) -> dict[str, Any]:
    if settings.get("continuation"):
        return settings
    return {**settings, "continuation": greedy_continuation(settings, text), "generated": True, "max_new_tokens": None}


ADAPTER = Adapter(
    name=NAME, title="Causal LM continuation",
    load=lambda settings: _build(settings, weights=True),
    describe=lambda settings: _build(settings, weights=False),
    bind=_bind,
    request_fields=(("continuation", "Continuation to explain",
                     "What the model says after the prompt (mind the leading space), e.g. ' positive'."),
                    ("contrast", "Rather than (contrast, optional)",
                     "Explain why the continuation rather than this one: log p(continuation) - log p(contrast).")),
    summary="The log-probability of a continuation of the prompt (summed, and per token), or of the "
            "continuation rather than a contrast.",
)
