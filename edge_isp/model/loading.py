"""A network from a training checkpoint, or a registered model with fresh weights: what the export
starts from and what the runtime's torch backend runs.

A checkpoint written by ``edge-isp train`` (:mod:`edge_isp.train.checkpoint`) carries the
resolved ``ModelConfig``, the class names and the training config, from which the export
takes its defaults: the sensor profile (``sensor.profile``), the light levels validation ran
at (``sensor.val_light`` in ``sensor.light_unit``) and the image size (``data.size``).

The checkpoint's stage also decides what the export takes by default
(:func:`default_input_kind`): the ``head`` and ``baseline`` stages trained the perception network
alone on sRGB pictures (clean ones, or the conventional ISP's rendering of simulated raw), so it
exports with an ``rgb`` input, recording the conventional ISP a baseline was trained behind; the
raw stages export the fused model with the ``raw`` and ``noise`` inputs.

A registry name ("dp_s_det") builds that model untrained: for latency benchmarks and for
trying the export pipeline, never for deployment (its answers mean nothing).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edge_isp.contract.metadata import INPUT_KINDS, NoiseRange
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.model.registry import REGISTRY, create_model
from edge_isp.train.batches import RawBatcher
from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint
from edge_isp.train.config import BaselineSection, TrainConfig, recorded_teacher

DEFAULT_PROFILE = "nexus6p-rear"
# Stages that train the perception network alone on sRGB pictures (edge_isp.train.stages).
RGB_STAGES = ("head", "baseline")


@dataclasses.dataclass
class LoadedModel:
    """A network ready to export, with what its source says about it.

    Attributes:
        model: the ``JointModel`` in eval mode.
        class_names: one name per class (generic ``class_N`` for an untrained model).
        profile: the sensor profile name or path it was trained for.
        input_size: (width, height) of the raw frame it was trained at (``data.size`` times its
            ``raw_scale``), or None if unknown.
        light_levels: the validation light levels of its training, or None.
        light_unit: "lux" or "electrons" (the unit of ``light_levels``).
        source: the checkpoint path or "untrained NAME".
        trained: False for a registry model with fresh weights.
        noise_range: the noise levels ``(a, sigma)`` its raw training drew from (None for a
            model not trained on raw); the exported metadata records it for the runtime.
        stage: the training stage that wrote the checkpoint ("isp", "head", "joint",
            "baseline"), or None (a registry model, or a checkpoint that does not say).
        conventional_isp: for a baseline checkpoint, the conventional ISP its head was trained
            behind (``{"demosaic", "denoise"}``), else None.
        teacher: the ``[teacher]`` table it was distilled from, or None.
    """

    model: Any
    class_names: list[str]
    profile: str
    input_size: tuple[int, int] | None
    light_levels: tuple[float, ...] | None
    light_unit: str
    source: str
    trained: bool
    noise_range: NoiseRange | None = None
    stage: str | None = None
    conventional_isp: dict[str, str] | None = None
    teacher: dict[str, Any] | None = None

    @property
    def config(self):
        return self.model.config


def default_input_kind(loaded: LoadedModel, asked: str = "auto") -> str:
    """The input kind to export ``loaded`` with: ``asked`` ("raw" or "rgb"), or for "auto"
    "rgb" for a checkpoint of a stage in :data:`RGB_STAGES`, else "raw"."""
    if asked == "auto":
        return "rgb" if loaded.stage in RGB_STAGES else "raw"
    if asked not in INPUT_KINDS:
        raise InvalidInputError(f"input kind must be auto, {' or '.join(INPUT_KINDS)}, got {asked!r}")
    return asked


def load_model(source: str | Path, **overrides: Any) -> LoadedModel:
    """Load a checkpoint (a ``.pt`` file) or build a registered model untrained.

    ``overrides`` apply to a registered model's config only (``num_classes``,
    ``width_mult``...); ``pretrained_backbone`` defaults to False for it, so nothing is read
    from the ImageNet weights file unless asked.
    """
    path = Path(source)
    if path.suffix in (".pt", ".pth") or path.exists():
        if overrides:
            raise InvalidInputError(
                f"model overrides {sorted(overrides)} apply to registered models only; {path} is a checkpoint "
                "whose config is fixed by its training"
            )
        return _from_checkpoint(path)
    name = str(source)
    if name not in REGISTRY:
        raise MissingFileError(
            f"{name!r} is neither a checkpoint file nor a registered model; registered: {', '.join(sorted(REGISTRY))}"
        )
    overrides.setdefault("pretrained_backbone", False)
    model = create_model(name, **overrides).eval()
    return LoadedModel(
        model=model,
        class_names=[f"class_{i}" for i in range(model.config.num_classes)],
        profile=DEFAULT_PROFILE,
        input_size=None,
        light_levels=None,
        light_unit="lux",
        source=f"untrained {name}",
        trained=False,
    )


def _from_checkpoint(path: Path) -> LoadedModel:
    data = load_checkpoint(path)
    model = model_from_checkpoint(path)
    config = model.config
    names = data.get("class_names") or []
    if not isinstance(names, (list, tuple)):
        raise InvalidInputError(f"{path}: its class_names must be a list, got {type(names).__name__}")
    names = [str(n) for n in names]
    if config.task != "reconstruction" and len(names) != config.num_classes:
        # A model trained with extra (unused) outputs still needs a name per output.
        names = names + [f"class_{i}" for i in range(len(names), config.num_classes)]
    try:
        train = data.get("train_config") or {}
        sensor = train.get("sensor") or {}
        size = (train.get("data") or {}).get("size")
        levels = sensor.get("val_light")
        stage = data.get("stage")
        conventional = None
        if stage == "baseline":
            baseline = {**dataclasses.asdict(BaselineSection()), **(train.get("baseline") or {})}
            conventional = {"demosaic": str(baseline["demosaic"]), "denoise": str(baseline["denoise"])}
        noise_range = None
        if data.get("stage") in ("isp", "joint") and train:
            section = TrainConfig.from_dict(train, str(path)).sensor
            noise_range = NoiseRange(**RawBatcher.from_config(section).noise_range())
        return LoadedModel(
            model=model,
            class_names=names,
            profile=str(sensor.get("profile") or DEFAULT_PROFILE),
            input_size=(int(size[0]) * config.raw_scale, int(size[1]) * config.raw_scale) if size else None,
            light_levels=tuple(float(v) for v in levels) if levels else None,
            light_unit=str(sensor.get("light_unit") or "lux"),
            source=str(path),
            trained=True,
            noise_range=noise_range,
            stage=str(stage) if stage else None,
            conventional_isp=conventional,
            teacher=recorded_teacher(train),
        )
    except (AttributeError, TypeError, ValueError, IndexError) as exc:  # a hand-edited or damaged train_config
        raise InvalidInputError(f"{path}: its train_config is damaged ({type(exc).__name__}: {exc})") from None
