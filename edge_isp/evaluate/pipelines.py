"""The six pipelines of the study, each from raw to the task's answer and the image it made.

Every pipeline takes one :class:`EvalBatch` (a simulated raw batch, shared by all of them so
they see the same frames and the same noise draws) and returns a :class:`PipelineOutput`:

- (a) ``a``: the conventional ISP -> the perception head trained on clean images (``head``);
- (b) ``b``: the conventional ISP -> the head fine-tuned on the conventional ISP's output
  (``baseline``);
- (c) ``c``: the ISP trained for reconstruction, frozen (``isp``) -> the clean head (``head``);
- (d) ``d``: perception straight on the packed raw, no ISP (``raw``); it makes no image;
- (e) ``e``: the joint ISP + perception trained end to end, Dirty Pixels (``joint``);
- (f) ``f``: the joint model without the Anscombe layers (``noansc``).

In brackets the checkpoint role each needs. A role's checkpoint comes from a run folder
(:data:`RUN_FOLDERS`, the folders the configs in ``configs/`` write) or is named directly as
``ROLE=PATH``; ``ROLE:LABEL=PATH`` adds a labelled variant (e.g. two joint models trained on
different light ranges: ``joint:dark=...``, ``joint:bright=...``). A pipeline whose
checkpoints are missing is skipped with a note, never stood in for.

Raw larger than the picture (``EvalBatch.raw_scale`` 2: a half-resolution model's, issue 17):
every pipeline gets the same raw, simulated at twice the picture's sides, and is scored on the
picture at the evaluation size. A half-resolution ISP gives that picture itself; a
full-resolution learned ISP, the raw stem and the conventional ISP render the whole raw and
their image is area-averaged by 2 (:func:`to_picture`) before the head sees it: the same
sensor pixels for everyone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.model.heads import DETECTOR_STRIDE
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import SimulatedRaw
from edge_isp.train.batches import area_downsample, conventional_isp_batch
from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint
from edge_isp.train.config import recorded_teacher

ROLES = ("head", "baseline", "isp", "raw", "joint", "noansc")
# Role -> run folder below runs/<task>/ (configs/classification.toml and detection.toml).
RUN_FOLDERS = {
    "head": "head",
    "baseline": "baseline",
    "isp": "isp",
    "raw": "joint-raw",
    "joint": "joint",
    "noansc": "joint-noansc",
}
PIPELINE_TEXT = {
    "a": ("conventional ISP + clean head", ("head",)),
    "b": ("conventional ISP + fine-tuned head", ("baseline",)),
    "c": ("reconstruction ISP + clean head", ("isp", "head")),
    "d": ("raw, no ISP", ("raw",)),
    "e": ("joint (Dirty Pixels)", ("joint",)),
    "f": ("joint, no Anscombe", ("noansc",)),
}


@dataclasses.dataclass(frozen=True)
class PipelineOutput:
    """``prediction``: logits (B, C), the detector's maps (dict), or None (reconstruction
    pipelines); ``image``: the sRGB (B, 3, H, W) about [0, 1] it made, or None (pipeline d);
    ``det_stride``: the detector maps' stride in picture pixels (``CenterNetDetector.stride``)."""

    prediction: Any
    image: Tensor | None
    det_stride: int = DETECTOR_STRIDE


class EvalBatch:
    """One simulated raw batch fed to every pipeline, with the conventional ISP's rendering
    made once, on first use, and shared (pipelines a and b see the very same image).
    ``raw_scale``: how many times the scored picture's sides the raw has (module docstring)."""

    def __init__(
        self,
        sim: SimulatedRaw,
        profile: SensorProfile,
        demosaic: str,
        denoise: str,
        workers: int = 1,
        raw_scale: int = 1,
    ):
        self.sim = sim
        self.raw_scale = int(raw_scale)
        self.profile = profile
        self.demosaic = demosaic
        self.denoise = denoise
        self.workers = workers
        self._conventional: Tensor | None = None

    @property
    def conventional(self) -> Tensor:
        """The conventional ISP's sRGB on [0, 1], on the raw's device, at the picture's size
        (rendered from the whole raw, area-averaged by ``raw_scale``)."""
        if self._conventional is None:
            rgb = conventional_isp_batch(self.sim, self.profile, self.demosaic, self.denoise, self.workers)
            self._conventional = area_downsample(rgb, self.raw_scale).contiguous()
        return self._conventional


def to_picture(image: Tensor, isp: nn.Module, batch: EvalBatch) -> Tensor:
    """An ISP's image brought to the batch's picture size: a full-resolution ISP's (or the raw
    stem's) image of a raw at ``raw_scale`` 2 is area-averaged by 2; a half-resolution ISP's
    already is the picture. An ISP whose raw must be larger than the batch's is refused."""
    own = int(getattr(isp, "raw_scale", 1))
    if own > batch.raw_scale:
        raise InvalidInputError(
            f"a half-resolution ISP needs its raw at {own}x the picture, but the evaluation simulated it at "
            f"{batch.raw_scale}x: evaluate with raw_scale {own} (edge-isp eval --raw-scale {own})"
        )
    return area_downsample(image, batch.raw_scale // own)


@dataclasses.dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint's raw was simulated from in training: the sensor profile (name or
    path), the light range and its unit, the lens blur and the factor range on the
    profile's read noise; for the generalization view of the report."""

    profile: str
    light_range: tuple[float, float]
    light_unit: str
    blur: str = "none"
    read_noise_range: tuple[float, float] = (1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "light_range": list(self.light_range),
            "light_unit": self.light_unit,
            "blur": self.blur,
            "read_noise_range": list(self.read_noise_range),
        }


@dataclasses.dataclass
class Pipeline:
    """A named callable ``EvalBatch -> PipelineOutput``.

    ``key`` is short and unique ("a", "e:dark", "conv-nlm"); ``has_image`` says whether it
    makes an image (PSNR/SSIM are n/a otherwise); ``checkpoints`` names its files;
    ``trained_on`` is None when its image path saw no raw in training (pipeline a), and
    ``training`` then says in words what it was trained on, if anything.
    """

    key: str
    label: str
    run: Callable[[EvalBatch], PipelineOutput]
    has_image: bool = True
    checkpoints: dict[str, str] = dataclasses.field(default_factory=dict)
    trained_on: TrainedOn | None = None
    training: str = "not learned"

    def __call__(self, batch: EvalBatch) -> PipelineOutput:
        with torch.no_grad():
            return self.run(batch)

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "has_image": self.has_image,
            "checkpoints": dict(self.checkpoints),
            "trained_on": self.trained_on.to_dict() if self.trained_on else None,
            "training": self.training,
        }


@dataclasses.dataclass
class LoadedCheckpoint:
    """A checkpoint's model (eval mode, on the device) and what it says about its training."""

    path: Path
    model: nn.Module
    stage: str
    class_names: list[str] | None
    trained_on: TrainedOn | None
    baseline_isp: tuple[str, str] | None
    image_size: tuple[int, int] | None
    teacher: dict[str, Any] | None = None


@dataclasses.dataclass
class PipelineSet:
    """What :func:`build_pipelines` made: the pipelines; notes on those skipped and why;
    the conventional ISP (demosaic, denoise) the baseline head was fine-tuned on (None
    without a baseline), so that pipelines a and b use it; the (width, height) the
    checkpoints were trained at (None if they did not resize); the class names they were
    trained on, in order (None if none records them); the ``[teacher]`` they learnt from
    (None for labelled data); the largest ``raw_scale`` among their models (the raw an
    evaluation of them all must simulate)."""

    pipelines: list[Pipeline]
    notes: list[str]
    baseline_isp: tuple[str, str] | None
    image_size: tuple[int, int] | None
    class_names: list[str] | None
    teacher: dict[str, Any] | None = None
    raw_scale: int = 1


def parse_checkpoint_args(items: list[str]) -> dict[str, Path]:
    """``ROLE[:LABEL]=PATH`` strings -> {"ROLE[:LABEL]": path}, roles checked."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        role, _, label = name.partition(":")
        if not sep or not path or role not in ROLES or (":" in name and not label):
            raise InvalidInputError(
                f"--checkpoint takes ROLE=PATH or ROLE:LABEL=PATH with ROLE one of {', '.join(ROLES)}, got {item!r}"
            )
        out[name] = Path(path)
    return out


def discover_checkpoints(runs: str | Path, task: str) -> dict[str, Path]:
    """The ``best.pt`` of each role found under ``runs/<task>/`` (or ``runs/`` itself when it
    holds the role folders directly). Roles without one are left out."""
    runs = Path(runs)
    if not runs.is_dir():
        raise MissingFileError(f"runs folder {runs} does not exist (expected the run folders of `edge-isp train`)")
    base = runs / task if (runs / task).is_dir() else runs
    found = {role: base / folder / "best.pt" for role, folder in RUN_FOLDERS.items()}
    return {role: path for role, path in found.items() if path.is_file()}


def load_for_eval(path: str | Path, device: torch.device | str = "cpu") -> LoadedCheckpoint:
    """Read a training checkpoint for evaluation (see :class:`LoadedCheckpoint`)."""
    path = Path(path)
    data = load_checkpoint(path)
    model = model_from_checkpoint(path).to(device).eval()
    train = data.get("train_config") or {}
    sensor, stage = train.get("sensor"), data.get("stage")
    trained_on = None
    if sensor and stage in ("isp", "joint", "baseline"):
        trained_on = TrainedOn(
            str(sensor["profile"]),
            tuple(sensor["light_range"]),
            str(sensor["light_unit"]),
            str(sensor.get("blur", "none")),
            tuple(sensor.get("read_noise_range", (1.0, 1.0))),
        )
    baseline = train.get("baseline")
    isp = (str(baseline["demosaic"]), str(baseline["denoise"])) if baseline and stage == "baseline" else None
    names = data.get("class_names")
    size = (train.get("data") or {}).get("size")
    size = (int(size[0]), int(size[1])) if size else None
    teacher = recorded_teacher(train)
    return LoadedCheckpoint(path, model, str(stage), list(names) if names else None, trained_on, isp, size, teacher)


def check_class_names(checkpoint_names: list[str] | None, data_names: list[str], origin: str) -> None:
    """Refuse evaluation data whose classes (in order) differ from a checkpoint's."""
    if checkpoint_names is not None and list(checkpoint_names) != list(data_names):
        raise InvalidInputError(
            f"{origin} was trained on classes {list(checkpoint_names)}, but the evaluation data has "
            f"{list(data_names)} (the same names in the same order are needed)"
        )


def _check_task(loaded: LoadedCheckpoint, role: str, task: str, class_names: list[str] | None) -> None:
    config = loaded.model.config
    if role == "isp":
        if config.isp is None:
            raise InvalidInputError(f"checkpoint for 'isp' ({loaded.path}) is model {config.name!r}, which has no ISP")
        return
    if config.task != task:
        raise InvalidInputError(
            f"checkpoint for {role!r} ({loaded.path}) is a {config.task} model ({config.name!r}); "
            f"expected a {task} model"
        )
    wanted = {"raw": None, "joint": True, "noansc": False}
    if role in wanted:
        anscombe = None if config.isp is None else config.isp.anscombe
        if anscombe != wanted[role]:
            want = {"raw": "no ISP (e.g. raw_cls)", "joint": "an ISP with Anscombe layers (e.g. dp_s_cls)",
                    "noansc": "an ISP without Anscombe layers (e.g. dp_s_noansc_cls)"}[role]  # fmt: skip
            raise InvalidInputError(
                f"checkpoint for {role!r} ({loaded.path}) is model {config.name!r}; that role takes a model with {want}"
            )
    if class_names is not None and loaded.class_names is not None:
        check_class_names(loaded.class_names, class_names, f"checkpoint {loaded.path}")


def _stride(head: nn.Module | None) -> int:
    return int(getattr(head, "stride", DETECTOR_STRIDE))


def _conventional(head: nn.Module) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        image = batch.conventional
        return PipelineOutput(head(image), image, _stride(head))

    return run


def _isp_then_head(isp: nn.Module, head: nn.Module | None) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        image = to_picture(isp(batch.sim.packed, batch.sim.noise), isp, batch)
        return PipelineOutput(head(image) if head is not None else None, image, _stride(head))

    return run


def _raw(model: nn.Module) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        image = to_picture(model.isp(batch.sim.packed, batch.sim.noise), model.isp, batch)
        return PipelineOutput(model.head(image), None, _stride(model.head))

    return run


def build_pipelines(
    task: str,
    checkpoints: Mapping[str, str | Path],
    device: torch.device | str = "cpu",
    class_names: list[str] | None = None,
) -> PipelineSet:
    """The pipelines that ``checkpoints`` ({"ROLE[:LABEL]": path}) make possible; each
    checkpoint is checked against ``task`` and ``class_names`` (by default the class names
    of the first checkpoint that records them, so that they all agree)."""
    if task not in ("classification", "detection"):
        raise InvalidInputError(f"task must be classification or detection, got {task!r}")
    loaded: dict[str, LoadedCheckpoint] = {}
    for name, path in checkpoints.items():
        role = name.partition(":")[0]
        if role not in ROLES:
            raise InvalidInputError(f"unknown checkpoint role {role!r}; expected one of {', '.join(ROLES)}")
        loaded[name] = load_for_eval(path, device)
        class_names = class_names or loaded[name].class_names
        _check_task(loaded[name], role, task, class_names)

    def variants(role: str) -> list[tuple[str, LoadedCheckpoint]]:
        return [(n.partition(":")[2], c) for n, c in loaded.items() if n.partition(":")[0] == role]

    def key_label(key: str, suffix: str) -> tuple[str, str]:
        text = PIPELINE_TEXT[key][0]
        return (f"{key}:{suffix}", f"({key}) {text} [{suffix}]") if suffix else (key, f"({key}) {text}")

    pipelines: list[Pipeline] = []
    notes: list[str] = []
    head = loaded.get("head")
    for key, (text, roles) in PIPELINE_TEXT.items():
        main_role = roles[0]
        found = variants(main_role)
        if not found or (key == "c" and head is None):
            missing = [r for r in roles if not variants(r)]
            why = f"no checkpoint for {', '.join(missing)}" if missing else "it takes the unlabelled head=PATH"
            notes.append(f"({key}) {text}: skipped, {why}")
            continue
        for suffix, ckpt in found:
            k, label = key_label(key, suffix)
            files = {main_role: str(ckpt.path)}
            model = ckpt.model
            if key in ("a", "b"):
                run = _conventional(model.head)
            elif key == "c":
                files["head"] = str(head.path)
                run = _isp_then_head(model.isp, head.model.head)
            elif key == "d":
                run = _raw(model)
            else:
                run = _isp_then_head(model.isp, model.head)
            trained = ckpt.trained_on
            training = "clean images (no raw)" if trained is None else "simulated raw"
            pipelines.append(Pipeline(k, label, run, key != "d", files, trained, training))
    baseline = next((c.baseline_isp for n, c in loaded.items() if n.partition(":")[0] == "baseline"), None)
    size = next((c.image_size for c in loaded.values() if c.image_size is not None), None)
    teacher = next((c.teacher for c in loaded.values() if c.teacher is not None), None)
    raw_scale = max((c.model.config.raw_scale for c in loaded.values()), default=1)
    return PipelineSet(pipelines, notes, baseline, size, class_names, teacher, raw_scale)
