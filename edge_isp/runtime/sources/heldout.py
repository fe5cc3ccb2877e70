"""Real footage no real-world model was trained on: the demo's scenes.

``heldout:video`` replays the test time blocks of OpenCV's ``vtest.avi`` (people walking in a
pedestrian precinct), exactly as ``edge-isp data build --real`` splits the video
(:func:`edge_isp.data.real_sources.video_splits` with the build's default blocks and gap;
every frame of a test block, not only the build's every third), looped. ``heldout:photos``
shows the test photographs of the real set's fixed split
(:func:`edge_isp.data.real_sources.builtin_photos`), each held for a few seconds, looped.
Both are :class:`~edge_isp.runtime.sources.footage.FootageSource`: each frame simulated into
raw through the sensor profile at the light level the dashboard's slider sets.

The files come from Debian's opencv-doc (and the wallpaper packages); when they are missing
the error names the file and ``scripts/bootstrap.sh``, which installs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_isp.data import real_sources
from edge_isp.data.real_build import RealBuildConfig
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.sources.footage import FootageSource

HELDOUT_SCENES = ("video", "photos")
SPLIT = "test"
PHOTO_HOLD_S = 3.0  # each photograph stays this long before the next
PHOTO_FPS = 10.0
PHOTO_SIZE_PX = 512  # the photographs' frame side when no size is given
INSTALL_HINT = (
    "It comes with Debian's opencv-doc package (and the wallpaper packages for the photographs), which "
    "scripts/bootstrap.sh installs: run scripts/bootstrap.sh, or sudo apt-get install opencv-doc "
    "plasma-workspace-wallpapers mate-backgrounds. Or run the simulated garment scene with --scene garments."
)


def held_out_frames(n_frames: int, config: RealBuildConfig | None = None) -> list[int]:
    """The frames of a ``n_frames`` video in its test time blocks, as ``edge-isp data build
    --real`` splits it with ``config`` (its defaults): every frame of those blocks outside the
    gaps, in order. None of them is within ``gap_frames // 2`` of a training frame."""
    config = config or RealBuildConfig()
    kept = real_sources.video_splits(n_frames, config.block_frames, config.gap_frames, stride=1)
    return sorted(frame for frame, split in kept.items() if split == SPLIT)


def held_out_video(video: str | Path | None = None) -> tuple[Path, list[int]]:
    """The video (default: opencv-doc's vtest.avi) and its held-out frames."""
    path = Path(video) if video is not None else real_sources.vtest_video()
    if not path.is_file():
        raise MissingFileError(f"the demo's real footage {path} is not on this machine. {INSTALL_HINT}")
    frames = held_out_frames(real_sources.video_frame_count(path))
    if not frames:
        raise InvalidInputError(f"{path} is too short to have a test time block")
    return path, frames


def held_out_photos() -> list[Path]:
    """The real set's test photographs found on this machine (checked against their sha256)."""
    try:
        photos, _skipped = real_sources.builtin_photos()
    except MissingFileError as exc:
        raise MissingFileError(f"the demo's real photographs are not on this machine ({exc}). {INSTALL_HINT}") from None
    return [photo.path for photo in photos if photo.split == SPLIT]


def open_heldout(scene: str, **opts: Any) -> FootageSource:
    """A :class:`FootageSource` of ``scene`` (``video`` or ``photos``), looped; ``opts`` are
    its keyword options (``profile``, ``width``, ``height``, ``lux``, ``fps``...). Frames of
    another size are centre-cropped to that aspect, then resized."""
    if scene not in HELDOUT_SCENES:
        raise InvalidInputError(f"heldout:{scene}: unknown scene; one of {', '.join(HELDOUT_SCENES)}")
    opts.setdefault("loop", True)
    opts.setdefault("fit", "crop")
    profile = opts.pop("profile", None)
    if scene == "video":
        path, frames = held_out_video()
        source: Any = path
    else:
        source = held_out_photos()
        opts.setdefault("fps", PHOTO_FPS)
        if opts.get("width") is None:  # photographs differ in size: one frame size for all
            opts["width"] = opts["height"] = PHOTO_SIZE_PX
        hold = max(1, round(PHOTO_HOLD_S * opts["fps"]))
        frames = [index for index in range(len(source)) for _ in range(hold)]
    args = (source,) if profile is None else (source, profile)
    return FootageSource(*args, frames=frames, **opts)
