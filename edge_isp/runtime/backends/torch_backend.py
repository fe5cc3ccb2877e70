"""Torch backend, for development: run a training checkpoint without exporting it.

It wraps the network in the module the ONNX export traces
(:class:`edge_isp.model.contract_module.ContractModule`), so its outputs have the names, shapes
and dtypes of an exported model and the rest of the runtime cannot tell the difference. Torch
is imported only when this backend is made: the board never needs it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp import __version__
from edge_isp.contract.metadata import DEFAULT_TOP_K, ModelMetadata, is_profile_name
from edge_isp.errors import InvalidInputError, require
from edge_isp.runtime.interfaces import InferenceBackend, TensorSpec

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


class TorchBackend(InferenceBackend):
    """Runs a ``.pt`` checkpoint from ``edge-isp train`` (or, for trying things out, a
    registered model name with untrained weights).

    Args:
        checkpoint: the checkpoint path, or a registry name such as ``dp_s_det``.
        device: ``"auto"`` (CUDA when torch sees a GPU), ``"cpu"`` or ``"cuda"``.
        top_k: detections per frame (detection models).
        with_image: also return the learned ISP's picture as ``image``.
    """

    name = "torch"

    def __init__(
        self, checkpoint: str | Path, device: str = "auto", top_k: int = DEFAULT_TOP_K, with_image: bool = True
    ) -> None:
        super().__init__()
        torch = require("torch", "train", "the torch backend (running a training checkpoint)")
        # Torch-side modules (they import torch): imported here so the runtime never imports torch.
        from edge_isp.model.contract_module import ContractModule
        from edge_isp.model.loading import load_model

        if device not in DEVICES:
            raise InvalidInputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' asked for, but torch sees no CUDA GPU; use device 'cpu'")
        self._torch = torch
        self._device = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        self.path = Path(checkpoint)
        loaded = load_model(checkpoint)
        if not loaded.trained:
            log.warning("the torch backend runs %s: untrained weights, its answers mean nothing", loaded.source)
        config = loaded.config
        self._module = ContractModule(loaded.model, top_k=top_k, with_image=with_image).eval().to(self._device)
        self._names = list(self._module.names)
        self._inputs = [
            TensorSpec("raw", np.dtype(np.float32), (1, 4, None, None)),
            TensorSpec("noise", np.dtype(np.float32), (1, 2)),
        ]
        shapes: dict[str, tuple[int | None, ...]] = {
            "logits": (1, config.num_classes),
            "boxes": (1, None, 4),
            "scores": (1, None),
            "labels": (1, None),
            "image": (1, 3, None, None),
        }
        dtypes = {"labels": np.dtype(np.int32)}
        self._outputs = [TensorSpec(n, dtypes.get(n, np.dtype(np.float32)), shapes[n]) for n in self._names]
        # A checkpoint may name its profile by path; model metadata carries names only, so such
        # a model runs with --profile as any model without a profile does.
        profile = str(loaded.profile)
        self._metadata = ModelMetadata(
            task=config.task,
            class_names=tuple(loaded.class_names),
            input_size=loaded.input_size,
            profile=profile if is_profile_name(profile) else None,
            version=__version__,
            model_config=json.loads(json.dumps(config.to_dict())),
            raw_scale=config.raw_scale,
        ).to_props()

    @property
    def description(self) -> str:
        return f"{self.name} {self._torch.__version__} on {self._device}"

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(feed[n]).to(self._device) for n in ("raw", "noise")]
            values: Any = self._module(*args)
        return {name: value.cpu().numpy() for name, value in zip(self._names, values, strict=True)}
