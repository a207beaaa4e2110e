"""A fourth kind of model, for the test that a kind is one module and one entry: a sequence classifier read at a
temperature (its logits divided by T, as in Guo et al. 2017, "On calibration of modern neural networks")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from core.engine.adapters import Adapter, make_spec, register_adapter
from core.engine.modelling import LoadedModel, describe_classifier, load_classifier

NAME = "tempered"


class Tempered(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def set_attn_implementation(self, implementation: str) -> None:
        self.model.set_attn_implementation(implementation)

    def forward(self, **kwargs: Any) -> Any:
        out = self.model(**kwargs)
        out.logits = out.logits / self.temperature
        return out


def _load(settings: dict[str, Any], weights: bool) -> LoadedModel:
    plain = (load_classifier if weights else describe_classifier)(settings["model"])
    model = Tempered(plain.model, settings["temperature"]) if weights else None
    return replace(plain, model=model, kind=NAME, path=make_spec(NAME, settings), _fingerprint=None,
                   settings={"temperature": settings["temperature"]})


ADAPTER = register_adapter(Adapter(name=NAME, title="Classifier at a temperature",
                                   load=lambda s: _load(s, True), describe=lambda s: _load(s, False)))
