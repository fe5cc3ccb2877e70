"""Raw frames simulated from ordinary footage: a video file (``clip.mp4``) or a folder of
images, each frame taken as the scene's sRGB and shot through a sensor profile at a light
level, as the simulated camera does with its moving scene (same noise, same controls).

What jetson-inference users give as ``file://clip.mp4`` means this here: edge-isp's models
take raw Bayer, which a video file does not hold, so its frames are simulated into raw. A
folder of recorded raw frames is :class:`~edge_isp.runtime.sources.replay.ReplaySource`
instead (:func:`~edge_isp.runtime.sources.open_source` tells them apart).

Frames are read one at a time (OpenCV's video reader, or one image file at a time in name
order, or from a list of image files), cropped to even sizes (or resized to ``width`` x
``height``, stretched or centre-cropped to that aspect first), at the video's frame rate
(``fps`` overrides it; 30 for images); :class:`SourceEnded` after the last unless ``loop``.
``frames`` plays a subset in a given order instead: the held-out time blocks of a video (the
demo), or each photograph held for a few seconds (an index repeated holds its frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.interfaces import SourceEnded
from edge_isp.runtime.sources import rawsynth
from edge_isp.runtime.sources.clock import Clock
from edge_isp.runtime.sources.simulated import DEFAULT_PROFILE, SimulatedSource
from edge_isp.sensor.cfa import per_channel_map
from edge_isp.sensor.profile import SensorProfile

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".h264")
DEFAULT_IMAGE_FPS = 30.0


def list_images(folder: Path) -> list[Path]:
    """The image files in ``folder`` (not its subfolders), in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class FootageSource(SimulatedSource):
    """Raw frames of a video file or an image folder through a profile (module docstring).

    Args:
        path: the video file, the folder of images, or a list of image files.
        profile: the sensor (a :class:`SensorProfile`, a path or a shipped name).
        width, height: resize every frame to this (even) size; None keeps the footage's size
            (cropped to even).
        fps: frame rate; default the video's own (30 for images).
        loop: start again after the last frame instead of ending.
        frames: the footage's frames to deliver, in this order (video frame numbers from 0, or
            indices into the images); an index repeated holds that frame (new noise each time).
            None: every frame in order.
        fit: with ``width`` and ``height``: ``"stretch"`` resizes the whole frame, ``"crop"``
            cuts the largest centred region of that aspect first.

    Attributes:
        frame_size: (width, height) of the frames it delivers.
        lux, electrons_at_white, analogue_gain, seed, paced, clock: as :class:`SimulatedSource`.
    """

    name = "file"

    def __init__(
        self,
        path: str | Path | Sequence[str | Path],
        profile: SensorProfile | str | Path = DEFAULT_PROFILE,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
        frames: Sequence[int] | None = None,
        fit: str = "stretch",
        lux: float | None = None,
        electrons_at_white: float | None = None,
        analogue_gain: str | float = "auto",
        seed: int = 0,
        paced: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(path, (str, Path)):
            self.path = Path(path)
            if not self.path.exists():
                raise MissingFileError(f"footage {self.path} does not exist")
            self._images = list_images(self.path) if self.path.is_dir() else None
        else:
            self._images = [Path(p) for p in path]
            missing = [str(p) for p in self._images if not p.is_file()]
            if missing or not self._images:
                raise MissingFileError(f"footage images missing: {', '.join(missing) or 'none given'}")
            self.path = self._images[0].parent
        if self._images is not None and not self._images:
            raise InvalidInputError(
                f"{self.path} holds neither recorded raw frames nor images ({', '.join(IMAGE_SUFFIXES)})"
            )
        if (width is None) != (height is None):
            raise InvalidInputError("give both width and height, or neither")
        if width is not None and (width < 8 or height < 8 or width % 2 or height % 2):
            raise InvalidInputError(f"frame size must be even and at least 8x8 pixels, got {width}x{height}")
        self._size = None if width is None else (int(width), int(height))
        if fit not in ("stretch", "crop"):
            raise InvalidInputError(f"fit must be 'stretch' or 'crop', got {fit!r}")
        self.fit = fit
        self.frames = None if frames is None else [int(f) for f in frames]
        if self.frames is not None and (not self.frames or min(self.frames) < 0):
            raise InvalidInputError("frames must be a non-empty list of frame numbers >= 0")
        if self.frames is not None and self._images is not None and max(self.frames) >= len(self._images):
            raise InvalidInputError(f"frame {max(self.frames)} asked for, but there are {len(self._images)} images")
        self.loop = bool(loop)
        native_fps, native_size = self._probe()
        self.frame_size = self._size or (native_size[0] // 2 * 2, native_size[1] // 2 * 2)
        native = fps or native_fps
        super().__init__(
            profile, fps=native, lux=lux, electrons_at_white=electrons_at_white, analogue_gain=analogue_gain,
            seed=seed, paced=paced, clock=clock,
        )  # fmt: skip
        self._capture: Any = None
        self._next = 0  # frames delivered since the start (of this pass, when looping)
        self._position = 0  # the video frame the capture reads next
        self._held: tuple[int, np.ndarray] | None = None  # the last frame read, by index

    def _probe(self) -> tuple[float, tuple[int, int]]:
        """The footage's own frame rate and (width, height)."""
        if self._images is not None:
            first = cv2.imread(str(self._images[0]), cv2.IMREAD_COLOR)
            if first is None:
                raise InvalidInputError(f"OpenCV cannot read the image {self._images[0]}")
            return DEFAULT_IMAGE_FPS, (first.shape[1], first.shape[0])
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise InvalidInputError(f"OpenCV cannot read {self.path} as a video")
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        finally:
            capture.release()
        return (fps if 0 < fps < 1000 else DEFAULT_IMAGE_FPS), size

    def _open(self) -> None:
        if self._images is None:
            self._capture = cv2.VideoCapture(str(self.path))
            if not self._capture.isOpened():
                raise InvalidInputError(f"OpenCV cannot read {self.path} as a video")
        self._next = 0
        self._position = 0
        self._held = None
        self._pacer.reset()
        self.sequence = -1
        self._rng = np.random.default_rng([self.seed, 0x2A4])
        self._maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._pacer.reset()

    def _next_bgr(self) -> np.ndarray:
        for _attempt in range(2):  # the second after rewinding, when looping
            count = len(self._images) if self._images is not None else None
            if self.frames is not None:
                count = len(self.frames)
            if count is None or self._next < count:
                index = self._next if self.frames is None else self.frames[self._next]
                image = self._frame(index)
                if image is not None:
                    self._next += 1
                    return image
            if not self.loop or self._next == 0:
                raise SourceEnded(f"end of {self.path} after {self._next} frame(s)")
            self._next = 0
        raise SourceEnded(f"{self.path} gave no frame after rewinding")

    def _frame(self, index: int) -> np.ndarray | None:
        """Frame ``index`` of the footage (BGR), None past the end of a video."""
        if self._held is not None and self._held[0] == index:
            return self._held[1]
        if self._images is not None:
            path = self._images[index]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise InvalidInputError(f"OpenCV cannot read the image {path}")
        else:
            if index != self._position:  # OpenCV's FFmpeg reader seeks to the exact frame
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._position = index
            ok, image = self._capture.read()
            if not ok:
                if self.frames is not None:
                    raise InvalidInputError(f"{self.path} has no frame {index} (it ended or failed to decode)")
                return None
            self._position += 1
        if self.frames is not None:  # a subset may hold a frame: keep it for the next read
            self._held = (index, image)
        return image

    def camera_mosaic(self, t: float) -> np.ndarray:
        """The next footage frame in linear camera values through the CFA, ``(H, W)`` float32."""
        bgr = self._next_bgr()
        if self._size is not None:
            if self.fit == "crop":
                bgr = centre_crop(bgr, self._size[0] / self._size[1])
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        bgr = bgr[: bgr.shape[0] // 2 * 2, : bgr.shape[1] // 2 * 2]
        height, width = bgr.shape[:2]
        if (height, width) not in self._maps:
            self._maps[(height, width)] = (
                rawsynth.channel_index(self.profile.cfa, height, width)[..., None].astype(np.intp),
                per_channel_map(self.profile.black_level, self.profile.cfa, height, width).astype(np.float32),
            )
        channels, self._black = self._maps[(height, width)]
        rgb = bgr[..., ::-1].astype(np.float32) / 255.0
        camera = rawsynth.srgb_to_camera(rgb, self.profile)
        return np.take_along_axis(camera, channels, axis=2)[..., 0]

    def truth(self, t: float) -> dict[str, Any] | None:
        return None


def centre_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred region of ``image`` with width / height ``aspect``."""
    height, width = image.shape[:2]
    crop_w, crop_h = min(width, round(height * aspect)), min(height, round(width / aspect))
    x0, y0 = (width - crop_w) // 2, (height - crop_h) // 2
    return image[y0 : y0 + crop_h, x0 : x0 + crop_w]
