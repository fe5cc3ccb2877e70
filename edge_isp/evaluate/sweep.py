"""The light sweep: every pipeline on the same simulated frames, level by level, seed by seed.

For each seed, each light level and each batch of the held-out data, the clean images are
simulated ONCE through the sensor profile (optionally with an optical blur) with a
generator seeded by ``(seed, level, batch index)``; that one raw batch goes to every
pipeline. So the pipelines differ only in what they do with identical frames, and a
different seed redraws the noise for all of them alike. The spread over seeds (their
standard deviation) is what the report shows as the error band.

Light levels are in lux (converted through the profile, whose ``electrons_at_white_per_lux``
must be set) or directly in photo-electrons at white.

``raw_scale`` 2 (a half-resolution model among the checkpoints, or asked for): the images are
loaded at twice the evaluation size, the raw is simulated from them, and everything is scored
on the picture at the evaluation size, their 2x2 area average (uint8 levels, as the teacher
saw it). Each pipeline gets the whole raw and brings its image to the picture's size
(:func:`edge_isp.evaluate.pipelines.to_picture`; a reconstruction pipeline's larger image is
area-averaged here, :func:`fit_picture`), so all of them see the same sensor pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.pipelines import EvalBatch, Pipeline
from edge_isp.evaluate.scoring import Scorer, metric_names, spread
from edge_isp.model.heads import CenterNetDetector
from edge_isp.sensor.colour_torch import linear_to_srgb
from edge_isp.sensor.optics import parse_blur
from edge_isp.sensor.profile import SensorProfile
from edge_isp.train.batches import (
    RawBatcher,
    area_downsample,
    collate_classification,
    collate_detection,
    light_to_electrons,
    to_float,
)
from edge_isp.train.stages import seeded_generator

DEFAULT_LUX = (1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0)
DEFAULT_PROFILE = "nexus6p-rear"


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """How the sweep simulates its raw.

    Attributes:
        task: "classification", "detection" or "reconstruction" (image metrics only).
        profile: the sensor profile, a shipped name or a JSON path (a second camera: any
            profile file, e.g. one made by ``edge-isp calibrate``).
        levels: the light levels, in ``light_unit``.
        light_unit: "lux" or "electrons" (photo-electrons at white).
        blur: an optical blur spec (``edge_isp.sensor.optics.parse_blur``), "none" for none.
        seeds: the noise seeds; one result per seed, then mean and spread.
        batch_size: images per simulated batch.
        demosaic, denoise: the conventional ISP of pipelines a and b.
        workers: threads rendering the conventional ISP.
        unprocess: "fixed" camera colour from the profile (as the configs train).
        top5: also score classification's top-5 accuracy (real sets: ImageNet's classes).
        raw_scale: the raw's sides over the scored picture's, 1 or 2 (module docstring); the
            data set must give images at that many times the picture's size.
    """

    task: str
    profile: str = DEFAULT_PROFILE
    levels: tuple[float, ...] = DEFAULT_LUX
    light_unit: str = "lux"
    blur: str = "none"
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 16
    demosaic: str = "malvar"
    denoise: str = "nlm"
    workers: int = 1
    unprocess: str = "fixed"
    top5: bool = False
    raw_scale: int = 1

    def __post_init__(self) -> None:
        metric_names(self.task)
        if self.raw_scale not in (1, 2):
            raise InvalidInputError(f"raw_scale must be 1 or 2, got {self.raw_scale!r}")
        if not self.levels or not all(math.isfinite(v) and v > 0 for v in self.levels):
            raise InvalidInputError(f"light levels must be positive numbers, got {list(self.levels)}")
        if self.light_unit not in ("lux", "electrons"):
            raise InvalidInputError(f"light unit must be 'lux' or 'electrons', got {self.light_unit!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise InvalidInputError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        if self.blur not in ("", "none"):
            parse_blur(self.blur)  # a bad spec fails here, before any model is loaded
        if self.batch_size < 1 or self.workers < 1:
            raise InvalidInputError(f"batch_size and workers must be >= 1, got {self.batch_size}, {self.workers}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class SweepResult:
    """What the sweep measured.

    ``values[pipeline_key][metric]`` is a list over seeds of lists over levels (None where a
    metric does not apply); ``levels`` lists per level its value, unit, lux (None if the
    profile has no lux scale) and electrons at white.
    """

    settings: dict[str, Any]
    levels: list[dict[str, Any]]
    pipelines: list[dict[str, Any]]
    metrics: list[str]
    values: dict[str, dict[str, list[list[float | None]]]]
    images: int
    notes: list[str] = dataclasses.field(default_factory=list)

    def pipeline(self, key: str) -> dict[str, Any]:
        """The description of the pipeline with this key."""
        return next(p for p in self.pipelines if p["key"] == key)

    def summary(self, key: str, metric: str) -> list[tuple[float | None, float | None]]:
        """Per level, (mean, std over seeds) of one pipeline's metric."""
        per_seed = self.values[key][metric]
        return [spread([seed[i] for seed in per_seed]) for i in range(len(self.levels))]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["summary"] = {
            p["key"]: {m: [{"mean": mean, "std": std} for mean, std in self.summary(p["key"], m)] for m in self.metrics}
            for p in self.pipelines
        }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def level_table(profile: SensorProfile, levels: Sequence[float], unit: str) -> list[dict[str, Any]]:
    """Each level as {value, unit, lux, electrons}: the lux is None without a lux scale."""
    electrons = light_to_electrons(profile, levels, unit)
    rows = []
    for value, e in zip(levels, electrons, strict=True):
        lux = float(value) if unit == "lux" else None
        if lux is None and profile.electrons_at_white_per_lux is not None:
            lux = profile.lux(e)
        rows.append({"value": float(value), "unit": unit, "lux": lux, "electrons": float(e)})
    return rows


def make_batcher(settings: SweepSettings, profile: SensorProfile, electrons: Sequence[float]):
    """The raw simulator of the sweep: a :class:`~edge_isp.train.batches.RawBatcher` with the
    blur and colour of ``settings`` (levels are always given explicitly)."""
    blur = None if settings.blur in ("", "none") else parse_blur(settings.blur)
    return RawBatcher(profile, (min(electrons), max(electrons)), blur=blur, unprocess=settings.unprocess)


def fit_picture(image: Tensor, target: Tensor) -> Tensor:
    """``image`` area-averaged to ``target``'s size when it is a whole multiple of it (an image
    rendered from the whole raw of a ``raw_scale`` 2 sweep); otherwise unchanged."""
    factor = image.shape[-1] // target.shape[-1]
    if factor > 1 and tuple(image.shape[-2:]) == (target.shape[-2] * factor, target.shape[-1] * factor):
        return area_downsample(image, factor)
    return image


def noise_generator(device: torch.device | str, seed: int, electrons: float, batch_index: int) -> torch.Generator:
    """The generator of one simulated batch. Keyed on the level's value (in milli-electrons),
    not its position, so adding a level to the list leaves the others' draws unchanged."""
    return seeded_generator(device, seed, 0xE7A1, round(electrons * 1000), batch_index)


def run_sweep(
    pipelines: Sequence[Pipeline],
    dataset: Any,
    settings: SweepSettings,
    *,
    num_classes: int = 1,
    device: torch.device | str = "cpu",
    notes: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    bar: bool = False,
    groups: Sequence[str] | None = None,
) -> SweepResult:
    """Score every pipeline at every level and seed on ``dataset``.

    Args:
        pipelines: from :func:`~edge_isp.evaluate.pipelines.build_pipelines` (or recon's).
        dataset: a :class:`~edge_isp.train.batches.TaskDataset` of the held-out split.
        settings: see :class:`SweepSettings`.
        num_classes: detection classes.
        device: where simulation and networks run.
        notes: carried into the result (e.g. which pipelines were skipped).
        progress: called with a line of text after each (seed, level).
        bar: show a progress bar (tqdm, on stderr) over every batch of every (seed, level).
        groups: per image of ``dataset`` (in its order), the photograph it was cut from: a
            classification sweep then adds top-1's 95% bootstrap interval over photographs.
    """
    from torch.utils.data import DataLoader

    if not pipelines:
        raise InvalidInputError("nothing to evaluate: no pipeline has its checkpoints (see the notes)")
    keys = [p.key for p in pipelines]
    if len(set(keys)) != len(keys):
        raise InvalidInputError(f"pipeline keys must be unique, got {keys}")
    if len(dataset) == 0:
        raise InvalidInputError("the evaluation data holds no images")
    profile = SensorProfile.load(settings.profile)
    levels = level_table(profile, settings.levels, settings.light_unit)
    electrons = [row["electrons"] for row in levels]
    batcher = make_batcher(settings, profile, electrons)
    # The images decide the batch layout: reconstruction may run on detection scenes.
    collate = collate_detection if getattr(dataset, "task", settings.task) == "detection" else collate_classification
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, collate_fn=collate)
    if groups is not None and len(groups) != len(dataset):
        raise InvalidInputError(f"{len(groups)} groups for {len(dataset)} images")
    names = list(metric_names(settings.task, settings.top5, interval=groups is not None))
    values = {p.key: {m: [] for m in names} for p in pipelines}
    meter = _meter(len(settings.seeds) * len(levels) * len(loader)) if bar else None
    for seed in settings.seeds:
        per_level = {p.key: {m: [] for m in names} for p in pipelines}
        for level, e in zip(levels, electrons, strict=True):
            scorers = {p.key: Scorer(settings.task, num_classes, p.has_image, settings.top5, groups) for p in pipelines}
            if meter is not None:
                meter.set_description(f"seed {seed}, {_level_text(level)}")
            for batch_index, batch in enumerate(loader):
                clean = to_float(batch[0], device)
                level_e = torch.full((clean.shape[0],), e, device=clean.device)
                sim = batcher(clean, noise_generator(clean.device, seed, e, batch_index), level_e)
                target = area_downsample(clean, settings.raw_scale, to_uint8_levels=True)
                shared = EvalBatch(
                    sim, profile, settings.demosaic, settings.denoise, settings.workers, settings.raw_scale
                )
                for p in pipelines:
                    out = p(shared)
                    image = None if out.image is None else fit_picture(out.image, target)
                    scorers[p.key].add(out.prediction, image, batch, target, out.det_stride)
                if meter is not None:
                    meter.update(1)
            for p in pipelines:
                for m, v in scorers[p.key].result().items():
                    per_level[p.key][m].append(v)
            if progress is not None:
                _say(progress, meter, f"seed {seed}, {_level_text(level)}: done")
        for key in per_level:
            for m in names:
                values[key][m].append(per_level[key][m])
    if meter is not None:
        meter.close()
    return SweepResult(
        settings=settings.to_dict(),
        levels=levels,
        pipelines=[p.describe() for p in pipelines],
        metrics=names,
        values=values,
        images=len(dataset),
        notes=list(notes),
    )


def _meter(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", leave=False, dynamic_ncols=True)


def _say(progress: Callable[[str], None], meter: Any, line: str) -> None:
    """A progress line that does not tear the bar: the bar steps aside while it is written."""
    if meter is None:
        progress(line)
        return
    with meter.external_write_mode():
        progress(line)


def _level_text(level: dict[str, Any]) -> str:
    if level["unit"] == "lux":
        return f"{level['value']:g} lux"
    return f"{level['value']:g} e-"


def out_of_range(result: SweepResult, key: str) -> list[bool] | None:
    """Per level, whether it lies outside the light range pipeline ``key`` was trained on,
    compared in photo-electrons at white (the training range converted through the training
    profile); None when that is unknown (no raw in training, or its profile is not here)."""
    trained = result.pipeline(key).get("trained_on")
    if not trained:
        return None
    low, high = trained["light_range"]
    if trained["light_unit"] == "lux":
        try:
            per_lux = SensorProfile.load(trained["profile"]).electrons_at_white(1.0)
        except (OSError, ValueError):
            return None
        low, high = low * per_lux, high * per_lux
    # A hair of tolerance: a level given in lux converts to electrons with rounding.
    return [not (low * (1 - 1e-9) <= row["electrons"] <= high * (1 + 1e-9)) for row in result.levels]


def range_means(result: SweepResult, key: str, metric: str) -> tuple[float | None, float | None]:
    """(mean over in-range levels, mean over out-of-range levels) of a metric's seed means."""
    outside = out_of_range(result, key)
    if outside is None:
        return None, None
    means = [m for m, _ in result.summary(key, metric)]

    def avg(flags: list[bool]) -> float | None:
        chosen = [v for v, f in zip(means, flags, strict=True) if f and v is not None]
        return float(np.mean(chosen)) if chosen else None

    return avg([not o for o in outside]), avg(outside)


def raw_preview(sim: Any) -> np.ndarray:
    """The noisy raw as a picture, with no demosaicking or denoising: each 2x2 Bayer tile
    becomes one pixel (R, mean of the greens, B), white-balanced, colour-corrected and
    sRGB-encoded, then shown at full size by pixel repetition. (B, H, W, 3) on [0, 1]."""
    packed = sim.packed.detach().double()
    camera = torch.stack([packed[:, 0], (packed[:, 1] + packed[:, 2]) / 2, packed[:, 3]], dim=1)
    balanced = camera * sim.white_balance.double().view(-1, 3, 1, 1)
    to_srgb = torch.linalg.inv(sim.rgb_to_camera.detach().double())
    linear = torch.einsum("bij,bjhw->bihw", to_srgb, balanced).clamp(0.0, 1.0)
    image = linear_to_srgb(linear).repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return image.permute(0, 2, 3, 1).float().cpu().numpy()


def scene_images(
    pipelines: Sequence[Pipeline],
    dataset: Any,
    settings: SweepSettings,
    *,
    level: float = 3.0,
    index: int = 0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray | None]:
    """One scene of ``dataset`` at one light ``level`` (in ``settings.light_unit``) through
    every pipeline, for the picture grid: {"clean": ..., "noisy raw": ..., label: image or
    None (no image)}, each (H, W, 3) float32 on [0, 1]. The noise comes from a generator of
    its own, keyed on (seed, level, scene), so the picture does not depend on the batch size.
    Detection draws the reference boxes on the clean image and each pipeline's detections
    scoring at least :data:`SCENE_MIN_SCORE` on its image."""
    if not 0 <= index < len(dataset):
        raise InvalidInputError(f"scene index must be in [0, {len(dataset)}), got {index}")
    profile = SensorProfile.load(settings.profile)
    (row,) = level_table(profile, [level], settings.light_unit)
    batcher = make_batcher(settings, profile, [row["electrons"]])
    clean = to_float(dataset[index][0][None], device)
    e = torch.full((1,), row["electrons"], device=clean.device)
    generator = seeded_generator(clean.device, seed, 0x5CE7E, round(row["electrons"] * 1000), index)
    sim = batcher(clean, generator, e)
    scale = settings.raw_scale
    shared = EvalBatch(sim, profile, settings.demosaic, settings.denoise, settings.workers, scale)
    picture = area_downsample(clean, scale, to_uint8_levels=True)
    detection = settings.task == "detection"
    reference = np.asarray(dataset[index][1], np.float32).reshape(-1, 4) if detection else None
    preview = raw_preview(sim)[0]
    if scale > 1:  # shown at the picture's size, beside the others
        preview = cv2.resize(preview, picture.shape[-1:-3:-1], interpolation=cv2.INTER_AREA)
    images: dict[str, np.ndarray | None] = {
        "clean": draw_boxes(picture[0].permute(1, 2, 0).cpu().numpy(), reference, REFERENCE_COLOUR),
        "noisy raw": preview,
    }
    for p in pipelines:
        out = p(shared)
        image = None if out.image is None else fit_picture(out.image, picture)
        image = None if image is None else image[0].detach().float().clamp(0, 1).permute(1, 2, 0)
        image = None if image is None else image.cpu().numpy()
        if detection and image is not None:
            decoded = CenterNetDetector.decode(out.prediction, top_k=50, stride=out.det_stride)
            keep = decoded["scores"][0] >= SCENE_MIN_SCORE
            image = draw_boxes(image, decoded["boxes"][0][keep].cpu().numpy(), DETECTION_COLOUR)
        images[p.label] = image
    return images


SCENE_MIN_SCORE = 0.3
REFERENCE_COLOUR = (0.1, 1.0, 0.2)
DETECTION_COLOUR = (1.0, 0.85, 0.1)


def draw_boxes(image: np.ndarray, boxes: np.ndarray | None, colour: tuple[float, float, float]) -> np.ndarray:
    """``image`` (H, W, 3) float on [0, 1] with the outlines of ``boxes`` (K, 4) xyxy pixels."""
    if boxes is None or len(boxes) == 0:
        return image
    out = np.ascontiguousarray(image, dtype=np.float32).copy()
    thickness = max(1, round(min(out.shape[:2]) / 160))
    for x0, y0, x1, y1 in np.round(boxes).astype(int):
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), colour, thickness)
    return out
