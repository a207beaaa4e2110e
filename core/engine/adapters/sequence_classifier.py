"""A Hugging Face sequence classifier (hub id or directory): the model kind Rashomon started with.

Its loading lives in `core.engine.modelling` (every other adapter builds on the same loaded-model value); this
entry names the kind for the registry, so that listings and specs treat it like the others.
"""

from __future__ import annotations

from core.engine.adapters import SEQUENCE_CLASSIFIER, Adapter
from core.engine.modelling import describe_classifier, load_classifier

ADAPTER = Adapter(
    name=SEQUENCE_CLASSIFIER, title="Sequence classifier",
    load=lambda settings: load_classifier(settings["model"]),
    describe=lambda settings: describe_classifier(settings["model"]),
    summary="The model's own labels; probabilities are the softmax of its logits.",
)
