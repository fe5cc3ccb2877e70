"""The four training stages of the paper, as what each feeds the network and how it scores.

- ``isp``: pretrain the ISP for reconstruction: simulated raw -> sRGB, L1/SSIM against the
  clean sRGB (a ``*_rec`` model). Metric: PSNR (dB).
- ``head``: train the perception head on the clean sRGB images; no raw, the ISP unused.
- ``joint``: the whole network end to end on simulated raw, task loss (plus
  ``loss.joint_rec`` times the reconstruction loss of the ISP's image, if set).
- ``baseline``: the head on the conventional ISP's rendering of the same simulated raw.

Classification scores top-1 accuracy, detection mAP at IoU 0.5. Stages on raw validate at
each of ``sensor.val_light`` with fixed noise seeds (the same images, levels and noise
every epoch) and report the mean.

A model with ``raw_scale`` 2 (a half-resolution ISP) gets its clean batches at twice
``data.size``: its raw is simulated from them, and the picture it is judged against (the
reconstruction target, the head stage's input, the conventional ISP's rendering for the
baseline stage) is brought to ``data.size`` by area averaging (``batches.area_downsample``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import DETECTOR_STRIDE
from edge_isp.model.registry import list_models
from edge_isp.train import losses, metrics
from edge_isp.train.batches import (
    RawBatcher,
    area_downsample,
    check_conventional_isp,
    conventional_isp_batch,
    light_to_electrons,
    to_float,
)
from edge_isp.train.config import TrainConfig

METRIC_OF_TASK = {"classification": "top1", "detection": "map50", "reconstruction": "psnr"}


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """name; whether it simulates raw; whether only the head trains; the model tasks it takes."""

    name: str
    uses_raw: bool
    head_only: bool
    tasks: tuple[str, ...]


STAGE_SPECS = {
    "isp": StageSpec("isp", True, False, ("reconstruction",)),
    "head": StageSpec("head", False, True, ("classification", "detection")),
    "joint": StageSpec("joint", True, False, ("classification", "detection")),
    "baseline": StageSpec("baseline", True, True, ("classification", "detection")),
}


def check_stage(stage: str, model_name: str, task: str) -> StageSpec:
    """The spec of ``stage``, refusing a model of the wrong task with the valid choices."""

    if stage not in STAGE_SPECS:
        raise InvalidInputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGE_SPECS)}")
    spec = STAGE_SPECS[stage]
    if task not in spec.tasks:
        fitting = [m for t in spec.tasks for m in list_models(t)]
        raise InvalidInputError(
            f"stage {stage!r} trains a {' or '.join(spec.tasks)} model, but model.name = {model_name!r} is a "
            f"{task} model; choose one of {', '.join(fitting)}"
        )
    return spec


class StageModule(nn.Module):
    """The stage's forward pass as one module (what DistributedDataParallel wraps).

    ``forward(*inputs)`` returns ``(prediction, image)``: for the raw stages the inputs
    are ``(packed, noise)`` and ``image`` is the ISP's sRGB; for the head-only stages the
    input is an sRGB batch and ``image`` is None.
    """

    def __init__(self, model: nn.Module, spec: StageSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, *inputs: Tensor) -> tuple[Any, Tensor | None]:
        if self.spec.head_only:
            return self.model.head(inputs[0]), None
        rgb = self.model.isp(*inputs)
        return (rgb if self.model.head is None else self.model.head(rgb)), rgb


def seeded_generator(device: torch.device | str, *entropy: int) -> torch.Generator:
    """A generator on ``device`` seeded from integers, well mixed (numpy SeedSequence)."""
    seed = int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(seed)


class Stage:
    """Batches in, loss and metrics out, for one stage of one config.

    ``raw_scale``: the model's (clean batches come at that many times the picture's size);
    ``det_stride``: the detector's map stride in picture pixels (``CenterNetDetector.stride``).
    """

    def __init__(
        self,
        spec: StageSpec,
        config: TrainConfig,
        task: str,
        num_classes: int,
        device: torch.device,
        *,
        raw_scale: int = 1,
        det_stride: int = DETECTOR_STRIDE,
    ):
        self.spec = spec
        self.raw_scale = int(raw_scale)
        self.det_stride = int(det_stride)
        self.config = config
        self.task = task
        self.num_classes = num_classes
        self.device = device
        self.metric_name = METRIC_OF_TASK[task]
        self.raw = RawBatcher.from_config(config.sensor) if spec.uses_raw else None
        self.val_levels: list[tuple[str, float]] = []
        if self.raw is not None:
            electrons = light_to_electrons(self.raw.profile, config.sensor.val_light, config.sensor.light_unit)
            unit = "lux" if config.sensor.light_unit == "lux" else "e-"
            self.val_levels = [(f"{v:g} {unit}", e) for v, e in zip(config.sensor.val_light, electrons, strict=True)]
        if spec.name == "baseline":
            check_conventional_isp(config.baseline.demosaic, config.baseline.denoise)

    def inputs(self, clean: Tensor, generator: torch.Generator | None, electrons: float | None = None):
        """(network inputs, reconstruction target) for a clean sRGB batch on the device (at
        ``raw_scale`` times the picture's size; the target is at the picture's)."""
        # The picture: what the teacher answered on (uint8 levels, as its cache saw it).
        target = area_downsample(clean, self.raw_scale, to_uint8_levels=True)
        if self.raw is None:
            return (target,), target
        level = None if electrons is None else torch.full((clean.shape[0],), electrons, device=clean.device)
        sim = self.raw(clean, generator, level)
        if self.spec.name == "baseline":
            b = self.config.baseline
            rgb = conventional_isp_batch(sim, self.raw.profile, b.demosaic, b.denoise, self.config.data.num_workers)
            return (area_downsample(rgb, self.raw_scale),), target
        return (sim.packed, sim.noise), target

    def loss(self, prediction: Any, image: Tensor | None, target: Tensor, batch: tuple) -> tuple[Tensor, dict]:
        """Total loss and detached parts (for display) of one batch."""
        cfg = self.config.loss
        if self.task == "reconstruction":
            return losses.reconstruction_loss(prediction, target, cfg.rec_l1, cfg.rec_ssim, cfg.rec_log_mse)
        if self.task == "classification" and len(batch) == 3:
            # A teacher's answers: distil them, plus cross-entropy on the labels if asked.
            teacher = self.config.teacher
            labels = batch[1].to(self.device)
            kd = losses.distillation_loss(
                prediction, batch[2].to(self.device), teacher.temperature, teacher.kd_balance, teacher.kd_log_eps
            )
            total = teacher.kd_weight * kd
            if teacher.label_weight > 0:
                ce = losses.classification_loss(prediction, labels, cfg.label_smoothing)
                total = total + teacher.label_weight * ce
            parts = {"kd": kd.detach(), "agree": (prediction.detach().argmax(1) == labels).float().mean()}
        elif self.task == "classification":
            labels = batch[1].to(self.device)
            total = losses.classification_loss(prediction, labels, cfg.label_smoothing)
            parts = {"acc": (prediction.detach().argmax(1) == labels).float().mean()}
        else:
            hw = tuple(prediction["heatmap"].shape[-2:])
            # Built from the loader's CPU boxes, then moved: scalar work per box.
            targets = losses.detection_targets(batch[1], batch[2], self.num_classes, hw, self.det_stride)
            targets = targets.to(self.device)
            total, parts = losses.centernet_loss(prediction, targets, cfg.det_heatmap, cfg.det_size, cfg.det_offset)
        if self.spec.name == "joint" and cfg.joint_rec > 0 and image is not None:
            rec, _ = losses.reconstruction_loss(image, target, cfg.rec_l1, cfg.rec_ssim, cfg.rec_log_mse)
            total = total + cfg.joint_rec * rec
            parts["rec"] = rec.detach()
        return total, parts

    @torch.no_grad()
    def validate(self, module: StageModule, loader: Iterable, seed: int) -> dict[str, Any]:
        """Score ``module`` on the validation loader: ``{"name", "value", "per_level"}``."""
        levels = self.val_levels or [("clean", None)]
        per_level = {}
        for level_index, (label, electrons) in enumerate(levels):
            per_level[label] = self._score(module, loader, seed, level_index, electrons)
        value = float(np.mean(list(per_level.values())))
        return {"name": self.metric_name, "value": value, "per_level": per_level}

    def _score(self, module: StageModule, loader: Iterable, seed: int, level_index: int, electrons: float | None):
        correct, total, psnrs = 0, 0, []
        acc = metrics.DetectionAccumulator(self.num_classes) if self.task == "detection" else None
        for batch_index, batch in enumerate(loader):
            clean = to_float(batch[0], self.device)
            generator = seeded_generator(self.device, seed, 0x5EED, level_index, batch_index)
            inputs, target = self.inputs(clean, generator, electrons)
            prediction, _ = module(*inputs)
            if self.task == "reconstruction":
                psnrs += metrics.psnr(prediction.float().cpu().numpy(), target.float().cpu().numpy()).tolist()
            elif self.task == "classification":
                correct += metrics.top1_correct(prediction.float().cpu().numpy(), batch[1].numpy())
                total += len(batch[1])
            else:
                decoded = module.model.head.decode(prediction, top_k=50, stride=self.det_stride)
                for i in range(clean.shape[0]):
                    keep = decoded["scores"][i] >= 0.01
                    real = batch[2][i] >= 0
                    acc.add(
                        decoded["boxes"][i][keep].cpu().numpy(),
                        decoded["scores"][i][keep].cpu().numpy(),
                        decoded["labels"][i][keep].cpu().numpy(),
                        batch[1][i][real].numpy(),
                        batch[2][i][real].numpy(),
                    )
        if self.task == "reconstruction":
            return float(np.mean(psnrs))
        if self.task == "classification":
            return correct / max(total, 1)
        return acc.mean_average_precision(0.5)
