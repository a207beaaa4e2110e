"""What runs a plain (no-gradient) forward pass: the backends a runner can use, one registry.

- `float32`: PyTorch at full precision (the model as loaded; the first-token shortcut where it applies).
- `int8`: PyTorch dynamic quantisation of every linear layer (weights int8, activations quantised per batch;
  Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018).
- `onnx-float32` and `onnx-int8`: the model exported to ONNX and run by ONNX Runtime, at full precision or with
  ONNX Runtime's dynamic per-channel int8 quantisation.

Only plain passes change backend: gradients, attention weights and interventions always come from the float32
model (a quantised or exported graph is not differentiable here). A backend is a speed choice that must not
change the answers, so `core/analyses/backend_gate.py` measures it against float32 before it is used by default,
and a runner's results are stored under a fingerprint that names its backend (`LoadedModel.backend`): cached
results never mix backends.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.engine.modelling import LoadedModel

FLOAT32 = "float32"
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (input ids, attention mask) -> logits


@dataclass(frozen=True)
class Backend:
    name: str
    title: str
    needs: tuple[str, ...]  # importable packages
    build: Callable[[LoadedModel, torch.nn.Module], Forward]

    def unavailable(self) -> str:
        """Why this backend cannot run in this environment ("" when it can)."""
        missing = [package for package in self.needs if importlib.util.find_spec(package) is None]
        return f"needs {', '.join(missing)} (pip install {' '.join(missing)})" if missing else ""


def _torch_forward(module: torch.nn.Module) -> Forward:
    return lambda ids, mask: module(input_ids=ids, attention_mask=mask).logits


def _float32(loaded: LoadedModel, classifier: torch.nn.Module) -> Forward:
    return _torch_forward(classifier)


def _int8(loaded: LoadedModel, classifier: torch.nn.Module) -> Forward:
    # A copy: the float32 model keeps serving gradients and attention. The warning about eager-mode
    # quantisation moving to torchao concerns the API's future, not these numbers.
    quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(classifier), {torch.nn.Linear}, dtype=torch.qint8)
    return _torch_forward(quantised.eval())


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def onnx_path(loaded: LoadedModel, quantised: bool) -> Path:
    """Where a model's ONNX export lives: under RASHOMON_HOME, by the weights' fingerprint (built once)."""
    from core.storage.settings import load_settings

    name = "model-int8.onnx" if quantised else "model.onnx"
    return load_settings().home / "backends" / loaded.weights_fingerprint / name


def _export(loaded: LoadedModel, quantised: bool) -> Path:
    plain = onnx_path(loaded, False)
    if not plain.is_file():
        plain.parent.mkdir(parents=True, exist_ok=True)
        partial = plain.with_suffix(".partial")
        example = torch.tensor([[loaded.tokenizer.cls_token_id or 0] * 4] * 2)
        with loaded.lock:
            # The TorchScript exporter: the dynamo one needs onnxscript and gave no faster graph here.
            torch.onnx.export(_Logits(loaded.model).eval(), (example, torch.ones_like(example)), str(partial),
                              input_names=["input_ids", "attention_mask"], output_names=["logits"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "length"},
                                            "attention_mask": {0: "batch", 1: "length"}},
                              opset_version=17, dynamo=False)
        partial.replace(plain)
    if not quantised:
        return plain
    target = onnx_path(loaded, True)
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = target.with_suffix(".partial")
        # Per channel: per-tensor scales moved 2.7% of the default model's labels, per channel 1.4%.
        quantize_dynamic(str(plain), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        partial.replace(target)
    return target


def _onnx(quantised: bool) -> Callable[[LoadedModel, torch.nn.Module], Forward]:
    def build(loaded: LoadedModel, classifier: torch.nn.Module) -> Forward:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(_export(loaded, quantised)), options,
                                               providers=["CPUExecutionProvider"])

        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            feeds = {"input_ids": ids.cpu().numpy(), "attention_mask": mask.cpu().numpy()}
            return torch.from_numpy(session.run(["logits"], feeds)[0])

        return forward

    return build


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(FLOAT32, "PyTorch float32", (), _float32),
        Backend("int8", "PyTorch dynamic int8 (linear layers)", (), _int8),
        Backend("onnx-float32", "ONNX Runtime float32", ("onnxruntime", "onnx"), _onnx(False)),
        Backend("onnx-int8", "ONNX Runtime dynamic int8 (per channel)", ("onnxruntime", "onnx"), _onnx(True)),
    )
}


class BackendError(ValueError):
    """An unknown backend, or one this environment cannot run."""


def get_backend(name: str) -> Backend:
    backend = BACKENDS.get(name)
    if backend is None:
        raise BackendError(f"Unknown backend '{name[:40]}'; the backends are {', '.join(BACKENDS)}.")
    if reason := backend.unavailable():
        raise BackendError(f"The {name} backend is not available here: it {reason}.")
    return backend
