"""The built-in demo data set: coloured Fashion-MNIST garments on natural photographs.

Two tasks, written in ordinary formats that the loaders of :mod:`edge_isp.data.folders`
(and any other tool) read:

- classification: one garment per image, the 10 Fashion-MNIST classes, as an image
  folder ``OUT/classification/{split}/{class_name}/NNNNN.png`` plus a provenance file
  ``OUT/classification/{split}.json``;
- detection: 1 to ``max_garments`` garments per scene with tight boxes, as
  ``OUT/detection/{split}/images/NNNNN.png`` plus COCO JSON ``OUT/detection/{split}.json``.

``OUT/dataset.json`` is the manifest: config, class names, sources, licences, and the
photographs each split used. The build is a pure function of the config: the same seed
gives byte-identical files. Splits are disjoint in garments (Fashion-MNIST train images
0-49,999 for train, 50,000-59,999 for val, its test set for test) and in photographs
(each assigned to one split in :data:`edge_isp.data.sources.PHOTOS`). The whole set is
written into a temporary folder beside ``OUT`` and renamed into place at the end, so a
crash never leaves a half-built data set at ``OUT``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_isp import __version__
from edge_isp.data import compose, scenes, sources
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import replace_folder

if TYPE_CHECKING:
    from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset

TASKS = ("classification", "detection")
MANIFEST = "dataset.json"
MANIFEST_VERSION = 1
DEFAULT_SIZE = {"classification": (64, 64), "detection": (128, 128)}
DEFAULT_COUNTS = {"classification": (5000, 1000, 1000), "detection": (2000, 400, 400)}
# What a classification image's label is: the garment (Fashion-MNIST's 10 classes, told apart
# mostly by shape and colour) or the garment's fill (10 textures on garments of any class).
CLASS_SETS = ("garments", "textures")
# Fashion-MNIST (part, first, stop) feeding each split: the garments never cross splits.
GARMENT_RANGES = {"train": ("train", 0, 50000), "val": ("train", 50000, 60000), "test": ("test", 0, 10000)}


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Size and split sizes of one task: ``size`` is (width, height) in pixels."""

    size: tuple[int, int]
    counts: tuple[int, int, int]

    def __post_init__(self) -> None:
        w, h = (int(v) for v in self.size)
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise InvalidInputError(f"image size must be 16..4096 pixels a side, got {w}x{h}")
        if len(self.counts) != 3 or any(int(n) < 1 for n in self.counts):
            raise InvalidInputError(f"every split needs at least 1 image (train, val, test), got {self.counts}")
        object.__setattr__(self, "size", (w, h))
        object.__setattr__(self, "counts", tuple(int(n) for n in self.counts))


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on.

    Attributes:
        seed: the seed; every image draws from its own stream of (seed, task, split, index).
        tasks: which tasks to build, from :data:`TASKS`, each with its :class:`TaskConfig`.
        max_garments: most garments in a detection scene (the least is 1).
        min_visible_fraction: a detection garment is placed only where every garment
            below it keeps at least this fraction of its mask visible.
        pattern_probability: chance that a garment gets stripes or checks.
        classes: ``"garments"`` (a classification image's label is its garment's class) or
            ``"textures"`` (its label is the garment's fill, one of
            :data:`edge_isp.data.compose.TEXTURES`, on a garment of any class: a task that
            needs fine detail; classification only).
    """

    seed: int = 0
    tasks: dict[str, TaskConfig] = dataclasses.field(
        default_factory=lambda: {t: TaskConfig(DEFAULT_SIZE[t], DEFAULT_COUNTS[t]) for t in TASKS}
    )
    max_garments: int = 6
    min_visible_fraction: float = 0.6
    pattern_probability: float = 0.4
    classes: str = "garments"

    def __post_init__(self) -> None:
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise InvalidInputError(f"tasks must be a non-empty subset of {', '.join(TASKS)}, got {list(self.tasks)}")
        if self.classes not in CLASS_SETS:
            raise InvalidInputError(f"classes must be one of {', '.join(CLASS_SETS)}, got {self.classes!r}")
        if self.classes == "textures" and set(self.tasks) != {"classification"}:
            raise InvalidInputError(
                "texture classes are for the classification task only: build it alone (--task classification)"
            )
        if not 1 <= self.max_garments <= 20:
            raise InvalidInputError(f"max_garments must be 1..20, got {self.max_garments}")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise InvalidInputError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")
        if not 0.0 <= self.pattern_probability <= 1.0:
            raise InvalidInputError(f"pattern_probability must be in [0, 1], got {self.pattern_probability}")
        if not 0 <= int(self.seed) < 2**63:
            raise InvalidInputError(f"seed must be a non-negative integer below 2**63, got {self.seed}")

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": int(self.seed),
            "tasks": {
                t: {"size": list(c.size), "counts": dict(zip(sources.SPLITS, c.counts, strict=True))}
                for t, c in self.tasks.items()
            },
            "max_garments": self.max_garments,
            "min_visible_fraction": self.min_visible_fraction,
            "pattern_probability": self.pattern_probability,
            # Only when not the default, so data sets built before the option stay reusable.
            **({"classes": self.classes} if self.classes != "garments" else {}),
        }

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classification classes: Fashion-MNIST's, or the texture classes."""
        return compose.TEXTURE_NAMES if self.classes == "textures" else tuple(sources.CLASS_NAMES)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What :func:`build_dataset` did: the data set's folder, its manifest, and whether it
    was already there (``reused``) rather than built, and the seconds it took."""

    root: Path
    manifest: dict[str, Any]
    reused: bool
    seconds: float


def _garment_pools(fashion_dir: str | Path | None) -> dict[str, scenes.GarmentPool]:
    parts = {p: sources.load_fashion_mnist(p, fashion_dir) for p in ("train", "test")}
    pools = {}
    for split, (part, first, stop) in GARMENT_RANGES.items():
        images, labels = parts[part]
        indices = np.arange(first, min(stop, len(labels)))
        by_class = tuple(indices[labels[indices] == c] for c in range(len(sources.CLASS_NAMES)))
        empty = [sources.CLASS_NAMES[c] for c, idx in enumerate(by_class) if idx.size == 0]
        if empty:
            raise InvalidInputError(
                f"Fashion-MNIST {part}[{first}:{stop}] (the {split} garments) has no image of class(es) "
                f"{', '.join(empty)}: expected the full 60,000/10,000-image files"
            )
        pools[split] = scenes.GarmentPool(part=part, images=images, by_class=by_class)
    return pools


def _manifest(config: BuildConfig, photos: dict[str, list[sources.Photo]], fashion_dir: Path, written: dict) -> dict:
    import cv2

    return {
        "name": "edge-isp built-in: Fashion-MNIST garments on natural photographs",
        "version": MANIFEST_VERSION,
        "config": config.to_json(),
        "class_names": list(config.class_names),
        "tasks": written,
        "sources": {
            "fashion_mnist": {
                "dir": str(fashion_dir),
                "licence": sources.FASHION_MNIST_LICENCE,
                "garments": {s: f"{p}[{a}:{b}]" for s, (p, a, b) in GARMENT_RANGES.items()},
            },
            "photos": {
                split: [{"id": p.id, "licence": p.licence, "note": p.note} for p in photos[split]]
                for split in sources.SPLITS
            },
        },
        "software": {"edge_isp": __version__, "numpy": np.__version__, "opencv": cv2.__version__},
    }


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a built data set at ``root``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise MissingFileError(
            f"{root} is not a built-in data set (no {MANIFEST}); build one with: edge-isp data build --out {root}"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from None


def build_dataset(
    out: str | Path,
    config: BuildConfig | None = None,
    *,
    force: bool = False,
    progress: bool = False,
    fashion_mnist_dir: str | Path | None = None,
    opencv_dir: str | Path | None = None,
) -> BuildResult:
    """Build the data set into ``out`` (see the module docstring for the layout).

    If ``out`` already holds a data set built from the same config it is kept as is
    (``reused``); a different one, or any other folder, is replaced only with ``force``.
    ``fashion_mnist_dir`` and ``opencv_dir`` override where the sources are looked for.
    """
    config = config or BuildConfig()
    out = Path(out)
    started = time.perf_counter()
    if out.exists():
        manifest_path = out / MANIFEST
        if manifest_path.is_file() and not force:
            manifest = read_manifest(out)
            if manifest.get("config") == config.to_json():
                return BuildResult(out, manifest, True, time.perf_counter() - started)
        if not force:
            raise InvalidInputError(
                f"{out} already exists and is not a data set built from this config; "
                "choose another --out or pass --force to replace it"
            )
    photos = sources.available_photos(opencv_dir)
    pools = _garment_pools(fashion_mnist_dir)
    fashion_dir = Path(fashion_mnist_dir) if fashion_mnist_dir is not None else sources.fashion_mnist_dir()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mkdtemp makes the folder private; a data set is as readable as any file the user makes.
        os.chmod(tmp, 0o777 & ~_umask())
        loaded = {s: [(p, sources.load_photo(p, opencv_dir)) for p in photos[s]] for s in sources.SPLITS}
        written: dict[str, Any] = {}
        for task, task_config in config.tasks.items():
            written[task] = {"size": list(task_config.size), "splits": {}}
            for split, count in zip(sources.SPLITS, task_config.counts, strict=True):
                writer = scenes.write_classification if task == "classification" else scenes.write_detection
                written[task]["splits"][split] = writer(
                    tmp, split, count, task_config.size, config, pools[split], loaded[split], progress
                )
        manifest = _manifest(config, photos, fashion_dir, written)
        scenes.write_plain_json(tmp / MANIFEST, manifest, indent=2)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, manifest, False, time.perf_counter() - started)


def builtin_dataset(root: str | Path, task: str, split: str) -> ImageFolderDataset | CocoDetectionDataset:
    """Open one split of a built data set with the matching loader.

    Classification returns an :class:`~edge_isp.data.folders.ImageFolderDataset` whose
    class indices follow Fashion-MNIST's label order (not the folders' alphabetical
    order); detection a :class:`~edge_isp.data.folders.CocoDetectionDataset`.
    """
    from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset

    if task not in TASKS or split not in sources.SPLITS:
        raise InvalidInputError(
            f"expected task in {', '.join(TASKS)} and split in {', '.join(sources.SPLITS)}, got {task!r}, {split!r}"
        )
    manifest = read_manifest(root)
    if task not in manifest.get("tasks", {}):
        raise InvalidInputError(f"{root} was built without the {task} task (it has {', '.join(manifest['tasks'])})")
    root = Path(root)
    if task == "classification":
        return ImageFolderDataset(root / task / split, class_names=manifest["class_names"])
    return CocoDetectionDataset(root / task / f"{split}.json", images_dir=root / task / split / "images")
