"""Sample and write the built-in data set's images, one task at a time.

Every image draws from its own random stream, seeded by (seed, task, split, index), so
an image does not depend on the order or the number of images built before it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge_isp.data import compose, sources
from edge_isp.errors import require
from edge_isp.isp.colour import to_uint8

if TYPE_CHECKING:
    from edge_isp.data.builtin import BuildConfig

_TASK_CODES = {"classification": 1, "detection": 2}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
CLASSIFICATION_SCALE = (0.55, 0.9)  # garment square side as a fraction of min(W, H)
DETECTION_SCALE = (0.2, 0.5)
_PLACEMENT_TRIES = 20
# Level 1: encoding dominates the build time, and higher levels save only ~3 %.
_PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1]

Photos = list[tuple[sources.Photo, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class GarmentPool:
    """The Fashion-MNIST images one split may use: ``images`` is the whole part
    ``(N, 28, 28)`` uint8, ``by_class[c]`` the indices into it of class ``c`` allowed here."""

    part: str
    images: np.ndarray
    by_class: tuple[np.ndarray, ...]


def image_rng(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The random stream of one image."""
    return np.random.default_rng([int(seed), _TASK_CODES[task], _SPLIT_CODES[split], int(index)])


def _background(rng: np.random.Generator, photos: Photos, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
    photo, pixels = photos[int(rng.integers(len(photos)))]
    canvas, record = compose.crop_background(pixels, rng, *size)
    return canvas, {"photo": photo.id, **record}


def _garment(rng: np.random.Generator, pool: GarmentPool, label: int, side: int, config: BuildConfig):
    """A garment of class ``label``; with texture classes, a garment of any class whose fill
    is texture ``label`` (its record keeps the garment's own class)."""
    if config.classes == "textures":
        texture, label = label, int(rng.integers(len(pool.by_class)))
    index = int(rng.choice(pool.by_class[label]))
    flip = bool(rng.uniform() < 0.5)
    if config.classes == "textures":
        style = compose.sample_texture_style(rng, texture)
    else:
        style = compose.sample_style(rng, config.pattern_probability)
    garment = compose.Garment(part=pool.part, index=index, label=label, x=0, y=0, size=side, flip=flip, **style)
    rgb, alpha = compose.render_garment(pool.images[index], garment)
    return garment, rgb, alpha


def classification_image(
    rng: np.random.Generator, label: int, size: tuple[int, int], config: BuildConfig, pool: GarmentPool, photos: Photos
) -> tuple[np.ndarray, dict[str, Any]]:
    """One garment of class ``label`` on a background: ``(H, W, 3)`` uint8 and its record."""
    width, height = size
    canvas, background = _background(rng, photos, size)
    side = round(float(rng.uniform(*CLASSIFICATION_SCALE)) * min(width, height))
    garment, rgb, alpha = _garment(rng, pool, label, side, config)
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    compose.paste(canvas, rgb, alpha, x, y)
    garment = dataclasses.replace(garment, x=x, y=y)
    return to_uint8(canvas), {"garment": garment.to_json(), "background": background}


def detection_image(
    rng: np.random.Generator, size: tuple[int, int], config: BuildConfig, pool: GarmentPool, photos: Photos
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """A scene of 1 to ``config.max_garments`` garments.

    Returns the ``(H, W, 3)`` uint8 image, one object per garment (bottom first) with its
    ``garment`` record, ``bbox`` ``[x, y, w, h]`` (tight around its visible mask, pixels),
    ``area`` (visible mask pixels) and ``visible_fraction``, and the background record.
    """
    width, height = size
    canvas, background = _background(rng, photos, size)
    wanted = int(rng.integers(1, config.max_garments + 1))
    garments, layers = [], []
    for _ in range(wanted):
        side = round(float(rng.uniform(*DETECTION_SCALE)) * min(width, height))
        garment, rgb, alpha = _garment(rng, pool, int(rng.integers(len(pool.by_class))), side, config)
        for _ in range(_PLACEMENT_TRIES):
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            layer = np.zeros((height, width), np.float32)
            layer[y : y + side, x : x + side] = alpha
            if _occlusion_ok(layers, layer, config.min_visible_fraction):
                compose.paste(canvas, rgb, alpha, x, y)
                garments.append(dataclasses.replace(garment, x=x, y=y))
                layers.append(layer)
                break
    objects = []
    for garment, layer, visible in zip(garments, layers, compose.visible_layers(layers), strict=True):
        box = compose.tight_box(visible)
        full = int(np.count_nonzero(layer >= compose.MASK_THRESHOLD))
        area = int(np.count_nonzero(visible >= compose.MASK_THRESHOLD))
        objects.append(
            {"garment": garment.to_json(), "bbox": list(box), "area": area, "visible_fraction": round(area / full, 4)}
        )
    return to_uint8(canvas), objects, background


def _occlusion_ok(layers: list[np.ndarray], new: np.ndarray, min_visible: float) -> bool:
    """Whether ``new`` has a mask, and every layer keeps ``min_visible`` of its mask under it."""
    if not np.any(new >= compose.MASK_THRESHOLD):
        return False
    stack = [*layers, new]
    for layer, visible in zip(layers, compose.visible_layers(stack)[:-1], strict=True):
        full = np.count_nonzero(layer >= compose.MASK_THRESHOLD)
        if np.count_nonzero(visible >= compose.MASK_THRESHOLD) < min_visible * full:
            return False
    return True


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _PNG_OPTIONS)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path}")
    path.write_bytes(buf.tobytes())


def write_plain_json(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON without a temporary file: the whole data set folder is renamed into place
    at the end, which is what makes the build atomic."""
    separators = None if indent else (",", ":")
    path.write_text(json.dumps(data, indent=indent, separators=separators) + "\n", encoding="utf-8")


def _progress(count: int, label: str, enabled: bool):
    if not enabled:
        return range(count)
    tqdm = require("tqdm", "train", "the data set build's progress bar").tqdm
    return tqdm(range(count), desc=label, unit="img", leave=False)


def write_classification(
    root: Path,
    split: str,
    count: int,
    size: tuple[int, int],
    config: BuildConfig,
    pool: GarmentPool,
    photos: Photos,
    progress: bool,
) -> dict[str, Any]:
    """Write ``count`` images of ``split`` under ``root/classification``; classes cycle in
    label order so every class gets ``count / 10`` images (rounded). Returns a summary."""
    base = root / "classification"
    names = config.class_names
    for name in names:
        (base / split / name).mkdir(parents=True, exist_ok=True)
    records = []
    for i in _progress(count, f"classification/{split}", progress):
        label = i % len(names)
        image, record = classification_image(
            image_rng(config.seed, "classification", split, i), label, size, config, pool, photos
        )
        file = f"{names[label]}/{i:05d}.png"
        _write_png(base / split / file, image)
        records.append({"file": file, "label": label, **record})
    write_plain_json(base / f"{split}.json", {"class_names": list(names), "images": records})
    return {"images": count, "folder": f"classification/{split}", "provenance": f"classification/{split}.json"}


def write_detection(
    root: Path,
    split: str,
    count: int,
    size: tuple[int, int],
    config: BuildConfig,
    pool: GarmentPool,
    photos: Photos,
    progress: bool,
) -> dict[str, Any]:
    """Write ``count`` scenes of ``split`` under ``root/detection`` with a COCO JSON. Returns
    a summary."""
    base = root / "detection"
    (base / split / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in _progress(count, f"detection/{split}", progress):
        image, objects, background = detection_image(
            image_rng(config.seed, "detection", split, i), size, config, pool, photos
        )
        file_name = f"{i:05d}.png"
        _write_png(base / split / "images" / file_name, image)
        images.append(
            {"id": i + 1, "file_name": file_name, "width": size[0], "height": size[1], "background": background}
        )
        for obj in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": obj["garment"]["label"] + 1,
                    "iscrowd": 0,
                    **obj,
                }
            )
    coco = {
        "info": {"description": f"edge-isp built-in detection, {split} split", "seed": int(config.seed)},
        "licenses": [],
        "categories": [{"id": c + 1, "name": n, "supercategory": "garment"} for c, n in enumerate(sources.CLASS_NAMES)],
        "images": images,
        "annotations": annotations,
    }
    write_plain_json(base / f"{split}.json", coco)
    return {
        "images": count,
        "annotations": len(annotations),
        "folder": f"detection/{split}/images",
        "coco": f"detection/{split}.json",
    }
