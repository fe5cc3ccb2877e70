"""Loaders for the data people already have: image folders, COCO JSON, raw captures.

All three are plain map-style data sets (``len(ds)``, ``ds[i]``) on numpy, so a torch
``DataLoader`` takes them as they are and the runtime can use them without torch. Images
come back as ``(H, W, 3)`` uint8 RGB; boxes as ``(N, 4)`` float32 ``[x0, y0, x1, y1]``
in pixels of the returned image (raw: of the full-resolution mosaic), labels as
``(N,)`` int64 contiguous class indices into ``class_names``. Folders and files are
checked when the data set is opened, so a mistake shows up before training starts.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.data.coco import CocoIndex, parse_coco, read_json
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor.frame import RawFrame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _check_dir(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.exists():
        raise MissingFileError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise InvalidInputError(f"{what} {root} is not a folder")
    return root


def _missing(paths: Sequence[Path], what: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise MissingFileError(f"{len(missing)} {what} missing: {', '.join(missing[:3])}{more}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey is repeated, alpha dropped)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"{path}: not an image OpenCV can read (PNG, JPEG, TIFF, BMP, WebP)")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _class_index(names: Sequence[str], class_names: Sequence[str] | None, origin: str) -> list[str]:
    """The class list: ``class_names`` if given (every name found must be in it), else the
    found names sorted."""
    if class_names is None:
        return sorted(set(names))
    class_names = [str(c) for c in class_names]
    if len(set(class_names)) != len(class_names):
        raise InvalidInputError(f"class_names has duplicates: {class_names}")
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise InvalidInputError(f"{origin}: class(es) {', '.join(unknown)} are not in class_names {class_names}")
    return class_names


class ImageFolderDataset:
    """``root/CLASS_NAME/*.png`` (any depth below the class folder) -> (image, class index).

    Args:
        root: the folder of class folders. Hidden entries (".name") are ignored.
        class_names: the class order to use; by default the folder names sorted. Give it
            to match a model's classes: every folder must then be one of them.

    Items: ``(image (H, W, 3) uint8 RGB, class index int)``.
    """

    def __init__(self, root: str | Path, class_names: Sequence[str] | None = None) -> None:
        self.root = _check_dir(root, "image folder")
        folders = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not folders:
            raise InvalidInputError(
                f"{self.root} has no class folders; expected {self.root}/CLASS_NAME/IMAGE.png, one folder per class"
            )
        self.class_names = _class_index([d.name for d in folders], class_names, str(self.root))
        index = {name: i for i, name in enumerate(self.class_names)}
        self.samples: list[tuple[Path, int]] = []
        empty = []
        for folder in folders:
            files = sorted(
                p
                for p in folder.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            if not files:
                empty.append(folder.name)
            self.samples += [(p, index[folder.name]) for p in files]
        if empty:
            raise InvalidInputError(
                f"{self.root}: class folder(s) {', '.join(empty)} hold no images "
                f"(looked for {', '.join(IMAGE_SUFFIXES)})"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[i]
        return read_image(path), label


class CocoDetectionDataset:
    """Images plus a COCO JSON file -> (image, boxes, labels).

    Args:
        json_path: the COCO JSON (``images``, ``annotations``, ``categories``).
        images_dir: the folder ``file_name`` is relative to. By default the first of
            ``JSON_DIR/STEM/images``, ``JSON_DIR/STEM`` and ``JSON_DIR`` that holds the
            first image.
        include_crowd: keep ``iscrowd=1`` annotations (skipped by default).

    Category ids map to contiguous indices in ascending id order (``class_names``).
    Items: ``(image (H, W, 3) uint8 RGB, boxes (N, 4) float32 xyxy pixels, labels (N,) int64)``.
    """

    def __init__(
        self, json_path: str | Path, images_dir: str | Path | None = None, include_crowd: bool = False
    ) -> None:
        self.json_path = Path(json_path)
        self.index: CocoIndex = parse_coco(read_json(self.json_path), str(self.json_path), include_crowd)
        self.class_names = self.index.class_names
        if images_dir is not None:
            self.images_dir = _check_dir(images_dir, "images folder")
        else:
            self.images_dir = self._find_images_dir()
        _missing([self.images_dir / r["file_name"] for r in self.index.images], f"image(s) named in {self.json_path}")

    def _find_images_dir(self) -> Path:
        base, stem = self.json_path.parent, self.json_path.stem
        candidates = [base / stem / "images", base / stem, base]
        if not self.index.images:
            return base
        first = self.index.images[0]["file_name"]
        for folder in candidates:
            if (folder / first).is_file():
                return folder
        raise MissingFileError(
            f"cannot find {first!r} (the first image of {self.json_path}) in any of "
            f"{', '.join(str(c) for c in candidates)}; pass images_dir"
        )

    def __len__(self) -> int:
        return len(self.index.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        record = self.index.images[i]
        image = read_image(self.images_dir / record["file_name"])
        if image.shape[:2] != (record["height"], record["width"]):
            raise InvalidInputError(
                f"{self.images_dir / record['file_name']}: is {image.shape[1]}x{image.shape[0]} pixels but "
                f"{self.json_path} says {record['width']}x{record['height']}"
            )
        return image, self.index.boxes[i].copy(), self.index.labels[i].copy()


def load_raw_capture(path: str | Path) -> RawFrame:
    """A RawFrame from ``.npy``/``.json`` (RawFrame.save's pair) or any file
    :func:`edge_isp.sensor.rawfile.load_raw` reads (DNG...)."""
    path = Path(path)
    if path.suffix.lower() in (".npy", ".json"):
        return RawFrame.load(path)
    try:
        from edge_isp.sensor.rawfile import load_raw
    except ImportError:
        raise InvalidInputError(
            f"{path}: reading {path.suffix or 'suffix-less'} raw files needs edge_isp.sensor.rawfile, which this "
            "installation lacks; convert the captures to RawFrame .npy + .json"
        ) from None
    return load_raw(path)


class RawCaptureDataset:
    """A folder of real raw captures with labels.

    The labels file in ``root`` (or ``labels``) decides the task:

    - ``labels.csv`` with the header ``file,label``, or ``labels.json`` as an object
      ``{"FILE": "CLASS_NAME", ...}``: classification, items ``(RawFrame, class index)``;
    - ``labels.json`` in COCO form whose ``file_name`` are the raw files and whose
      ``width``/``height`` are the mosaic's: detection, items ``(RawFrame, boxes (N, 4)
      float32 xyxy in mosaic pixels, labels (N,) int64)``.

    Files are RawFrame pairs (``NAME.npy`` + ``NAME.json``, named by either) or DNG and
    other camera raw files, relative to ``root``.
    """

    def __init__(
        self, root: str | Path, labels: str | Path | None = None, class_names: Sequence[str] | None = None
    ) -> None:
        self.root = _check_dir(root, "raw capture folder")
        path = Path(labels) if labels is not None else self._find_labels()
        self.labels_path = path
        data = _read_csv(path) if path.suffix.lower() == ".csv" else read_json(path)
        self.coco: CocoIndex | None = None
        if isinstance(data, dict) and "images" in data:
            self.task = "detection"
            self.coco = parse_coco(data, str(path))
            if class_names is not None and list(class_names) != self.coco.class_names:
                raise InvalidInputError(
                    f"{path}: its categories {self.coco.class_names} differ from class_names {list(class_names)}"
                )
            self.class_names = self.coco.class_names
            self.files = [self.root / r["file_name"] for r in self.coco.images]
            self.targets: list[Any] = list(zip(self.coco.boxes, self.coco.labels, strict=True))
        else:
            self.task = "classification"
            pairs = _classification_pairs(data, path)
            self.class_names = _class_index([c for _, c in pairs], class_names, str(path))
            index = {name: i for i, name in enumerate(self.class_names)}
            self.files = [self.root / f for f, _ in pairs]
            self.targets = [index[c] for _, c in pairs]
        _missing([_frame_file(f) for f in self.files], f"raw file(s) named in {path}")

    def _find_labels(self) -> Path:
        found = [p for p in (self.root / "labels.json", self.root / "labels.csv") if p.is_file()]
        if len(found) != 1:
            got = "both" if found else "neither"
            raise InvalidInputError(
                f"{self.root}: expected exactly one of labels.json and labels.csv (file -> class name, or COCO "
                f"JSON for detection), found {got}"
            )
        return found[0]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        frame = load_raw_capture(self.files[i])
        if self.coco is None:
            return frame, self.targets[i]
        record = self.coco.images[i]
        if (frame.height, frame.width) != (record["height"], record["width"]):
            raise InvalidInputError(
                f"{self.files[i]}: the mosaic is {frame.width}x{frame.height} but {self.labels_path} says "
                f"{record['width']}x{record['height']}"
            )
        boxes, labels = self.targets[i]
        return frame, boxes.copy(), labels.copy()


def _frame_file(path: Path) -> Path:
    """The file that must exist for ``path``: a RawFrame named by its sidecar needs its .npy."""
    return path.with_suffix(".npy") if path.suffix.lower() == ".json" else path


def _read_csv(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise MissingFileError(f"labels file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows or [c.strip().lower() for c in rows[0]] != ["file", "label"]:
        raise InvalidInputError(f"{path}: expected the header 'file,label', got {rows[0] if rows else 'an empty file'}")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InvalidInputError(f"{path} line {n}: expected 'FILE,CLASS_NAME', got {row}")
    return [[row[0].strip(), row[1].strip()] for row in rows[1:]]


def _classification_pairs(data: Any, path: Path) -> list[tuple[str, str]]:
    if isinstance(data, list):
        pairs = [(f, c) for f, c in data]
    elif isinstance(data, dict):
        bad = {k: v for k, v in data.items() if not isinstance(v, str) or not v}
        if bad:
            raise InvalidInputError(f'{path}: expected {{"FILE": "CLASS_NAME"}} with string class names, got {bad}')
        pairs = sorted(data.items())
    else:
        raise InvalidInputError(f"{path}: expected an object of file -> class name, got {type(data).__name__}")
    if not pairs:
        raise InvalidInputError(f"{path}: lists no files")
    dupes = sorted(f for f, n in Counter(f for f, _ in pairs).items() if n > 1)
    if dupes:
        raise InvalidInputError(f"{path}: file(s) listed more than once: {', '.join(dupes)}")
    return pairs
