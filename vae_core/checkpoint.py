"""A training state as one safetensors file, and back: what a resumed run needs to continue exactly.

The state is the flat parameter vector, the optimizer's state (packed generically: every tensor of
`optimizer.state_dict()` by its parameter and name, every other value and the parameter groups as JSON, so
Adagrad, Adam and SGD with momentum alike), the random generator, the minibatch stream, the algorithm's
own tensors (persistent chains, say) and the progress counters. Shapes are checked against the training
state that will receive them from the file's header, before any tensor is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .runs import RunError, read_bytes, read_header

FORMAT = 2
# Format 1 (before algorithms were objects) named the stream's order "order" and kept the one flat parameter's
# optimizer state as "optimizer.<name>", each tensor flattened.
_FORMAT_1_NAMES = {"order": "stream.order"}


@dataclass
class TrainingState:
    """The parts of a trainer that a checkpoint restores; tensors are those of the live trainer."""
    parameters: torch.Tensor  # the flat parameter vector
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    stream: dict[str, torch.Tensor]  # the minibatch stream's tensors
    algorithm: dict[str, torch.Tensor]  # the algorithm's own tensors


def pack(state: TrainingState, progress: dict) -> bytes:
    saved = state.optimizer.state_dict()
    tensors = {"parameters": state.parameters.detach().cpu().clone(), "generator": state.generator.get_state().cpu(),
               **{f"stream.{k}": v.detach().cpu() for k, v in state.stream.items()},
               **{f"algorithm.{k}": v.detach().cpu().contiguous() for k, v in state.algorithm.items()}}
    other: dict = {}
    for index, values in saved["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().clone().contiguous()
            else:
                other.setdefault(str(index), {})[key] = value
    metadata = {"format": str(FORMAT), "progress": json.dumps(progress),
                "optimizer": json.dumps({"state": other, "param_groups": saved["param_groups"]})}
    return save_safetensors(tensors, metadata=metadata)


def restore(path: str | Path, state: TrainingState) -> dict:
    """Loads the checkpoint at `path` into `state` (in place) and returns its progress; RunError, before any
    tensor is read, if the file does not fit this training state."""
    shapes, metadata = read_header(path)
    legacy = int(metadata.get("format", 1)) < 2
    if legacy:
        shapes = {_FORMAT_1_NAMES.get(k, k): v for k, v in shapes.items()}
    expected = {"parameters": tuple(state.parameters.shape), "generator": tuple(state.generator.get_state().shape),
                **{f"stream.{k}": tuple(v.shape) for k, v in state.stream.items()},
                **{f"algorithm.{k}": tuple(v.shape) for k, v in state.algorithm.items()}}
    for name, shape in expected.items():
        if shapes.get(name) != shape:
            raise RunError(f"{Path(path).name} does not fit this run: {name} has shape {shapes.get(name)}, "
                           f"the run's configuration needs {shape}")
    for name, shape in shapes.items():  # optimizer state: per-parameter tensors or counters, nothing larger
        if name.startswith("optimizer.") and shape not in ((), (1,), expected["parameters"]):
            raise RunError(f"{Path(path).name} does not fit this run: {name} has shape {shape}")
    tensors = load_safetensors(read_bytes(path))  # a regular file, of the size its header said
    if legacy:
        tensors = {_FORMAT_1_NAMES.get(k, k): v for k, v in tensors.items()}
    device = state.parameters.device
    with torch.no_grad():
        state.parameters.copy_(tensors["parameters"])
        if not bool(torch.isfinite(state.parameters).all()):
            raise RunError(f"{Path(path).name} holds non-finite parameters")
    state.generator.set_state(tensors["generator"])
    for key, value in state.stream.items():
        value.copy_(tensors[f"stream.{key}"])
    for key, value in state.algorithm.items():
        value.copy_(tensors[f"algorithm.{key}"])
    state.optimizer.load_state_dict(_optimizer_state(tensors, metadata, state.optimizer, device, legacy))
    return metadata["progress"]


def _optimizer_state(tensors: dict, metadata: dict, optimizer: torch.optim.Optimizer, device, legacy: bool) -> dict:
    saved = {"state": {}, "param_groups": optimizer.state_dict()["param_groups"]}
    if not legacy:
        other = metadata["optimizer"]
        saved["param_groups"] = other["param_groups"]
        for index, values in other["state"].items():
            saved["state"].setdefault(int(index), {}).update(values)
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                saved["state"].setdefault(int(index), {})[key] = value.to(device)
    else:
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                key = name[len("optimizer."):]
                saved["state"].setdefault(0, {})[key] = (value.reshape(()) if key == "step" else value).to(device)
    return saved
