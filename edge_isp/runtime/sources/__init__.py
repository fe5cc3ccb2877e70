"""Camera sources: every one yields :class:`~edge_isp.sensor.frame.RawFrame` objects.

:func:`open_source` builds one from the spec the command line takes:

- ``sim``: :class:`~edge_isp.runtime.sources.simulated.SimulatedSource`, a moving scene
  through a sensor profile (the demo's source);
- ``replay:DIR``: :class:`~edge_isp.runtime.sources.replay.ReplaySource`, recorded frames;
- ``file:PATH``, ``file://PATH`` or a bare path: a folder of recorded raw frames replays as
  ``replay:DIR``; a video file or a folder of images is footage to simulate raw from
  (:class:`~edge_isp.runtime.sources.footage.FootageSource`);
- ``heldout:video`` or ``heldout:photos``: footage no real-world model was trained on (the
  test blocks of OpenCV's vtest.avi, the real set's test photographs), simulated into raw as
  ``file`` footage is, looped (:mod:`~edge_isp.runtime.sources.heldout`; the demo's scenes);
- ``picamera2`` or ``picamera2:N``: :class:`~edge_isp.runtime.sources.picamera2_source.
  Picamera2Source`, a Raspberry Pi camera (N = camera index);
- ``v4l2:/dev/videoN`` (or ``v4l2:N``, ``v4l2:///dev/videoN``, ``/dev/videoN``):
  :class:`~edge_isp.runtime.sources.v4l2_source.V4L2Source`, a V4L2 Bayer node such as a
  Jetson's CSI camera.

jetson-inference's other forms (``csi://0``, ``rtsp://...``, ``display://0``...) are refused
in one line that says what to give here instead.

Wrap any of them in :class:`~edge_isp.runtime.sources.retry.RetryingSource` to survive a
camera that disappears. Nothing here imports torch, and the device libraries (picamera2)
are imported only when such a source opens.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import CameraSource, SourceEnded, SourceError
from edge_isp.runtime.sources.clock import Clock, ManualClock, SystemClock
from edge_isp.runtime.sources.footage import FootageSource, list_images
from edge_isp.runtime.sources.heldout import HELDOUT_SCENES, open_heldout
from edge_isp.runtime.sources.picamera2_source import Picamera2Source
from edge_isp.runtime.sources.replay import ReplaySource
from edge_isp.runtime.sources.retry import RetryEvent, RetryingSource, RetryPolicy, RetryStats
from edge_isp.runtime.sources.simulated import SimulatedSource, load_profile
from edge_isp.runtime.sources.v4l2_source import V4L2Source

SOURCE_FORMS = (
    "sim", "replay:DIR", "file:VIDEO|DIR", "picamera2", "picamera2:N", "v4l2:/dev/videoN", "v4l2:N", "/dev/videoN",
    "heldout:video|photos",
)  # fmt: skip
SOURCE_KINDS = ("sim", "replay", "file", "heldout", "picamera2", "v4l2")
# What other tools' users type, and what it means here: one line each.
_OTHER_SCHEMES = {
    "csi": "a CSI camera through Argus gives ISP-processed video, not raw Bayer; on a Jetson the sensor's raw "
    "comes through V4L2: give v4l2:/dev/video{n} (CSI camera {n} is usually /dev/video{n}; "
    "`v4l2-ctl --list-devices` or `edge-isp doctor` lists them)",
    "rtsp": "an RTSP stream carries encoded, processed video, not raw Bayer; to run on a clip, simulate raw from "
    "it with file://clip.mp4 (to serve a stream, use --rtsp rtsp://@:8554/live)",
    "rtp": "an RTP stream carries encoded video, not raw Bayer; simulate raw from a clip with file://clip.mp4",
    "webrtc": "WebRTC carries encoded video, not raw Bayer; the dashboard is --http HOST:PORT",
    "display": "display:// is an output, not a source; the dashboard is --http HOST:PORT",
    "http": "an HTTP stream carries encoded video, not raw Bayer; simulate raw from a clip with file://clip.mp4",
    "https": "an HTTPS stream carries encoded video, not raw Bayer; simulate raw from a clip with file://clip.mp4",
}

__all__ = [
    "SOURCE_FORMS",
    "SOURCE_KINDS",
    "CameraSource",
    "Clock",
    "FootageSource",
    "ManualClock",
    "Picamera2Source",
    "ReplaySource",
    "RetryEvent",
    "RetryPolicy",
    "RetryStats",
    "RetryingSource",
    "SimulatedSource",
    "SourceEnded",
    "SourceError",
    "SystemClock",
    "V4L2Source",
    "open_source",
    "parse_source_spec",
]


def _bad_spec(spec: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"source {spec!r}: {why}; valid forms: {', '.join(SOURCE_FORMS)}")


def parse_source_spec(spec: str) -> tuple[str, str | None]:
    """``(kind, argument)`` of a source spec: ``("sim", None)``, ``("replay", "DIR")``,
    ``("file", "clip.mp4")``, ``("picamera2", "0")``, ``("v4l2", "/dev/video0")``. Pure: it
    reads no file (whether a ``file`` folder holds raw frames or images is decided at open)."""
    text = str(spec).strip()
    scheme, url_sep, rest = text.partition("://")
    if url_sep and scheme.lower() in ("file", "v4l2"):
        text = f"{scheme}:{rest}"  # file://clip.mp4, v4l2:///dev/video0
    elif url_sep and scheme.lower() in _OTHER_SCHEMES:
        n = rest.strip("/") if rest.strip("/").isdigit() else "0"
        raise InvalidInputError(f"source {spec!r}: {_OTHER_SCHEMES[scheme.lower()].format(n=n)}")
    elif url_sep:
        raise _bad_spec(spec, f"unknown scheme {scheme!r}://")
    if text.startswith("/dev/video"):
        return "v4l2", text
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if kind not in SOURCE_KINDS and ("/" in text or "\\" in text or "." in Path(text).name):
        return "file", text  # a bare path: clip.mp4, frames/, /data/clip.mkv
    if kind == "sim":
        if sep:
            raise _bad_spec(spec, "'sim' takes no argument (set its options instead)")
        return "sim", None
    if kind == "replay":
        if not arg:
            raise _bad_spec(spec, "replay needs a folder, as replay:DIR")
        return "replay", arg
    if kind == "file":
        if not arg:
            raise _bad_spec(spec, "file needs a path, as file:clip.mp4 or file:DIR")
        return "file", arg
    if kind == "heldout":
        if arg not in HELDOUT_SCENES:
            raise _bad_spec(spec, f"heldout takes one of {', '.join(HELDOUT_SCENES)}, got {arg!r}")
        return "heldout", arg
    if kind == "picamera2":
        index = arg or "0"
        if not index.isdigit():
            raise _bad_spec(spec, f"picamera2 takes a camera index, got {arg!r}")
        return "picamera2", index
    if kind == "v4l2":
        if not arg:
            raise _bad_spec(spec, "v4l2 needs a device, as v4l2:/dev/video0")
        return "v4l2", f"/dev/video{arg}" if arg.isdigit() else arg
    raise _bad_spec(spec, f"unknown kind {kind!r}")


def _build(cls: type, args: tuple, opts: dict[str, Any], spec: str) -> CameraSource:
    _check_options(cls, opts, spec)
    return cls(*args, **opts)


def _check_options(cls: type, opts: dict[str, Any], spec: str) -> None:
    accepted = [
        p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"source {spec!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(accepted)}"
        )


def open_source(spec: str, **opts: Any) -> CameraSource:
    """Build the source a spec names (see the module docstring), not yet opened: use it
    as a context manager (``with open_source("sim") as source: ...``).

    ``opts`` are the source class's keyword options (e.g. ``lux=3`` for ``sim``,
    ``loop=True`` for ``replay``, ``fourcc="RG12"`` for ``v4l2``); an option the source
    does not take is refused with the list of those it does. For ``sim``, ``profile``
    may also be given; a ``profile`` given to ``v4l2`` supplies its levels. ``size=(W, H)``
    is accepted for ``sim`` and ``v4l2`` as ``width``/``height``.

    Raises:
        InvalidInputError: an unknown spec (the message lists the valid forms) or option.
    """
    kind, arg = parse_source_spec(spec)
    opts = dict(opts)
    if "size" in opts and kind in ("sim", "v4l2", "file", "heldout"):
        width, height = opts.pop("size")
        opts.update(width=int(width), height=int(height))
    if kind == "sim":
        profile = opts.pop("profile", None)
        return _build(SimulatedSource, () if profile is None else (profile,), opts, spec)
    if kind == "file" and Path(arg).is_dir() and not list_images(Path(arg)):
        kind = "replay"  # a folder of recorded raw frames (or camera raw files)
        opts.pop("profile", None)
    if kind == "replay":
        return _build(ReplaySource, (Path(arg),), opts, spec)
    if kind == "file":
        profile = opts.pop("profile", None)
        return _build(FootageSource, (Path(arg),) if profile is None else (Path(arg), profile), opts, spec)
    if kind == "heldout":
        _check_options(FootageSource, {k: v for k, v in opts.items() if k != "profile"}, spec)
        return open_heldout(arg, **opts)
    if kind == "picamera2":
        return _build(Picamera2Source, (int(arg),), opts, spec)
    if isinstance(opts.get("profile"), (str, Path)):
        opts["profile"] = load_profile(opts["profile"])
    return _build(V4L2Source, (arg,), opts, spec)
