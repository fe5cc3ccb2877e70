"""`edge-isp record`: record any camera source to a folder of RawFrames that replay plays back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_isp.contract.sizes import size_argument
from edge_isp.runtime.record import record
from edge_isp.runtime.sources import RetryingSource, open_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record a camera source to a folder of raw frames (replayable with --source replay:DIR)",
        description="Record a camera source to DIR as numbered RawFrame pairs (NNNNNN.npy + NNNNNN.json) and a "
        "recording.json manifest; replay it with --source replay:DIR. Each frame is written atomically; "
        "Ctrl-C stops cleanly after the current frame.",
    )
    p.add_argument(
        "--source",
        required=True,
        metavar="SPEC",
        help="sim | replay:DIR | file:VIDEO|DIR (footage simulated into raw through --profile at --lux) | "
        "picamera2[:N] | v4l2:/dev/videoN",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to record into")
    p.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--seconds", type=_positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--profile", metavar="NAME|PATH", help="sensor profile (sim: the sensor; v4l2: its levels)")
    p.add_argument("--size", type=size_argument, metavar="WxH", help="frame size (sim, file, v4l2, picamera2)")
    p.add_argument("--fps", type=_positive_float, help="frame rate (sim, replay, file, picamera2)")
    p.add_argument("--lux", type=_positive_float, help="scene illumination of a simulated source (sim, file)")
    p.add_argument(
        "--loop", action="store_true", help="replay, file: start again at the end (stop with --frames/--seconds)"
    )
    p.add_argument("--retry", action="store_true", help="reopen a camera that fails, with back-off, and go on")
    p.add_argument("--overwrite", action="store_true", help="replace a recording already in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_record)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _record(args: argparse.Namespace) -> int:
    opts: dict = {}
    for key in ("profile", "size", "fps", "lux"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.loop:
        opts["loop"] = True
    source = open_source(args.source, **opts)
    if args.retry:
        source = RetryingSource(source)
    result = record(
        source,
        args.out,
        frames=args.frames,
        seconds=args.seconds,
        progress=not args.no_progress and sys.stderr.isatty(),
        overwrite=args.overwrite,
    )
    why = "interrupted" if result.interrupted else "source ended" if result.ended else "done"
    print(f"{result.folder}: {result.frames} frame(s) in {result.seconds:.1f} s ({why}); manifest {result.manifest}")
    return 130 if result.interrupted else 0
