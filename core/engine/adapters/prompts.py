"""What the causal-LM adapters share: the LM itself, a prompt template around the input, and a tokenizer that
adds the template's tokens (and a continuation's) as special tokens.

Special tokens are what every method already leaves alone: perturbations keep them, gradient baselines keep
them, words are made of the other tokens only. So the template's words are never attributed (only the input's),
exactly as [CLS] and [SEP] are not; attributing the template too is the same adapter with the whole prompt as the
text and `{text}` as the template.

The template and the input are tokenized apart and joined by ids (the template's tokens are the same for every
input, and a word of the input never merges with one of the template); a model whose tokenizer adds a BOS token
gets it first. With `chat`, the template is first rendered by the tokenizer's own chat template as one user
message (with the generation prompt), and the chat markup becomes part of the template.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from core.engine.modelling import (
    LoadedModel,
    ModelLoadError,
    _first_line,
    _model,
    _resolve,
    _tokenizer,
    pick_device,
)

TEXT_SLOT = "{text}"
# A GPT-2-style vocabulary has no mask or unknown token of its own beyond <|endoftext|>; some (Qwen) have no unknown
# token at all. Perturbations then hide a word with the end-of-text token, the usual choice for causal LMs.
MASK_FALLBACKS = ("mask_token", "unk_token", "eos_token")


@dataclass(frozen=True)
class Template:
    prefix: str
    suffix: str

    @classmethod
    def parse(cls, template: str) -> Template:
        if template.count(TEXT_SLOT) != 1:
            raise ModelLoadError(f"The template must hold {TEXT_SLOT} exactly once; it has it "
                                 f"{template.count(TEXT_SLOT)} times.")
        prefix, _, suffix = template.partition(TEXT_SLOT)
        return cls(prefix, suffix)

    def render(self, text: str) -> str:
        return f"{self.prefix}{text}{self.suffix}"


def rendered_template(tokenizer: Any, template: str, chat: bool) -> str:
    """The template as the model reads it: as given, or inside the tokenizer's chat template (one user message)."""
    Template.parse(template)
    if not chat:
        return template
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError("This model's tokenizer has no chat template: leave out --chat (or chat: false).")
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": template}], tokenize=False,
                                                 add_generation_prompt=True)
    except Exception as exc:  # jinja errors from a model's own template
        raise ModelLoadError(f"The chat template could not be applied: {_first_line(exc)}") from exc
    if rendered.count(TEXT_SLOT) != 1:
        raise ModelLoadError("The chat template changed the {text} slot; give the template without --chat.")
    return str(rendered)


class PromptTokenizer:
    """A fast tokenizer whose encoding of a text is: the base tokenizer's own leading specials, the template's
    prefix, the text, the template's suffix, then any `tail` (a continuation) — all but the text marked special,
    with empty offsets. Everything else (decoding, token strings, pad and end tokens) is the base tokenizer's."""

    is_fast = True

    def __init__(self, base: Any, template: Template, *, chat: bool, tail: Sequence[int] = ()) -> None:
        self.base = base
        leading = [] if chat else list(base("", add_special_tokens=True)["input_ids"])
        self.before = leading + self._ids(template.prefix)
        self.after = self._ids(template.suffix) + [int(i) for i in tail]
        self.tail_length = len(tail)
        self.mask_token = next((getattr(base, name) for name in MASK_FALLBACKS if getattr(base, name, None)), None)
        self.mask_token_id = base.convert_tokens_to_ids(self.mask_token) if self.mask_token else None
        self.unk_token, self.unk_token_id = self.mask_token, self.mask_token_id
        pad = base.pad_token_id if base.pad_token_id is not None else base.eos_token_id
        self.pad_token_id = pad if pad is not None else 0

    def _ids(self, text: str) -> list[int]:
        return list(self.base(text, add_special_tokens=False)["input_ids"]) if text else []

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self.before) + len(self.after)

    def _one(self, text: str, add_special_tokens: bool, truncation: bool, max_length: int | None) -> dict[str, list]:
        encoded = self.base(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
        before, after = (self.before, self.after) if add_special_tokens else ([], [])
        if truncation and max_length is not None:
            keep = max(0, max_length - len(before) - len(after))
            ids, offsets = ids[:keep], offsets[:keep]
        return {"input_ids": before + ids + after,
                "offset_mapping": [(0, 0)] * len(before) + offsets + [(0, 0)] * len(after),
                "special_tokens_mask": [1] * len(before) + [0] * len(ids) + [1] * len(after),
                "attention_mask": [1] * (len(before) + len(ids) + len(after))}

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None, **ignored: Any) -> dict[str, Any]:
        if isinstance(text, str):
            return self._one(text, add_special_tokens, truncation, max_length)
        rows = [self._one(t, add_special_tokens, truncation, max_length) for t in text]
        return {key: [row[key] for row in rows] for key in rows[0]} if rows else {"input_ids": []}

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet (copying): never recurse
            raise AttributeError(name)
        return getattr(self.base, name)


class _BaseLMs:
    """Causal LMs loaded in this process, by where they come from: several adapters over one LM (a classifier and
    a continuation, or one template after another) share its weights instead of loading them again."""

    def __init__(self, size: int = 2) -> None:
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, where: str, spec: str) -> Any:
        with self._lock:
            if where in self._models:
                self._models.move_to_end(where)
                return self._models[where]
            try:
                model = AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager")
            except Exception as exc:
                raise ModelLoadError(f"'{spec}' is not a causal language model: {_first_line(exc)}") from exc
            model = model.to(pick_device()).eval()
            self._models[where] = model
            while len(self._models) > self._size:
                self._models.popitem(last=False)
            return model


BASE_LMS = _BaseLMs()


@dataclass
class CausalLM:
    """A causal LM's files resolved: the configuration, tokenizer and (when loaded) weights."""

    spec: str
    local: Path
    is_local: bool
    config: Any
    tokenizer: Any
    model: Any = None

    @property
    def where(self) -> str:
        return str(self.local) if self.is_local else self.spec


def causal_lm(spec: str, *, weights: bool) -> CausalLM:
    """Resolve a causal LM (hub id or directory); its weights too when `weights`."""
    spec, local, is_local, config = _resolve(spec)
    found = CausalLM(spec, local, is_local, config, _tokenizer(spec, str(local) if is_local else spec))
    if weights:
        found.model = BASE_LMS.get(found.where, spec)
    return found


def skeleton(config: Any) -> Any:
    """The LM's layout on PyTorch's meta device (no memory, no numbers), for structural checks."""
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    except Exception:  # an architecture transformers cannot build here
        return None


def loaded_lm(lm: CausalLM, spec: str, module: Any, tokenizer: PromptTokenizer, labels: list[str], *,
              kind: str, outputs: str, readout: str, default_output: int | None, settings: dict[str, Any],
              per_token_outputs: tuple[int, ...] = ()) -> LoadedModel:
    """The LoadedModel of an adapter over `lm`: `module` answers like a classifier (over the weights when `lm` has
    them, else over the meta-device layout, kept as the skeleton for structural checks); `spec` is the adapter's
    spec, which is what a task carries and what the model's signature names (template and labels included)."""
    base = _model(lm.spec, lm.local, lm.is_local, lm.config, lm.tokenizer, None)
    window = min(int(getattr(lm.config, "max_position_embeddings", 1024) or 1024),
                 int(getattr(lm.tokenizer, "model_max_length", 1024) or 1024))
    weights = lm.model is not None
    return LoadedModel(
        name=base.name, path=spec, source=base.source, model=module if weights else None,
        skeleton=None if weights else module, tokenizer=tokenizer, labels=labels,
        device=pick_device() if weights else torch.device("cpu"), max_length=window, card=base.card,
        signature=f"{base.signature}|{hashlib.sha256(spec.encode()).hexdigest()[:16]}", config=lm.config,
        kind=kind, outputs=outputs, readout=readout, default_output=default_output, settings=settings,
        per_token_outputs=per_token_outputs, files=base.path,
    )


class PromptedLM(torch.nn.Module):
    """What the LM adapters' modules share: the LM inside, its embeddings and attention implementation outside
    (gradient methods embed through it; attention interventions swap its implementation for the call)."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.config = lm.config

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.lm.get_input_embeddings()

    def set_attn_implementation(self, implementation: str) -> None:
        self.lm.set_attn_implementation(implementation)


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's last real position (rows are right-padded)."""
    return attention_mask.long().sum(dim=1) - 1


def lm_pass(lm: Any, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
            attention_mask: torch.Tensor | None, output_attentions: bool, **attention_kwargs: Any) -> Any:
    """One pass of the LM with explicit positions (right padding: row i's tokens at 0..len_i-1), no cache;
    `attention_kwargs` (an attention intervention, a head mask) reach its attention function."""
    reference = input_ids if input_ids is not None else inputs_embeds
    batch, width = reference.shape[:2]
    if attention_mask is None:
        attention_mask = torch.ones((batch, width), dtype=torch.long, device=reference.device)
    positions = torch.arange(width, device=reference.device).unsqueeze(0).expand(batch, -1)
    return lm(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
              position_ids=positions, output_attentions=output_attentions, use_cache=False, **attention_kwargs)
