"""Run a calibration method end to end and write its outputs into one folder.

Outputs (each written atomically):

- ``profile.json``: the sensor profile (:class:`~edge_isp.sensor.profile.SensorProfile`),
  the one schema the simulator reads;
- ``exports/dng_noise_profile.json``: the DNG NoiseProfile tag (S, O per plane) per gain;
- ``exports/darktable_noiseprofiles.json``: darktable's noiseprofiles.json for this camera;
- ``exports/rpi_noise.json``: the "rpi.noise" block of a Raspberry Pi tuning file;
- ``ptc.png`` / ``level_sets.png``, and ``noise_vs_gain.png`` when there are two or more gains: the plots;
- ``defects.json``: defective pixels (photon transfer and dark methods);
- ``report.md``: every fitted quantity with its uncertainty and the fit quality.

The conversions to the other formats are those of :mod:`edge_isp.sensor.noise_formats`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_isp.calibrate import plots, report
from edge_isp.calibrate.dark import DarkResult, analyze_dark
from edge_isp.calibrate.defects import DefectMap
from edge_isp.calibrate.frames import FrameRef, base_iso_of, check_consistent, group
from edge_isp.calibrate.gain_fit import GainFit, GainPoint, build_profile, fit_gains
from edge_isp.calibrate.ptc import PtcResult, photon_transfer
from edge_isp.calibrate.single_image import SingleImageResult, single_image
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import atomic_open, write_json
from edge_isp.sensor import noise_formats
from edge_isp.sensor.optical_black import OpticalBlack
from edge_isp.sensor.profile import SensorProfile


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What a method produced: the profile (None for darks without a base), the gain fit,
    the method's own results, and the files written (name -> path)."""

    profile: SensorProfile | None
    gain_fit: GainFit | None
    results: object
    files: dict[str, Path]


def _lambda_if_not_gaussian(dark: DarkResult) -> float | None:
    shape = dark.shape
    if shape is None or not shape.departs_from_gaussian or shape.ppcc <= shape.ppcc_gaussian:
        return None
    return shape.lam


def write_exports(profile: SensorProfile, out_dir: Path, *, maker: str, model: str) -> dict[str, Path]:
    """The profile in DNG NoiseProfile, darktable and Raspberry Pi tuning form."""
    exports = out_dir / "exports"
    entries = []
    for n in profile.noise:
        pairs = noise_formats.to_dng_noise_profile(profile, n.analogue_gain)
        entries.append(
            {
                "analogue_gain": n.analogue_gain,
                "iso": noise_formats.iso_for_gain(profile, n.analogue_gain),
                "planes": ["R", "G", "B"],
                "pairs": [list(p) for p in pairs],
                "tag_51041": [v for p in pairs for v in p],
            }
        )
    files = {
        "dng": exports / "dng_noise_profile.json",
        "darktable": exports / "darktable_noiseprofiles.json",
        "rpi": exports / "rpi_noise.json",
    }
    write_json(
        files["dng"],
        {
            "description": "DNG NoiseProfile (tag 51041) per analogue gain: noise std = sqrt(S x + O), x the "
            "black-subtracted, white-scaled plane value; tag_51041 is the flat list S_R O_R S_G O_G S_B O_B",
            "entries": entries,
        },
    )
    darktable = noise_formats.to_darktable(profile, maker=maker, model=model)
    write_json(files["darktable"], noise_formats.darktable_file(darktable))
    write_json(files["rpi"], {"rpi.noise": noise_formats.to_rpi_noise(profile, reference_gain=1.0)})
    return files


def _finish(profile: SensorProfile, out_dir: Path, files: dict[str, Path], maker: str | None) -> dict[str, Path]:
    profile.save(out_dir / "profile.json")
    files = {"profile": out_dir / "profile.json", **files}
    files.update(write_exports(profile, out_dir, maker=maker or "edge-isp", model=profile.name))
    return files


def _gain_plot(fit: GainFit, out_dir: Path) -> dict[str, Path]:
    """``noise_vs_gain.png`` when there are gains to compare; one gain is one point, so none
    (a stale plot from an earlier run with several gains is removed, not left to mislead)."""
    path = out_dir / "noise_vs_gain.png"
    if len(fit.points) < 2:
        path.unlink(missing_ok=True)
        return {}
    plots.plot_gain(fit, path)
    return {"gain_plot": path}


def _save_defects(maps: Sequence[DefectMap], path: Path) -> None:
    """One map of the pixels defective at any of the gains."""
    functools.reduce(DefectMap.union, maps).save(path)


def _write_report(files: dict[str, Path], out_dir: Path, render: Callable[[dict[str, str]], str]) -> dict[str, Path]:
    """Write ``report.md``, the text ``render`` makes from the files written (the report among them)
    relative to ``out_dir``; returns the files with the report added."""
    files = {**files, "report": out_dir / "report.md"}
    text = render({k: v.relative_to(out_dir).as_posix() for k, v in files.items()})
    with atomic_open(files["report"], "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return files


def calibrate_ptc(
    refs: Sequence[FrameRef],
    out_dir: str | Path,
    *,
    name: str,
    base: SensorProfile | None = None,
    max_gain: float | None = None,
    maker: str | None = None,
    progress: bool = False,
) -> Calibration:
    """Photon transfer at every gain, the gain fit, the profile and all outputs."""
    out_dir = Path(out_dir)
    result: PtcResult = photon_transfer(refs, progress=progress)
    points = [
        GainPoint(
            analogue_gain=g.analogue_gain,
            gain_dn_per_e=g.gain_dn_per_e,
            gain_se=g.gain_se,
            read_noise_dn=g.read_noise_dn,
            read_noise_se=g.dark.read_noise_se,
            row_noise_dn=g.dark.row_noise_dn,
            read_noise_lambda=_lambda_if_not_gaussian(g.dark),
        )
        for g in result.gains
    ]
    fit = fit_gains(points)
    lowest = result.gains[0]
    profile = build_profile(
        fit,
        name=name,
        cfa=result.cfa,
        bit_depth=result.bit_depth,
        black_level=lowest.dark.black_level_dn,
        white_level=result.white_level,
        base=base,
        max_gain=max_gain,
        base_iso=base_iso_of(refs),
        description=f"noise calibrated by photon transfer (EMVA 1288) at gains "
        f"{', '.join(f'{g.analogue_gain:g}' for g in result.gains)} from {result.refs_count} frames of "
        f"'{result.sensor}'" + ("" if base else "; colour not calibrated (identity matrix, unit white balance)"),
    )
    files = {"ptc_plot": out_dir / "ptc.png", "defects": out_dir / "defects.json"}
    plots.plot_ptc(result.gains, files["ptc_plot"])
    files.update(_gain_plot(fit, out_dir))
    _save_defects([g.defects for g in result.gains], files["defects"])
    files = _finish(profile, out_dir, files, maker)
    files = _write_report(files, out_dir, lambda listed: report.ptc_report(result, fit, profile, listed))
    return Calibration(profile, fit, result, files)


def calibrate_dark(
    refs: Sequence[FrameRef],
    out_dir: str | Path,
    *,
    name: str,
    base: SensorProfile | None = None,
    maker: str | None = None,
    progress: bool = False,
) -> Calibration:
    """Dark analysis at every gain; a profile only when ``base`` supplies K."""
    out_dir = Path(out_dir)
    check_consistent(refs)
    results = []
    for gain, groups in group(refs).items():
        stack = max(groups, key=lambda g: (len(g.refs), -g.exposure_time_s))
        if len(stack.refs) < 2:
            raise InvalidInputError(
                f"gain {gain:g} has no two dark frames at the same exposure: capture 16 frames at gain {gain:g} "
                "with the lens covered"
            )
        results.append(analyze_dark(stack.refs, progress=progress))
    files: dict[str, Path] = {"defects": out_dir / "defects.json"}
    _save_defects([d.defects for d in results], files["defects"])
    profile = fit = None
    if base is not None:
        points = [
            GainPoint(
                analogue_gain=d.analogue_gain,
                gain_dn_per_e=base.noise_at(d.analogue_gain).gain_dn_per_e,
                gain_se=0.0,
                read_noise_dn=d.read_noise_dn,
                read_noise_se=d.read_noise_se,
                row_noise_dn=d.row_noise_dn,
                read_noise_lambda=_lambda_if_not_gaussian(d),
            )
            for d in results
        ]
        fit = fit_gains(points)
        profile = build_profile(
            fit,
            name=name,
            cfa=refs[0].cfa,
            bit_depth=refs[0].bit_depth,
            black_level=results[0].black_level_dn,
            white_level=refs[0].white_level,
            base=base,
            base_iso=base_iso_of(refs),
            description=f"{base.description} | black level, read and row noise re-measured from dark frames at "
            f"gains {', '.join(f'{d.analogue_gain:g}' for d in results)}; K from '{base.name}'",
        )
        files = _finish(profile, out_dir, files, maker)
    title = f"Dark-frame calibration: {name}"
    files = _write_report(files, out_dir, lambda listed: report.dark_report(results, title, listed, profile))
    return Calibration(profile, fit, tuple(results), files)


def calibrate_image(
    refs: Sequence[FrameRef],
    out_dir: str | Path,
    *,
    name: str,
    base: SensorProfile | None = None,
    max_gain: float | None = None,
    maker: str | None = None,
) -> Calibration:
    """Foi's single-image fit per gain (images at one gain are fitted together)."""
    out_dir = Path(out_dir)
    check_consistent(refs)
    results: list[SingleImageResult] = []
    masked: list[list[OpticalBlack]] = []
    for groups in group(refs).values():
        frames = [r.load() for g in groups for r in g.refs]
        results.append(single_image(frames))
        masked.append([r.optical_black for g in groups for r in g.refs if r.optical_black is not None])
    points = [
        GainPoint(
            analogue_gain=r.analogue_gain,
            gain_dn_per_e=r.gain_dn_per_e,
            gain_se=r.gain_se,
            read_noise_dn=r.read_noise_dn,
            read_noise_se=r.read_noise_se,
        )
        for r in results
    ]
    fit = fit_gains(points)
    first = refs[0]
    profile = build_profile(
        fit,
        name=name,
        cfa=first.cfa,
        bit_depth=first.bit_depth,
        black_level=first.black_level,
        white_level=first.white_level,
        base=base,
        max_gain=max_gain,
        base_iso=base_iso_of(refs),
        description=f"noise fitted from {len(refs)} ordinary image(s) (Foi et al. 2008) at gains "
        f"{', '.join(f'{r.analogue_gain:g}' for r in results)}; black level from the files' metadata",
    )
    files = {"level_sets_plot": out_dir / "level_sets.png"}
    plots.plot_level_sets(results, files["level_sets_plot"])
    files.update(_gain_plot(fit, out_dir))
    files = _finish(profile, out_dir, files, maker)
    files = _write_report(files, out_dir, lambda listed: report.image_report(results, fit, profile, listed, masked))
    return Calibration(profile, fit, tuple(results), files)
