"""Dark-frame analysis: black level, read noise (Gaussian and Tukey-lambda), row noise, DSNU, defects.

From L >= 2 frames with no light (lens covered) at one gain and exposure:

- black level per channel: the mean over frames and non-defective pixels; its standard
  error from the spread of the L frame means.
- temporal noise per channel (EMVA 1288's dark temporal noise): see
  :mod:`edge_isp.calibrate.stats`. It holds three parts, separated here:
  row noise (one offset per row and frame), quantization (step^2/12 for a DN step of 1,
  or 2**k for data shifted up in a wider word; EMVA's sigma_q^2) and the pixel read noise:
  ``read^2 = temporal - row^2 - step^2/12``. The quantization term is
  accurate for noise above ~0.5 DN (Sheppard's correction); the profile's simulator rounds
  to whole DN, which adds it back.
- row noise: each frame's row means of its residual from the per-pixel stack mean. Their
  variance is ``(1 - 1/L) (row^2 + pixel^2 / n)`` for n pixels a row, solved for row^2.
- read noise shape: the PPCC Tukey-lambda fit of the residuals (rescaled by sqrt(L/(L-1))
  and with row offsets removed) as Wei et al. 2020 (ELD) did on bias frames; needs L >= 4
  (a residual from fewer frames mixes several frames' noise and looks more Gaussian).
- DSNU per channel (EMVA): the spatial standard deviation of the stack mean, after a
  quadratic surface is removed (shading), less the temporal part ``temporal / L``;
  needs L >= 4.
- defects: :func:`edge_isp.calibrate.defects.dark_defects`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate import tukey
from edge_isp.calibrate.defects import DefectMap, confirm_persistent, dark_defects
from edge_isp.calibrate.fitting import detrend_quadratic, weighted_mean
from edge_isp.calibrate.frames import FrameRef
from edge_isp.calibrate.stats import GroupStats, measure_group
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import unpack
from edge_isp.sensor.frame import RawFrame

QUANTIZATION_VAR_DN2 = 1.0 / 12.0
MIN_FRAMES_FOR_SHAPE = 4
MIN_FRAMES_FOR_DSNU = 4
SHAPE_SAMPLE = 60_000
MAX_BLACK_CLIPPED = 0.01


def quantization_step(data: np.ndarray) -> int:
    """The raw's DN step: 1, or 2**k when every value is a multiple of it (e.g. 16 for 12-bit
    data MSB-aligned in 16 bits, as a Raspberry Pi 5 delivers it). Its variance is step^2/12."""
    sample = np.ascontiguousarray(data[:: max(1, data.shape[0] // 256)]).ravel()
    bits = int(np.bitwise_or.reduce(sample.astype(np.uint32)))
    return (bits & -bits) if bits else 1


@dataclasses.dataclass(frozen=True)
class DarkResult:
    """What one dark stack says about the sensor at one gain. Per-channel arrays: (4,), R Gr Gb B.

    Attributes:
        analogue_gain, exposure_time_s, n_frames: the stack's settings and size L.
        black_level_dn, black_level_se: black level per channel and its standard error, DN.
        temporal_var_dn2, temporal_var_se: total temporal variance per channel (pixel read
            noise + row noise + quantization) and its standard error, DN^2.
        row_noise_dn, row_noise_se: row noise, DN (0 when not measurable above the pixel noise).
        read_noise_dn, read_noise_se: pixel read noise pooled over channels, DN, row noise
            and quantization removed: the profile's ``read_noise_dn``.
        read_noise_dn_per_channel: the same per channel.
        shape: the Tukey-lambda fit of the read noise (None with fewer than 4 frames).
        dsnu_dn, dsnu_se: DSNU per channel and its standard error, DN (None: fewer than 4 frames).
        defects: hot, cold and stuck pixels.
        stats: the stack's group statistics (maps dropped).
        notes: warnings for the report.
    """

    analogue_gain: float
    exposure_time_s: float
    n_frames: int
    black_level_dn: np.ndarray
    black_level_se: np.ndarray
    temporal_var_dn2: np.ndarray
    temporal_var_se: np.ndarray
    row_noise_dn: float
    row_noise_se: float
    read_noise_dn: float
    read_noise_se: float
    read_noise_dn_per_channel: np.ndarray
    shape: tukey.ShapeFit | None
    dsnu_dn: np.ndarray | None
    dsnu_se: np.ndarray | None
    defects: DefectMap
    stats: GroupStats
    notes: tuple[str, ...] = ()


def _load(item: FrameRef | RawFrame) -> RawFrame:
    return item if isinstance(item, RawFrame) else item.load()


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="frame", leave=False)


def analyze_dark(frames: Sequence[FrameRef | RawFrame], *, progress: bool = False, shape_seed: int = 0) -> DarkResult:
    """Analyze a dark stack: L >= 2 frames at one gain and exposure, lens covered.

    Raises:
        InvalidInputError: fewer than 2 frames, or frames clipped at 0 DN (no pedestal: the
            noise below black is lost, so read noise cannot be measured).
    """
    if len(frames) < 2:
        raise InvalidInputError(
            f"dark analysis needs at least 2 dark frames at the same gain and exposure (16 recommended), "
            f"got {len(frames)}; capture more frames with the lens covered"
        )
    first = _load(frames[0])
    stats = measure_group((_load(f) for f in _progress(frames, progress, "dark frames, pass 1/2")), keep_maps=True)
    at_zero = _fraction_at_zero(first)
    notes = []
    if at_zero > MAX_BLACK_CLIPPED:
        raise InvalidInputError(
            f"{at_zero:.1%} of the dark frame's pixels are 0 DN: the raw data is clipped at black "
            f"(black level {first.black_level}), so the noise below it is lost and the read noise cannot be "
            "measured. Capture the raw with its black-level pedestal (unprocessed sensor data, not "
            "black-subtracted)"
        )
    if at_zero > 1e-4:
        notes.append(f"{at_zero:.3%} of dark pixels sit at 0 DN: the read noise may be slightly underestimated")
    candidates, limits = dark_defects(stats.mean_map, stats.var_map, stats.n_frames, first.cfa)
    if limits.stuck_note:
        notes.append(limits.stuck_note)
    n = stats.n_frames
    black_se = np.std(stats.frame_means_dn, axis=0, ddof=1) / math.sqrt(n)

    usable = ~(stats.clip_mask | candidates.packed_mask(first.cfa))
    row_var, row_var_se, shape_sample, medians = _rows_and_residuals(frames, stats, usable, first, candidates, progress)
    defects = confirm_persistent(candidates, medians, limits, first.cfa)
    stats = stats.without(defects.packed_mask(first.cfa))
    total, total_se, _ = weighted_mean(stats.var_dn2, stats.var_se_dn2)
    quantization = QUANTIZATION_VAR_DN2 * quantization_step(first.data) ** 2
    read_var = total - row_var - quantization
    if total < 3 * quantization:
        notes.append(
            f"temporal dark noise is {math.sqrt(total):.3g} DN, near the quantization step: the read noise "
            "(quantization removed) is approximate"
        )
    if read_var <= 0:
        notes.append("the pixel read noise is not measurable above row noise and quantization; set to 0")
    read = math.sqrt(max(read_var, 0.0))
    read_se = math.sqrt(total_se**2 + row_var_se**2) / (2 * read) if read > 0 else math.sqrt(total_se)
    per_channel = np.sqrt(np.maximum(stats.var_dn2 - row_var - quantization, 0.0))
    row = math.sqrt(max(row_var, 0.0))
    row_se = row_var_se / (2 * row) if row > 0 else math.sqrt(row_var_se)

    shape = None
    if n >= MIN_FRAMES_FOR_SHAPE and shape_sample.size >= 500:
        shape = tukey.fit_shape(shape_sample, seed=shape_seed)
    dsnu = dsnu_se = None
    if n >= MIN_FRAMES_FOR_DSNU:
        dsnu, dsnu_se = _spatial_std(stats, n)
    return DarkResult(
        analogue_gain=first.analogue_gain,
        exposure_time_s=first.exposure_time_s,
        n_frames=n,
        black_level_dn=stats.mean_dn.copy(),
        black_level_se=black_se,
        temporal_var_dn2=stats.var_dn2.copy(),
        temporal_var_se=stats.var_se_dn2.copy(),
        row_noise_dn=row,
        row_noise_se=row_se,
        read_noise_dn=read,
        read_noise_se=read_se,
        read_noise_dn_per_channel=per_channel,
        shape=shape,
        dsnu_dn=dsnu,
        dsnu_se=dsnu_se,
        defects=defects,
        stats=dataclasses.replace(stats, mean_map=None, var_map=None, kept=None, clip_mask=None),
        notes=tuple(notes),
    )


def _fraction_at_zero(frame: RawFrame) -> float:
    return float(np.mean(frame.data == 0))


def _rows_and_residuals(
    frames: Sequence[FrameRef | RawFrame],
    stats: GroupStats,
    usable: np.ndarray,
    first: RawFrame,
    candidates: DefectMap,
    progress: bool,
) -> tuple[float, float, np.ndarray, dict[str, np.ndarray]]:
    """Row-noise variance (and its standard error), a sample of row-corrected residuals, and
    the median over the frames of each hot and cold candidate pixel.

    ``usable``: ``(4, h, w)`` pixels neither clipped nor defect candidates. Temporal
    outliers stay in: heavy tails are what the shape fit is after.
    """
    n = stats.n_frames
    cfa = first.cfa
    mean_mosaic = unpack(stats.mean_map, cfa)
    valid = unpack(usable.astype(np.uint8), cfa).astype(bool)
    invalid = ~valid
    per_row = valid.sum(axis=1)
    rows_ok = per_row > 0
    # The shape sample takes every step-th valid pixel (row-major) of each frame: those pixels,
    # found once, are all that is corrected, not the whole frame.
    flat_valid = np.flatnonzero(valid[rows_ok])
    step = max(1, flat_valid.size // (SHAPE_SAMPLE // n + 1))
    sample_row, sample_col = np.divmod(flat_valid[::step], valid.shape[1])
    sample_at = (np.flatnonzero(rows_ok)[sample_row], sample_col)
    row_means, samples = [], []
    picked: dict[str, list[np.ndarray]] = {"hot": [], "cold": []}
    for i, item in enumerate(_progress(frames, progress, "dark frames, pass 2/2")):
        frame = _load(item)
        # Each frame aligned to the first by its channels' offsets, plane by plane.
        offset = (stats.frame_means_dn[i] - stats.frame_means_dn[0]).astype(np.float32)
        residual = frame.data.astype(np.float32)
        for c, (y, x) in enumerate(cfa.plane_offsets()):
            residual[y::2, x::2] -= offset[c]
        for kind in ("hot", "cold"):
            coords = candidates.pixels[kind]
            picked[kind].append(residual[coords[:, 0], coords[:, 1]])
        residual -= mean_mosaic
        residual[invalid] = 0.0
        r = residual.sum(axis=1, dtype=np.float64)[rows_ok] / per_row[rows_ok]
        row_means.append(r)
        corrected = residual[sample_at] - r.astype(np.float32)[sample_row]
        samples.append(corrected * math.sqrt(n / (n - 1)))
    r2 = np.square(np.array(row_means)) / (1.0 - 1.0 / n)
    a = float(r2.mean())
    a_se = float(r2.std()) / math.sqrt(r2.shape[1] * (n - 1))
    h = float(np.mean(1.0 / per_row[rows_ok]))
    total, total_se, _ = weighted_mean(stats.var_dn2, stats.var_se_dn2)
    row_var = (a - total * h) / (1.0 - h)
    row_var_se = math.sqrt(a_se**2 + (total_se * h) ** 2) / (1.0 - h)
    medians = {kind: np.median(np.array(values), axis=0) for kind, values in picked.items()}
    return max(row_var, 0.0), row_var_se, np.concatenate(samples), medians


def _spatial_std(stats: GroupStats, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Spatial standard deviation of the stack mean per channel, temporal part removed, DN."""
    std, se = np.zeros(4), np.zeros(4)
    for c in range(4):
        keep = stats.kept[c]
        dev = detrend_quadratic(stats.mean_map[c], keep)[keep].astype(np.float64)
        dev -= dev.mean()
        sq = dev * dev
        var = float(sq.mean()) - stats.var_dn2[c] / n
        var_se = math.sqrt(float(sq.var()) / sq.size + (stats.var_se_dn2[c] / n) ** 2)
        std[c] = math.sqrt(max(var, 0.0))
        se[c] = var_se / (2 * std[c]) if std[c] > 0 else math.sqrt(var_se)
    return std, se
