"""The server describes models and never loads their weights; it finds stored results through the fingerprint
the processes that did load them recorded for their weight files."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from core.engine import counters
from core.engine.fingerprints import known_fingerprint, remember, weights_signature
from core.engine.modelling import describe_model, load_model
from core.engine.runner import ModelRunner
from core.methods import METHODS
from core.storage.db import get_engine


def test_a_description_has_what_pages_read_and_no_weights(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv(counters.ENV, "1")
    described = describe_model(str(tiny_model_dir))
    assert counters.read(os.getpid())["loads"] == 0  # configuration and tokenizer only
    loaded = load_model(str(tiny_model_dir))
    assert not described.has_weights and loaded.has_weights
    for field in ("name", "path", "source", "labels", "max_length", "card", "signature"):
        assert getattr(described, field) == getattr(loaded, field), field
    assert ModelRunner(described).prepare("fine, thanks").input_ids == ModelRunner(loaded).prepare("fine, thanks").input_ids
    # the methods' compatibility, decided from the layout alone, is the one the loaded model gets
    assert {m.name: m.incompatibility(described) for m in METHODS.values()} == {
        m.name: m.incompatibility(loaded) for m in METHODS.values()}


def test_a_described_model_refuses_model_work_in_one_sentence(tiny_model_dir):
    runner = ModelRunner(describe_model(str(tiny_model_dir)))
    with pytest.raises(RuntimeError, match="only described in this process"):
        runner.probabilities_for_texts(["fine"])


def test_loading_records_the_fingerprint_that_the_description_finds(home, tiny_model_dir):
    described = describe_model(str(tiny_model_dir))
    assert described.fingerprint.startswith("unmeasured-")
    assert known_fingerprint(get_engine(), described.signature) is None  # nothing has loaded these weights here
    loaded = load_model(str(tiny_model_dir))  # what a worker does: the load records the fingerprint
    assert known_fingerprint(get_engine(), described.signature) == loaded.fingerprint
    assert described.with_fingerprint(known_fingerprint(get_engine(), described.signature)).fingerprint == loaded.fingerprint


def test_new_weights_in_the_same_directory_are_not_taken_for_the_old(home, tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    first = load_model(str(copy))
    before = describe_model(str(copy)).signature
    changed = first.with_model(first.model)
    with torch.no_grad():
        next(changed.model.parameters()).add_(1.0)
    changed.model.save_pretrained(copy)
    after = describe_model(str(copy))
    assert after.signature != before and known_fingerprint(get_engine(), after.signature) is None
    assert known_fingerprint(get_engine(), before) == first.fingerprint
    reloaded = load_model(str(copy))
    assert reloaded.fingerprint != first.fingerprint
    assert known_fingerprint(get_engine(), after.signature) == reloaded.fingerprint


def test_a_hub_model_is_signed_by_its_revision():
    class Config:
        _commit_hash = "abc123"

    assert weights_signature("org/model", None, Config()) == "hub:org/model@abc123"


def test_remembering_is_once_per_weights(home, tiny_model_dir):
    from sqlmodel import select

    from core.storage.db import session_scope
    from core.storage.schema import CheckRecord

    loaded = load_model(str(tiny_model_dir))
    remember(get_engine(), loaded)
    remember(get_engine(), loaded)
    with session_scope(get_engine()) as session:
        rows = session.exec(select(CheckRecord).where(CheckRecord.kind == "weights")).all()
    assert len(rows) == 1 and rows[0].model_fingerprint == loaded.fingerprint
