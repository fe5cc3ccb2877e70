"""Networks: the Dirty Pixels ISP and the perception backbones and heads (needs torch)."""

from edge_isp.model.imagenet_classes import imagenet_class_names
from edge_isp.model.mobilenet import (
    DEFAULT_FEATURE_STRIDES,
    FEATURE_TAPS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MobileNetV2,
    make_divisible,
    mobilenet_v2,
)
from edge_isp.model.weights import load_mobilenet_v2_state_dict, mobilenet_v2_weights_path

__all__ = [
    "DEFAULT_FEATURE_STRIDES",
    "FEATURE_TAPS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MobileNetV2",
    "imagenet_class_names",
    "load_mobilenet_v2_state_dict",
    "make_divisible",
    "mobilenet_v2",
    "mobilenet_v2_weights_path",
]
