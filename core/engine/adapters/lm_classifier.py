"""A causal LM used as a classifier: a prompt template with the input in it, zero- or few-shot, and one label
word per label. Each label's probability is the next-token probability, after the template, of the first token
of its label word as the tokenizer splits it there, renormalised over the labels (as in Schick & Schütze 2021,
"Exploiting cloze questions for few shot text classification", and Brown et al. 2020's zero-shot evaluation).

The module returns the label tokens' log-probabilities as logits: the runner's softmax over them is exactly that
renormalisation, so the explained quantity is the target label's renormalised probability, as for a classifier.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from core.engine.adapters import Adapter, make_spec
from core.engine.adapters.prompts import (
    PromptedLM,
    PromptTokenizer,
    Template,
    causal_lm,
    last_positions,
    lm_pass,
    loaded_lm,
    rendered_template,
    skeleton,
)
from core.engine.modelling import PROBABILITIES, LoadedModel, ModelLoadError

NAME = "lm_classifier"


def label_token_ids(base: Any, suffix: str, labels: list[str]) -> list[int]:
    """Each label word's first token as the tokenizer splits it right after the template's suffix (a space goes
    between unless the suffix ends in whitespace); labels whose first tokens coincide are refused."""
    if len(labels) < 2:
        raise ModelLoadError("Give at least two label words (e.g. --labels negative,positive).")
    if len(set(labels)) != len(labels):
        raise ModelLoadError("The label words must differ.")
    before = list(base(suffix, add_special_tokens=False)["input_ids"]) if suffix else []
    space = "" if suffix[-1:].isspace() else " "
    firsts = []
    for label in labels:
        if not label.strip():
            raise ModelLoadError("A label word is empty.")
        ids = list(base(suffix + space + label, add_special_tokens=False)["input_ids"])
        if ids[:len(before)] != before or len(ids) == len(before):  # the label merged into the suffix's last token
            ids = before + list(base(space + label, add_special_tokens=False)["input_ids"])
        firsts.append(ids[len(before)])
    seen: dict[int, str] = {}
    for label, token in zip(labels, firsts, strict=True):
        if token in seen:
            raise ModelLoadError(f"The labels '{seen[token]}' and '{label}' start with the same token "
                                 f"{base.convert_ids_to_tokens(token)!r} after the template; choose label words "
                                 "whose first tokens differ.")
        seen[token] = label
    return firsts


class LabelWordClassifier(PromptedLM):
    """Logits: log p(first token of each label word | prompt) at each row's last position."""

    def __init__(self, lm: torch.nn.Module, label_ids: list[int], prompt_ids: list[int]) -> None:
        super().__init__(lm)
        self.register_buffer("label_ids", torch.tensor(label_ids, dtype=torch.long))
        # Not used by the pass (the tokenizer adds the template); here so that the fingerprint names the template.
        self.register_buffer("prompt_ids", torch.tensor(prompt_ids, dtype=torch.long))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool = False, **attention_kwargs: Any) -> Any:
        out = lm_pass(self.lm, input_ids, inputs_embeds, attention_mask, output_attentions, **attention_kwargs)
        rows = out.logits.shape[0]
        last = last_positions(attention_mask) if attention_mask is not None else \
            torch.full((rows,), out.logits.shape[1] - 1, device=out.logits.device)
        next_token = torch.log_softmax(out.logits[torch.arange(rows, device=last.device), last].float(), dim=-1)
        return SequenceClassifierOutput(logits=next_token[:, self.label_ids], attentions=out.attentions)


def _build(settings: dict[str, Any], weights: bool) -> LoadedModel:
    for key in ("template", "labels"):
        if not settings.get(key):
            raise ModelLoadError(f"A causal LM used as a classifier needs its {key} (--{key}).")
    labels = [str(label).strip() for label in settings["labels"]]
    chat = bool(settings.get("chat"))
    lm = causal_lm(settings["model"], weights=weights)
    template = Template.parse(rendered_template(lm.tokenizer, str(settings["template"]), chat))
    tokenizer = PromptTokenizer(lm.tokenizer, template, chat=chat)
    label_ids = label_token_ids(lm.tokenizer, template.suffix, labels)
    shown = {"template": settings["template"], "labels": labels, "chat": chat,
             "label_tokens": dict(zip(labels, lm.tokenizer.convert_ids_to_tokens(label_ids), strict=True)),
             "target": "the target label's next-token probability after the template, renormalised over the labels"}
    spec = make_spec(NAME, {"model": settings["model"], "template": settings["template"], "labels": labels,
                            "chat": chat or None})
    body = lm.model if weights else skeleton(lm.config)
    module = LabelWordClassifier(body, label_ids, tokenizer.before + [-1] + tokenizer.after) if body is not None else None
    return loaded_lm(lm, spec, module, tokenizer, labels, kind=NAME, outputs=PROBABILITIES,
                       readout="last", default_output=None, settings=shown)


ADAPTER = Adapter(
    name=NAME, title="Causal LM as a classifier",
    load=lambda settings: _build(settings, weights=True),
    describe=lambda settings: _build(settings, weights=False),
    summary="A prompt template with the input in it; each label's probability is its label word's next-token "
            "probability after the template, renormalised over the labels.",
)
