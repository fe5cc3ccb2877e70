"""From trained checkpoints and held-out data to a written report, in one call.

:func:`evaluate_task` is ``edge-isp eval --task ...``: the six pipelines on the light sweep,
table, JSON, plot and the picture grid of one scene. :func:`evaluate_recon` is ``edge-isp
eval recon``: the reconstruction comparison. Both evaluate the held-out split (``test``)
of a data set built by ``edge-isp data build``, or a user's own image folder
(classification) or COCO JSON file (detection).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from edge_isp.data.builtin import MANIFEST, builtin_dataset
from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset
from edge_isp.data.real_build import real_set_dir
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.evaluate.pipelines import build_pipelines, check_class_names, discover_checkpoints, load_for_eval
from edge_isp.evaluate.recon import DENOISERS, build_recon_pipelines
from edge_isp.evaluate.report import write_report
from edge_isp.evaluate.sweep import SweepResult, SweepSettings, run_sweep, scene_images
from edge_isp.train.batches import TaskDataset
from edge_isp.train.datasets import open_real_eval_data


@dataclasses.dataclass
class EvalOutcome:
    """The result and the files written (``markdown``, ``json``, ``plot``, ``scene``)."""

    result: SweepResult
    paths: dict[str, Path]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidInputError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r} asked for, but torch sees no CUDA device here")
    return device


def open_eval_data(data: str | Path, task: str, split: str = "test", class_names: list[str] | None = None) -> Any:
    """The evaluation images: split ``split`` of a built data set (a folder with
    ``dataset.json``), else an image folder (classification) or a COCO JSON file (detection)."""
    data = Path(data)
    if not data.exists():
        raise MissingFileError(
            f"evaluation data {data} does not exist; build the demo set with `edge-isp data build --out {data}` "
            "or give an image folder (classification) or a COCO JSON file (detection)"
        )
    if (data / MANIFEST).is_file():
        return builtin_dataset(data, task, split)
    if task == "classification" and data.is_dir():
        return ImageFolderDataset(data, class_names=class_names)
    if task == "detection" and data.suffix.lower() == ".json":
        return CocoDetectionDataset(data)
    want = "an image folder CLASS_NAME/IMAGE.png" if task == "classification" else "a COCO JSON file"
    raise InvalidInputError(f"--data {data}: expected a built data set (with {MANIFEST}) or {want} for {task}")


def _raw_scale(asked: int | None, needed: int) -> int:
    """The sweep's raw_scale: ``asked``, or what the checkpoints need; less than that is refused."""
    if asked is None:
        return needed
    if asked not in (1, 2):
        raise InvalidInputError(f"raw_scale must be 1 or 2, got {asked!r}")
    if asked < needed:
        raise InvalidInputError(
            f"raw_scale {asked} is too small: a half-resolution checkpoint needs its raw at {needed}x the picture"
        )
    return asked


def _checkpoints(runs: str | Path | None, named: Mapping[str, Path], task: str) -> dict[str, Path]:
    found = dict(discover_checkpoints(runs, task)) if runs is not None else {}
    found.update(named)
    return found


def evaluate_task(
    task: str,
    data: str | Path,
    out: str | Path,
    *,
    runs: str | Path | None = None,
    checkpoints: Mapping[str, Path] | None = None,
    settings: dict[str, Any] | None = None,
    limit: int | None = None,
    size: tuple[int, int] | None = None,
    split: str = "test",
    device: str = "cpu",
    scene_level: float = 3.0,
    scene_index: int = 0,
    progress: Callable[[str], None] | None = None,
    raw_scale: int | None = None,
) -> EvalOutcome:
    """The light sweep of the six pipelines, written to ``out``.

    Args:
        task: "classification" or "detection".
        data: see :func:`open_eval_data`.
        out: the report folder.
        runs: a runs folder to find checkpoints in (``runs/<task>/<role folder>/best.pt``).
        checkpoints: {"ROLE[:LABEL]": path}, on top of (and replacing) those found in ``runs``.
        settings: :class:`SweepSettings` fields other than ``task``; ``demosaic``/``denoise``
            default to what the baseline head was fine-tuned on.
        limit: evaluate that many images, spread over the split.
        size: (width, height) to resize to; default the checkpoints' training size.
        scene_level: light level of the picture grid (in the settings' unit).
        progress: called with a line after each (seed, level); when given, a bar over the
            batches is shown on stderr too.
        raw_scale: simulate the raw at that many times the picture's sides (1 or 2) for every
            pipeline; default the largest the checkpoints need (2 with a half-resolution model).
            A full-resolution pipeline's image of a 2x raw is area-averaged to the picture.
    """
    SweepSettings(task=task, **(settings or {}))  # bad settings fail before any model loads
    chosen = _checkpoints(runs, checkpoints or {}, task)
    dev = resolve_device(device)
    made = build_pipelines(task, chosen, dev)
    raw_scale = _raw_scale(raw_scale, made.raw_scale)
    # A user's image folder takes the checkpoints' class order; a built set or COCO file
    # brings its own, which must match.
    options = dict(settings or {}, raw_scale=raw_scale)
    size = size or made.image_size
    if raw_scale > 1 and size is None:
        raise InvalidInputError(
            f"a raw at {raw_scale}x the picture needs the picture's size: give --size WxH (the checkpoints record none)"
        )
    if real_set_dir(data, task) is not None:
        base = open_real_eval_data(data, task, split, made.teacher, size, raw_scale)
        if task == "classification":
            options.setdefault("top5", True)
    else:
        base = open_eval_data(data, task, split, made.class_names)
    check_class_names(made.class_names, list(base.class_names), "the checkpoints' model")
    if made.baseline_isp is not None:
        options.setdefault("demosaic", made.baseline_isp[0])
        options.setdefault("denoise", made.baseline_isp[1])
    sweep = SweepSettings(task=task, **options)
    if made.baseline_isp is not None and made.baseline_isp != (sweep.demosaic, sweep.denoise):
        made.notes.append(
            f"the baseline head (b) was fine-tuned on the conventional ISP {' + '.join(made.baseline_isp)}, "
            f"but is evaluated on {sweep.demosaic} + {sweep.denoise}"
        )
    dataset = TaskDataset(base, task, size, limit, raw_scale)
    num_classes = max(1, len(dataset.class_names))
    groups = getattr(base, "groups", None)
    groups = None if groups is None or task != "classification" else [groups[i] for i in dataset.indices]
    result = run_sweep(
        made.pipelines, dataset, sweep, num_classes=num_classes, device=dev, notes=made.notes,
        progress=progress, bar=progress is not None, groups=groups,
    )  # fmt: skip
    scene = scene_images(made.pipelines, dataset, sweep, level=scene_level, index=scene_index, device=dev)
    unit = "lux" if sweep.light_unit == "lux" else "e- at white"
    paths = write_report(result, out, scene=scene, scene_title=f"test image {scene_index} at {scene_level:g} {unit}")
    return EvalOutcome(result, paths)


def evaluate_recon(
    data: str | Path,
    out: str | Path,
    *,
    images: str = "classification",
    runs: str | Path | None = None,
    checkpoints: Mapping[str, Path] | None = None,
    settings: dict[str, Any] | None = None,
    denoisers: tuple[str, ...] = DENOISERS,
    demosaicnet: bool = True,
    limit: int | None = None,
    size: tuple[int, int] | None = None,
    split: str = "test",
    device: str = "cpu",
    scene_level: float = 3.0,
    scene_index: int = 0,
    progress: Callable[[str], None] | None = None,
    raw_scale: int | None = None,
) -> EvalOutcome:
    """The reconstruction comparison (:mod:`edge_isp.evaluate.recon`) on the ``images``
    ("classification" or "detection") of ``data``, written to ``out`` as ``recon.*``; the
    other arguments are :func:`evaluate_task`'s."""
    if images not in ("classification", "detection"):
        raise InvalidInputError(f"images must be classification or detection, got {images!r}")
    SweepSettings(task="reconstruction", **(settings or {}))
    chosen = _checkpoints(runs, checkpoints or {}, images)
    chosen = {k: v for k, v in chosen.items() if k.partition(":")[0] == "isp" or k in (checkpoints or {})}
    dev = resolve_device(device)
    loaded = [load_for_eval(path) for name, path in chosen.items() if name.partition(":")[0] == "isp"]
    raw_scale = _raw_scale(raw_scale, max((c.model.config.raw_scale for c in loaded), default=1))
    sweep = SweepSettings(task="reconstruction", **dict(settings or {}, raw_scale=raw_scale))
    pipelines, notes = build_recon_pipelines(
        chosen, denoisers=denoisers, demosaic=sweep.demosaic, demosaicnet=demosaicnet, device=dev, workers=sweep.workers
    )
    base = open_eval_data(data, images, split)
    if size is None and "isp" in chosen:
        size = load_for_eval(chosen["isp"]).image_size
    if raw_scale > 1 and size is None:
        raise InvalidInputError(f"a raw at {raw_scale}x the picture needs the picture's size: give --size WxH")
    dataset = TaskDataset(base, images, size, limit, raw_scale)
    result = run_sweep(pipelines, dataset, sweep, device=dev, notes=notes, progress=progress, bar=progress is not None)
    scene = scene_images(pipelines, dataset, sweep, level=scene_level, index=scene_index, device=dev)
    unit = "lux" if sweep.light_unit == "lux" else "e- at white"
    title = f"Reconstruction: {images} test images on {sweep.profile}"
    paths = write_report(
        result, out, name="recon", scene=scene, title=title,
        scene_title=f"test image {scene_index} at {scene_level:g} {unit}",
    )  # fmt: skip
    return EvalOutcome(result, paths)
