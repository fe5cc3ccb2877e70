"""Photon transfer (EMVA 1288) per CFA channel, from flat-field pairs over exposures plus darks.

At each gain, for each exposure level (L >= 2 flat frames) and the dark frames:

- signal ``s = mean(flat) - mean(dark)`` and temporal variance
  ``v = var(flat) - var(dark)`` (:mod:`edge_isp.calibrate.stats`: frame differences, so
  fixed pattern cancels), per channel, DN. The dark group at the same exposure is used
  when there is one, else the nearest exposure's.
- saturation: the signal where the variance over all pixels (clipped ones included)
  peaks, EMVA 1288's ``mu_y.sat`` (Release 4.0 Linear, as Release 3.1): the largest
  variance within one level of the running median's peak, so one bad level elsewhere
  cannot fake it; when the sweep never turns over, the white level.
- system gain K (DN/e-): the slope of ``v`` against ``s`` through the origin, weighted
  least squares over the levels with ``0 < s <= 0.7 * saturation`` (EMVA's fit range),
  each weighted by its variance's standard error. Levels more than 5 robust standard
  deviations off the line are rejected (a flicker, a frame with a moving shadow) and
  listed. K's standard error is the fit's covariance, scaled by sqrt(reduced chi-square)
  when the scatter exceeds the errors. The channels' K are combined by inverse variance.
- read noise: from the darks (:mod:`edge_isp.calibrate.dark`), with the free-intercept
  fit's intercept reported as a cross-check.
- linearity error (EMVA): a straight line of signal against exposure time over 5..95 %
  of saturation, weighted for relative deviations; the smallest and largest relative
  deviation and ``LE = (max - min) / 2``, in percent.
- SNR curve, measured (``s / sqrt(var(flat))``) and from the fitted model, up to
  saturation; dynamic range ``saturation / read noise`` (in e-), as a ratio, dB and stops;
  and EMVA's quantities beside it, in electrons (no quantum efficiency is measured): SNR
  max ``sqrt(mu_e.sat)``, absolute sensitivity threshold ``1/2 + sqrt(1/4 + sigma_d^2)``,
  dynamic range ``mu_e.sat / threshold``.
- dark current: slopes of the dark mean and temporal variance against exposure time
  (darks at two or more exposures).
- a sweep at one exposure with the light varied (EMVA's other method) is grouped by
  signal level instead of exposure.
- PRNU (flat stack of >= 4 frames nearest half saturation) and DSNU (dark stack), EMVA's
  spatial nonuniformities with the temporal part removed and shading (a quadratic
  surface) taken out.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate.dark import DarkResult, _spatial_std, analyze_dark
from edge_isp.calibrate.defects import DefectMap, flat_defects
from edge_isp.calibrate.fitting import LineFit, fit_line, weighted_mean
from edge_isp.calibrate.frames import FrameGroup, FrameRef, check_consistent, group
from edge_isp.calibrate.stats import GroupStats, measure_group
from edge_isp.calibrate.workers import InOrder, group_workers
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import PLANE_ORDER

FIT_MAX_FRACTION = 0.7
MIN_LEVELS = 5
REJECT_SIGMA = 5.0
MIN_STACK = 4


@dataclasses.dataclass(frozen=True)
class Level:
    """One exposure level at one gain; per-channel arrays (4,), order R, Gr, Gb, B.

    Attributes:
        exposure_time_s, n_frames: the flat group's settings and size.
        signal_dn: mean above the dark, DN.
        variance_dn2, variance_se: dark-subtracted temporal variance and its standard error.
        total_variance_dn2: temporal variance of the flat itself (for the SNR).
        all_signal_dn, all_variance_dn2: the same over all pixels, clipped included.
        clipped_fraction: pixels clipped in any frame of the group.
        dark_exposure_s: exposure of the dark group subtracted.
        max_dn: the largest raw value in the flat group.
    """

    exposure_time_s: float
    n_frames: int
    signal_dn: np.ndarray
    variance_dn2: np.ndarray
    variance_se: np.ndarray
    total_variance_dn2: np.ndarray
    all_signal_dn: np.ndarray
    all_variance_dn2: np.ndarray
    clipped_fraction: np.ndarray
    dark_exposure_s: float
    max_dn: float


@dataclasses.dataclass(frozen=True)
class ChannelFit:
    """The photon-transfer fit of one channel.

    Attributes:
        gain_dn_per_e, gain_se: K and its standard error (fit through the origin).
        fit: the through-origin fit.
        free_fit: the fit with an intercept (its intercept should be ~0 DN^2).
        used: indices of the levels in the fit.
        rejected: indices rejected as outliers.
        saturation_dn: signal at saturation above dark, DN.
        saturation_reached: False when the sweep never turned over (white level used).
        linearity_error_pct: EMVA linearity error (max - min) / 2 of the relative
            deviations, percent (None: not measurable, e.g. with the light varied).
        linearity_min_pct, linearity_max_pct: the smallest and largest relative deviation
            from the line, percent (EMVA 1288 Release 4.0 reports both).
    """

    gain_dn_per_e: float
    gain_se: float
    fit: LineFit
    free_fit: LineFit | None
    used: tuple[int, ...]
    rejected: tuple[int, ...]
    saturation_dn: float
    saturation_reached: bool
    linearity_error_pct: float | None
    linearity_min_pct: float | None = None
    linearity_max_pct: float | None = None


@dataclasses.dataclass(frozen=True)
class DarkCurrent:
    """Dark current from the dark frames' mean and temporal variance against exposure time
    (EMVA 1288: both grow linearly with it; the variance method is immune to an offset drift).

    Attributes:
        exposures_s: the dark groups' exposure times.
        mean_e_per_s, mean_se: from the slope of the mean, e-/s, and its standard error.
        variance_e_per_s, variance_se: from the slope of the variance, e-/s.
    """

    exposures_s: tuple[float, ...]
    mean_e_per_s: float
    mean_se: float
    variance_e_per_s: float
    variance_se: float


@dataclasses.dataclass(frozen=True)
class PtcGainResult:
    """Photon transfer at one gain. See the module docstring for each quantity.

    Attributes:
        analogue_gain: the gain.
        levels: the exposure levels, by exposure.
        channels: the four channel fits.
        gain_dn_per_e, gain_se: K combined over channels and its standard error.
        channel_chi2: chi-square per dof of the channels' K about the combined K.
        dark: the dark-stack analysis (read noise, row noise, black level, DSNU, defects).
        saturation_e: mean saturation capacity, e-.
        dynamic_range: saturation_e / read noise in e-.
        prnu_pct, prnu_se: PRNU per channel, percent (None without a flat stack).
        defects: dark and flat defects together.
        notes: warnings for the report.
        dark_current: from darks at two or more exposures, else None.
        varied: "exposure" (the usual sweep) or "light" (one exposure, the light varied).
    """

    analogue_gain: float
    levels: tuple[Level, ...]
    channels: tuple[ChannelFit, ...]
    gain_dn_per_e: float
    gain_se: float
    channel_chi2: float
    dark: DarkResult
    saturation_e: float
    dynamic_range: float
    prnu_pct: np.ndarray | None
    prnu_se: np.ndarray | None
    defects: DefectMap
    notes: tuple[str, ...]
    dark_current: DarkCurrent | None = None
    varied: str = "exposure"

    # EMVA 1288 (Release 4.0 Linear; the same formulas as Release 3.1). Quantum efficiency is
    # not measured here (no calibrated light), so the quantities are in electrons, not photons;
    # the dynamic range is the same either way.
    @property
    def dark_noise_e(self) -> float:
        """Temporal dark noise sigma_y.dark / K, e- (quantization included, as EMVA uses it)."""
        return math.sqrt(float(np.mean(self.dark.temporal_var_dn2))) / self.gain_dn_per_e

    @property
    def snr_max(self) -> float:
        """Maximum SNR, sqrt(saturation capacity in e-)."""
        return math.sqrt(self.saturation_e)

    @property
    def sensitivity_threshold_e(self) -> float:
        """Absolute sensitivity threshold in e-: the signal with SNR = 1,
        1/2 + sqrt(1/4 + sigma_d^2) (photons: divide by the quantum efficiency)."""
        return 0.5 + math.sqrt(0.25 + self.dark_noise_e**2)

    @property
    def dynamic_range_emva(self) -> float:
        """EMVA dynamic range: saturation capacity over the absolute sensitivity threshold."""
        return self.saturation_e / self.sensitivity_threshold_e

    def levels_below_saturation(self, c: int) -> list[Level]:
        """The levels of channel ``c`` at or below its saturation (EMVA leaves the rest out of
        the SNR curve)."""
        limit = self.channels[c].saturation_dn * (1 + 1e-9)
        return [lv for lv in self.levels if np.isfinite(lv.all_signal_dn[c]) and lv.all_signal_dn[c] <= limit]

    @property
    def read_noise_dn(self) -> float:
        return self.dark.read_noise_dn

    @property
    def read_noise_e(self) -> float:
        return self.dark.read_noise_dn / self.gain_dn_per_e

    @property
    def dynamic_range_db(self) -> float:
        return 20.0 * math.log10(self.dynamic_range)

    @property
    def dynamic_range_stops(self) -> float:
        return math.log2(self.dynamic_range)

    def snr_model(self, signal_dn: np.ndarray) -> np.ndarray:
        """Model SNR at signals (DN above dark): s / sqrt(K s + temporal dark variance)."""
        dark_var = float(np.mean(self.dark.temporal_var_dn2))
        return signal_dn / np.sqrt(self.gain_dn_per_e * signal_dn + dark_var)


@dataclasses.dataclass(frozen=True)
class PtcResult:
    """Photon transfer at every gain of a capture set, plus the set's levels."""

    gains: tuple[PtcGainResult, ...]
    refs_count: int
    height: int
    width: int
    cfa: str
    bit_depth: int
    white_level: float
    max_seen_dn: float
    sensor: str


def _dark_for(darks: Sequence[FrameGroup], exposure: float) -> FrameGroup:
    usable = [d for d in darks if len(d.refs) >= 2]
    return min(usable, key=lambda d: (abs(d.exposure_time_s - exposure), -len(d.refs)))


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="group", leave=False)


def photon_transfer(
    refs: Sequence[FrameRef],
    *,
    fit_max_fraction: float = FIT_MAX_FRACTION,
    min_levels: int = MIN_LEVELS,
    progress: bool = False,
) -> PtcResult:
    """Photon transfer of a set of dark and flat frames at one or more gains.

    Args:
        refs: the frames (:func:`edge_isp.calibrate.frames.discover`), each of kind "dark"
            or "flat".
        fit_max_fraction: upper end of the K fit as a fraction of saturation (EMVA: 0.7).
        min_levels: fewest exposure levels the fit accepts.
        progress: show progress bars.

    Raises:
        InvalidInputError: mixed sensor modes; a gain without dark frames; a flat level with
            a single frame; fewer than ``min_levels`` levels in the fit range. Each message
            says what to capture.
    """
    check_consistent(refs)
    scenes = [r.name for r in refs if r.kind not in ("dark", "flat")]
    if scenes:
        raise InvalidInputError(f"photon transfer takes dark and flat frames; {scenes[0]} is of kind 'scene'")
    results = []
    for gain, groups in group(refs).items():
        results.append(_at_gain(gain, groups, fit_max_fraction, min_levels, progress))
    first = refs[0]
    return PtcResult(
        gains=tuple(results),
        refs_count=len(refs),
        height=first.height,
        width=first.width,
        cfa=first.cfa.value,
        bit_depth=first.bit_depth,
        white_level=first.white_level,
        max_seen_dn=max(level.max_dn for g in results for level in g.levels),
        sensor=first.sensor,
    )


def _at_gain(gain: float, groups: list[FrameGroup], fit_max: float, min_levels: int, progress: bool) -> PtcGainResult:
    darks = [g for g in groups if g.kind == "dark"]
    flats = [g for g in groups if g.kind == "flat"]
    if not any(len(d.refs) >= 2 for d in darks):
        raise InvalidInputError(
            f"no dark frames at gain {gain:g} ({sum(len(d.refs) for d in darks)} found; at least 2 needed): "
            f"capture 16 frames at gain {gain:g} with the lens covered (see calibration/PROTOCOL.md)"
        )
    singles = [f for f in flats if len(f.refs) < 2]
    if singles:
        raise InvalidInputError(
            f"the flat level at gain {gain:g}, exposure {singles[0].exposure_time_s * 1e3:g} ms has 1 frame; "
            "photon transfer needs a pair (2 frames) at every exposure: capture a second frame there"
        )
    varied = "exposure"
    if len(flats) == 1 and len(flats[0].refs) >= 2 * min_levels:
        flats, varied = _split_by_signal(flats[0], min_levels), "light"
    reference = max((d for d in darks if len(d.refs) >= 2), key=lambda d: (len(d.refs), -d.exposure_time_s))
    dark = analyze_dark(reference.refs, progress=progress)
    cfa = reference.refs[0].cfa
    defect_mask = dark.defects.packed_mask(cfa)
    # The dark stack's own statistics (defects already excluded) serve its exposure.
    dark_stats: dict[float, GroupStats] = {reference.exposure_time_s: dark.stats}
    # The groups are independent, and numpy releases the GIL in the heavy parts: measured on the
    # idle cores' threads (each holds a few maps of the frame's size), in order.
    nearest = [_dark_for(darks, flat.exposure_time_s) for flat in flats]
    pending = {d.exposure_time_s: d for d in (*nearest, *darks) if len(d.refs) >= 2}
    pending = {e: d for e, d in pending.items() if e not in dark_stats}
    workers = group_workers()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers) if workers > 1 else InOrder()
    with executor as pool:
        dark_futures = {e: pool.submit(measure_group, d.frames(), defects=defect_mask) for e, d in pending.items()}
        # A stack (PRNU's candidates) keeps its maps, so that PRNU need not read it again.
        futures = [
            pool.submit(measure_group, flat.frames(), defects=defect_mask, keep_maps=len(flat.refs) >= MIN_STACK)
            for flat in flats
        ]
        dark_stats.update({e: f.result() for e, f in dark_futures.items()})
        flat_stats = [f.result() for f in _progress(futures, progress, f"gain {gain:g}: flat levels")]
    levels = [_level(flat, fs, dark_stats[d.exposure_time_s], d) for flat, fs, d in zip(flats, flat_stats, nearest,
                                                                                           strict=True)]  # fmt: skip
    white = reference.refs[0].white_level
    channels = tuple(
        _fit_channel(levels, c, gain, white - dark.black_level_dn[c], fit_max, min_levels) for c in range(4)
    )
    k, k_se, chi2 = weighted_mean([c.gain_dn_per_e for c in channels], [c.gain_se for c in channels])
    notes = list(dark.notes)
    if chi2 > 9:
        notes.append(f"the channels' K disagree beyond their errors (chi2/dof {chi2:.1f}); K is their weighted mean")
    unsaturated = [name for name, c in zip(PLANE_ORDER, channels, strict=True) if not c.saturation_reached]
    if unsaturated:
        notes.append(
            f"channel(s) {', '.join(unsaturated)} never saturated in the sweep: their saturation is taken as the "
            "white level minus black (extend the sweep past saturation to measure it)"
        )
    saturation_e = float(np.mean([c.saturation_dn for c in channels])) / k
    dr = saturation_e / (dark.read_noise_dn / k) if dark.read_noise_dn > 0 else float("inf")
    prnu, prnu_se, flat_map, note = _prnu_and_flat_defects(flats, flat_stats, levels, channels, dark, defect_mask, cfa)
    if note:
        notes.append(note)
    current = _dark_current(dark_stats, k)
    if current is None:
        notes.append("no dark current: it needs dark frames at two or more exposure times")
    if varied == "light":
        notes.append(
            f"one exposure ({flats[0].exposure_time_s * 1e3:g} ms) with the light varied: levels grouped by "
            "signal; linearity against exposure is not measurable this way"
        )
    return PtcGainResult(
        analogue_gain=gain,
        levels=tuple(levels),
        channels=channels,
        gain_dn_per_e=k,
        gain_se=k_se,
        channel_chi2=chi2,
        dark=dark,
        saturation_e=saturation_e,
        dynamic_range=dr,
        prnu_pct=prnu,
        prnu_se=prnu_se,
        defects=dark.defects.union(flat_map),
        notes=tuple(notes),
        dark_current=current,
        varied=varied,
    )


def _split_by_signal(flat: FrameGroup, min_levels: int) -> list[FrameGroup]:
    """The flats of a fixed-exposure sweep (EMVA's other method: the light varied), grouped
    into levels: runs of consecutive frames (in file order, i.e. capture order) whose signal
    agrees within 0.2 % (or 0.05 % of full scale). Frames at one light level differ only by
    noise in their median, far less than that; neighbouring levels near saturation can be
    closer than any tolerance on the signal alone would keep apart, but not consecutive."""
    clusters: list[list[FrameRef]] = []
    for r in flat.refs:
        start = clusters[-1][0].signal_fraction if clusters else None
        if start is not None and abs(r.signal_fraction - start) <= 0.0005 + 0.002 * abs(start):
            clusters[-1].append(r)
        else:
            clusters.append([r])
    where = f"gain {flat.analogue_gain:g}, exposure {flat.exposure_time_s * 1e3:g} ms"
    signals = sorted(r.signal_fraction for r in flat.refs)
    if len({round(c[0].signal_fraction, 3) for c in clusters}) < min_levels:
        raise InvalidInputError(
            f"all {len(flat.refs)} flat frames at {where} share one exposure and the light did not vary: their "
            f"signal spans {signals[0]:.3f} to {signals[-1]:.3f} of full scale, fewer than {min_levels} levels. "
            f"Photon transfer needs at least {min_levels}: vary the exposure time, or at a fixed exposure vary the "
            "light, capturing a pair at each level"
        )
    singles = [c for c in clusters if len(c) < 2]
    if singles:
        raise InvalidInputError(
            f"at {where} (light varied) the frame {singles[0][0].name} (signal {singles[0][0].signal_fraction:.4f} "
            "of full scale) matches neither neighbour; photon transfer needs a pair at every light level, taken one "
            "after the other (files in capture order): capture a second frame there"
        )
    return [FrameGroup("flat", flat.analogue_gain, flat.exposure_time_s, tuple(c)) for c in clusters]


def _dark_current(dark_stats: dict[float, GroupStats], k: float) -> DarkCurrent | None:
    """Dark current from the dark groups' mean and variance against exposure (see DarkCurrent)."""
    exposures = sorted(e for e in dark_stats if np.isfinite(e))
    if len(exposures) < 2 or exposures[-1] <= exposures[0]:
        return None
    t = np.array(exposures)
    groups = [dark_stats[e] for e in exposures]
    mean = np.array([float(np.mean(g.mean_dn)) for g in groups])
    mean_se = np.array([float(np.std(g.frame_means_dn.mean(axis=1), ddof=1)) / np.sqrt(g.n_frames) for g in groups])
    var = np.array([float(np.mean(g.var_dn2)) for g in groups])
    var_se = np.array([float(np.sqrt(np.mean(g.var_se_dn2**2) / 4)) for g in groups])
    floor = 1e-9
    by_mean = fit_line(t, mean, np.maximum(mean_se, floor))
    by_var = fit_line(t, var, np.maximum(var_se, floor))
    return DarkCurrent(
        exposures_s=tuple(exposures),
        mean_e_per_s=by_mean.slope / k,
        mean_se=by_mean.slope_se / k,
        variance_e_per_s=by_var.slope / k**2,
        variance_se=by_var.slope_se / k**2,
    )


def _level(flat: FrameGroup, fs: GroupStats, ds: GroupStats, dark: FrameGroup) -> Level:
    return Level(
        exposure_time_s=flat.exposure_time_s,
        n_frames=fs.n_frames,
        signal_dn=fs.mean_dn - ds.mean_dn,
        variance_dn2=fs.var_dn2 - ds.var_dn2,
        variance_se=np.sqrt(fs.var_se_dn2**2 + ds.var_se_dn2**2),
        total_variance_dn2=fs.var_dn2,
        all_signal_dn=fs.all_mean_dn - ds.all_mean_dn,
        all_variance_dn2=fs.all_var_dn2 - ds.all_var_dn2,
        clipped_fraction=fs.clipped_fraction,
        dark_exposure_s=dark.exposure_time_s,
        max_dn=fs.max_dn,
    )


def _fit_channel(
    levels: list[Level], c: int, gain: float, white_dn: float, fit_max: float, min_levels: int
) -> ChannelFit:
    raw_v = np.array([lv.all_variance_dn2[c] for lv in levels])
    all_v = _running_median3(raw_v)
    all_s = np.array([lv.all_signal_dn[c] for lv in levels])
    peak = _variance_peak(raw_v, all_v)
    reached = peak < len(levels) - 1 and all_v[-1] < 0.9 * all_v[peak]
    saturation = float(all_s[peak]) if reached else float(white_dn)
    s = np.array([lv.signal_dn[c] for lv in levels])
    v = np.array([lv.variance_dn2[c] for lv in levels])
    se = np.array([lv.variance_se[c] for lv in levels])
    clipped = np.array([lv.clipped_fraction[c] for lv in levels])
    candidates = np.flatnonzero(
        np.isfinite(s) & np.isfinite(v) & (s > 0) & (s <= fit_max * saturation) & (clipped <= 0.5) & (se > 0)
    )
    if candidates.size < min_levels:
        raise InvalidInputError(
            f"at gain {gain:g} only {candidates.size} exposure level(s) lie between black and "
            f"{fit_max:.0%} of saturation ({saturation:.0f} DN above black); photon transfer needs at least "
            f"{min_levels}: capture flat-field pairs at 20 or more exposures evenly spaced from dark to saturation"
        )
    used = candidates
    rejected: list[int] = []
    for _ in range(3):
        fit = fit_line(s[used], v[used], se[used], through_origin=True)
        z = fit.residuals / se[used]
        spread = max(1.0, 1.4826 * float(np.median(np.abs(z))))
        bad = np.abs(z) > REJECT_SIGMA * spread
        if not bad.any() or used.size - bad.sum() < min_levels:
            break
        rejected.extend(int(i) for i in used[bad])
        used = used[~bad]
    fit = fit_line(s[used], v[used], se[used], through_origin=True)
    free = fit_line(s[used], v[used], se[used]) if used.size >= 3 else None
    exposures = np.array([lv.exposure_time_s for lv in levels])
    linearity = _linearity(exposures, s, saturation)
    return ChannelFit(
        gain_dn_per_e=fit.slope,
        gain_se=fit.slope_se,
        fit=fit,
        free_fit=free,
        used=tuple(int(i) for i in used),
        rejected=tuple(sorted(rejected)),
        saturation_dn=saturation,
        saturation_reached=bool(reached),
        linearity_error_pct=linearity[0],
        linearity_min_pct=linearity[1],
        linearity_max_pct=linearity[2],
    )


def _variance_peak(raw: np.ndarray, smoothed: np.ndarray) -> int:
    """The level where the variance peaks (EMVA 1288's saturation point).

    The running median finds the peak's neighbourhood, so one bad level elsewhere cannot
    fake it; the peak itself is then the largest raw variance there. (The median alone puts
    it a level early on every sweep: a sharp peak's median is its lower neighbour.)
    """
    around = int(np.argmax(smoothed))
    lo, hi = max(around - 1, 0), min(around + 2, raw.size)
    return lo + int(np.argmax(raw[lo:hi]))


def _running_median3(values: np.ndarray) -> np.ndarray:
    """Median of each value and its neighbours: one bad level must not fake the variance peak."""
    if values.size < 3:
        return values
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def _linearity(exposure: np.ndarray, signal: np.ndarray, saturation: float) -> tuple[float | None, ...]:
    """EMVA linearity: ``(LE, min, max)`` of the relative deviations (percent) from a line of
    signal against exposure over 5..95 % of saturation; Nones when not measurable."""
    sel = (signal >= 0.05 * saturation) & (signal <= 0.95 * saturation) & (exposure > 0)
    if sel.sum() < 3 or np.ptp(exposure[sel]) == 0:
        return None, None, None
    fit = fit_line(exposure[sel], signal[sel], signal[sel])
    predicted = fit.slope * exposure[sel] + fit.intercept
    deviation = (signal[sel] - predicted) / predicted * 100.0
    return float((deviation.max() - deviation.min()) / 2.0), float(deviation.min()), float(deviation.max())


def _prnu_and_flat_defects(flats, flat_stats, levels, channels, dark: DarkResult, defect_mask, cfa):
    half = np.array([0.5 * c.saturation_dn for c in channels])
    signal = np.array([lv.signal_dn for lv in levels])
    # A level clipped in some channel has no signal there (NaN): never the pick.
    distance = np.nan_to_num(np.abs(signal / half - 1.0).mean(axis=1), nan=np.inf)
    # A stack clipped in some channel (a fixed-exposure sweep merges the levels past
    # saturation into one) has no finite distance: never a PRNU stack.
    stacks = [i for i, lv in enumerate(levels) if lv.n_frames >= MIN_STACK and np.isfinite(distance[i])]
    pick = min(stacks, key=lambda i: distance[i]) if stacks else int(np.argmin(distance))
    stats = flat_stats[pick]
    if stats.mean_map is None:
        stats = measure_group(flats[pick].frames(), defects=defect_mask, keep_maps=True)
    response = stats.mean_map - dark.black_level_dn[:, None, None]
    # Judged only where the pixel behaved in time: a cosmic ray in one frame of the group
    # lifts its mean like an over-responsive pixel, but also its temporal variance.
    flat_map = flat_defects(response, cfa, stats.kept)
    if not stacks:
        return (
            None,
            None,
            flat_map,
            (f"no PRNU: capture a stack of >= {MIN_STACK} (16 recommended) flat frames at half saturation"),
        )
    stats = stats.without(defect_mask | flat_map.packed_mask(cfa))
    spatial, spatial_se = _spatial_std(stats, stats.n_frames)
    dsnu = dark.dsnu_dn if dark.dsnu_dn is not None else np.zeros(4)
    s = levels[pick].signal_dn
    prnu_var = np.maximum(spatial**2 - dsnu**2, 0.0)
    prnu = np.sqrt(prnu_var) / s * 100.0
    prnu_se = np.where(prnu > 0, spatial * spatial_se / np.maximum(np.sqrt(prnu_var), 1e-12) / s * 100.0, np.nan)
    note = None if dark.dsnu_dn is not None else "PRNU includes DSNU: the dark stack has fewer than 4 frames"
    return prnu, prnu_se, flat_map, note
