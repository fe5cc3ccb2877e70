"""Perception heads on the ISP's sRGB output: a classifier and an anchor-free detector.

Both take an sRGB image batch ``(B, 3, H, W)`` on about [0, 1] and normalize it with the
ImageNet statistics themselves, so the ISP's output feeds them directly.

The detector is CenterNet-style (Zhou et al. 2019, "Objects as Points"): a class heatmap, box
sizes and sub-pixel offsets at stride 4, on MobileNetV2 features merged top-down. Decoding
uses only max-pooling, TopK and gathers, which ONNX and TensorRT both accept, so the exported
graph returns boxes directly; CenterNet needs no NMS (the 3x3 peak test replaces it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.model.mobilenet import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2

# MobileNetV2 feature strides merged by the neck; the finest sets the output stride.
_DETECTOR_STRIDES = (4, 8, 16, 32)
DETECTOR_STRIDE = _DETECTOR_STRIDES[0]
# How the detector keeps box sizes positive, by ModelConfig.size_activation.
SIZE_ACTIVATIONS = {"softplus": F.softplus, "relu": F.relu}


class ImageNetNormalize(nn.Module):
    """(x - mean) / std with the ImageNet statistics, for a (B, 3, H, W) batch on [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """MobileNetV2 classifier: sRGB (B, 3, H, W) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        pretrained: bool = True,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        self.normalize = ImageNetNormalize()
        self.backbone = mobilenet_v2(
            pretrained=pretrained,
            num_classes=num_classes,
            width_mult=width_mult,
            dropout=dropout,
            stem_stride=stem_stride,
        )

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(rgb))


class CenterNetDetector(nn.Module):
    """Anchor-free detector: sRGB (B, 3, H, W) -> maps at stride 4 (:attr:`stride`).

    ``forward`` returns a dict of ``heatmap`` logits (B, C, H/4, W/4), ``size`` (B, 2, H/4, W/4)
    box width and height in input pixels, and ``offset`` (B, 2, H/4, W/4) the centre's sub-cell
    position in cells. :meth:`decode` turns them into boxes. H and W must be multiples of 32.
    ``size_activation`` keeps ``size`` positive: "softplus" (default) or "relu" (older models;
    see :class:`~edge_isp.model.joint.ModelConfig`). With ``stem_stride`` 1 (a half-resolution
    ISP's image) the maps are at stride 2 of the input, the same maps the stride-2 network gives
    for the full-resolution raw; pass :attr:`stride` to :meth:`decode`.
    """

    def __init__(
        self,
        num_classes: int,
        pretrained: bool = True,
        width_mult: float = 1.0,
        neck: int = 64,
        size_activation: str = "softplus",
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.size_activation = SIZE_ACTIVATIONS[size_activation]
        self.normalize = ImageNetNormalize()
        self.backbone = mobilenet_v2(pretrained=pretrained, width_mult=width_mult, stem_stride=stem_stride)
        # The maps' stride in input pixels: 4, or 2 behind a stride-1 stem.
        self.stride = int(DETECTOR_STRIDE * self.backbone.stride_scale)
        self.lateral = nn.ModuleList(nn.Conv2d(self.backbone.stride_channels[s], neck, 1) for s in _DETECTOR_STRIDES)
        self.smooth = nn.Sequential(nn.Conv2d(neck, neck, 3, padding=1), nn.BatchNorm2d(neck), nn.ReLU(inplace=True))
        self.heatmap = _head(neck, num_classes)
        self.size = _head(neck, 2)
        self.offset = _head(neck, 2)
        # A 0.1 prior on the heatmap keeps the focal loss stable at the start (CenterNet).
        nn.init.constant_(self.heatmap[-1].bias, -2.19)

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = self.backbone.forward_features(self.normalize(rgb), strides=_DETECTOR_STRIDES)
        merged = self.lateral[-1](taps[-1])
        for lateral, tap in zip(reversed(self.lateral[:-1]), reversed(taps[:-1]), strict=True):
            merged = F.interpolate(merged, size=tap.shape[-2:], mode="nearest") + lateral(tap)
        merged = self.smooth(merged)
        return {
            "heatmap": self.heatmap(merged),
            "size": self.size_activation(self.size(merged)) * self.stride,
            "offset": torch.sigmoid(self.offset(merged)),
        }

    @staticmethod
    def decode(
        maps: dict[str, torch.Tensor], top_k: int = 50, stride: int = DETECTOR_STRIDE
    ) -> dict[str, torch.Tensor]:
        """Peaks of the heatmap -> ``boxes`` (B, K, 4) xyxy in input pixels, ``scores`` (B, K),
        ``labels`` (B, K) int64. Low scores are kept: the caller thresholds. ``stride``: the
        maps' stride in input pixels, the detector's :attr:`stride`."""
        heat = torch.sigmoid(maps["heatmap"])
        b, c, h, w = heat.shape
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
        k = min(top_k, c * h * w)
        scores, index = torch.topk(peaks.reshape(b, -1), k)
        # Truncating division equals floor for TopK's non-negative indices and exports as a
        # plain integer Div (floor adds a Mod/Xor sign fix-up to the ONNX graph).
        labels = torch.div(index, h * w, rounding_mode="trunc")
        cell = index - labels * (h * w)
        cy = torch.div(cell, w, rounding_mode="trunc")
        cx = cell - cy * w
        size = torch.gather(maps["size"].reshape(b, 2, h * w), 2, cell.unsqueeze(1).expand(b, 2, k))
        offset = torch.gather(maps["offset"].reshape(b, 2, h * w), 2, cell.unsqueeze(1).expand(b, 2, k))
        x = (cx.to(heat.dtype) + offset[:, 0]) * stride
        y = (cy.to(heat.dtype) + offset[:, 1]) * stride
        half_w, half_h = size[:, 0] / 2, size[:, 1] / 2
        boxes = torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=-1)
        return {"boxes": boxes, "scores": scores, "labels": labels}


def _head(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(channels, out, 1)
    )
