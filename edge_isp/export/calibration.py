"""Calibration frames for INT8: raw at the deployment light levels, as the deployed model sees it.

Two sources, one feed (``get_next() -> {"raw", "noise"} | None`` and ``rewind()``, the
interface ONNX Runtime's calibrators read), and one preprocessing: both go through
:func:`edge_isp.contract.model_input.live_preprocessor`, the preprocessing ``edge-isp run``
gives a camera (crop to the model's aspect, area resize, auto-exposure of frames with digital
gain 1), so INT8 is calibrated on the activation ranges the deployed model meets:

- clean images simulated through the target camera's sensor profile at each deployment light
  level (photo-electrons at white), every image at every level, with a fixed seed
  (:func:`edge_isp.export.evalset.simulate_inputs`: the simulator's frames keep its exposure,
  as the live simulated camera's do, and are the frames the accuracy report measures);
- recorded camera :class:`~edge_isp.sensor.frame.RawFrame` captures, in order through one
  preprocessor, as ``edge-isp run`` treats a camera: cropped to the model's aspect,
  area-resized, and auto-exposed (up to 64x) when the frame carries digital gain 1.

The frames are made once, when the feed is built, so every pass (calibration, the variants of
a sensitivity search) reads exactly the same data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.metadata import NoiseRange
from edge_isp.contract.model_input import live_preprocessor
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.export.evalset import simulate_inputs
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

# Calibration runs the model on this many feed items at a time (ONNX Runtime keeps every
# activation of every item it has run until it folds them into its ranges or histograms: all
# 256 frames of a 320x256 detector at once took 21 GB and were killed).
CALIBRATION_CHUNK = 16


class CalibrationFeed:
    """A fixed list of model inputs, each ``{"raw": (B, 4, H/2, W/2), "noise": (B, 2)}`` float32.

    ONNX Runtime's calibration reader: :meth:`get_next` until None; :meth:`set_range` limits it
    to items ``[start_index, end_index)`` (the chunks of :func:`calibration_stride`)."""

    def __init__(self, items: Sequence[dict[str, np.ndarray]], description: str = "") -> None:
        if not items:
            raise InvalidInputError("calibration needs at least one frame, got none")
        self.items = list(items)
        self.description = description
        self._next = 0
        self._stop = len(self.items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._stop:
            return None
        self._next += 1
        return self.items[self._next - 1]

    def rewind(self) -> None:
        self._next, self._stop = 0, len(self.items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._stop = start_index, min(end_index, len(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


@contextlib.contextmanager
def calibration_errors(method: str, feed: Any) -> Iterator[None]:
    """Around ONNX Runtime's ``quantize_static``: the calibrator failure a user can fix becomes
    an error that says how. Its percentile calibrator puts each activation's values in a
    histogram of 2048 bins (in float32), and NumPy refuses one over a range too small to split (an
    activation all but constant over the feed: the detector's with 4 images at 3, 6 and 30 lux)
    with "Too many bins for data range"."""
    try:
        yield
    except ValueError as exc:
        if "Too many bins" not in str(exc):
            raise
        count = f"{len(feed)} calibration batches" if hasattr(feed, "__len__") else "the calibration data"
        raise InvalidInputError(
            f"INT8 calibration ({method}) failed: an activation of the model has almost no range over {count} "
            f"(ONNX Runtime's histogram of its values cannot be split into 2048 bins: {exc}). Calibrate on more "
            "images or light levels (--calib-images, --light), or with --calibration minmax"
        ) from None


def calibration_stride(count: int, chunk: int = CALIBRATION_CHUNK) -> int:
    """The largest divisor of ``count`` feed items that is at most ``chunk``: ONNX Runtime
    calibrates stride by stride (its ``CalibStridedMinMax`` option, which every calibrator
    honours) and needs the stride to divide the count."""
    return max(d for d in range(1, min(chunk, count) + 1) if count % d == 0)


def chunked(feed: Any) -> dict[str, int]:
    """``quantize_static`` extra options that calibrate ``feed`` chunk by chunk (bounded
    memory); none for a reader that cannot be limited to a range."""
    if feed is None or not hasattr(feed, "set_range"):
        return {}
    return {"CalibStridedMinMax": calibration_stride(len(feed))}


def _batches(raw: np.ndarray, noise: np.ndarray, batch: int) -> list[dict[str, np.ndarray]]:
    """Split (N, ...) arrays into model-sized batches; a short tail is dropped when the model's
    batch is fixed (it could not take it)."""
    count = raw.shape[0] // batch * batch
    return [
        {"raw": np.ascontiguousarray(raw[i : i + batch]), "noise": np.ascontiguousarray(noise[i : i + batch])}
        for i in range(0, count, batch)
    ]


def simulated_feed(
    images: np.ndarray,
    profile: SensorProfile,
    electrons_levels: Sequence[float],
    *,
    batch: int = 1,
    seed: int = 0,
) -> CalibrationFeed:
    """Calibration frames simulated from clean images.

    Args:
        images: (N, 3, H, W) uint8 RGB at the model's input size
            (:func:`edge_isp.export.evalset.load_images`).
        profile: the deployment camera's ``SensorProfile``.
        electrons_levels: the deployment light levels, photo-electrons at white; every
            image is simulated at every level.
        batch: the model's batch size.
        seed: the noise seed (level ``i`` uses ``seed + i``).
    """
    levels = [float(v) for v in electrons_levels]
    if not levels or not all(v > 0 for v in levels):
        raise InvalidInputError(f"calibration light levels must be positive electrons at white, got {levels}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise InvalidInputError(f"calibration needs images (N, 3, H, W) with N >= 1, got shape {images.shape}")
    simulated = [simulate_inputs(images, profile, level, seed + i) for i, level in enumerate(levels)]
    raw = np.concatenate([r for r, _ in simulated])
    noise = np.concatenate([n for _, n in simulated])
    items = _batches(raw, noise, batch)
    if not items:
        raise InvalidInputError(f"{raw.shape[0]} calibration frames cannot fill one batch of {batch}")
    description = f"{images.shape[0]} images x {len(levels)} light levels ({', '.join(f'{v:g}' for v in levels)} e-)"
    return CalibrationFeed(items, description)


def frames_feed(
    frames: Iterable[RawFrame],
    profile: SensorProfile,
    input_size: tuple[int, int],
    *,
    batch: int = 1,
    noise_range: NoiseRange | None = None,
) -> CalibrationFeed:
    """Calibration frames from recorded RawFrames, through the live preprocessing (the module
    docstring): each frame is cropped to ``input_size``'s aspect, area-resized to it, a frame
    with digital gain 1 (a camera's) auto-exposed, and its noise level clamped to the model's
    ``noise_range``, as ``edge-isp run`` would."""
    preprocess = live_preprocessor(profile, input_size, noise_range=noise_range)
    raws, noises = [], []
    for frame in frames:
        if frame.cfa != profile.cfa:
            raise InvalidInputError(
                f"a recorded frame has CFA {frame.cfa.value} but the profile {profile.name!r} says {profile.cfa.value}"
            )
        item = preprocess(frame)
        raws.append(item.raw[0])
        noises.append(item.noise[0])
    if not raws:
        raise InvalidInputError("calibration needs at least one recorded frame, got none")
    items = _batches(np.stack(raws), np.stack(noises), batch)
    if not items:
        raise InvalidInputError(f"{len(raws)} recorded frames cannot fill one batch of {batch}")
    return CalibrationFeed(items, f"{len(raws)} recorded frames")


def recorded_frames(folder: str | Path) -> list[RawFrame]:
    """The RawFrames (``NAME.npy`` + ``NAME.json``) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"recorded frames folder {folder} does not exist")
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise InvalidInputError(f"{folder}: no recorded RawFrames (NAME.npy + NAME.json) to calibrate on")
    return [RawFrame.load(f) for f in files]
