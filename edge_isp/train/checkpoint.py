"""Training checkpoints: written atomically, loaded safely, with everything a resume needs.

A checkpoint (``torch.save`` of a dict of tensors and plain values, read back with
``weights_only=True``) holds:

- ``format``/``version``: what this is;
- ``stage``, ``model_config`` (``ModelConfig.to_dict()``), ``train_config`` (the resolved
  :class:`~edge_isp.train.config.TrainConfig` as a dict);
- ``model`` (the :class:`~edge_isp.model.joint.JointModel` state dict), ``optimizer``,
  ``scheduler``;
- ``rng``: per process rank, the torch (CPU and CUDA), numpy and Python generator states;
- ``epoch`` (the epoch in progress), ``step_in_epoch`` (optimizer steps done in it),
  ``global_step``, ``best_metric``, ``metric_name``, ``history`` (per-epoch validation),
  ``epoch_losses`` (the training losses of the epoch in progress, for its mean).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import atomic_open
from edge_isp.model.joint import JointModel, ModelConfig

FORMAT = "edge-isp/checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """This process's generator states, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see the module docstring) atomically: a crash mid-write leaves the
    previous file at ``path`` intact."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its format."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise InvalidInputError(f"{path}: not a readable edge-isp checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"{path}: not an edge-isp checkpoint (expected format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise InvalidInputError(f"{path}: checkpoint version {data.get('version')!r}; this edge-isp reads {VERSION}")
    return data


# What a resume reads from last.pt, beyond what every checkpoint holds.
RESUME_KEYS = (
    "stage", "model_config", "train_config", "model", "optimizer", "scheduler", "rng", "epoch",
    "step_in_epoch", "global_step", "best_metric", "history", "epoch_losses",
)  # fmt: skip


def require_keys(data: dict[str, Any], path: str | Path, keys: tuple[str, ...] = ("model_config", "model")) -> None:
    """Refuse a checkpoint that lacks ``keys`` or whose model parts are not tables: a partial
    file (written by hand, or cut by something other than :func:`save_checkpoint`)."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise InvalidInputError(f"{path}: a partial checkpoint, without {', '.join(missing)}")
    for key in ("model_config", "model", "train_config"):
        if key in keys and not isinstance(data[key], dict):
            raise InvalidInputError(f"{path}: a damaged checkpoint, its {key!r} is {type(data[key]).__name__}")


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the :class:`~edge_isp.model.joint.JointModel` a checkpoint was trained as,
    with its weights, in eval mode. The ImageNet weights are not read (they are in the state)."""
    import dataclasses

    data = load_checkpoint(path, map_location)
    require_keys(data, path)
    try:
        config = dataclasses.replace(ModelConfig.from_dict(data["model_config"]), pretrained_backbone=False)
        model = JointModel(config)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: its model_config does not describe a model ({exc})") from None
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = "; ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        raise InvalidInputError(f"{path}: its weights do not fit its model {config.name!r}: {detail}") from None
    return model.eval()


def load_submodule(model: nn.Module, path: str | Path, name: str) -> None:
    """Load the ``name`` submodule (``"isp"`` or ``"head"``) of ``model`` from the weights of
    the same submodule in the checkpoint at ``path``.

    Raises :class:`InvalidInputError` when the checkpoint has no such weights or they do
    not fit (another ISP variant, another number of classes).
    """
    data = load_checkpoint(path)
    prefix = name + "."
    weights = {k[len(prefix) :]: v for k, v in data["model"].items() if k.startswith(prefix)}
    source = data.get("model_config", {}).get("name", "?")
    target = getattr(model, name, None)
    if target is None:
        raise InvalidInputError(f"model {model.config.name!r} has no {name!r} part to load from {path}")
    if not weights:
        raise InvalidInputError(
            f"{path} (model {source!r}, stage {data.get('stage')!r}) holds no {name!r} weights; "
            f"init.{name} needs a checkpoint whose model has a {name}"
        )
    if name == "isp" and model.config.isp is not None:
        theirs_isp = ModelConfig.from_dict(data["model_config"]).isp
        theirs_res = theirs_isp.resolution if theirs_isp is not None else "none"
        if theirs_res != model.config.isp.resolution:
            # The same weights' shapes fit either: only the config tells them apart.
            raise InvalidInputError(
                f"the ISP in {path} (model {source!r}) runs at {theirs_res} resolution, model "
                f"{model.config.name!r} at {model.config.isp.resolution}: train its isp stage with a "
                f"{model.config.isp.resolution}-resolution *_rec model"
            )
    if name == "head" and model.config.task == "detection":
        theirs = ModelConfig.from_dict(data["model_config"]).size_activation
        if theirs != model.config.size_activation:
            raise InvalidInputError(
                f"the detection head in {path} (model {source!r}) sizes its boxes through {theirs}, model "
                f"{model.config.name!r} through {model.config.size_activation}: train the head again "
                f"(edge-isp train head) with this edge-isp"
            )
    try:
        target.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[:4])
        raise InvalidInputError(
            f"the {name} in {path} (model {source!r}) does not fit model {model.config.name!r}: {detail}"
        ) from None
