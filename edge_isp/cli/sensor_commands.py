"""`edge-isp simulate`, `edge-isp isp`, `edge-isp info`: the sensor side on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_isp.data.sources import skimage_photo
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import write_bytes
from edge_isp.isp import IspConfig, render
from edge_isp.sensor.profile import SensorProfile, shipped_profiles
from edge_isp.sensor.rawfile import describe, load_raw_with_color


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate low-light raw frames from clean images through a sensor profile",
        description="Turn clean sRGB images into realistic raw Bayer frames (.npy + .json) through a "
        "sensor profile at a light level, with a preview PNG of each through the conventional ISP.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or skimage:NAME for a bundled photograph")
    p.add_argument("--profile", default="nexus6p-rear", help="shipped profile name or JSON path (default %(default)s)")
    light = p.add_mutually_exclusive_group(required=True)
    light.add_argument("--lux", type=float, help="scene illumination in lux (converted through the profile)")
    light.add_argument("--photons", type=float, help="photo-electrons at white")
    p.add_argument("--blur", help="optical blur: gaussian:SIGMA, disk:RADIUS, motion:LENGTH:ANGLE or psf:FILE.npy")
    p.add_argument("--gain", default="auto", help="analogue gain, or 'auto' to expose white to full scale")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_simulate)

    p = sub.add_parser(
        "isp",
        help="render raw frames through the conventional ISP to PNG",
        description="Render RawFrames (.npy/.json) or DNG/camera raw files through the conventional ISP "
        "(black level, white balance, demosaicking, denoising, colour matrix, sRGB).",
    )
    p.add_argument("raws", nargs="+", metavar="RAW", help="RawFrame .npy/.json, DNG or camera raw files")
    p.add_argument("--demosaic", default="malvar", choices=["bilinear", "malvar", "ea", "vng"])
    p.add_argument(
        "--denoise",
        default="none",
        choices=["none", "nlm", "bm3d"],
        help="denoiser (default none); bm3d needs the bm3d package, free for non-commercial use only",
    )
    p.add_argument(
        "--profile",
        help="sensor profile for the noise level, and for colour when it holds a colour calibration "
        "(default: the shipped one named by the frame); the file's own white balance and colour matrix "
        "win over a profile without colour",
    )
    p.add_argument(
        "--noise",
        metavar="A,SIGMA",
        help="noise level for --denoise without a profile: var = A x + SIGMA^2 on the normalized raw (0..1)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    _add_raw_options(p)
    p.set_defaults(func=_isp)

    p = sub.add_parser("info", help="print a raw file's metadata", description="Print a raw file's metadata.")
    p.add_argument("raw", metavar="RAW", help="RawFrame .npy/.json, DNG, camera raw, bare .raw dump or 16-bit PGM")
    _add_raw_options(p)
    p.set_defaults(func=_info)


def _add_raw_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bare dumps (.raw/.bin) and 16-bit PGM need their layout and levels")
    g.add_argument("--width", type=int, help="pixels per line")
    g.add_argument("--height", type=int, help="lines")
    g.add_argument("--format", dest="fmt", help="V4L2/libcamera format name, e.g. SRGGB10_CSI2P, RG10, pRAA")
    g.add_argument("--stride", type=int, help="bytes per line including padding (default: no padding)")
    g.add_argument("--cfa", help="Bayer pattern for PGM files: RGGB, BGGR, GRBG or GBRG")
    g.add_argument("--black-level", type=float, help="black level in DN")
    g.add_argument("--white-level", type=float, help="white level in DN (default: full scale)")
    g = p.add_argument_group("exposure settings the file lacks")
    g.add_argument("--iso", type=float, help="the frame's ISO, where the file does not state it")
    g.add_argument("--base-iso", type=float, help="ISO at analogue gain 1: the frame's gain becomes ISO / base ISO")
    g.add_argument("--gain", dest="analogue_gain", type=float, help="the frame's analogue gain (overrides the file)")


def _raw_kwargs(args: argparse.Namespace) -> dict:
    names = ("width", "height", "fmt", "stride", "cfa", "black_level", "white_level")
    names += ("iso", "base_iso", "analogue_gain")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def read_rgb(spec: str) -> tuple[str, np.ndarray]:
    """Read an image file or ``skimage:NAME`` as (name, (H, W, 3) uint8 RGB)."""
    if spec.startswith("skimage:"):
        name = spec.split(":", 1)[1]
        return name, skimage_photo(name)
    import cv2

    path = Path(spec)
    if not path.is_file():
        raise MissingFileError(f"image {spec!r} does not exist")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"{spec}: not an image OpenCV can read (PNG, JPEG, TIFF, ...)")
    return path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) RGB image (uint8, or float on [0, 1]) as PNG, atomically."""
    import cv2

    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path}")
    write_bytes(path, buf.tobytes())


def _simulate(args: argparse.Namespace) -> None:
    import torch

    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.sensor.optics import parse_blur
    from edge_isp.sensor.simulate import simulate

    profile = SensorProfile.load(args.profile)
    electrons = profile.electrons_at_white(args.lux) if args.lux is not None else args.photons
    if not electrons > 0:
        raise InvalidInputError(f"the light level must be positive, got {electrons} electrons at white")
    gain = args.gain if args.gain == "auto" else _positive_float(args.gain, "--gain")
    blur = parse_blur(args.blur) if args.blur else None
    generator = torch.Generator().manual_seed(args.seed)
    for spec in args.images:
        name, rgb = read_rgb(spec)
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        srgb = torch.from_numpy(np.ascontiguousarray(rgb[:h, :w])).permute(2, 0, 1)[None].float() / 255.0
        sim = simulate(srgb, profile, electrons, blur=blur, analogue_gain=gain, generator=generator)
        (frame,) = sim.to_frames(profile)
        npy = frame.save(args.out / name)
        preview = render(frame, IspConfig(demosaic="bilinear"), profile)
        write_png(args.out / f"{name}_preview.png", preview)
        print(
            f"{spec}: {electrons:.4g} e- at white, analogue gain {frame.analogue_gain:.3g}, "
            f"digital gain {frame.digital_gain:.3g} -> {npy} (+ .json, {name}_preview.png)"
        )


def _positive_float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{option} must be a number or 'auto', got {text!r}") from None
    if not value > 0:
        raise InvalidInputError(f"{option} must be positive, got {value}")
    return value


def _profile_for(frame, name: str | None):
    if name:
        return SensorProfile.load(name)
    if frame.sensor in shipped_profiles():
        return SensorProfile.load(frame.sensor)
    return None


def _isp(args: argparse.Namespace) -> None:
    given_noise = _noise_option(args.noise) if args.noise else None
    for spec in args.raws:
        frame, colour = load_raw_with_color(spec, **_raw_kwargs(args))
        profile = _profile_for(frame, args.profile)
        noise = given_noise
        if noise is None and profile is not None:
            noise = profile.normalized_noise(profile.gain_for_frame(frame))
        if args.denoise != "none" and noise is None:
            raise InvalidInputError(
                f"{spec}: --denoise {args.denoise} needs the sensor's noise level: expected --profile or "
                f"--noise A,SIGMA, got neither (no shipped profile is named {frame.sensor!r})"
            )
        # Colour: a profile's only when it holds a colour calibration; else the file's own (DNG
        # tags), else grey-world white balance and no matrix.
        colour_profile = profile if profile is not None and profile.has_colour else None
        config = IspConfig(
            demosaic=args.demosaic,
            denoise=args.denoise,
            white_balance=None if colour_profile else colour.get("white_balance"),
            color_matrix=None if colour_profile else colour.get("color_matrix"),
            noise=noise if args.denoise != "none" else None,
        )
        out = args.out / f"{Path(spec).stem}.png"
        write_png(out, render(frame, config, colour_profile))
        print(f"{spec} -> {out}")


def _noise_option(text: str) -> tuple[float, float]:
    try:
        a, sigma = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--noise must be two numbers A,SIGMA (e.g. 0.0002,0.0005), got {text!r}") from None
    if not (np.isfinite(a) and np.isfinite(sigma) and a >= 0 and sigma >= 0 and a + sigma > 0):
        raise InvalidInputError(f"--noise needs A >= 0 and SIGMA >= 0, not both 0, got {text!r}")
    return a, sigma


def _info(args: argparse.Namespace) -> None:
    frame, colour = load_raw_with_color(args.raw, **_raw_kwargs(args))
    print(describe(frame, colour.get("optical_black")))
