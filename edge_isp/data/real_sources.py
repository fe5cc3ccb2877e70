"""Where the real data sets come from: the curated photographs, a user's image folder, a video.

Nothing here downloads anything. The built-in photographs are the colour photographs of real
scenes inside the Debian packages ``plasma-workspace-wallpapers``, ``mate-backgrounds`` and
``opencv-doc`` (``gnome-backgrounds`` holds none) and the scikit-image wheel, listed with
their package, path, size, sha256 and fixed split in ``real_photos.json`` beside this module
(how they were chosen is written in that file). A listed file that is not installed, or
whose bytes differ from the list, is skipped and reported, so a split never silently
changes meaning. A user's own folder is split by photograph with a fixed seed.

The video is split by disjoint time blocks with a gap: frames are grouped in blocks of
``block_frames``, each block assigned to one split by a fixed pattern, and frames closer
than ``gap_frames / 2`` to the boundary of a block of another split are dropped, so no
frame near a test frame is ever trained on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from edge_isp.data import sources
from edge_isp.data.folders import IMAGE_SUFFIXES, read_image
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import sha256_file

PHOTO_LIST = Path(__file__).with_name("real_photos.json")
VTEST_VIDEO = sources.OPENCV_SAMPLES_DIR / "vtest.avi"
SPLITS = sources.SPLITS
REAL_INSTALL_HINT = (
    "Install the offline photographs with: sudo apt-get install plasma-workspace-wallpapers mate-backgrounds "
    "gnome-backgrounds opencv-doc (scripts/bootstrap.sh does this)"
)
# Block i of the video goes to BLOCK_PATTERN[i % len]: one test and one val block in every
# five, so each split sees the whole length of the clip (people come and go over it).
BLOCK_PATTERN = ("train", "train", "test", "train", "val")


@dataclasses.dataclass(frozen=True)
class RealPhoto:
    """One photograph of a real scene and the split it belongs to.

    Attributes:
        id: unique name (``GROUP`` or ``GROUP:STEM`` when a group has several files).
        package: the Debian package (or wheel) it comes from; ``"folder"`` for a user's.
        path: where it is on this machine.
        group: photographs of one scene share a group and a split.
        split: ``train``, ``val`` or ``test``.
        sha256: the file's expected sha256 (empty for a user's folder).
        note: what it shows.
    """

    id: str
    package: str
    path: Path
    group: str
    split: str
    sha256: str = ""
    note: str = ""


def source_path(listed: str | Path, source_root: str | Path | None) -> Path:
    """Where a listed source file is read from: ``listed`` itself, or under ``source_root``
    (``ROOT/usr/share/...`` for ``/usr/share/...``; ``ROOT/skimage/data/NAME`` for a
    scikit-image photo), a copy of the sources taken to another machine (scripts/gpu_pack.py)."""
    if source_root is None:
        return Path(listed)
    return Path(source_root) / Path(listed).as_posix().lstrip("/")


def vtest_video(source_root: str | Path | None = None) -> Path:
    """OpenCV's ``vtest.avi``: where opencv-doc installs it, or under ``source_root``."""
    return source_path(VTEST_VIDEO, source_root)


def _resolve(entry: dict, source_root: str | Path | None = None) -> Path | None:
    if source_root is not None:
        return source_path(entry["path"], source_root)
    if entry["package"] == "scikit-image":
        folder = sources.skimage_data_dir()
        return None if folder is None else folder / Path(entry["path"]).name
    return Path(entry["path"])


def builtin_photos(
    check_sha256: bool = True, source_root: str | Path | None = None
) -> tuple[list[RealPhoto], list[tuple[str, str]]]:
    """The curated photographs found on this machine, and ``(id, reason)`` for those skipped.

    ``source_root``: read each listed file under that folder instead (:func:`source_path`).
    Raises :class:`MissingFileError` when a split would be empty.
    """
    if source_root is not None and not Path(source_root).is_dir():
        raise MissingFileError(f"source root {source_root} is not a folder")
    listing = json.loads(PHOTO_LIST.read_text(encoding="utf-8"))
    found: list[RealPhoto] = []
    skipped: list[tuple[str, str]] = []
    for entry in listing["photos"]:
        path = _resolve(entry, source_root)
        if path is None or not path.is_file():
            where = entry["path"] if source_root is None else str(path)
            skipped.append((entry["id"], f"not installed ({entry['package']}: {where})"))
            continue
        if check_sha256 and sha256_file(path) != entry["sha256"]:
            skipped.append((entry["id"], f"{path} differs from the listed file (sha256 {entry['sha256'][:12]}...)"))
            continue
        found.append(
            RealPhoto(
                entry["id"], entry["package"], path, entry["group"], entry["split"], entry["sha256"], entry["note"]
            )
        )
    empty = [s for s in SPLITS if not any(p.split == s for p in found)]
    if empty:
        raise MissingFileError(
            f"no real photographs for split(s) {', '.join(empty)}: {len(skipped)} of the {len(listing['photos'])} "
            f"listed in {PHOTO_LIST.name} are missing or differ. {REAL_INSTALL_HINT}; or build from your own "
            "photographs with --images DIR."
        )
    return found, skipped


def folder_photos(folder: str | Path, seed: int = 0, test_fraction: float = 0.25, val_fraction: float = 0.1):
    """A user's image folder (searched recursively), split by photograph with ``seed``.

    Every file is opened once here, so an unreadable image is named before anything is
    built. At least 3 images are needed (one per split). Returns a list of
    :class:`RealPhoto`.
    """
    folder = Path(folder)
    if not folder.exists():
        raise MissingFileError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise InvalidInputError(f"--images expects a folder of photographs, got the file {folder}")
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if len(paths) < 3:
        raise InvalidInputError(
            f"image folder {folder} holds {len(paths)} image file(s) ({', '.join(IMAGE_SUFFIXES)}); at least 3 "
            "photographs are needed, one each for train, val and test"
        )
    for path in paths:
        image = read_image(path)
        if image.shape[0] < 16 or image.shape[1] < 16:
            raise InvalidInputError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels is too small for a photograph")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_test = max(1, round(test_fraction * len(paths)))
    n_val = max(1, round(val_fraction * len(paths)))
    split_of = {}
    for rank, index in enumerate(order):
        split_of[int(index)] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    photos = []
    for i, path in enumerate(paths):
        rel = path.relative_to(folder).as_posix()
        photos.append(RealPhoto(rel, "folder", path, rel, split_of[i]))
    return photos


def video_frame_count(path: str | Path) -> int:
    """Frames in a video file, counted by decoding it (container headers can be wrong)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"video {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.grab():
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise InvalidInputError(f"{path}: OpenCV reads no frame from this file; it is not a video OpenCV can decode")
    return count


def video_splits(n_frames: int, block_frames: int = 50, gap_frames: int = 10, stride: int = 3) -> dict[int, str]:
    """Which frames to keep and their split: ``{frame index: split}``.

    Frames come in blocks of ``block_frames`` assigned by :data:`BLOCK_PATTERN`; a frame
    within ``gap_frames // 2`` of a boundary with a block of another split is dropped (so
    ``gap_frames`` frames separate splits), then every ``stride``-th remaining frame of a
    block is kept, counted from the block's first kept frame.
    """
    if block_frames < 1 or stride < 1 or gap_frames < 0 or gap_frames >= block_frames:
        raise InvalidInputError(
            f"video blocks need block_frames >= 1, stride >= 1 and 0 <= gap_frames < block_frames, got "
            f"{block_frames}, {stride}, {gap_frames}"
        )
    n_blocks = -(-n_frames // block_frames)
    block_split = [BLOCK_PATTERN[b % len(BLOCK_PATTERN)] for b in range(n_blocks)]
    half = gap_frames // 2
    kept: dict[int, str] = {}
    for b, split in enumerate(block_split):
        start, stop = b * block_frames, min(n_frames, (b + 1) * block_frames)
        if b > 0 and block_split[b - 1] != split:
            start += gap_frames - half
        if b + 1 < n_blocks and block_split[b + 1] != split:
            stop -= half
        for f in range(start, stop, stride):
            kept[f] = split
    return kept


def read_video_frames(path: str | Path, wanted: set[int]):
    """Yield ``(frame index, (H, W, 3) uint8 RGB)`` for the wanted frames, in order."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        index = 0
        last = max(wanted) if wanted else -1
        while index <= last:
            ok, bgr = capture.read()
            if not ok:
                raise InvalidInputError(f"{path}: the video ended or failed to decode at frame {index}")
            if index in wanted:
                yield index, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
