"""The calibration report (Markdown): every fitted quantity with its uncertainty and fit quality."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate.dark import DarkResult
from edge_isp.calibrate.gain_fit import GainFit
from edge_isp.calibrate.ptc import PtcGainResult, PtcResult
from edge_isp.calibrate.single_image import SingleImageResult
from edge_isp.calibrate.tukey import GAUSSIAN_LAMBDA
from edge_isp.sensor.cfa import PLANE_ORDER
from edge_isp.sensor.optical_black import OpticalBlack
from edge_isp.sensor.profile import SensorProfile

UNCERTAINTY_NOTE = (
    "Uncertainties (±) are one standard error. Line fits (K, the gain fits, linearity): the "
    "weighted least-squares covariance, each point weighted by its own standard error, scaled by "
    "sqrt(chi²/dof) when that exceeds 1. Temporal variances: the spread of the per-pixel variances "
    "over the square root of their number. Black level: the spread of the frame means. Read, row "
    "noise, DSNU, PRNU: propagated from those (delta method). Tukey-lambda shape: bootstrap over the "
    "residual sample (20 resamples). Single-image (a, b): the inverse Hessian of the negative "
    "log-likelihood, scaled by the level sets' chi²/dof when it exceeds 1."
)


def _pm(value: float | None, se: float | None, fmt: str = ".4g") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if se is None or not math.isfinite(se):
        return f"{value:{fmt}}"
    return f"{value:{fmt}} ± {se:.2g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _dark_section(d: DarkResult, k: float | None = None) -> list[str]:
    out = [f"Dark stack: {d.n_frames} frames, exposure {d.exposure_time_s * 1e3:g} ms.", ""]
    rows = []
    for c, name in enumerate(PLANE_ORDER):
        dsnu = _pm(d.dsnu_dn[c], d.dsnu_se[c], ".3g") if d.dsnu_dn is not None else "n/a"
        if d.dsnu_dn is not None and k:
            dsnu += f" ({d.dsnu_dn[c] / k:.3g} e-)"
        rows.append(
            [
                name,
                _pm(d.black_level_dn[c], d.black_level_se[c], ".2f"),
                _pm(d.temporal_var_dn2[c], d.temporal_var_se[c], ".4g"),
                f"{d.read_noise_dn_per_channel[c]:.4g}",
                dsnu,
            ]
        )
    out += _table(["channel", "black level (DN)", "temporal var (DN²)", "read noise (DN)", "DSNU (DN)"], rows)
    out.append(f"- read noise (pooled, row noise and quantization removed): {_pm(d.read_noise_dn, d.read_noise_se)} DN")
    out.append(f"- row noise: {_pm(d.row_noise_dn, d.row_noise_se)} DN")
    if d.shape is not None:
        s = d.shape
        verdict = "heavier-tailed than Gaussian" if s.lam < GAUSSIAN_LAMBDA else "lighter-tailed than Gaussian"
        if not s.departs_from_gaussian:
            verdict = f"consistent with Gaussian (λ ≈ {GAUSSIAN_LAMBDA})"
        out.append(
            f"- read noise shape (Tukey λ, PPCC fit of {s.n} residuals): {_pm(s.lam, s.lam_se, '.4f')}; "
            f"PPCC {s.ppcc:.5f} vs Gaussian {s.ppcc_gaussian:.5f}: {verdict}"
        )
    counts = ", ".join(f"{kind} {len(px)}" for kind, px in d.defects.pixels.items())
    out += [f"- defective pixels: {counts}", ""]
    return out


def _dark_current_line(res: PtcGainResult) -> str:
    d = res.dark_current
    if d is None:
        return "- dark current: not measured (darks at one exposure only)"
    return (
        f"- dark current (darks at {len(d.exposures_s)} exposures, {min(d.exposures_s) * 1e3:g} to "
        f"{max(d.exposures_s) * 1e3:g} ms): {_pm(d.mean_e_per_s, d.mean_se, '.3g')} e-/s from the mean, "
        f"{_pm(d.variance_e_per_s, d.variance_se, '.3g')} e-/s from the variance"
    )


def _ptc_section(res: PtcGainResult) -> list[str]:
    out = [f"## Photon transfer at gain {res.analogue_gain:g}", ""]
    rows = []
    for c, name in enumerate(PLANE_ORDER):
        f = res.channels[c]
        intercept = "n/a" if f.free_fit is None else _pm(f.free_fit.intercept, f.free_fit.intercept_se, ".3g")
        rows.append(
            [
                name,
                _pm(f.gain_dn_per_e, f.gain_se),
                f"{f.fit.chi2_reduced:.2f}",
                f"{f.fit.r2:.5f}",
                f"{len(f.used)} / {len(res.levels)}",
                ", ".join(str(i) for i in f.rejected) or "none",
                intercept,
                f"{f.saturation_dn:.0f}" + ("" if f.saturation_reached else " (white)"),
                "n/a" if f.linearity_error_pct is None else f"{f.linearity_error_pct:.3f}",
                "n/a" if f.linearity_min_pct is None else f"{f.linearity_min_pct:+.3f} / {f.linearity_max_pct:+.3f}",
                "n/a" if res.prnu_pct is None else _pm(res.prnu_pct[c], res.prnu_se[c], ".3f"),
            ]
        )
    out += _table(
        [
            "channel", "K (DN/e-)", "χ²/dof", "R²", "levels used", "rejected", "free-fit intercept (DN²)",
            "saturation (DN)", "linearity error (%)", "linearity min / max (%)", "PRNU (%)",
        ],
        rows,
    )  # fmt: skip
    out += [
        f"- K (channels combined): **{_pm(res.gain_dn_per_e, res.gain_se)} DN/e-** "
        f"({1 / res.gain_dn_per_e:.4g} e-/DN); channel agreement χ²/dof {res.channel_chi2:.2f}",
        f"- read noise: **{_pm(res.read_noise_dn, res.dark.read_noise_se)} DN** = {res.read_noise_e:.3g} e-",
        f"- saturation capacity: {res.saturation_e:.0f} e-; dynamic range {res.dynamic_range:.0f}:1 = "
        f"{res.dynamic_range_db:.1f} dB = {res.dynamic_range_stops:.2f} stops (saturation over read noise)",
        "- EMVA 1288 (Release 4.0 Linear; in electrons, as no quantum efficiency is measured): saturation at the "
        f"variance peak; SNR max = sqrt({res.saturation_e:.0f} e-) = {res.snr_max:.1f} = "
        f"{20 * math.log10(res.snr_max):.1f} dB; temporal dark noise {res.dark_noise_e:.3g} e- (quantization "
        f"included); absolute sensitivity threshold {res.sensitivity_threshold_e:.3g} e-; dynamic range "
        f"{res.dynamic_range_emva:.0f}:1 = {20 * math.log10(res.dynamic_range_emva):.1f} dB = "
        f"{math.log2(res.dynamic_range_emva):.2f} stops (saturation over the threshold)",
        _dark_current_line(res),
        "",
    ]
    out += _dark_section(res.dark, res.gain_dn_per_e)
    flat_counts = ", ".join(f"{kind} {res.defects.count(kind)}" for kind in ("dead", "overresponsive"))
    out += [f"- from the flat fields: {flat_counts}; defective pixels in all: {res.defects.count()}", ""]
    snr_rows = []
    c = 1
    for lv in res.levels_below_saturation(c):
        s = lv.signal_dn[c]
        if s > 0 and lv.total_variance_dn2[c] > 0:
            measured = s / math.sqrt(lv.total_variance_dn2[c])
            snr_rows.append([f"{lv.exposure_time_s * 1e3:g}", f"{s:.1f}", f"{measured:.2f}", f"{res.snr_model(s):.2f}"])
    cut = len(res.levels) - len(res.levels_below_saturation(c))
    out += [f"SNR curve (channel Gr; {cut} level(s) past saturation left out):", ""]
    out += _table(["exposure (ms)", "signal (DN)", "SNR measured", "SNR model"], snr_rows)
    out += [f"- note: {n}" for n in res.notes]
    return [*out, ""]


def _gain_section(fit: GainFit) -> list[str]:
    out = ["## Noise against gain", ""]
    rows = []
    k_res = fit.k_residuals_pct() if fit.k_fit is not None else [math.nan] * len(fit.points)
    r_res = fit.read_residuals_pct() if fit.read_fit is not None else [math.nan] * len(fit.points)
    for p, kr, rr in zip(fit.points, k_res, r_res, strict=True):
        lam = "Gaussian" if p.read_noise_lambda is None else f"{p.read_noise_lambda:.3f}"
        rows.append(
            [
                f"{p.analogue_gain:g}", _pm(p.gain_dn_per_e, p.gain_se), f"{kr:+.2f}",
                _pm(p.read_noise_dn, p.read_noise_se), f"{p.read_noise_dn / p.gain_dn_per_e:.3g}", f"{rr:+.2f}",
                f"{p.row_noise_dn:.3g}", lam,
            ]
        )  # fmt: skip
    out += _table(
        ["gain", "K (DN/e-)", "K fit residual (%)", "read (DN)", "read (e-)", "read fit residual (%)",
         "row (DN)", "read shape"],
        rows,
    )  # fmt: skip
    if fit.k_fit is not None:
        f = fit.k_fit
        out.append(
            f"- K = ({_pm(f.slope, f.slope_se)}) × gain + ({_pm(f.intercept, f.intercept_se)}) DN/e-; "
            f"χ²/dof {f.chi2_reduced:.2f} (dof {f.dof})"
        )
    if fit.read_fit is not None:
        f = fit.read_fit
        out.append(
            f"- log(read DN) = ({_pm(f.slope, f.slope_se)}) × log(K) + ({_pm(f.intercept, f.intercept_se)}); "
            f"χ²/dof {f.chi2_reduced:.2f} (dof {f.dof})"
        )
    if fit.k_fit is None:
        out.append("- one gain measured: no fit against gain; the profile extrapolates K ∝ gain")
    return [*out, ""]


def _profile_section(profile: SensorProfile) -> list[str]:
    out = ["## Profile noise table", ""]
    rows = [
        [f"{n.analogue_gain:g}", f"{n.gain_dn_per_e:.5g}", f"{n.read_noise_dn:.4g}", f"{n.row_noise_dn:.3g}",
         "Gaussian" if n.read_noise_lambda is None else f"{n.read_noise_lambda:.3f}"]
        for n in profile.noise
    ]  # fmt: skip
    out += _table(["gain", "K (DN/e-)", "read (DN)", "row (DN)", "read shape (λ)"], rows)
    out.append(
        f"Black level {[round(float(b), 2) for b in profile.black_level]} DN, white level {profile.white_level:g} DN, "
        f"max analogue gain {profile.max_analogue_gain:g}."
    )
    return [*out, ""]


def _header(title: str, lines: Sequence[str], files: dict[str, str]) -> list[str]:
    out = [f"# {title}", "", *lines, "", UNCERTAINTY_NOTE, ""]
    if files:
        out += ["Files: " + ", ".join(f"[{k}]({v})" for k, v in files.items()), ""]
    return out


def ptc_report(result: PtcResult, fit: GainFit, profile: SensorProfile, files: dict[str, str]) -> str:
    """Markdown report of a photon-transfer calibration."""
    lines = [
        f"Method: photon transfer (EMVA 1288) from {result.refs_count} frames, {result.width}x{result.height} "
        f"{result.cfa}, {result.bit_depth}-bit, white level {result.white_level:g} DN, sensor '{result.sensor}'.",
        f"Highest raw value seen in the flats: {result.max_seen_dn:g} DN.",
    ]
    if result.max_seen_dn < result.white_level:
        lines.append(
            f"The flats never reached the white level ({result.white_level:g} DN): check it, or extend the "
            "exposure sweep past saturation."
        )
    out = _header(f"Noise calibration: {profile.name}", lines, files)
    out += _gain_section(fit)
    for res in result.gains:
        out += _ptc_section(res)
    out += _profile_section(profile)
    return "\n".join(out)


def dark_report(results: Sequence[DarkResult], title: str, files: dict[str, str], profile: SensorProfile | None) -> str:
    """Markdown report of a dark-frame calibration."""
    lines = ["Method: dark frames (black level, read noise, row noise, read-noise shape, DSNU, defects)."]
    if profile is None:
        lines.append("No sensor profile written: dark frames do not measure K; pass a base profile to update one.")
    out = _header(title, lines, files)
    for d in results:
        out += [f"## Dark frames at gain {d.analogue_gain:g}", ""]
        out += _dark_section(d)
        out += [f"- note: {n}" for n in d.notes] + [""]
    if profile is not None:
        out += _profile_section(profile)
    return "\n".join(out)


def image_report(
    results: Sequence[SingleImageResult],
    fit: GainFit,
    profile: SensorProfile,
    files: dict[str, str],
    masked: Sequence[Sequence[OpticalBlack]] = (),
) -> str:
    """Markdown report of a single-image (Foi) calibration; ``masked`` holds, per result, the
    files' masked optical-black areas, reported as a check on the read noise."""
    lines = ["Method: single image (Foi et al. 2008), maximum likelihood with clipping, per CFA channel."]
    out = _header(f"Noise calibration: {profile.name}", lines, files)
    out += _gain_section(fit)
    for i, res in enumerate(results):
        out += [f"## Single image at gain {res.analogue_gain:g} ({res.n_images} image(s))", ""]
        rows = []
        for name, f in [*zip(PLANE_ORDER, res.channels, strict=True), ("joint", res.joint)]:
            if f is None:
                rows.append([name, "too few level sets", "", "", ""])
                continue
            rows.append([name, _pm(f.a, f.a_se), _pm(f.b, f.b_se), f"{f.chi2_reduced:.2f}", str(f.n_level_sets)])
        out += _table(["channel", "a", "b", "χ²/dof", "level sets"], rows)
        smooth = np.mean([s.smooth_fraction for sets in res.level_sets for s in sets])
        out += [
            f"- K = a × {res.range_dn:g} DN = **{_pm(res.gain_dn_per_e, res.gain_se)} DN/e-**",
            "- read noise = sqrt(b) × range, quantization removed = "
            f"**{_pm(res.read_noise_dn, res.read_noise_se)} DN**",
            f"- smooth area used: {smooth:.0%} of the image",
        ]
        out += [*_masked_lines(res, masked[i] if i < len(masked) else ()), ""]
    out += _profile_section(profile)
    return "\n".join(out)


def masked_read_noise_dn(areas: Sequence[OpticalBlack]) -> float | None:
    """Read noise from masked optical-black areas: root of the mean variance over the files
    and planes (DN), or None without any."""
    if not areas:
        return None
    return float(np.sqrt(np.mean([a.read_noise_mean_dn**2 for a in areas])))


def _masked_lines(res: SingleImageResult, areas: Sequence[OpticalBlack]) -> list[str]:
    masked = masked_read_noise_dn(areas)
    if masked is None:
        return ["- masked optical-black area: none in these files (no check on the read noise)"]
    levels = np.mean([a.black_level_dn for a in areas], axis=0)
    return [
        f"- masked optical-black area ({len(areas)} file(s), {areas[0].regions}): read noise {masked:.4g} DN "
        f"(spatial std: read noise + DSNU); the estimate above is {res.read_noise_dn / masked:.3f} x that",
        "- black level from the masked area: "
        + ", ".join(f"{n} {b:.2f}" for n, b in zip(PLANE_ORDER, levels, strict=True))
        + " DN",
    ]
