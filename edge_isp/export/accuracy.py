"""Accuracy per precision per light level, through ONNX Runtime, before any engine exists.

Every model (FP32, FP16, INT8 ONNX files of the same network) runs on the same simulated raw:
for each light level, chunks of evaluation images are simulated through the sensor profile
with a seed fixed by (level, chunk), and each chunk is fed to every model. The metric is
top-1 accuracy for classification and mAP at IoU 0.5 for detection (all-point interpolated
AP over the model's K unthresholded detections, :mod:`edge_isp.train.metrics`), both in
points (percent), so "within 1 point of FP32" reads directly off the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.metadata import ModelMetadata, read_metadata
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.errors import InvalidInputError
from edge_isp.export.evalset import EvalImages, LightLevel, check_class_names, simulate_inputs
from edge_isp.train.metrics import DetectionAccumulator, top1_correct

# All-point interpolated AP (edge_isp.train.metrics), not COCO's 101-point sampling.
METRIC_NAMES = {"classification": "top-1 %", "detection": "mAP@0.5 % (all-point)"}
DEFAULT_TOLERANCE = 1.0
CHUNK = 16
# Noise seeds of draw d are offset by d times this (far past any level's 1000 * level index).
DRAW_SEED_STEP = 1_000_003


def require_raw_input(metadata: ModelMetadata, path: str | Path) -> None:
    """Refuse a model that does not take raw input, for the steps that feed it simulated raw."""
    if metadata.input_kind != "raw":
        raise InvalidInputError(
            f"{path} takes an {metadata.input_kind} picture, not raw: the accuracy report, the precision search "
            "and INT8 calibration simulate raw frames for the fused model; an rgb model converts to fp16 with "
            "`edge-isp export precision MODEL --precision fp16 --no-search` and runs as it is"
        )


class OnnxModel:
    """An ONNX Runtime CPU session with the model's metadata; :meth:`run` takes any number of
    frames and splits them into the batches a fixed-batch graph accepts."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata: ModelMetadata = read_metadata(self.path)
        require_raw_input(self.metadata, self.path)
        self.session = cpu_session(self.path, threads)
        first = self.session.get_inputs()[0].shape[0]
        self.batch: int | None = first if isinstance(first, int) else None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, raw: np.ndarray, noise: np.ndarray, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs for (N, 4, h, w) ``raw`` and (N, 2) ``noise``; a fixed-batch graph gets the
        last partial batch padded with copies of its final frame (their outputs dropped)."""
        names = list(names or self.output_names)
        n = raw.shape[0]
        step = self.batch or n
        parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
        for start in range(0, n, step):
            r, z = raw[start : start + step], noise[start : start + step]
            real = r.shape[0]
            if self.batch is not None and real < self.batch:
                pad = self.batch - real
                r = np.concatenate([r, np.repeat(r[-1:], pad, axis=0)])
                z = np.concatenate([z, np.repeat(z[-1:], pad, axis=0)])
            out = self.session.run(names, {"raw": np.ascontiguousarray(r), "noise": np.ascontiguousarray(z)})
            for k, v in zip(names, out, strict=True):
                parts[k].append(v[:real])
        return {k: np.concatenate(v) for k, v in parts.items()}


class MetricAccumulator:
    """Adds up one model's answers over chunks; :meth:`value` is the metric in points."""

    def __init__(self, task: str, num_classes: int) -> None:
        if task not in METRIC_NAMES:
            raise InvalidInputError(f"only classification and detection have an accuracy metric, got {task!r}")
        self.task = task
        self.correct = 0
        self.count = 0
        if task == "detection":
            self.detections = DetectionAccumulator(num_classes)

    def add(self, outputs: Mapping[str, np.ndarray], targets: Any) -> None:
        if self.task == "classification":
            self.correct += top1_correct(outputs["logits"], np.asarray(targets))
            self.count += len(targets)
            return
        for i, (gt_boxes, gt_labels) in enumerate(targets):
            keep = gt_labels >= 0
            self.detections.add(
                outputs["boxes"][i], outputs["scores"][i], outputs["labels"][i], gt_boxes[keep], gt_labels[keep]
            )
            self.count += 1

    def value(self) -> float:
        if self.count == 0:
            raise InvalidInputError("no images were evaluated")
        if self.task == "classification":
            return 100.0 * self.correct / self.count
        return 100.0 * self.detections.mean_average_precision(0.5)


def _targets(images: EvalImages, start: int, stop: int) -> Any:
    return images.targets[start:stop]


def evaluate_models(
    models: Mapping[str, OnnxModel],
    images: EvalImages,
    profile: Any,
    levels: Sequence[LightLevel],
    *,
    seed: int = 0,
    chunk: int = CHUNK,
    progress: Any = None,
    draws: int = 1,
) -> dict[str, dict[str, float]]:
    """``{precision: {level label: metric in points}}`` for every model on the same raw.

    ``draws``: noise draws of each image per level (a small held-out set, such as 63 real
    frames, gives ``draws`` times as many evaluations, all paired across the models).
    ``progress``: optional callable ``(done, total)`` called after each chunk.
    """
    if draws < 1:
        raise InvalidInputError(f"noise draws per image must be >= 1, got {draws}")
    if not models:
        raise InvalidInputError("no models to evaluate")
    task = images.task
    num_classes = len(images.class_names)
    total = len(levels) * draws * -(-len(images) // chunk)
    done = 0
    results: dict[str, dict[str, float]] = {name: {} for name in models}
    for li, level in enumerate(levels):
        acc = {name: MetricAccumulator(task, num_classes) for name in models}
        chunks = [(draw, ci, start) for draw in range(draws) for ci, start in enumerate(range(0, len(images), chunk))]
        for draw, ci, start in chunks:
            stop = min(start + chunk, len(images))
            # Draw 0 keeps the seeds of a one-draw report.
            chunk_seed = seed + 1000 * li + ci + DRAW_SEED_STEP * draw
            raw, noise = simulate_inputs(images.images[start:stop], profile, level.electrons, chunk_seed)
            targets = _targets(images, start, stop)
            for name, model in models.items():
                acc[name].add(model.run(raw, noise), targets)
            done += 1
            if progress is not None:
                progress(done, total)
        for name in models:
            results[name][level.label] = acc[name].value()
    return results


@dataclasses.dataclass
class AccuracyReport:
    """The per-precision, per-light-level accuracy table and what it rests on.

    Attributes:
        task, metric: the task and the metric's name ("top-1 %", "mAP@0.5 % (all-point)").
        images: evaluation images per light level.
        draws: noise draws of each image per level (``images * draws`` evaluations).
        profile: the sensor profile the raw was simulated through.
        levels: the light levels, in order.
        results: ``{precision: {level label: metric in points}}``; "fp32" is the reference.
        tolerance: the largest acceptable drop from FP32, in points.
        higher_precision: per precision, the layer groups kept in higher precision.
        notes: per precision, free text (what keeping those layers cost...).
    """

    task: str
    metric: str
    images: int
    profile: str
    levels: list[LightLevel]
    results: dict[str, dict[str, float]]
    tolerance: float = DEFAULT_TOLERANCE
    higher_precision: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    draws: int = 1

    def drop(self, precision: str) -> dict[str, float]:
        """FP32 minus ``precision`` per level, in points (positive = worse than FP32)."""
        if "fp32" not in self.results:
            raise InvalidInputError("the report has no fp32 reference")
        return {k: self.results["fp32"][k] - v for k, v in self.results[precision].items()}

    def within_tolerance(self, precision: str) -> bool:
        return all(d <= self.tolerance + 1e-9 for d in self.drop(precision).values())

    def table(self) -> str:
        """The report as an aligned text table, drops from FP32 in brackets."""
        precisions = list(self.results)
        head = f"{'light':<14}" + "".join(f"{p:>18}" for p in precisions)
        each = f"{self.images} images x {self.draws} noise draws" if self.draws > 1 else f"{self.images} images"
        lines = [f"{self.metric} on {each} per light level, raw simulated through {self.profile}", head]
        for level in self.levels:
            row = f"{level.label:<14}"
            for p in precisions:
                value = self.results[p][level.label]
                # + 0.0 turns a -0.0 into 0.0 so an unchanged value prints "+0.0".
                delta = "" if p == "fp32" else f" ({-self.drop(p)[level.label] + 0.0:+.1f})"
                row += f"{f'{value:.1f}{delta}':>18}"
            lines.append(row)
        for p in precisions:
            if p == "fp32":
                continue
            verdict = "within" if self.within_tolerance(p) else "NOT within"
            kept = self.higher_precision.get(p) or []
            extra = f"; kept in higher precision: {', '.join(kept)}" if kept else ""
            note = f"; {self.notes[p]}" if p in self.notes else ""
            lines.append(f"{p}: {verdict} {self.tolerance:g} point(s) of fp32 at every light level{extra}{note}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "images_per_level": self.images,
            "noise_draws": self.draws,
            "profile": self.profile,
            "tolerance_points": self.tolerance,
            "levels": [dataclasses.asdict(level) | {"label": level.label} for level in self.levels],
            "results": self.results,
            "drop_from_fp32": {p: self.drop(p) for p in self.results if p != "fp32"},
            "within_tolerance": {p: self.within_tolerance(p) for p in self.results if p != "fp32"},
            "higher_precision": self.higher_precision,
            "notes": self.notes,
        }


def accuracy_report(
    paths: Mapping[str, str | Path],
    images: EvalImages,
    profile: Any,
    levels: Sequence[LightLevel],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    progress: Any = None,
    draws: int = 1,
) -> AccuracyReport:
    """Evaluate the ONNX files ``paths`` (``{precision: path}``, "fp32" among them) and build
    the report. The models must share task, classes and input size."""
    if "fp32" not in paths:
        raise InvalidInputError(f"the accuracy report compares against fp32; got only {sorted(paths)}")
    models = {name: OnnxModel(path) for name, path in paths.items()}
    reference = models["fp32"].metadata
    for name, model in models.items():
        meta = model.metadata
        if (meta.task, meta.class_names, meta.input_size) != (reference.task, reference.class_names,
                                                               reference.input_size):  # fmt: skip
            raise InvalidInputError(
                f"{model.path} ({name}) is not the same network as {models['fp32'].path}: task, classes or input "
                f"size differ ({meta.task}, {meta.input_size} vs {reference.task}, {reference.input_size})"
            )
    check_class_names(images.class_names, reference.class_names, "evaluation data")
    w, h = reference.input_size
    if images.images.shape[2:] != (h, w):
        raise InvalidInputError(f"evaluation images are {images.images.shape[3]}x{images.images.shape[2]}, "
                                f"the model takes {w}x{h}")  # fmt: skip
    results = evaluate_models(models, images, profile, levels, seed=seed, progress=progress, draws=draws)
    return AccuracyReport(
        task=reference.task,
        metric=METRIC_NAMES[reference.task],
        images=len(images),
        draws=draws,
        profile=profile.name,
        levels=list(levels),
        results=results,
        tolerance=tolerance,
        higher_precision={n: list(m.metadata.higher_precision) for n, m in models.items() if n != "fp32"},
    )
