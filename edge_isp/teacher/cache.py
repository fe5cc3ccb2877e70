"""The teacher's answers on a real image set, computed once and kept on disk.

A training step never runs a teacher: before training, every image of each split is shown
to the teacher once and its answer is stored, keyed by what made it (the teacher's
identity and settings, and the set's manifest), so a changed teacher or a rebuilt set gets
its own cache and a finished one is reused.

Layout: ``CACHE/KEY/teacher.json`` (the teacher, its class names, the key's parts) and one
``SPLIT.npz`` per split:

- classification: ``logits`` (N, 2, C) float16, the answer on each image and on its mirror
  image (a flipped training image gets the answer for the flipped image);
- detection: the boxes of every image concatenated, ``boxes`` (M, 4) float32 xyxy in the
  stored image's pixels, ``scores`` (M,) float32, ``labels`` (M,) int32, and ``start``
  (N + 1,) int64: image ``i`` owns rows ``start[i]:start[i + 1]``. All boxes the teacher
  gives are kept; the score threshold is applied when the set is read, so changing it
  needs no new cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import atomic_open, write_json

CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ClassificationAnswers:
    """The teacher's logits for one split: ``logits`` (N, 2, C) float32 (image, mirror)."""

    logits: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.logits.shape[0]

    @property
    def labels(self) -> np.ndarray:
        """The teacher's top-1 class of each (unflipped) image, (N,) int64."""
        return self.logits[:, 0].argmax(axis=1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class DetectionAnswers:
    """The teacher's boxes for one split (see the module docstring for the arrays)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    start: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.start.shape[0] - 1

    def of(self, i: int, threshold: float = 0.0, keep: np.ndarray | None = None):
        """Image ``i``'s boxes (K, 4), scores (K,) and labels (K,) scoring >= ``threshold``,
        of the classes whose index is in ``keep`` (all when None)."""
        rows = slice(int(self.start[i]), int(self.start[i + 1]))
        boxes, scores, labels = self.boxes[rows], self.scores[rows], self.labels[rows]
        mask = scores >= threshold
        if keep is not None:
            mask &= np.isin(labels, keep)
        return boxes[mask], scores[mask], labels[mask]


def cache_key(identity: dict[str, Any], manifest: Path) -> str:
    """16 hex digits from the teacher's identity and the manifest's bytes."""
    digest = hashlib.sha256(Path(manifest).read_bytes()).hexdigest()
    text = json.dumps({"version": CACHE_VERSION, "teacher": identity, "manifest": digest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _progress(total: int, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not show, dynamic_ncols=True, file=sys.stderr)


def classification_answers(
    teacher: Any, images: Callable[[int], np.ndarray], count: int, *, batch: int = 32, show: bool = True
) -> np.ndarray:
    """Logits (N, 2, C) float16 of ``teacher`` on images ``0..count-1`` and their mirrors."""
    out = np.zeros((count, 2, len(teacher.class_names)), np.float16)
    with _progress(count, "teacher", show) as bar:
        for start in range(0, count, batch):
            chunk = [images(i) for i in range(start, min(count, start + batch))]
            both = chunk + [np.ascontiguousarray(im[:, ::-1]) for im in chunk]
            logits = teacher.logits(both)
            if logits.shape != (len(both), len(teacher.class_names)):
                raise InvalidInputError(
                    f"the teacher gave logits of shape {logits.shape} for {len(both)} images, expected "
                    f"({len(both)}, {len(teacher.class_names)}) (one per class name)"
                )
            n = len(chunk)
            out[start : start + n, 0] = logits[:n]
            out[start : start + n, 1] = logits[n:]
            bar.update(n)
    return out


def detection_answers(
    teacher: Any, images: Callable[[int], np.ndarray], count: int, *, show: bool = True
) -> dict[str, np.ndarray]:
    """The arrays of :class:`DetectionAnswers` for ``teacher`` (``detect(rgb) -> boxes,
    scores, labels``) on images ``0..count-1``."""
    boxes, scores, labels, start = [], [], [], [0]
    with _progress(count, "teacher", show) as bar:
        for i in range(count):
            image = images(i)
            b, s, lab = teacher.detect(image)
            b = np.asarray(b, np.float32).reshape(-1, 4)
            s, lab = np.asarray(s, np.float32).reshape(-1), np.asarray(lab, np.int32).reshape(-1)
            if not len(b) == len(s) == len(lab):
                raise InvalidInputError(
                    f"the teacher gave {len(b)} boxes, {len(s)} scores and {len(lab)} labels for one image"
                )
            h, w = image.shape[:2]
            b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
            boxes.append(b)
            scores.append(s)
            labels.append(lab)
            start.append(start[-1] + len(b))
            bar.update(1)
    return {
        "boxes": np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        "scores": np.concatenate(scores) if scores else np.zeros(0, np.float32),
        "labels": np.concatenate(labels) if labels else np.zeros(0, np.int32),
        "start": np.asarray(start, np.int64),
    }


def ensure_cache(
    cache_dir: Path,
    key: str,
    task: str,
    teacher_factory: Callable[[], Any],
    splits: dict[str, tuple[Callable[[int], np.ndarray], int]],
    describe: dict[str, Any],
    *,
    show: bool = True,
) -> Path:
    """The folder ``cache_dir/key`` with every split's answers, computing what is missing.

    ``splits`` maps a split name to (image reader by index, image count). The teacher is
    only created (``teacher_factory()``) when something has to be computed. Each split's file
    is written atomically, so a run killed while caching restarts at the split it was on.
    """
    folder = Path(cache_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    missing = [name for name in splits if not (folder / f"{name}.npz").is_file()]
    info_path = folder / "teacher.json"
    if not missing and info_path.is_file():
        return folder
    teacher = teacher_factory()
    for name in missing:
        read, count = splits[name]
        print(f"teacher: answering {count} {name} images -> {folder / name}.npz", file=sys.stderr)
        if task == "classification":
            arrays = {"logits": classification_answers(teacher, read, count, show=show)}
        else:
            arrays = detection_answers(teacher, read, count, show=show)
        with atomic_open(folder / f"{name}.npz", "wb") as handle:
            np.savez(handle, **arrays)
    write_json(info_path, {"version": CACHE_VERSION, "task": task, "class_names": list(teacher.class_names),
                           **describe})  # fmt: skip
    return folder


def load_answers(folder: Path, split: str) -> ClassificationAnswers | DetectionAnswers:
    """Read one split's answers from a cache folder made by :func:`ensure_cache`."""
    info = json.loads((Path(folder) / "teacher.json").read_text(encoding="utf-8"))
    names = tuple(info["class_names"])
    with np.load(Path(folder) / f"{split}.npz") as data:
        if info["task"] == "classification":
            return ClassificationAnswers(data["logits"].astype(np.float32), names)
        return DetectionAnswers(data["boxes"], data["scores"], data["labels"], data["start"], names)


def label_map(class_names: Sequence[str], wanted: Sequence[str], origin: str) -> tuple[np.ndarray, np.ndarray]:
    """For a student that learns the teacher classes ``wanted`` (all when empty), in that
    order: (the teacher indices kept, (K,); a lookup teacher index -> student index, -1 for a
    class left out). Unknown names are refused."""
    wanted = tuple(wanted) or tuple(class_names)
    unknown = [w for w in wanted if w not in class_names]
    if unknown:
        raise InvalidInputError(
            f"{origin}: the teacher has no class {', '.join(map(repr, unknown))}; its classes: {', '.join(class_names)}"
        )
    keep = np.array([list(class_names).index(w) for w in wanted], np.int64)
    lookup = np.full(len(class_names), -1, np.int64)
    lookup[keep] = np.arange(len(keep))
    return keep, lookup
