"""Read and validate COCO detection JSON (the subset a detector trains on).

Used by :class:`~edge_isp.data.folders.CocoDetectionDataset` for image files and by
:class:`~edge_isp.data.folders.RawCaptureDataset` for raw captures: ``file_name`` names
the image or raw file, ``bbox`` is ``[x, y, w, h]`` in pixels of that file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError

# Boxes this far (pixels) past the image edge are clipped; farther out is an error.
BOX_TOLERANCE_PX = 1.0


@dataclasses.dataclass(frozen=True)
class CocoIndex:
    """A validated COCO file.

    Attributes:
        images: per image ``{"id", "file_name", "width", "height"}``, in file order.
        boxes: per image ``(N, 4)`` float32 ``[x0, y0, x1, y1]`` in pixels.
        labels: per image ``(N,)`` int64 contiguous class indices into ``class_names``.
        class_names: category names in order of ascending category id.
        category_ids: the COCO id of each class index.
    """

    images: list[dict[str, Any]]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: list[str]
    category_ids: list[int]


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"JSON file {path} does not exist")
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file (expected a JSON file)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from None


def _int(record: dict, key: str, what: str, origin: str, minimum: int | None = None) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise InvalidInputError(f"{origin}: {what} needs an integer '{key}'{bound}, got {value!r} in {record}")
    return value


def _list_of_dicts(data: dict, key: str, origin: str, required: bool = True) -> list[dict]:
    if key not in data:
        if required:
            raise InvalidInputError(f"{origin}: not COCO JSON, missing the top-level '{key}' list")
        return []
    items = data[key]
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise InvalidInputError(f"{origin}: '{key}' must be a list of objects, got {type(items).__name__}")
    return items


def parse_coco(data: Any, origin: str, include_crowd: bool = False) -> CocoIndex:
    """Validate parsed COCO JSON and index its boxes by image.

    Args:
        data: the parsed JSON.
        origin: names the file in error messages.
        include_crowd: keep ``iscrowd=1`` annotations (skipped by default, as detectors do).
    """
    if not isinstance(data, dict):
        raise InvalidInputError(f"{origin}: COCO JSON must be an object at the top level, got {type(data).__name__}")
    categories = _list_of_dicts(data, "categories", origin)
    images = _list_of_dicts(data, "images", origin)
    annotations = _list_of_dicts(data, "annotations", origin, required=False)
    if not categories:
        raise InvalidInputError(f"{origin}: 'categories' is empty; expected at least one category")

    names: dict[int, str] = {}
    for cat in categories:
        cid = _int(cat, "id", "a category", origin)
        if cid in names:
            raise InvalidInputError(f"{origin}: category id {cid} appears twice")
        if not isinstance(cat.get("name"), str) or not cat["name"]:
            raise InvalidInputError(f"{origin}: category {cid} needs a non-empty 'name', got {cat.get('name')!r}")
        names[cid] = cat["name"]
    category_ids = sorted(names)
    index_of = {cid: i for i, cid in enumerate(category_ids)}

    position: dict[int, int] = {}
    records = []
    for img in images:
        iid = _int(img, "id", "an image", origin)
        if iid in position:
            raise InvalidInputError(f"{origin}: image id {iid} appears twice")
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise InvalidInputError(
                f"{origin}: image {iid} needs a non-empty 'file_name', got {img.get('file_name')!r}"
            )
        width = _int(img, "width", f"image {iid}", origin, minimum=1)
        height = _int(img, "height", f"image {iid}", origin, minimum=1)
        position[iid] = len(records)
        records.append({"id": iid, "file_name": img["file_name"], "width": width, "height": height})

    boxes: list[list[list[float]]] = [[] for _ in records]
    labels: list[list[int]] = [[] for _ in records]
    for ann in annotations:
        aid = ann.get("id", "?")
        iid = _int(ann, "image_id", f"annotation {aid}", origin)
        if iid not in position:
            raise InvalidInputError(f"{origin}: annotation {aid} refers to image id {iid}, which is not in 'images'")
        cid = _int(ann, "category_id", f"annotation {aid}", origin)
        if cid not in index_of:
            raise InvalidInputError(f"{origin}: annotation {aid} has category_id {cid}; expected one of {category_ids}")
        if ann.get("iscrowd", 0) and not include_crowd:
            continue
        record = records[position[iid]]
        boxes[position[iid]].append(_check_box(ann.get("bbox"), aid, record, origin))
        labels[position[iid]].append(index_of[cid])

    return CocoIndex(
        images=records,
        boxes=[np.asarray(b, np.float32).reshape(-1, 4) for b in boxes],
        labels=[np.asarray(lab, np.int64) for lab in labels],
        class_names=[names[c] for c in category_ids],
        category_ids=category_ids,
    )


def _check_box(bbox: Any, aid: Any, image: dict[str, Any], origin: str) -> list[float]:
    """``[x, y, w, h]`` -> ``[x0, y0, x1, y1]``, refusing empty and out-of-image boxes."""
    ok = isinstance(bbox, (list, tuple)) and len(bbox) == 4
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    if not ok:
        raise InvalidInputError(
            f"{origin}: annotation {aid} needs 'bbox' = [x, y, w, h] of 4 finite numbers, got {bbox!r}"
        )
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise InvalidInputError(f"{origin}: annotation {aid} has an empty bbox {bbox} (w and h must be > 0)")
    width, height = image["width"], image["height"]
    tol = BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise InvalidInputError(
            f"{origin}: annotation {aid} bbox {bbox} (x, y, w, h) lies outside its image "
            f"{image['file_name']!r} of {width}x{height} pixels"
        )
    box = [max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))]
    if box[2] <= box[0] or box[3] <= box[1]:
        raise InvalidInputError(f"{origin}: annotation {aid} bbox {bbox} has no area inside its {width}x{height} image")
    return box
