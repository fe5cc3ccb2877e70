"""The joint network: packed raw + noise parameters -> the task's answer, end to end.

Every model here has the same interface, ``forward(packed, noise)`` with ``packed``
(B, 4, H/2, W/2) normalized raw (planes R, Gr, Gb, B) and ``noise`` (B, 2) = (a, sigma),
and nothing torch-specific beyond tensors, so it exports to ONNX with exactly those inputs.
The image the ISP gives, and the perception head sees, is H x W, or H/2 x W/2 for a
half-resolution ISP (:attr:`ModelConfig.raw_scale` 2): then the raw has twice the picture's
sides, as a camera whose sensor has more pixels than the network's input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.contract.metadata import TASKS
from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import SIZE_ACTIVATIONS, CenterNetDetector, Classifier
from edge_isp.model.isp import DirtyPixelsISP, IspNetConfig


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """How a model is made; saved beside every checkpoint and in every ONNX file.

    Attributes:
        name: the registry name it was built from.
        task: "classification", "detection", or "reconstruction" (the ISP alone).
        num_classes: classes of the task (ignored for reconstruction).
        isp: the learned ISP's settings; None for perception straight on the packed raw.
        pretrained_backbone: start MobileNetV2 from the ImageNet weights.
        width_mult: MobileNetV2's width multiplier.
        size_activation: the detector's box-size output, "softplus" or "relu". A ReLU unit
            whose input goes negative everywhere gets no gradient and stops learning: the
            detection study's seed 2 lost its box heights that way (every box 0 px tall,
            mAP 0). Softplus always passes a gradient. Checkpoints and ONNX files written
            before this field existed are ReLU models and load as such.
        dropout: the classifier's dropout before its last layer (torchvision's 0.2). A student
            distilled from a teacher with its own weights trains best without it: with
            dropout the copy disagrees with its teacher on every step, and that noise alone
            moves it away from the answers it started with.
        stem_stride: MobileNetV2's first stride, 2 (torchvision's) or 1. A half-resolution
            detector (``dpnh_*_det``) takes 1, so its feature maps have the full-resolution
            detector's sizes for the same raw; the classifiers keep 2 (the teacher's weights at
            the teacher's scale). Checkpoints and ONNX files without the field have 2.
        raw_resolution: the no-ISP ablation's (``isp`` None) input layer: "full" (a 3x3
            convolution and a pixel shuffle to an H x W image) or "half" (a 3x3 convolution on
            the packed planes to an H/2 x W/2 image, ``raw_scale`` 2: the half-resolution models'
            pipeline (d), ``rawh_*``). Models with an ISP take the ISP's resolution and keep "full".
    """

    name: str
    task: str
    num_classes: int = 10
    isp: IspNetConfig | None = dataclasses.field(default_factory=IspNetConfig)
    pretrained_backbone: bool = True
    width_mult: float = 1.0
    size_activation: str = "softplus"
    dropout: float = 0.2
    stem_stride: int = 2
    raw_resolution: str = "full"

    @property
    def raw_scale(self) -> int:
        """How many times larger (per side) the raw input is than the image the ISP gives the
        head: 2 for a half-resolution ISP or raw stem, else 1."""
        if self.isp is None:
            return 2 if self.raw_resolution == "half" else 1
        return self.isp.raw_scale

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "reconstruction" and self.isp is None:
            raise InvalidInputError("a reconstruction model needs an ISP (isp=None is the raw ablation)")
        if self.num_classes < 1:
            raise InvalidInputError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.size_activation not in SIZE_ACTIVATIONS:
            raise InvalidInputError(
                f"size_activation must be one of {', '.join(SIZE_ACTIVATIONS)}, got {self.size_activation!r}"
            )
        if self.stem_stride not in (1, 2):
            raise InvalidInputError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        if self.raw_resolution not in RAW_RESOLUTIONS:
            raise InvalidInputError(
                f"raw_resolution must be one of {', '.join(RAW_RESOLUTIONS)}, got {self.raw_resolution!r}"
            )
        if self.isp is not None and self.raw_resolution != "full":
            raise InvalidInputError(
                "raw_resolution is the no-ISP model's setting; a model with an ISP takes IspNetConfig.resolution"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        data.setdefault("size_activation", "relu")  # written before the field existed
        if data.get("isp") is not None:
            isp = dict(data["isp"])
            isp["widths"] = tuple(isp["widths"])
            data["isp"] = IspNetConfig(**isp)
        return cls(**data)


RAW_RESOLUTIONS = ("full", "half")


class RawStem(nn.Module):
    """The "no ISP" ablation's input layer: packed raw + noise level -> a 3-channel image by
    one learned 3x3 convolution, followed by a pixel shuffle to full resolution ("full"), or
    left at the packed planes' half resolution ("half")."""

    def __init__(self, resolution: str = "full") -> None:
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2d(5, 12 if resolution == "full" else 3, 3, padding=1)

    @property
    def raw_scale(self) -> int:
        """The raw's sides over the image's: 1 (full) or 2 (half)."""
        return 1 if self.resolution == "full" else 2

    def forward(self, packed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        level = noise[:, 1:2, None, None].expand(-1, 1, *packed.shape[-2:])
        out = self.conv(torch.cat([packed, level], dim=1))
        return F.pixel_shuffle(out, 2) if self.resolution == "full" else out


class JointModel(nn.Module):
    """ISP (or the raw stem) followed by a perception head; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.isp: nn.Module = DirtyPixelsISP(config.isp) if config.isp is not None else RawStem(config.raw_resolution)
        if config.task == "classification":
            self.head: nn.Module | None = Classifier(
                config.num_classes, config.pretrained_backbone, config.width_mult, config.dropout, config.stem_stride
            )
        elif config.task == "detection":
            self.head = CenterNetDetector(
                config.num_classes,
                config.pretrained_backbone,
                config.width_mult,
                size_activation=config.size_activation,
                stem_stride=config.stem_stride,
            )
        else:
            self.head = None

    @property
    def raw_scale(self) -> int:
        """How many times larger (per side) the raw is than the image the ISP gives: 1 or 2."""
        return self.config.raw_scale

    def image(self, packed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The image the perception head sees: (B, 3, H, W), or (B, 3, H/2, W/2) at half
        resolution."""
        return self.isp(packed, noise)

    def forward(self, packed: torch.Tensor, noise: torch.Tensor):
        """Logits (B, C) for classification, the detector's maps for detection, the sRGB
        image (B, 3, H / raw_scale, W / raw_scale) for reconstruction."""
        rgb = self.image(packed, noise)
        return rgb if self.head is None else self.head(rgb)
