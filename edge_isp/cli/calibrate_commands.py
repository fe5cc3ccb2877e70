"""`edge-isp calibrate ptc|dark|image|capture|import`: measure a sensor's noise (or import a
published measurement), write its profile.

The calibration modules (``edge_isp.calibrate``) import scipy, which comes with the
``calibrate`` extra: each command imports them when it runs, so that every other command, and
this one's ``--help``, works without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import sys
from pathlib import Path

from edge_isp.contract.sizes import size_argument
from edge_isp.errors import InvalidInputError, require
from edge_isp.sensor.profile import SensorProfile


def register(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser(
        "calibrate",
        help="measure a sensor's noise (or import published noise data) and write its sensor profile",
        description="Measure a sensor's noise from raw frames (or capture them) and write a sensor profile "
        "(profile.json), its DNG/darktable/Raspberry Pi exports, plots and a report; or import a profile "
        "from darktable's noise profiles, a DNG NoiseProfile or a Raspberry Pi tuning file. "
        "How to capture the frames: calibration/PROTOCOL.md.",
    )
    cal_sub = cal.add_subparsers(dest="calibrate_command", metavar="METHOD", parser_class=type(cal))
    cal_sub.required = True

    p = cal_sub.add_parser(
        "ptc",
        help="photon transfer (EMVA 1288) from flat-field pairs and dark frames",
        description="Photon transfer per CFA channel from pairs of flat frames over a range of exposures plus "
        "dark frames, at one or more gains: K, read noise, saturation, linearity, SNR, dynamic range, PRNU, "
        "DSNU, defects; then K against gain and read noise against K.",
    )
    _inputs(p, max_gain=True)
    p.set_defaults(func=_ptc)

    p = cal_sub.add_parser(
        "dark",
        help="black level, read noise, row noise, DSNU and defects from dark frames",
        description="Dark-frame analysis per gain. Dark frames do not measure K, so a profile is written only "
        "with --base-profile, whose K it keeps.",
    )
    _inputs(p)
    p.set_defaults(func=_dark)

    p = cal_sub.add_parser(
        "image",
        help="noise from ordinary raw images (Foi et al. 2008)",
        description="Fit the Poisson-Gaussian noise (a, b) of one or more raw images of ordinary scenes with "
        "large smooth areas, accounting for clipping; images at several gains give a fit against gain.",
    )
    _inputs(p, max_gain=True)
    p.set_defaults(func=_image)

    p = cal_sub.add_parser(
        "capture",
        help="capture a calibration set from a live camera, guided",
        description="Drive a camera through the exposure sweep at each gain, telling you when to show it a "
        "white surface and when to cover the lens, and save the frames for `edge-isp calibrate ptc`.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="a camera with manual exposure and gain: picamera2[:N] or v4l2:/dev/videoN; or sim, a simulated "
        "sensor (--profile's noise) in front of a flat light, to check a set-up without a camera",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the frames")
    p.add_argument("--profile", default="nexus6p-rear", help="sim: the sensor simulated (default %(default)s)")
    p.add_argument("--size", type=size_argument, metavar="WxH", help="sim: frame size (default 128x96)")
    p.add_argument("--seed", type=int, default=0, help="sim: seed of the fixed patterns and noise (default 0)")
    p.add_argument("--gains", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="analogue gains (default: 1 2 4)")
    p.add_argument("--levels", type=int, default=20, help="flat-field exposure levels per gain (default: 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_capture)

    p = cal_sub.add_parser(
        "import",
        help="a sensor profile from a published noise description (darktable, DNG, Raspberry Pi)",
        description="Write a sensor profile from someone else's measurement of a camera: darktable's noise "
        "profiles (one entry per ISO), a DNG NoiseProfile tag, or a Raspberry Pi tuning file's rpi.noise "
        "block. None of them holds colour (the profile gets an identity matrix), and darktable's holds no raw "
        "levels, so give the camera's. Provenance goes into the profile's description.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--darktable", type=Path, metavar="FILE", help="darktable noiseprofiles.json")
    source.add_argument(
        "--dng-noise-profile", metavar="S,O[,S,O,S,O]", help="a DNG NoiseProfile tag: one (S, O) pair or R, G, B"
    )
    source.add_argument("--rpi-tuning", type=Path, metavar="FILE", help="libcamera Raspberry Pi tuning file (JSON)")
    dt = p.add_argument_group("darktable")
    dt.add_argument("--maker", help="camera maker, spelt as in the file (e.g. OnePlus)")
    dt.add_argument("--model", help="camera model, spelt as in the file (e.g. 'ONEPLUS A6003')")
    dt.add_argument("--isos", type=float, nargs="+", metavar="ISO", help="ISOs to import (default: all)")
    dt.add_argument(
        "--darktable-method", choices=["fit", "per-iso"],
        help="fit (default): green entries only, as darktable uses them, one physical model across ISO; "
        "per-iso: each ISO alone, planes averaged (how oneplus6-rear was made)",
    )  # fmt: skip
    dt.add_argument(
        "--variance-scale",
        type=float,
        help="darktable's wavelet-band variance over raw pixel variance (default 0.25, exact for white noise; "
        "demosaicking lowers it: see edge_isp.sensor.noise_formats.to_darktable)",
    )
    pi = p.add_argument_group("Raspberry Pi tuning file")
    pi.add_argument(
        "--read-noise-e", type=float, nargs="+", metavar="E",
        help="read noise in electrons at analogue gain 1 and at the highest gain (or one value for all): the "
        "tuning files' reference_constant is 0, so they hold none",
    )  # fmt: skip
    pi.add_argument("--read-noise-source", help="where --read-noise-e comes from (goes into the description)")
    pi.add_argument(
        "--colour-temperature", type=float, metavar="K",
        help="illuminant of the imported colour matrix and white balance, kelvin (default 6500)",
    )  # fmt: skip
    pi.add_argument("--no-colour", action="store_true", help="leave colour out (identity matrix, unit white balance)")
    p.add_argument("--iso", type=float, help="ISO the DNG NoiseProfile was recorded at (required with it)")
    p.add_argument("--out", "--output", dest="out", type=Path, required=True, help="the profile JSON to write")
    p.add_argument("--name", help="profile name (default: the output file's name without .json)")
    p.add_argument("--cfa", required=True, help="Bayer pattern of the raw: RGGB, BGGR, GRBG or GBRG")
    p.add_argument("--bit-depth", type=int, required=True, help="bits per raw sample")
    p.add_argument(
        "--black", type=float, nargs="+", metavar="DN",
        help="black level, DN: one, or 4 for R Gr Gb B (required, except from a tuning file that has one)",
    )  # fmt: skip
    p.add_argument("--white", type=float, metavar="DN", help="white level, DN (default: full scale)")
    p.add_argument("--base-iso", type=float, help="ISO at analogue gain 1 (default: darktable's lowest ISO, else 100)")
    p.add_argument("--max-gain", type=float, help="highest analogue gain (default: the table's highest, or 16)")
    p.add_argument(
        "--electrons-per-lux", type=float, metavar="E",
        help="photo-electrons at white per lux of scene illumination (default none: light in electrons only)",
    )  # fmt: skip
    p.add_argument("--description", help="the profile's description (default: the provenance, generated)")
    p.set_defaults(func=_import)


def _inputs(p: argparse.ArgumentParser, *, max_gain: bool = False) -> None:
    """The options of the methods that measure frames; ``max_gain`` for those that fit K against gain."""
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="folders (searched recursively) or raw files")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--name", help="profile name (default: the output folder's name)")
    p.add_argument("--base-profile", help="profile (shipped name or JSON) whose colour, ISO and lux data to keep")
    p.add_argument("--manifest", type=Path, help="manifest JSON (default: INPUT/manifest.json)")
    p.add_argument("--maker", help="camera maker for the darktable export (default edge-isp)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    dump = p.add_argument_group("bare dumps and metadata the files lack (the manifest can give them per file)")
    dump.add_argument("--width", type=int, help="width of .raw/.bin dumps, pixels")
    dump.add_argument("--height", type=int, help="height of .raw/.bin dumps, pixels")
    dump.add_argument("--format", help="format of .raw/.bin dumps, e.g. SRGGB10_CSI2P, RG10, pRAA")
    dump.add_argument("--stride", type=int, help="bytes per line of .raw/.bin dumps (default: packed)")
    dump.add_argument("--msb-shift", type=int, help="bit position of MSB-aligned 16-bit samples")
    dump.add_argument("--cfa", help="Bayer pattern (RGGB, BGGR, GRBG, GBRG) for PGM or to override")
    dump.add_argument("--black-level", type=float, help="black level, DN (required for dumps and PGM)")
    dump.add_argument("--white-level", type=float, help="white level, DN")
    dump.add_argument("--bit-depth", type=int, help="bits per sample")
    dump.add_argument("--gain", type=float, help="analogue gain of every frame (when the files do not say)")
    dump.add_argument("--exposure", type=float, help="exposure time of every frame, s (when the files do not say)")
    dump.add_argument("--base-iso", type=float, help="camera ISO at unity analogue gain (camera raw files)")
    dump.add_argument("--iso", type=float, help="ISO of every frame (when the files do not say)")
    if max_gain:
        p.add_argument(
            "--max-gain", type=float, help="highest analogue gain the profile covers (default: the highest measured)"
        )


def _discover(args: argparse.Namespace, kind: str | None):
    # The methods' statistics use scipy; say how to get it rather than fail midway.
    require("scipy", "calibrate", "noise calibration")
    from edge_isp.calibrate.frames import discover

    refs = discover(
        args.inputs,
        manifest=args.manifest,
        kind=kind,
        width=args.width,
        height=args.height,
        format=args.format,
        stride=args.stride,
        msb_shift=args.msb_shift,
        cfa=args.cfa,
        black_level=args.black_level,
        white_level=args.white_level,
        bit_depth=args.bit_depth,
        analogue_gain=args.gain,
        exposure_time_s=args.exposure,
        base_iso=args.base_iso,
        iso=args.iso,
    )
    return refs


def _base(args: argparse.Namespace):
    return SensorProfile.load(args.base_profile) if args.base_profile else None


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _name(args: argparse.Namespace) -> str:
    return args.name or args.out.resolve().name


def _summary(cal, refs) -> None:
    from edge_isp.calibrate.frames import base_iso_of

    base_iso = base_iso_of(refs)
    if cal.gain_fit is not None:
        for p in cal.gain_fit.points:
            iso = f" (ISO {p.analogue_gain * base_iso:g})" if base_iso else ""
            print(
                f"gain {p.analogue_gain:g}{iso}: K = {p.gain_dn_per_e:.5g} ± {p.gain_se:.2g} DN/e-, read noise = "
                f"{p.read_noise_dn:.4g} ± {p.read_noise_se:.2g} DN ({p.read_noise_dn / p.gain_dn_per_e:.3g} e-)"
            )
    for key, path in cal.files.items():
        print(f"  {key:<10} {path}")


def _few_collections(command):
    """``command`` run with the cyclic garbage collector's first threshold raised, and restored
    after. The measuring commands import SciPy and matplotlib, about a million objects that live
    to the end, which the default threshold (a collection every 700 new objects, a full one each
    time the heap has grown by a quarter) walks again and again: 3 % of the CPU time of a
    130-frame `calibrate ptc`. What the calibration itself makes is freed by reference counting."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
        try:
            return command(args)
        finally:
            gc.set_threshold(*threshold)

    return run


@_few_collections
def _ptc(args: argparse.Namespace) -> int:
    from edge_isp.calibrate.frames import assign_dark_flat
    from edge_isp.calibrate.pipeline import calibrate_ptc

    refs = assign_dark_flat(_discover(args, None))
    cal = calibrate_ptc(
        refs, args.out, name=_name(args), base=_base(args), max_gain=args.max_gain, maker=args.maker,
        progress=_progress(args),
    )  # fmt: skip
    _summary(cal, refs)
    return 0


@_few_collections
def _dark(args: argparse.Namespace) -> int:
    from edge_isp.calibrate.pipeline import calibrate_dark

    refs = _discover(args, None)
    flats = [r for r in refs if r.kind == "flat"]
    # Frames named or listed as flats are not darks, whatever folder they came in.
    refs = [dataclasses.replace(r, kind="dark") for r in refs if r.kind != "flat"]
    if flats:
        print(f"ignoring {len(flats)} flat frame(s), e.g. {flats[0].name}")
    if not refs:
        raise InvalidInputError("no dark frames among the inputs: capture frames with the lens covered")
    cal = calibrate_dark(refs, args.out, name=_name(args), base=_base(args), maker=args.maker, progress=_progress(args))
    for d in cal.results:
        print(
            f"gain {d.analogue_gain:g}: black {[round(float(b), 2) for b in d.black_level_dn]} DN, read noise "
            f"{d.read_noise_dn:.4g} ± {d.read_noise_se:.2g} DN, row noise {d.row_noise_dn:.3g} DN, "
            f"{d.defects.count()} defective pixels"
        )
    for key, path in cal.files.items():
        print(f"  {key:<10} {path}")
    return 0


@_few_collections
def _image(args: argparse.Namespace) -> int:
    from edge_isp.calibrate.pipeline import calibrate_image
    from edge_isp.calibrate.report import masked_read_noise_dn

    refs = _discover(args, "scene")
    cal = calibrate_image(refs, args.out, name=_name(args), base=_base(args), max_gain=args.max_gain, maker=args.maker)
    _summary(cal, refs)
    masked = [r.optical_black for r in refs if r.optical_black is not None]
    if masked:
        print(
            f"masked optical-black area of {len(masked)} file(s) ({masked[0].regions}): read noise "
            f"{masked_read_noise_dn(masked):.4g} DN (spatial std: read noise + DSNU), a check on the estimate"
        )
    return 0


def _capture(args: argparse.Namespace) -> int:
    from edge_isp.calibrate.capture import CapturePlan, ControlledSource, run_capture
    from edge_isp.calibrate.simulated_capture import DEFAULT_SIZE, SimulatedBench
    from edge_isp.runtime.sources import open_source  # the cameras' drivers: only a capture needs them

    plan = CapturePlan(gains=tuple(args.gains), levels=args.levels)
    if args.source.strip().lower() == "sim":
        bench = SimulatedBench(SensorProfile.load(args.profile), args.size or DEFAULT_SIZE, seed=args.seed)
        print(f"simulated capture: {args.profile}'s noise model, a flat light saturating base gain in about 10 ms")
        run_capture(bench, plan, args.out, wait=bench.wait, progress=not args.no_progress)
        return 0
    with open_source(args.source) as camera:
        paths = run_capture(ControlledSource(camera), plan, args.out, progress=not args.no_progress)
    print(f"captured {len(paths)} frames into {args.out}; next: edge-isp calibrate ptc {args.out} --out PROFILE_DIR")
    return 0


def _import(args: argparse.Namespace) -> int:
    from edge_isp.calibrate import importing

    _check_import_options(args)
    common = {
        "name": args.name or args.out.stem,
        "cfa": args.cfa,
        "bit_depth": args.bit_depth,
        "white_level": args.white,
        "max_analogue_gain": args.max_gain,
        "electrons_at_white_per_lux": args.electrons_per_lux,
        "description": args.description,
    }
    black = None if args.black is None else (args.black[0] if len(args.black) == 1 else args.black)
    if args.darktable is not None:
        extra = {} if args.variance_scale is None else {"variance_scale": args.variance_scale}
        if args.darktable_method is not None:
            extra["method"] = args.darktable_method
        result = importing.import_darktable(
            importing.read_json_document(args.darktable, "darktable noise profile file"),
            maker=args.maker, model=args.model, black_level=black, base_iso=args.base_iso, isos=args.isos,
            source=args.darktable.name, **extra, **common,
        )  # fmt: skip
    elif args.dng_noise_profile is not None:
        result = importing.import_dng_noise_profile(
            importing.parse_dng_noise_profile(args.dng_noise_profile), iso=args.iso, black_level=black,
            base_iso=100.0 if args.base_iso is None else args.base_iso, **common,
        )  # fmt: skip
    else:
        colour_k = None if args.no_colour else 6500.0 if args.colour_temperature is None else args.colour_temperature
        result = importing.import_rpi_tuning(
            importing.read_json_document(args.rpi_tuning, "Raspberry Pi tuning file"), black_level=black,
            base_iso=100.0 if args.base_iso is None else args.base_iso, source=args.rpi_tuning.name,
            read_noise_e=args.read_noise_e, read_noise_source=args.read_noise_source,
            colour_temperature_k=colour_k, **common,
        )  # fmt: skip
    profile = result.profile
    profile.save(args.out)
    for n in profile.noise:
        print(
            f"ISO {n.analogue_gain * profile.base_iso:g} (gain {n.analogue_gain:g}): K = {n.gain_dn_per_e:.5g} DN/e-, "
            f"read noise = {n.read_noise_dn:.4g} DN ({n.read_noise_e:.3g} e-)"
        )
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {args.out} (profile {profile.name!r})")
    return 0


def _check_import_options(args: argparse.Namespace) -> None:
    """Options that belong to one source only, and the ones a source cannot do without."""
    given = {
        "--maker": args.maker, "--model": args.model, "--isos": args.isos,
        "--variance-scale": args.variance_scale, "--iso": args.iso, "--read-noise-e": args.read_noise_e,
        "--read-noise-source": args.read_noise_source, "--colour-temperature": args.colour_temperature,
        "--no-colour": args.no_colour or None, "--darktable-method": args.darktable_method,
    }  # fmt: skip
    if args.darktable is not None:
        source, own = "--darktable", ("--maker", "--model", "--isos", "--variance-scale", "--darktable-method")
        needed = ("--maker", "--model")
    elif args.dng_noise_profile is not None:
        source, own, needed = "--dng-noise-profile", ("--iso",), ("--iso",)
    else:
        source, needed = "--rpi-tuning", ()
        own = ("--read-noise-e", "--read-noise-source", "--colour-temperature", "--no-colour")
    missing = [o for o in needed if given[o] is None]
    if missing:
        raise InvalidInputError(f"{source} needs {' and '.join(missing)}: expected them, got none")
    stray = [o for o, v in given.items() if v is not None and o not in own]
    if stray:
        raise InvalidInputError(
            f"{', '.join(stray)} cannot be used with {source}: expected only its own options "
            f"({', '.join(own) or 'none beyond the common ones'})"
        )
    if args.black is None and args.rpi_tuning is None:
        raise InvalidInputError(f"{source} needs the raw's black level: expected --black DN, got none")
    if args.black is not None and len(args.black) not in (1, 4):
        raise InvalidInputError(f"--black takes one level or 4 (R Gr Gb B), got {len(args.black)}")
