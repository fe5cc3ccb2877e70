"""Training configuration: a frozen dataclass read from TOML, with dotted overrides.

A config file has one table per section (``[model]``, ``[data]``, ``[sensor]``, ``[optim]``,
``[loss]``, ``[run]``, ``[init]``, ``[baseline]``, ``[teacher]``, ``[quant]``) and optional per-stage tables that apply
only when that stage runs, e.g. ``[stage.isp.model] name = "dp_s_rec"``. Resolution order:
defaults, then the file's sections, then ``[stage.STAGE]``, then ``--set KEY=VALUE``
overrides (``--set optim.lr=1e-3``; the value is read as TOML, bare words as strings,
``none`` clears an optional key). A relative path in a config file is relative to the file's
folder; on the command line, to the working folder (:mod:`edge_isp.train.config_paths`).

Every key is checked: unknown keys, wrong types and out-of-range values raise
:class:`ConfigError` naming the key, what it expects and what it got. The resolved config
(``to_toml``) is written beside every checkpoint and loads back to an equal config.

Example:
    >>> config = load_config("configs/smoke.toml", stage="joint", overrides=["optim.lr=1e-3"])
    >>> config.optim.lr
    0.001
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import atomic_open, read_text
from edge_isp.teacher.detectors import DETECTION_DECODINGS
from edge_isp.tomlwrite import toml_value
from edge_isp.train.config_paths import relative_to_file, resolve_file_paths

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

STAGES = ("isp", "head", "joint", "baseline")
LIGHT_UNITS = ("lux", "electrons")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant", "step")
UNPROCESS_MODES = ("fixed", "random")
DATA_TASKS = ("classification", "detection")
TEACHER_DECODINGS = ("logits", *DETECTION_DECODINGS)
# How a batch's per-image distillation divergences combine (edge_isp.train.losses).
KD_BALANCES = ("mean", "log")


class ConfigError(InvalidInputError):
    """A training config key that is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """Which network. ``name`` is a registry name (``edge_isp.model.registry``);
    ``num_classes`` None takes the number of classes from the training data; ``dropout`` is
    the classifier's before its last layer (see :class:`~edge_isp.model.joint.ModelConfig`)."""

    name: str = "dp_s_cls"
    num_classes: int | None = None
    pretrained_backbone: bool = True
    width_mult: float = 1.0
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check(0 <= self.dropout < 1, "model.dropout", "in [0, 1)", self.dropout)
        _check(self.num_classes is None or self.num_classes >= 1, "model.num_classes", ">= 1", self.num_classes)
        _check(self.width_mult > 0, "model.width_mult", "> 0", self.width_mult)


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Where the images come from and how they are batched.

    ``root`` is a data set built by ``edge-isp data build`` (its ``classification/`` and
    ``detection/`` splits are used); ``train``/``val`` name a split directly instead: an
    image folder (``CLASS/IMAGE.png``) for classification, a COCO JSON file for detection
    (``train_images``/``val_images`` its images folder; by default found beside it).
    ``size`` (width, height) resizes every image; None keeps them as they are. ``task``
    picks which of the built data set's tasks supplies the images of the isp stage
    (reconstruction; default classification); other stages use their model's task.
    """

    root: str | None = None
    task: str | None = None
    train: str | None = None
    val: str | None = None
    train_images: str | None = None
    val_images: str | None = None
    size: tuple[int, int] | None = None
    batch_size: int = 16
    num_workers: int = 2
    train_limit: int | None = None
    val_limit: int | None = None
    hflip: bool = True

    def __post_init__(self) -> None:
        if self.task is not None:
            _check_choice(self.task, "data.task", DATA_TASKS)
        if self.size is not None:
            ok = all(s >= 16 and s % 2 == 0 for s in self.size)
            _check(ok, "data.size", "[width, height], even, >= 16 pixels", list(self.size))
        _check(self.batch_size >= 1, "data.batch_size", ">= 1", self.batch_size)
        _check(self.num_workers >= 0, "data.num_workers", ">= 0", self.num_workers)
        for key in ("train_limit", "val_limit"):
            value = getattr(self, key)
            _check(value is None or value >= 1, f"data.{key}", ">= 1 or none", value)


@dataclasses.dataclass(frozen=True)
class SensorSection:
    """How clean images become raw: the sensor profile and the light levels.

    ``light_range`` (low, high) is sampled log-uniformly per training image;
    ``val_light`` lists the fixed levels validation runs at (the metric is their mean).
    Both are in ``light_unit``: lux (through the profile) or photo-electrons at white.
    ``read_noise_range`` (low, high) multiplies the profile's read noise by a factor drawn
    log-uniformly per training image (validation simulates the profile itself): noise
    parameters off this one camera's line, as another sensor's would be. [1, 1]: off.
    ``light_split`` (level, fraction): that fraction of the training images is drawn
    log-uniformly below ``level``, the rest above it (both in ``light_unit``), so a range
    from starlight to daylight can still spend most samples in the dark; none: one
    log-uniform draw over the whole range.
    """

    profile: str = "nexus6p-rear"
    light_unit: str = "lux"
    light_range: tuple[float, float] = (2.0, 200.0)
    val_light: tuple[float, ...] = (3.0, 30.0)
    unprocess: str = "fixed"
    blur: str = "none"
    analogue_gain: float | None = None
    quantize: bool = True
    read_noise_range: tuple[float, float] = (1.0, 1.0)
    light_split: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_choice(self.light_unit, "sensor.light_unit", LIGHT_UNITS)
        _check_choice(self.unprocess, "sensor.unprocess", UNPROCESS_MODES)
        low, high = self.light_range
        _check(0 < low <= high and math.isfinite(high), "sensor.light_range", "[low, high] with 0 < low <= high",
               list(self.light_range))  # fmt: skip
        _check(len(self.val_light) >= 1 and all(v > 0 and math.isfinite(v) for v in self.val_light),
               "sensor.val_light", "a non-empty list of positive levels", list(self.val_light))  # fmt: skip
        _check(self.analogue_gain is None or self.analogue_gain > 0, "sensor.analogue_gain", "> 0 or none (auto)",
               self.analogue_gain)  # fmt: skip
        low, high = self.read_noise_range
        _check(0 < low <= high and math.isfinite(high), "sensor.read_noise_range", "[low, high] with 0 < low <= high",
               list(self.read_noise_range))  # fmt: skip
        if self.light_split is not None:
            level, below = self.light_split
            low, high = self.light_range
            _check(low < level < high and 0 < below < 1, "sensor.light_split",
                   f"[level, fraction] with level inside light_range ({low:g}, {high:g}) and 0 < fraction < 1",
                   list(self.light_split))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class OptimSection:
    """Optimizer and learning-rate schedule (stepped every iteration).

    ``isp_lr_scale`` multiplies the learning rate of the ISP's parameters (joint stage).
    ``freeze_head_bn`` keeps the perception head's BatchNorm layers in inference mode while
    training (their running statistics fixed, their scale and shift still learnt): a student
    that starts as its teacher keeps the teacher's statistics instead of trading them for
    those of 16-image batches.
    ``grad_clip`` caps the gradient norm (0: no cap). ``schedule``: cosine to zero over the
    run, constant, or step (times ``gamma`` every ``step_epochs``); ``warmup_steps`` ramps
    linearly from zero first.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_steps: int = 0
    step_epochs: int = 10
    gamma: float = 0.1
    grad_clip: float = 5.0
    isp_lr_scale: float = 1.0
    freeze_head_bn: bool = False

    def __post_init__(self) -> None:
        _check_choice(self.name, "optim.name", OPTIMIZERS)
        _check_choice(self.schedule, "optim.schedule", SCHEDULES)
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr", "> 0", self.lr)
        _check(self.weight_decay >= 0, "optim.weight_decay", ">= 0", self.weight_decay)
        _check(0 <= self.momentum < 1, "optim.momentum", "in [0, 1)", self.momentum)
        _check(self.warmup_steps >= 0, "optim.warmup_steps", ">= 0", self.warmup_steps)
        _check(self.step_epochs >= 1, "optim.step_epochs", ">= 1", self.step_epochs)
        _check(0 < self.gamma <= 1, "optim.gamma", "in (0, 1]", self.gamma)
        _check(self.grad_clip >= 0, "optim.grad_clip", ">= 0 (0: no clipping)", self.grad_clip)
        _check(self.isp_lr_scale >= 0, "optim.isp_lr_scale", ">= 0", self.isp_lr_scale)


@dataclasses.dataclass(frozen=True)
class LossSection:
    """Loss weights. Reconstruction: ``rec_l1`` * L1 + ``rec_ssim`` * (1 - SSIM) + ``rec_log_mse``
    * the batch's mean log-MSE (minus its mean PSNR: each light level weighs the same,
    :func:`edge_isp.train.losses.reconstruction_loss`); the joint
    stage adds ``joint_rec`` times that to the task loss. Detection: CenterNet's focal
    heatmap loss and L1 size/offset losses with these weights."""

    rec_l1: float = 1.0
    rec_ssim: float = 0.0
    rec_log_mse: float = 0.0
    joint_rec: float = 0.0
    det_heatmap: float = 1.0
    det_size: float = 0.1
    det_offset: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check(value >= 0 and math.isfinite(value), f"loss.{field.name}", ">= 0", value)
        rec = self.rec_l1 + self.rec_ssim + self.rec_log_mse
        _check(rec > 0, "loss.rec_l1", "rec_l1 + rec_ssim + rec_log_mse > 0", self.rec_l1)
        _check(self.label_smoothing < 1, "loss.label_smoothing", "< 1", self.label_smoothing)


@dataclasses.dataclass(frozen=True)
class RunSection:
    """The run: length, seed, device, output folder, checkpoints.

    ``max_steps`` stops early (with a checkpoint) after that many optimizer steps in total;
    ``checkpoint_every`` also checkpoints every that many steps inside an epoch.
    ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    ``deterministic`` asks torch for deterministic kernels (slower on CUDA).
    ``channels_last`` keeps the network's weights and activations in NHWC memory order,
    which oneDNN's CPU convolutions (MobileNetV2's depthwise ones above all) run much faster.
    """

    epochs: int = 10
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    progress: bool = True
    deterministic: bool = False
    channels_last: bool = True
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "run.epochs", ">= 1", self.epochs)
        _check(self.max_steps is None or self.max_steps >= 1, "run.max_steps", ">= 1 or none", self.max_steps)
        _check(self.seed >= 0, "run.seed", ">= 0", self.seed)
        ok = re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None
        _check(ok, "run.device", "auto, cpu, cuda or cuda:N", self.device)
        every = self.checkpoint_every
        _check(every is None or every >= 1, "run.checkpoint_every", ">= 1 or none", every)


@dataclasses.dataclass(frozen=True)
class InitSection:
    """Checkpoints to start from: the ISP (``isp``, e.g. the isp stage's best.pt) and the
    perception head (``head``, e.g. the head stage's best.pt). Their matching submodules
    are loaded into the model; the rest stays as created."""

    isp: str | None = None
    head: str | None = None


@dataclasses.dataclass(frozen=True)
class BaselineSection:
    """The conventional ISP the baseline stage trains its head on (``edge_isp.isp``)."""

    demosaic: str = "malvar"
    denoise: str = "none"


@dataclasses.dataclass(frozen=True)
class TeacherSection:
    """A model that answers on the clean image; the student learns its answers (no labels).

    ``model``: ``mobilenet_v2_imagenet`` (torchvision's ImageNet MobileNetV2, 1000 classes),
    a training checkpoint (``.pt``: its perception head on the clean sRGB), or a model file
    run by ONNX Runtime (``.onnx``) or OpenCV DNN (``.tflite``, ...) with its outputs read by
    ``decode``; ``ssd``, ``blazeface`` and ``mtcnn`` find their own file when none is given and
    ``hog`` needs none (OpenCV's built-in people detector). Teachers run
    once per image, when the cache (``cache``, default ``DATA/teacher``) is built, never in a
    training step. ``input_size`` (width, height) is what the teacher sees (none: its own
    default; a model file's input scaling is in ``MODEL.preprocess.json`` beside it).
    Classification: ``kd_weight`` times the KL divergence of the
    ``temperature``-softened answers (times temperature squared, Hinton et al. 2015), plus
    ``label_weight`` times the cross-entropy where the data has labels. ``kd_balance``: how
    the batch's per-image KL divergences combine: ``mean`` (their mean), or ``log`` (the mean
    of log(KL + ``kd_log_eps``), each image's divergence counted relative to its own size, as
    ``loss.rec_log_mse`` does for reconstruction: a batch from 0.5 lux to daylight is otherwise
    ruled by the dark images' large divergences). ``kd_log_eps`` (default 0.01) is the dial
    between the two: an image's gradient is its divergence's times 1 / (KL + eps), so a large eps
    weighs every image alike (the mean, scaled by 1 / eps) and a small one counts each relative to
    its own size. Detection: the
    teacher's boxes scoring at least ``score_threshold`` (of ``classes`` only, if given) are
    the student's targets; ``tiles`` [columns, rows] also runs a detection teacher on that
    grid of overlapping tiles of each image (small objects seen larger; merged by NMS).
    """

    model: str | None = None
    decode: str = "logits"
    input_size: tuple[int, int] | None = None
    temperature: float = 4.0
    kd_weight: float = 1.0
    label_weight: float = 0.0
    kd_balance: str = "mean"
    kd_log_eps: float = 0.01
    score_threshold: float = 0.5
    classes: tuple[str, ...] = ()
    tiles: tuple[int, int] | None = None
    cache: str | None = None

    def __post_init__(self) -> None:
        _check_choice(self.decode, "teacher.decode", TEACHER_DECODINGS)
        _check(self.temperature > 0 and math.isfinite(self.temperature), "teacher.temperature", "> 0",
               self.temperature)  # fmt: skip
        for key in ("kd_weight", "label_weight"):
            value = getattr(self, key)
            _check(value >= 0 and math.isfinite(value), f"teacher.{key}", ">= 0", value)
        _check_choice(self.kd_balance, "teacher.kd_balance", KD_BALANCES)
        ok = self.kd_log_eps > 0 and math.isfinite(self.kd_log_eps)
        _check(ok, "teacher.kd_log_eps", "> 0", self.kd_log_eps)
        _check(0 <= self.score_threshold < 1, "teacher.score_threshold", "in [0, 1)", self.score_threshold)
        if self.input_size is not None:
            ok = all(s >= 16 for s in self.input_size)
            _check(ok, "teacher.input_size", "[width, height], >= 16 pixels", list(self.input_size))
        if self.tiles is not None:
            ok = all(1 <= n <= 8 for n in self.tiles) and self.decode != "logits"
            _check(ok, "teacher.tiles", "[columns, rows] of 1 to 8, for a detection teacher", list(self.tiles))

    @property
    def enabled(self) -> bool:
        """Whether a teacher is named: a model file, or a detector that has its own (ssd, hog...)."""
        return self.model is not None or self.decode != "logits"


@dataclasses.dataclass(frozen=True)
class QuantSection:
    """Quantization-aware fine-tuning (:mod:`edge_isp.train.qat`). ``fake_quant``: every
    forward pass rounds the layers the INT8 export quantizes to 8 bits (weights per output
    channel, layer inputs per tensor) with straight-through gradients; meant for a few epochs
    from a checkpoint trained in float (``init.isp``/``init.head``) at a small learning rate.
    The activation ranges are the ``percentile`` of each layer's ``|input|`` over
    ``calib_batches`` training batches (simulated at their random light levels) when the run
    starts, as the export calibrates; they are kept in the checkpoint for a resumed run.
    """

    fake_quant: bool = False
    percentile: float = 99.99
    calib_batches: int = 8

    def __post_init__(self) -> None:
        _check(0 < self.percentile <= 100, "quant.percentile", "in (0, 100]", self.percentile)
        _check(self.calib_batches >= 1, "quant.calib_batches", ">= 1", self.calib_batches)


def recorded_teacher(train: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``[teacher]`` table of a resolved training config (a checkpoint's ``train_config``)
    when it names a teacher (the rule of :attr:`TeacherSection.enabled`), else None."""
    teacher = train.get("teacher")
    if not isinstance(teacher, Mapping) or not (teacher.get("model") or teacher.get("decode", "logits") != "logits"):
        return None
    return dict(teacher)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; see the module docstring."""

    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    sensor: SensorSection = dataclasses.field(default_factory=SensorSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    loss: LossSection = dataclasses.field(default_factory=LossSection)
    run: RunSection = dataclasses.field(default_factory=RunSection)
    init: InitSection = dataclasses.field(default_factory=InitSection)
    baseline: BaselineSection = dataclasses.field(default_factory=BaselineSection)
    teacher: TeacherSection = dataclasses.field(default_factory=TeacherSection)
    quant: QuantSection = dataclasses.field(default_factory=QuantSection)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (tuples as lists), the inverse of :meth:`from_dict`."""
        return {
            f.name: {
                k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(getattr(self, f.name)).items()
            }
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "config") -> TrainConfig:
        """Build and validate from a nested dict; errors name ``origin`` and the key."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin}: expected a table of sections, got {type(data).__name__}")
        sections = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{origin}: unknown section(s) {', '.join(unknown)}; expected {', '.join(sections)}")
        built = {}
        for name in sections:
            section_type = typing.get_type_hints(cls)[name]
            values = data.get(name, {})
            if not isinstance(values, Mapping):
                raise ConfigError(f"{origin}: [{name}] must be a table, got {values!r}")
            built[name] = _build_section(section_type, name, values, origin)
        return cls(**built)

    def to_toml(self, saved_in: str | Path | None = None) -> str:
        """The resolved config as TOML. Keys that are none are left out: TOML has no null, and
        every optional key defaults to none, so the text loads back to an equal config. With
        ``saved_in`` (the file it is written to) relative paths are written relative to it."""
        data = self.to_dict() if saved_in is None else relative_to_file(self.to_dict(), saved_in)
        lines = []
        for section, values in data.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
            lines.append("")
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_toml` atomically."""
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write(self.to_toml(saved_in=path))


def _check(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"config key {key!r} must be {expected}, got {got!r}")


def _check_choice(value: str, key: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    _check(value in choices, key, f"one of {', '.join(choices)}", value)


def _build_section(section_type: type, name: str, values: Mapping[str, Any], origin: str):
    hints = typing.get_type_hints(section_type)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; [{name}] takes {', '.join(hints)}"
        )
    kwargs = {key: _coerce(value, hints[key], f"{name}.{key}") for key, value in values.items()}
    try:
        return section_type(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``hint``; lists become tuples, ints floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(value, inner, key)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key {key!r} must be a list of {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 1e300:  # float() would overflow; no setting is that large
            raise ConfigError(f"config key {key!r} must be a number, got an integer of {len(str(abs(value)))} digits")
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"config key {key!r} must be {_type_name(hint)}, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` -> (["optim", "lr"], 0.001).

    The value is read as TOML, except for text keys (names, paths), which take the text
    as written (quotes optional). ``none`` or ``null`` clears a key that may be none.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+", key):
        raise ConfigError(f"an override must look like SECTION.KEY=VALUE (e.g. optim.lr=1e-3), got {text!r}")
    path, raw = key.split("."), raw.strip()
    hint = _field_hint(path)
    options = typing.get_args(hint) if hint is not None else ()
    if raw.lower() in ("none", "null") and type(None) in options:
        return path, None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if str in (hint, *options) and not isinstance(value, str):
        value = raw
    return path, value


def _field_hint(path: list[str]) -> Any:
    """The annotation of SECTION.KEY, or None for a key that does not exist."""
    if len(path) != 2:
        return None
    sections = typing.get_type_hints(TrainConfig)
    if path[0] not in sections:
        return None
    return typing.get_type_hints(sections[path[0]]).get(path[1])


def _set_path(data: dict, path: list[str], value: Any, origin: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(path)} cannot be set: {part!r} is not a table")
        node = child
    node[path[-1]] = value


def _merge(base: dict, extra: Mapping, origin: str, prefix: str = "") -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping):
            child = base.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{origin}: {prefix}{key} is a table here but a value elsewhere")
            _merge(child, value, origin, f"{prefix}{key}.")
        else:
            base[key] = value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML raises an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {path} does not exist (see configs/*.toml for examples)")
    try:
        return tomllib.loads(read_text(path, "config file"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(
    path: str | Path | None = None, *, stage: str | None = None, overrides: Iterable[str] = ()
) -> TrainConfig:
    """Resolve a config: defaults <- file <- ``[stage.STAGE]`` <- ``overrides`` (KEY=VALUE)."""
    data = read_toml(path) if path is not None else {}
    origin = str(path) if path is not None else "config"
    per_stage = data.pop("stage", {})
    if not isinstance(per_stage, dict) or not set(per_stage) <= set(STAGES):
        extra = sorted(set(per_stage) - set(STAGES)) if isinstance(per_stage, dict) else per_stage
        raise ConfigError(f"{origin}: [stage.*] tables must be named {', '.join(STAGES)}, got {extra}")
    if stage is not None:
        _check_choice(stage, "stage", STAGES)
        _merge(data, per_stage.get(stage, {}), origin)
    if path is not None:
        data = resolve_file_paths(data, path)
    for text in overrides:
        path_parts, value = parse_override(text)
        _set_path(data, path_parts, value, f"--set {text}")
    return TrainConfig.from_dict(data, origin)
