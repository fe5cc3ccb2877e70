"""Tiny image data sets written to a temporary folder, shared by the training and evaluation
tests: a few noisy colour fields (classification) and coloured squares on grey (COCO
detection), so a run takes seconds on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

COLOURS = {"red": (0.85, 0.15, 0.1), "blue": (0.1, 0.2, 0.85)}


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_classification(
    root: Path, per_class: int, size: int = 32, seed: int = 0, brightness: tuple[float, float] = (0.6, 1.0),
    noise: float = 0.08,
) -> Path:  # fmt: skip
    """root/CLASS/NNN.png: noisy images dominated by the class colour, scaled by a brightness
    drawn from ``brightness``, plus white noise of std ``noise`` (on 0..1)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        for i in range(per_class):
            image = np.asarray(colour) * rng.uniform(*brightness) + rng.normal(0, noise, (size, size, 3))
            write_png(root / name / f"{i:03d}.png", (np.clip(image, 0, 1) * 255).astype(np.uint8))
    return root


def make_detection(root: Path, split: str, count: int, size: int = 64, seed: int = 0) -> Path:
    """root/SPLIT/images/*.png + root/SPLIT.json (COCO): 1-2 coloured squares on grey."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(count):
        image = np.full((size, size, 3), 0.45) + rng.normal(0, 0.03, (size, size, 3))
        for _ in range(int(rng.integers(1, 3))):
            label = int(rng.integers(0, 2))
            side = int(rng.integers(14, 26))
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            image[y : y + side, x : x + side] = list(COLOURS.values())[label]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0,
            })  # fmt: skip
        name = f"{i:03d}.png"
        write_png(root / split / "images" / name, (np.clip(image, 0, 1) * 255).astype(np.uint8))
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(COLOURS)]
    path = root / f"{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def make_real_set(
    root: Path, task: str, counts: dict[str, int], size: tuple[int, int] = (48, 40), seed: int = 0
) -> Path:
    """root/real-TASK/SPLIT/NNN.png + manifest.json: unlabelled images as `data build --real`
    writes them (coloured squares on textured grey, ``size`` = (width, height))."""
    rng = np.random.default_rng(seed)
    folder = root / f"real-{task}"
    items = []
    for split, count in counts.items():
        for i in range(count):
            w, h = size
            image = np.full((h, w, 3), 0.45) + rng.normal(0, 0.05, (h, w, 3))
            side = int(rng.integers(8, min(w, h) // 2))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            image[y : y + side, x : x + side] = list(COLOURS.values())[i % 2]
            name = f"{split}/{i:03d}.png"
            write_png(folder / name, (np.clip(image, 0, 1) * 255).astype(np.uint8))
            items.append({"file": name, "split": split, "source": f"synthetic:{seed}:{i}"})
    (folder / "manifest.json").write_text(json.dumps({"items": items}))
    return root
