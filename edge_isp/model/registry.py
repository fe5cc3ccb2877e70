"""Named model variants, each a frozen :class:`ModelConfig` (timm style).

Names: ``{isp}_{task}`` where the ISP part is ``dp_s``/``dp_m``/``dp_l`` (Dirty Pixels ISP with
U-Net widths 8/16/32, 16/32/64, 32/64/128), ``dpn_s``/``dpn_m`` (the same with the stabilized
signal rescaled to [0, 1] at every light level, ``IspNetConfig.unit_range``: for models that
see starlight to daylight), ``dpnh_s``/``dpnh_m`` (issue 17's fast variant: ``dpn_s``/``dpn_m``
with the whole ISP on the packed half-resolution planes, ``IspNetConfig.resolution = "half"``;
its raw is twice the picture's sides, ``ModelConfig.raw_scale`` 2; ``dpnh_*_det`` gives
MobileNetV2 a stride-1 stem so its feature maps match the full-resolution detector's for the
same raw, ``dpnh_*_cls`` keeps the stride-2 stem, the teacher's network at the teacher's scale),
``dpnhu_s``/``dpnhu_xs`` (``dpnh`` with the U-Net on 2x2-unshuffled maps, ``IspNetConfig.unet_stride``
2, widths 16/32/64 and 16/16/32: the same or two thirds of ``dpnh_s``'s MACs in ONNX Runtime's
16-channel blocks, a half to two thirds of its ISP's CPU time; bench/fast_variant.py; models/real-det is
``dpnhu_xs_det``),
``dp_s_noansc`` (the ablation without the Anscombe layers), ``raw`` (perception straight on
the packed raw: a 3x3 convolution and a pixel shuffle to the full-resolution image) or ``rawh``
(the same at half resolution: the 3x3 convolution's image is the packed planes' size, the
half-resolution models' pipeline (d); ``rawh_det`` with the stride-1 stem), and the task part
``cls``, ``det`` or ``rec`` (the ISP alone, for reconstruction pretraining).

Example:
    >>> model = create_model("dp_s_cls", num_classes=10, pretrained_backbone=False)
"""

from __future__ import annotations

import dataclasses

from edge_isp.errors import InvalidInputError
from edge_isp.model.isp import IspNetConfig
from edge_isp.model.joint import JointModel, ModelConfig

_ISPS: dict[str, IspNetConfig | None] = {
    "dp_s": IspNetConfig(widths=(8, 16, 32)),
    "dp_m": IspNetConfig(widths=(16, 32, 64)),
    "dp_l": IspNetConfig(widths=(32, 64, 128)),
    "dp_s_noansc": IspNetConfig(widths=(8, 16, 32), anscombe=False),
    "dpn_s": IspNetConfig(widths=(8, 16, 32), unit_range=True),
    "dpn_m": IspNetConfig(widths=(16, 32, 64), unit_range=True),
    "dpnh_s": IspNetConfig(widths=(8, 16, 32), unit_range=True, resolution="half"),
    "dpnh_m": IspNetConfig(widths=(16, 32, 64), unit_range=True, resolution="half"),
    "dpnhu_s": IspNetConfig(widths=(16, 32, 64), unit_range=True, resolution="half", unet_stride=2),
    "dpnhu_xs": IspNetConfig(widths=(16, 16, 32), unit_range=True, resolution="half", unet_stride=2),
    "raw": None,
    "rawh": None,
}
# The no-ISP models' input layer (ModelConfig.raw_resolution).
_RAW_RESOLUTION = {"raw": "full", "rawh": "half"}
_TASKS = {"cls": "classification", "det": "detection", "rec": "reconstruction"}


def _build_registry() -> dict[str, ModelConfig]:
    registry = {}
    for isp_name, isp in _ISPS.items():
        for task_name, task in _TASKS.items():
            if isp is None and task == "reconstruction":
                continue
            name = f"{isp_name}_{task_name}"
            raw_resolution = _RAW_RESOLUTION.get(isp_name, "full")
            half = raw_resolution == "half" if isp is None else isp.resolution == "half"
            # A half-resolution detector's stem keeps the resolution (module docstring).
            stem = 1 if half and task == "detection" else 2
            registry[name] = ModelConfig(name=name, task=task, isp=isp, stem_stride=stem, raw_resolution=raw_resolution)
    return registry


REGISTRY: dict[str, ModelConfig] = _build_registry()


def list_models(task: str | None = None) -> list[str]:
    """Registered names, optionally only those of one task."""
    return sorted(n for n, c in REGISTRY.items() if task is None or c.task == task)


def get_config(name: str, **overrides) -> ModelConfig:
    """The registered config, with fields replaced by ``overrides`` (e.g. num_classes)."""
    if name not in REGISTRY:
        raise InvalidInputError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    try:
        return dataclasses.replace(REGISTRY[name], **overrides)
    except TypeError as exc:
        raise InvalidInputError(f"bad override for model {name!r}: {exc}") from None


def create_model(name: str, **overrides) -> JointModel:
    """Build a registered model."""
    return JointModel(get_config(name, **overrides))
