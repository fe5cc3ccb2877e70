"""Make the FP16 or INT8 model, keeping in FP32 the layers that measurably lose accuracy.

Glue between :mod:`edge_isp.export.sensitivity` (the search), :mod:`edge_isp.export.precision`
(making each variant) and ONNX Runtime (measuring it):

- the task metric of a variant is measured on a *search set*: a few evaluation images
  simulated once per deployment light level (so every variant sees the same frames);
- the per-group output divergence (:func:`edge_isp.export.sensitivity.output_divergence`) is
  measured on a *ranking model* if one is given: the same
  network exported at a small size with its dense outputs (the detector's maps rather than
  its top-K boxes), which ranks groups as well and costs a fraction of the time; else on the
  deployment model itself.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.model_files import MIN_INT8_MAC_SHARE
from edge_isp.errors import InvalidInputError
from edge_isp.export.accuracy import MetricAccumulator, OnnxModel
from edge_isp.export.evalset import EvalImages, LightLevel, simulate_inputs
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.precision import (
    DEFAULT_CALIBRATION,
    INT8_OP_TYPES,
    convert_fp16,
    isp_float_islands,
    node_names,
    output_layers,
    quantize_int8,
)
from edge_isp.export.sensitivity import SearchResult, group_nodes, output_divergence, search

GROUP_DEPTH = {"int8": 3, "fp16": 2}


@dataclasses.dataclass
class FrameSet:
    """Model inputs per light level, simulated once: ``inputs[label] = (raw, noise)``."""

    levels: list[LightLevel]
    inputs: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def simulate(cls, images: np.ndarray, profile: Any, levels: Sequence[LightLevel], seed: int = 0) -> FrameSet:
        """Simulate (N, 3, H, W) uint8 ``images`` at every level (seed ``seed + index``)."""
        inputs = {lv.label: simulate_inputs(images, profile, lv.electrons, seed + i) for i, lv in enumerate(levels)}
        return cls(list(levels), inputs)


def metric_by_level(model: OnnxModel, frames: FrameSet, images: EvalImages) -> dict[str, float]:
    """The task metric (points) of ``model`` at each light level of ``frames``."""
    result = {}
    for level in frames.levels:
        raw, noise = frames.inputs[level.label]
        acc = MetricAccumulator(images.task, len(images.class_names))
        acc.add(model.run(raw, noise), images.targets)
        result[level.label] = acc.value()
    return result


def outputs_by_level(model: OnnxModel, frames: FrameSet) -> dict[str, dict[str, np.ndarray]]:
    return {lv.label: model.run(*frames.inputs[lv.label]) for lv in frames.levels}


@dataclasses.dataclass
class Ranking:
    """Where group errors are measured: an FP32 model, its frames, and (for INT8) its own
    calibration feed (its input size may differ from the deployment model's)."""

    model_path: Path
    frames: FrameSet
    feed: Any = None


def reduce_precision(
    precision: str,
    fp32_path: str | Path,
    out_path: str | Path,
    *,
    images: EvalImages,
    frames: FrameSet,
    feed: Any = None,
    ranking: Ranking | None = None,
    tolerance: float = 1.0,
    calibration_method: str = DEFAULT_CALIBRATION,
    progress: Callable[[str], None] | None = None,
    min_int8_macs: float | None = MIN_INT8_MAC_SHARE,
) -> SearchResult:
    """Write the ``precision`` ("fp16" or "int8") model of ``fp32_path`` to ``out_path``,
    with the layers the search finds keeping it within ``tolerance`` points of FP32 left in
    FP32. ``images`` holds the search set's targets and ``frames`` its simulated inputs;
    ``feed`` is the INT8 calibration feed; ``ranking`` makes the :class:`Ranking` (called
    only if the fully reduced model misses the tolerance). For INT8, ``min_int8_macs`` is the
    share of the MACs that must stay in INT8 (the groups kept in FP32, with the ISP's float
    islands and the output layers that stay float anyway, hold at most the rest); None lets the
    search keep whatever it ranks first. Returns the search's result."""
    if precision not in GROUP_DEPTH:
        raise InvalidInputError(f"precision must be fp16 or int8, got {precision!r}")
    if precision == "int8" and feed is None:
        raise InvalidInputError("INT8 needs a calibration feed")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".search.", dir=out_path.parent))
    try:
        reference = metric_by_level(OnnxModel(fp32_path), frames, images)
        op_types = INT8_OP_TYPES if precision == "int8" else None
        # INT8 keeps the ISP's islands and the output layers float anyway: nothing to search there.
        fixed = set(isp_float_islands(fp32_path) + output_layers(fp32_path)) if precision == "int8" else set()
        candidates = [n for n in node_names(fp32_path, op_types) if n not in fixed]
        groups = group_nodes(candidates, GROUP_DEPTH[precision])
        caches: dict[Path, Path] = {fp32_path: workdir / "deploy.calibration.json"}
        ranked: dict[str, Any] = {}

        def make(src: Path, dst: Path, keep: Sequence[str], variant_feed: Any) -> Path:
            if precision == "fp16":
                return convert_fp16(src, dst, keep=keep)
            cache = caches.setdefault(src, workdir / f"calibration.{len(caches)}.json")
            return quantize_int8(src, dst, variant_feed, keep=keep, method=calibration_method, cache_path=cache)

        def ranking_setup() -> dict[str, Any]:
            if not ranked:
                setup = ranking() if ranking is not None else Ranking(fp32_path, frames, feed)
                ranked["setup"] = setup
                ranked["reference"] = outputs_by_level(OnnxModel(setup.model_path), setup.frames)
                ranked["nodes"] = node_names(setup.model_path, op_types)
            return ranked

        def measure_drop(keep: Sequence[str]) -> dict[str, float]:
            path = make(fp32_path, workdir / "variant.onnx", keep, feed)
            metrics = metric_by_level(OnnxModel(path), frames, images)
            return {k: reference[k] - v for k, v in metrics.items()}

        def measure_error_only(nodes: Sequence[str]) -> float:
            setup = ranking_setup()
            reduced = set(nodes) & set(setup["nodes"])
            if not reduced:
                return 0.0
            keep = [n for n in setup["nodes"] if n not in reduced]
            path = make(setup["setup"].model_path, workdir / "ranked.onnx", keep, setup["setup"].feed)
            outputs = outputs_by_level(OnnxModel(path), setup["setup"].frames)
            return float(np.mean([output_divergence(outputs[k], setup["reference"][k]) for k in outputs]))

        budget: dict[str, Any] = {}
        if precision == "int8" and min_int8_macs is not None:
            stats = graph_stats(fp32_path)
            budget["macs"] = {g: stats.mac_fraction(nodes) for g, nodes in groups.items()}
            budget["max_float_macs"] = max(0.0, 1.0 - min_int8_macs - stats.mac_fraction(sorted(fixed)))
        result = search(
            precision, groups, measure_drop, measure_error_only, tolerance=tolerance, progress=progress, **budget
        )
        make(fp32_path, out_path, result.kept_nodes, feed)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
