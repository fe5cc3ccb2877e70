"""Build the real data sets: crops of real photographs (classification) and frames (detection).

No labels: a teacher labels them later. Layout under ``OUT``:

- ``real-classification/{train,val,test}/NNNNN.png``: square crops (``store_px``, by default
  ``crop_px``, a side) at several scales, ``crops_per_photo[split]`` from each photograph of that split;
- ``real-detection/{train,val,test}/NAME.jpg``: the video's kept frames (time blocks, see
  :func:`edge_isp.data.real_sources.video_splits`) and each photograph whole (its long side
  brought down to ``photo_max_px``);
- ``real-classification/manifest.json``, ``real-detection/manifest.json``: the config, the
  sources (and what was skipped) and one record per file: ``file`` (relative to the task
  folder), ``split``, ``photo_id`` (or the video's name), ``source`` (path of the photograph
  or video), ``frame`` (video only), ``box`` ``[x0, y0, x1, y1]`` in source pixels, and
  ``scale`` (classification: the crop side as a fraction of the photo's short side) or
  ``size`` (detection: the stored ``[width, height]``).

Splits are by photograph (the fixed table, or a seeded split of a user's folder) and, for a
video, by time block with a gap. The same config gives byte-identical files; everything is
written into a temporary folder beside ``OUT`` and renamed into place at the end.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp import __version__
from edge_isp.data import real_sources
from edge_isp.data.folders import read_image
from edge_isp.data.real_sources import SPLITS, RealPhoto
from edge_isp.data.scenes import write_plain_json
from edge_isp.errors import InvalidInputError, require
from edge_isp.fileio import replace_folder
from edge_isp.isp.colour import resize_image

CLASSIFICATION_DIR = "real-classification"
DETECTION_DIR = "real-detection"
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class RealBuildConfig:
    """Everything a real build depends on (besides its sources).

    Attributes:
        seed: crops draw from the stream of (seed, photo index).
        crop_px: side of a stored classification crop, and the smallest crop window.
        store_px: side of a stored classification crop when it differs from ``crop_px``: the
            same windows (they depend on ``crop_px``, the scales and the seed only) with more
            pixels, e.g. ``crop_px`` 160 and ``store_px`` 256 for a half-resolution model whose
            128 px picture comes from a 256 px raw (``configs/real-cls-half.toml``). None: ``crop_px``.
        crops_per_photo: crops from each photograph of (train, val, test).
        scales: crop window side as fractions of the photo's short side; the window is
            at least ``crop_px`` (at most the short side) so small photos are not blown up.
        photo_max_px: detection photographs are shrunk so their long side is at most this.
        block_frames, gap_frames, frame_stride: the video split (see ``video_splits``).
        jpeg_quality: quality of the stored detection images.
    """

    seed: int = 0
    crop_px: int = 160
    crops_per_photo: tuple[int, int, int] = (100, 50, 50)
    scales: tuple[float, ...] = (0.2, 0.4, 0.7)
    photo_max_px: int = 1024
    block_frames: int = 50
    gap_frames: int = 10
    frame_stride: int = 3
    jpeg_quality: int = 95
    store_px: int | None = None

    def __post_init__(self) -> None:
        if not 16 <= self.crop_px <= 1024:
            raise InvalidInputError(f"crop size must be 16..1024 pixels, got {self.crop_px}")
        if self.store_px is not None and not 16 <= self.store_px <= 1024:
            raise InvalidInputError(f"stored crop size must be 16..1024 pixels, got {self.store_px}")
        if len(self.crops_per_photo) != 3 or any(n < 0 for n in self.crops_per_photo):
            raise InvalidInputError(f"crops per photo (train, val, test) must be >= 0, got {self.crops_per_photo}")
        if not self.scales or any(not 0.0 < s <= 1.0 for s in self.scales):
            raise InvalidInputError(f"crop scales must be fractions in (0, 1], got {self.scales}")
        if not 0 <= int(self.seed) < 2**63:
            raise InvalidInputError(f"seed must be a non-negative integer below 2**63, got {self.seed}")
        if self.photo_max_px < 64:
            raise InvalidInputError(f"photo_max_px must be at least 64, got {self.photo_max_px}")
        real_sources.video_splits(1, self.block_frames, self.gap_frames, self.frame_stride)

    @property
    def stored_px(self) -> int:
        """Side of a stored classification crop."""
        return self.crop_px if self.store_px is None else self.store_px

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["crops_per_photo"] = dict(zip(SPLITS, self.crops_per_photo, strict=True))
        out["scales"] = list(self.scales)
        if self.store_px is None:  # manifests of builds without it stay as they were
            del out["store_px"]
        return out


def real_set_dir(root: str | Path, task: str) -> Path | None:
    """The real set of ``task`` under a built data folder, or None if it holds none."""
    folder = Path(root) / f"real-{task}"
    return folder if (folder / MANIFEST).is_file() else None


def crop_boxes(width: int, height: int, count: int, config: RealBuildConfig, rng: np.random.Generator) -> list:
    """``count`` square windows ``([x0, y0, x1, y1], scale)`` inside a ``width`` x ``height`` photo."""
    short = min(width, height)
    boxes = []
    for _ in range(count):
        scale = float(config.scales[int(rng.integers(len(config.scales)))])
        side = int(min(short, max(config.crop_px, round(scale * short))))
        x0 = int(rng.integers(0, width - side + 1))
        y0 = int(rng.integers(0, height - side + 1))
        boxes.append(([x0, y0, x0 + side, y0 + side], scale))
    return boxes


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"could not write {path}")


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    return require("tqdm", "train", "the data set build's progress bar").tqdm(total=total, desc=desc, unit="file")


def _photo_record(photo: RealPhoto) -> dict[str, Any]:
    return {"id": photo.id, "package": photo.package, "path": str(photo.path), "group": photo.group,
            "split": photo.split, "sha256": photo.sha256, "note": photo.note}  # fmt: skip


def _build_classification(root: Path, photos: list[RealPhoto], config: RealBuildConfig, progress: bool) -> list:
    for split in SPLITS:
        (root / split).mkdir(parents=True)
    per_split = dict(zip(SPLITS, config.crops_per_photo, strict=True))
    bar = _bar(progress, sum(per_split[p.split] for p in photos), "classification crops")
    items, counters = [], dict.fromkeys(SPLITS, 0)
    for index, photo in enumerate(photos):
        image = read_image(photo.path)
        rng = np.random.default_rng([config.seed, index])
        for box, scale in crop_boxes(image.shape[1], image.shape[0], per_split[photo.split], config, rng):
            x0, y0, x1, y1 = box
            crop = resize_image(image[y0:y1, x0:x1], (config.stored_px, config.stored_px))
            name = f"{photo.split}/{counters[photo.split]:05d}.png"
            counters[photo.split] += 1
            _write_png(root / name, crop)
            items.append({"file": name, "split": photo.split, "photo_id": photo.id, "source": str(photo.path),
                          "box": box, "scale": scale})  # fmt: skip
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return items


def _build_detection(root: Path, photos: list[RealPhoto], video: Path | None, config: RealBuildConfig, progress: bool):
    for split in SPLITS:
        (root / split).mkdir(parents=True)
    kept = {}
    if video is not None:
        kept = real_sources.video_splits(
            real_sources.video_frame_count(video), config.block_frames, config.gap_frames, config.frame_stride
        )
    bar = _bar(progress, len(kept) + len(photos), "detection images")
    items = []
    if video is not None:
        for frame, rgb in real_sources.read_video_frames(video, set(kept)):
            name = f"{kept[frame]}/{video.stem}_f{frame:05d}.jpg"
            _write_jpeg(root / name, rgb, config.jpeg_quality)
            h, w = rgb.shape[:2]
            items.append({"file": name, "split": kept[frame], "photo_id": video.name, "source": str(video),
                          "frame": frame, "box": [0, 0, w, h], "size": [w, h]})  # fmt: skip
            if bar is not None:
                bar.update(1)
    for index, photo in enumerate(photos):
        image = read_image(photo.path)
        h, w = image.shape[:2]
        factor = min(1.0, config.photo_max_px / max(w, h))
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        name = f"{photo.split}/photo_{index:04d}.jpg"
        _write_jpeg(root / name, resize_image(image, size) if factor < 1.0 else image, config.jpeg_quality)
        items.append({"file": name, "split": photo.split, "photo_id": photo.id, "source": str(photo.path),
                      "box": [0, 0, w, h], "size": list(size)})  # fmt: skip
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return items


def _counts(items: list[dict]) -> dict[str, int]:
    return {s: sum(1 for i in items if i["split"] == s) for s in SPLITS}


def build_real(
    out: str | Path,
    photos: list[RealPhoto],
    video: str | Path | None,
    config: RealBuildConfig | None = None,
    *,
    skipped: list[tuple[str, str]] | None = None,
    force: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Build the real sets into ``out``; returns ``{task: manifest}`` of the tasks built.

    Classification is built when there are photographs, detection when there are
    photographs or a video. ``out`` is replaced only with ``force``.
    """
    config = config or RealBuildConfig()
    out = Path(out)
    if not photos and video is None:
        raise InvalidInputError("a real build needs photographs (--images DIR, or --real) or a video (--video FILE)")
    if out.exists() and not force:
        raise InvalidInputError(f"{out} already exists; choose another --out or pass --force to replace it")
    video = Path(video) if video is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    common = {"version": 1, "edge_isp": __version__, "config": config.to_json(),
              "photos": [_photo_record(p) for p in photos], "skipped": [list(s) for s in skipped or []]}  # fmt: skip
    manifests: dict[str, Any] = {}
    try:
        os.chmod(tmp, 0o755)
        if photos:
            items = _build_classification(tmp / CLASSIFICATION_DIR, photos, config, progress)
            manifests["classification"] = {"task": "classification", **common, "counts": _counts(items), "items": items}
            write_plain_json(tmp / CLASSIFICATION_DIR / MANIFEST, manifests["classification"], indent=1)
        items = _build_detection(tmp / DETECTION_DIR, photos, video, config, progress)
        manifests["detection"] = {"task": "detection", **common, "video": str(video) if video else None,
                                  "counts": _counts(items), "items": items}  # fmt: skip
        write_plain_json(tmp / DETECTION_DIR / MANIFEST, manifests["detection"], indent=1)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifests
