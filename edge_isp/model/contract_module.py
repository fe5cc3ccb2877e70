"""The network with the model contract's inputs and outputs (docs/ARCHITECTURE.md, and
:func:`edge_isp.contract.metadata.output_names`): what the ONNX export traces and what the
runtime's torch backend runs, so a checkpoint run in torch answers with the names, shapes
and dtypes of its exported model.

The detection decoding is ``CenterNetDetector.decode`` with the labels cast to int32, which
TensorRT handles natively.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_isp.contract.metadata import DEFAULT_TOP_K, check_input_kind, output_names
from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import DETECTOR_STRIDE, CenterNetDetector

# The detector's maps before decoding: what a sensitivity ranking compares (see
# edge_isp.export.precision_search).
DENSE_DETECTION_OUTPUTS = ("heatmap", "size", "offset")


def decode_detections(
    maps: dict[str, torch.Tensor], top_k: int, stride: int = DETECTOR_STRIDE, raw_scale: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CenterNet maps -> (boxes (B, K, 4) xyxy in the full-resolution input's pixels, scores
    (B, K), labels (B, K) int32), ``K = min(top_k, C * cells)``. ``stride``: the maps' stride in
    the picture's pixels; ``raw_scale``: the input's sides over the picture's (boxes are scaled
    by it, so a half-resolution model's boxes are in the raw frame's pixels like any other's)."""
    out = CenterNetDetector.decode(maps, top_k, stride)
    boxes = out["boxes"] * raw_scale if raw_scale != 1 else out["boxes"]
    return boxes, out["scores"], out["labels"].to(torch.int32)


class ContractModule(nn.Module):
    """A ``JointModel`` with the exported outputs: ``forward(raw, noise)`` returns the tuple
    named by :func:`edge_isp.contract.metadata.output_names` for its task. With
    ``input_kind="rgb"``, ``forward(rgb)`` runs the perception head alone on an sRGB batch."""

    def __init__(
        self,
        model: nn.Module,
        top_k: int = DEFAULT_TOP_K,
        with_image: bool = False,
        dense: bool = False,
        input_kind: str = "raw",
    ) -> None:
        super().__init__()
        if top_k < 1:
            raise InvalidInputError(f"top_k must be >= 1, got {top_k}")
        self.input_kind = check_input_kind(input_kind)
        if input_kind == "rgb" and (model.config.task == "reconstruction" or model.head is None):
            raise InvalidInputError(
                "an rgb-input export is the perception network alone; this model has none (a reconstruction model)"
            )
        if input_kind == "rgb" and with_image:
            raise InvalidInputError("an rgb-input model has no learned ISP, so no 'image' output (drop --with-image)")
        # Attribute names match JointModel's so the ONNX node names read /isp/..., /head/...
        self.isp = model.isp
        self.head = model.head
        self.task = model.config.task
        self.raw_scale = model.config.raw_scale
        self.stride = int(getattr(model.head, "stride", DETECTOR_STRIDE))
        self.top_k = top_k
        self.with_image = with_image
        self.dense = dense and self.task == "detection"
        self.names = list(DENSE_DETECTION_OUTPUTS) if self.dense else output_names(self.task, with_image)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rgb = inputs[0] if self.input_kind == "rgb" else self.isp(*inputs)
        if self.task == "reconstruction":
            return (rgb,)
        out = self.head(rgb)
        if self.dense:
            return tuple(out[name] for name in DENSE_DETECTION_OUTPUTS)
        detection = self.task == "detection"
        result = decode_detections(out, self.top_k, self.stride, self.raw_scale) if detection else (out,)
        return (*result, rgb) if self.with_image else tuple(result)
