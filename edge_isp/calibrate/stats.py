"""Statistics of a group of frames taken at one setting, per CFA channel, streamed.

A group is L >= 2 frames of the same scene (a flat field or darkness) at one gain and
exposure. Following EMVA 1288, the temporal variance comes from the frame-to-frame
differences, which cancel fixed pattern noise (DSNU, PRNU, uneven illumination): here the
mean over pixels of each pixel's unbiased variance across the L frames (for a pair that is
half the squared difference). Each frame's mean is first aligned to the first frame's, so
a flickering light or drifting black level does not count as noise.

Excluded pixels:
- clipped: at 0 or at the white level in any frame, and their neighbours within 2 pixels
  (their noise is truncated; a clipped region's edge is partly clipped);
- defects: a caller's mask (hot, dead pixels from the dark analysis);
- gross temporal outliers: a per-pixel variance beyond both the chi-square quantile
  1 - 1e-6 and 25 times the noise level expected at its mean (a robust affine fit of
  variance against mean over the group), e.g. a cosmic ray or a hot pixel's shot noise.
  The second bound keeps heavy-tailed read noise (what the Tukey-lambda shape describes)
  from being trimmed as "outliers" when L is large. The bias the cut leaves on a Gaussian
  is divided out.

Frames are read one at a time; memory is a few float32 maps of the frame's size.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Iterable

import numpy as np

from edge_isp.calibrate.distributions import chi2_cdf, chi2_median, chi2_ppf
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.frame import RawFrame

OUTLIER_P = 1e-6
# Pixels sampled per channel for robust location and scale estimates (medians): the
# estimates' own noise then stays under 1e-4 of what they measure.
ROBUST_SAMPLE = 25_000
OUTLIER_FACTOR = 25.0
CLIP_MARGIN_PX = 2


@dataclasses.dataclass
class GroupStats:
    """Per-channel statistics of one group; arrays have shape (4,), order R, Gr, Gb, B.

    Attributes:
        n_frames: L, frames in the group.
        mean_dn: mean over frames and kept pixels, DN (black not subtracted).
        var_dn2: temporal variance (mean per-pixel variance over kept pixels), DN^2.
        var_se_dn2: standard error of ``var_dn2``: the spread of the per-pixel variances
            over the square root of their count (no distributional assumption).
        n_kept: pixels kept per channel.
        clipped_fraction: fraction of pixels clipped (at 0 or white) in any frame.
        outlier_fraction: fraction rejected as temporal outliers.
        all_mean_dn, all_var_dn2: mean and temporal variance over every pixel, clipped ones
            included (only defects and gross outliers out): EMVA's saturation point is
            where this variance peaks.
        frame_means_dn: ``(L, 4)`` mean of each frame per channel: the first frame's mean,
            then each frame's robust offset from the first added (the alignment used).
        max_dn: the largest value seen in the group.
        mean_map, var_map: ``(4, h, w)`` per-pixel mean and variance, when kept.
        kept: ``(4, h, w)`` boolean mask of kept pixels, when kept.
        clip_mask: ``(4, h, w)`` boolean mask of clipped pixels and their margin, when kept.
    """

    n_frames: int
    mean_dn: np.ndarray
    var_dn2: np.ndarray
    var_se_dn2: np.ndarray
    n_kept: np.ndarray
    clipped_fraction: np.ndarray
    outlier_fraction: np.ndarray
    all_mean_dn: np.ndarray
    all_var_dn2: np.ndarray
    frame_means_dn: np.ndarray
    max_dn: float
    mean_map: np.ndarray | None = None
    var_map: np.ndarray | None = None
    kept: np.ndarray | None = None
    clip_mask: np.ndarray | None = None

    def without(self, defects: np.ndarray) -> GroupStats:
        """The channel statistics recomputed with ``defects`` ``(4, h, w)`` also excluded.

        Needs the maps (``keep_maps=True``).
        """
        if self.mean_map is None or self.var_map is None or self.clip_mask is None:
            raise InvalidInputError("GroupStats.without needs the per-pixel maps: measure with keep_maps=True")
        stats = _channel_stats(self.mean_map, self.var_map, ~(self.clip_mask | defects), self.n_frames)
        return dataclasses.replace(self, **stats)


class _Scratch(threading.local):
    """Frame-sized work maps kept from one group to the next, one set per thread.

    A fresh map is fresh memory from the system (numpy's allocator maps arrays this large
    directly), and its first pass pays a page fault every 4 kB: over a sweep's 50 groups that
    was as much time as the statistics themselves. Maps a caller keeps are never handed back.
    A thread holds at most KEEP maps and KEEP_BYTES (a 1 MP sweep's set: 24 MB; of large frames,
    fewer maps), until it ends or hands more back.
    """

    KEEP = 8
    KEEP_BYTES = 64 << 20

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with arbitrary contents."""
        for i, array in enumerate(self.free):
            if array.shape == shape and array.dtype == dtype:
                return self.free.pop(i)
        return np.empty(shape, dtype=dtype)

    def give(self, *arrays: np.ndarray) -> None:
        self.free.extend(arrays)
        del self.free[: max(0, len(self.free) - self.KEEP)]
        while self.free and sum(a.nbytes for a in self.free) > self.KEEP_BYTES:
            del self.free[0]


_scratch = _Scratch()


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a ``(4, h, w)`` mask by ``radius`` pixels in each plane (square neighbourhood, none
    beyond the edges): a pixel is set when any pixel within ``radius`` rows and ``radius``
    columns is, i.e. the OR of shifted copies, down the columns and then along the rows (what
    OpenCV's dilation with a square kernel gives, without importing OpenCV for it)."""
    grown = mask.copy()  # the caller adds defects to it: never the caller's own array
    if not mask.any():
        return grown
    for axis in (1, 2):
        source = grown.copy()
        length = mask.shape[axis]
        for shift in range(1, min(radius, length - 1) + 1):
            ahead = [slice(None)] * 3
            behind = [slice(None)] * 3
            ahead[axis], behind[axis] = slice(shift, None), slice(None, length - shift)
            grown[tuple(ahead)] |= source[tuple(behind)]
            grown[tuple(behind)] |= source[tuple(ahead)]
    return grown


@functools.cache
def _chi2_constants(dof: int) -> tuple[float, float, float]:
    """For per-pixel variances with ``dof`` degrees of freedom: the outlier bound q (in units
    of chi2), the median over the mean of chi2(dof), and E[X | X < q] / E[X] (the bias the
    cut leaves). Computed once per dof."""
    q = max(float(chi2_ppf(1.0 - OUTLIER_P, dof)), OUTLIER_FACTOR * dof)
    median_ratio = chi2_median(dof) / dof
    return q, median_ratio, float(chi2_cdf(q, dof + 2) / chi2_cdf(q, dof))


def measure_group(
    frames: Iterable[RawFrame],
    *,
    defects: np.ndarray | None = None,
    keep_maps: bool = False,
) -> GroupStats:
    """Statistics of frames taken at one setting (see the module docstring).

    Args:
        frames: L >= 2 frames of equal size and CFA.
        defects: optional ``(4, H/2, W/2)`` boolean mask (packed order) of pixels to ignore.
        keep_maps: keep the per-pixel mean/variance maps and the kept mask (for the dark
            analysis, DSNU and PRNU), at the cost of their memory.
    """
    first = None
    s1 = s2 = clipped = None
    frame_means = []
    max_dn = 0.0
    for frame in frames:
        if first is None:
            cfa, white = frame.cfa, frame.white_level
            # Integer raw data: every difference from the first frame is a whole number.
            whole = frame.data.dtype.kind in "ui"
            shape = (4, frame.height // 2, frame.width // 2)
            # Work buffers reused frame after frame, and group after group (_Scratch).
            first, d, square = (_scratch.take(shape, np.float32) for _ in range(3))
            clipped, hit = _scratch.take(shape, bool), _scratch.take(shape, bool)
            clipped.fill(False)
            planes = first
            small_whole = whole and frame.data.dtype.itemsize <= 2  # 8- or 16-bit raw data
        elif frame.data.shape != (2 * first.shape[1], 2 * first.shape[2]) or frame.cfa != cfa:
            raise InvalidInputError(
                f"frames of one group must share size and CFA: expected {2 * first.shape[1]}x{2 * first.shape[2]} "
                f"{cfa.value}, got {frame.height}x{frame.width} {frame.cfa.value}"
            )
        else:
            planes = d
            whole = whole and frame.data.dtype.kind in "ui"
        # The extremes of the raw data as float32 are those of the planes (rounding is monotonic).
        top = float(np.float32(frame.data.max()))
        max_dn = max(max_dn, top)
        clips = top >= white or float(np.float32(frame.data.min())) <= 0
        # The planes (packed order) straight into float32, exact for 16-bit values (a copy, then
        # a subtraction of float32 maps: a subtraction that converts as it goes is twice as slow).
        for c, (y, x) in enumerate(cfa.plane_offsets()):
            np.copyto(planes[c], frame.data[y::2, x::2])
        if clips:  # most frames clip nowhere: two passes, not four
            clipped |= np.equal(planes, 0, out=hit)
            clipped |= np.greater_equal(planes, white, out=hit)
        if not frame_means:
            frame_means.append(_frame_means(planes, defects, small_whole))
            continue
        d -= first
        offset = _robust_offset(d, whole=whole)
        frame_means.append(frame_means[0] + offset)
        d -= offset.astype(np.float32)[:, None, None]
        np.multiply(d, d, out=square)
        if s1 is None:
            # The first difference becomes the sums themselves (0 + x is x: no difference is
            # -0.0, a whole number less its offset being +0.0 when they are equal), and fresh
            # work buffers take its place: a pair never adds to, nor allocates, a zeroed map.
            s1, s2, d, square = d, square, _scratch.take(shape, np.float32), _scratch.take(shape, np.float32)
        else:
            s1 += d
            s2 += square
    n = len(frame_means)
    if n < 2:
        raise InvalidInputError(f"a group needs at least 2 frames to measure temporal noise, got {n}")
    # first + s1 / n and (s2 - s1 * s1 / n) / (n - 1), the same float32 operations done in
    # place (the maps are the size of a frame: each temporary costs a pass over memory).
    if n == 2:
        # One difference: s1 * s1 is s2 itself (the same product), and x / 1 is x.
        mean_map = np.divide(s1, n, out=s1)
        mean_map += first
        var_map = s2
        var_map -= np.divide(s2, n, out=first)
    else:
        mean_map = s1 / n
        mean_map += first
        s1 *= s1
        s1 /= n
        var_map = s2
        var_map -= s1
        var_map /= n - 1
    _scratch.give(first, d, square, hit)
    del s1, s2, first, d, square, hit
    all_mean, all_var = _all_pixel_stats(mean_map, var_map, defects, n)
    excluded = _dilate(clipped, CLIP_MARGIN_PX)
    clip_mask = excluded.copy() if keep_maps else None
    if defects is not None:
        excluded |= defects
    stats = _channel_stats(mean_map, var_map, ~excluded, n)
    clipped_fraction = np.count_nonzero(clipped.reshape(4, -1), axis=1) / clipped[0].size
    _scratch.give(clipped)
    if not keep_maps:
        stats["kept"] = None
        _scratch.give(mean_map, var_map)
    return GroupStats(
        n_frames=n,
        clipped_fraction=clipped_fraction,
        all_mean_dn=all_mean,
        all_var_dn2=all_var,
        frame_means_dn=np.array(frame_means),
        max_dn=max_dn,
        mean_map=mean_map if keep_maps else None,
        var_map=var_map if keep_maps else None,
        clip_mask=clip_mask,
        **stats,
    )


def _robust_offset(diff: np.ndarray, whole: bool = False) -> np.ndarray:
    """Per-channel mean of a frame-to-frame difference ``(4, h, w)``, outliers trimmed.

    Estimated within 6 robust standard deviations of the median, so a cosmic ray does not
    shift a whole frame, on at most ~ROBUST_SAMPLE pixels per channel: the estimate's own
    noise then adds under 1e-4 of the variance to every pixel.

    ``whole``: every value of ``diff`` is a whole number (two frames of integer raw data), so
    the sample's medians, and the trimmed mean, come from its histogram: the same numbers as
    the sorts and sums below (whole numbers and their halves are exact, and so is every sum of
    them), at a fraction of the cost.
    """
    # Every row is kept (columns are thinned): row noise moves whole rows, and a subset of
    # rows would put its average into the offset.
    step = max(1, diff.shape[1] * diff.shape[2] // ROBUST_SAMPLE)
    step = min(step, diff.shape[2])
    sample = diff[:, :, ::step]
    if whole:
        out = _whole_robust_offset(sample.astype(np.int64).reshape(4, -1))
        if out is not None:
            return out
    d = sample.astype(np.float64).reshape(4, -1)
    med = np.median(d, axis=1)
    deviation = np.abs(d - med[:, None])
    spread = 1.4826 * np.median(deviation, axis=1)
    out = np.zeros(4)
    for c in range(4):
        inside = d[c][deviation[c] <= 6.0 * spread[c]] if spread[c] > 0 else d[c][d[c] == med[c]]
        out[c] = float(inside.mean())
    return out


# Widest span of whole-number differences taken by histogram (the bins of one channel).
_HISTOGRAM_SPAN = 1 << 18


def _middle_of_histogram(counts: np.ndarray, n: int) -> tuple[int, int]:
    """Indices of the two middle order statistics (0-based (n - 1) // 2 and n // 2) of ``n``
    values given as ``counts`` per index."""
    cumulative = np.cumsum(counts)
    i, j = np.searchsorted(cumulative, ((n - 1) // 2, n // 2), side="right")
    return int(i), int(j)


def _whole_robust_offset(sample: np.ndarray) -> np.ndarray | None:
    """:func:`_robust_offset` of whole numbers ``(4, m)``, from each channel's histogram (None
    when a channel spans more than _HISTOGRAM_SPAN values: then the sorts are the cheaper).

    ``np.median`` is the mean of the two middle order statistics, in float64: ``(a + b) / 2``
    here too. The median is a whole number or a half, so twice each deviation from it is a
    whole number, and the deviations' median is found the same way. Values within the cut are
    whole numbers: their sum is exact in any order, so sum / count is the mean numpy gives.
    """
    out = np.zeros(4)
    n = sample.shape[1]
    for c in range(4):
        values = sample[c]
        low, high = int(values.min()), int(values.max())
        if high - low >= _HISTOGRAM_SPAN:
            return None
        counts = np.bincount(values - low, minlength=high - low + 1)
        whole = np.arange(low, high + 1)
        a, b = _middle_of_histogram(counts, n)
        med = 0.5 * (float(low + a) + float(low + b))
        twice = np.abs(2 * whole - round(2 * med))  # twice each value's deviation from the median
        a2, b2 = _middle_of_histogram(np.bincount(twice, weights=counts), n)
        spread = 1.4826 * (0.5 * (0.5 * a2 + 0.5 * b2))
        inside = np.abs(whole.astype(np.float64) - med) <= 6.0 * spread if spread > 0 else whole == med
        kept = counts[inside]
        total, count = int(np.dot(kept, whole[inside])), int(kept.sum())
        out[c] = total / count if count else float("nan")
    return out


def _frame_means(planes: np.ndarray, defects: np.ndarray | None, small_whole: bool = False) -> np.ndarray:
    """Each plane's mean, defects left out, in float64. ``small_whole``: the planes hold whole
    numbers below 2**16 (8- or 16-bit raw data), whose every partial sum is exact: the mean is
    their exact sum over their count however it is summed, so it is summed in place."""
    if defects is None:
        return np.array([planes[c].mean(dtype=np.float64) for c in range(4)])
    if small_whole:
        valid = ~defects
        return np.array([_masked_mean(planes[c], valid[c], np.count_nonzero(valid[c])) for c in range(4)])
    return np.array([planes[c][~defects[c]].mean(dtype=np.float64) for c in range(4)])


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D array, found by partitioning at the two middle
    positions only (np.median adds the last one, to find NaNs: a NaN gives NaN here too)."""
    n = values.size
    if n == 0 or np.isnan(values.max()):
        return float(np.median(values))
    i, j = (n - 1) // 2, n // 2
    part = np.partition(values, (i, j) if i != j else i)
    return float(np.mean(part[i : j + 1]))


def _masked_mean(values: np.ndarray, where: np.ndarray, count: int) -> float:
    """``values.mean(dtype=np.float64, where=where)`` with the mask's ``count`` given: numpy's
    sum, divided by the same count (the mean counts the mask itself, a third of its cost)."""
    return float(np.add.reduce(values, axis=None, dtype=np.float64, where=where)) / count


def _masked_std(values: np.ndarray, where: np.ndarray, count: int, mean: float, work: np.ndarray) -> float:
    """``values.std(dtype=np.float64, where=where, mean=mean)`` with the mask's ``count`` given,
    the deviations in ``work`` (float64, the shape of ``values``): the same operations."""
    np.subtract(values, np.float64(mean), out=work)
    np.square(work, out=work)
    return math.sqrt(float(np.add.reduce(work, axis=None, where=where)) / count)


def _all_pixel_stats(
    mean_map: np.ndarray, var_map: np.ndarray, defects: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over all pixels, clipped included, gross outliers excluded.

    The outlier bound is OUTLIER_FACTOR times the median pixel's noise: a cosmic ray must
    not fake a variance peak (the saturation point), while pixels losing their noise to
    clipping are exactly what this statistic is for.
    """
    _, median_ratio, _ = _chi2_constants(n - 1)
    means, variances = np.zeros(4), np.zeros(4)
    for c in range(4):
        m, v = mean_map[c], var_map[c]
        valid = None if defects is None else ~defects[c]
        typical = _median(v.ravel()[:: max(1, v.size // ROBUST_SAMPLE)])
        keep = v <= OUTLIER_FACTOR * typical / median_ratio
        if valid is not None:
            keep &= valid
        # Reductions with where= instead of copies of the selected pixels: same sums, less memory traffic.
        if valid is None:
            means[c] = float(m.mean(dtype=np.float64))
        else:
            means[c] = _masked_mean(m, valid, np.count_nonzero(valid))
        kept = np.count_nonzero(keep)
        variances[c] = _masked_mean(v, keep, kept) if kept else 0.0
    return means, variances


def _sorted_quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q)`` (linear interpolation, float64) of an already sorted 1-D array:
    numpy's own steps (the interpolation between the order statistics either side of (n - 1) q)
    without its partition, which a sorted array does not need."""
    n = values.size
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    a, b = values[previous], values[following]
    gamma = np.asarray(virtual - previous, dtype=virtual.dtype)
    diff = b - a
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe", dtype=result.dtype)
    if np.isnan(values[-1]):
        result[...] = np.nan
    return result


_BIN_QUANTILES = np.linspace(0, 1, 21)


def _noise_scale(
    mean: np.ndarray, var: np.ndarray, usable: np.ndarray, median_ratio: float, n_usable: int | None = None
) -> np.ndarray:
    """Per-pixel expected variance from pixels of similar mean (robust, binned medians), for
    every pixel of a plane, judged from a sample of its ``usable`` pixels.

    A scene need not be uniform (vignetting, an unclipped bright patch, hot pixels whose
    shot noise follows their level), so a pixel is an outlier only against its peers.
    """
    step = max(1, (int(np.count_nonzero(usable)) if n_usable is None else n_usable) // ROBUST_SAMPLE)
    sampled = usable.ravel()[::step]
    ms, vs = mean.ravel()[::step][sampled], var.ravel()[::step][sampled]
    # Quantile bins follow where most pixels are; equal-width bins give a small bright
    # region its own bin instead of a bin shared with (and judged by) the background.
    # Sorted by mean, each bin (edges[b] <= mean < edges[b + 1], the last one closed) is one
    # run, which starts where its left edge would be inserted; a bin's median mean is the
    # middle of its run, its median variance the middle of its run's variances, found by
    # partitioning that run alone.
    order = np.argsort(ms)
    by_mean = ms[order]
    edges = np.unique(
        np.concatenate([_sorted_quantiles(by_mean, _BIN_QUANTILES), np.linspace(by_mean[0], by_mean[-1], 21)])
    )
    centers: list[float] = []
    scales: list[float] = []
    lo = hi = np.zeros(0, dtype=np.int64)
    if edges.size >= 2:
        starts = np.searchsorted(by_mean.astype(np.float64), edges[1:-1], side="left")
        bounds = np.concatenate([[0], starts, [by_mean.size]])
        lo, hi = bounds[:-1], bounds[1:]
        big = hi - lo >= 30
        lo, hi = lo[big], hi[big]
        middle = by_mean[(lo + hi - 1) // 2].astype(np.float64), by_mean[(lo + hi) // 2].astype(np.float64)
        centers = (0.5 * (middle[0] + middle[1])).tolist()
        var_by_mean = vs[order]
        scales = [_middle(var_by_mean[a:b]) / median_ratio for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    counts = list(hi - lo)
    floor = 0.5 * min(scales) if scales else 0.0
    if len(centers) < 2 or np.ptp(centers) == 0:
        return np.full(mean.shape, max(float(np.median(vs)) / median_ratio, floor))
    # Temporal variance is affine in the mean (shot noise plus read noise), so one line
    # through the bin medians covers a bright region too small to make a bin of its own.
    slope, intercept = _weighted_line(np.array(centers), np.array(scales), np.sqrt(np.array(counts, dtype=float)))
    # intercept + slope * mean, at least the floor: the same operations (in the mean's dtype), in place.
    scale = np.multiply(mean, slope)
    scale += intercept
    return np.maximum(scale, floor, out=scale)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) minimizing sum((w (y - slope x - intercept))^2), as np.polyfit(x, y,
    1, w=w), in closed form (polyfit's general solver costs more than the rest of a call)."""
    w2 = w * w
    sw, sx, sy = w2.sum(), (w2 * x).sum(), (w2 * y).sum()
    sxx, sxy = (w2 * x * x).sum(), (w2 * x * y).sum()
    slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return float(slope), float((sy - slope * sx) / sw)


def _middle(values: np.ndarray) -> float:
    """Median of ``values``: the two middle order statistics averaged in float64 (for a float32
    array not quite ``np.median``, which averages in float32), found by a partition."""
    n = values.size
    i, j = (n - 1) // 2, n // 2
    part = np.partition(values, (i, j) if i != j else i)
    return 0.5 * (float(part[i]) + float(part[j]))


def _channel_stats(mean_map: np.ndarray, var_map: np.ndarray, usable: np.ndarray, n: int) -> dict:
    dof = n - 1
    q, median_ratio, factor = _chi2_constants(dof)
    out = {k: np.zeros(4) for k in ("mean_dn", "var_dn2", "var_se_dn2", "n_kept", "outlier_fraction")}
    kept_all = np.zeros_like(usable)
    work = None
    for c in range(4):
        u = usable[c]
        n_usable = int(np.count_nonzero(u))
        if n_usable < 16:
            out["mean_dn"][c] = out["var_dn2"][c] = out["var_se_dn2"][c] = np.nan
            continue
        m, v = mean_map[c], var_map[c]
        scale = _noise_scale(m, v, u, median_ratio, n_usable)
        # keep = u & ((v <= scale * (q / dof)) | (scale <= 0)), in place.
        keep = kept_all[c]
        flat = scale <= 0
        np.less_equal(v, np.multiply(scale, q / dof, out=scale), out=keep)
        keep |= flat
        keep &= u
        n_kept = int(np.count_nonzero(keep))
        out["mean_dn"][c] = _masked_mean(m, keep, n_kept)
        v_mean = _masked_mean(v, keep, n_kept)
        out["var_dn2"][c] = v_mean / factor
        # The standard deviation about that same mean, handed over instead of summed again.
        if work is None:
            work = _scratch.take(v.shape, np.float64)
        spread = _masked_std(v, keep, n_kept, v_mean, work)
        out["var_se_dn2"][c] = spread / np.sqrt(n_kept) / factor
        out["n_kept"][c] = n_kept
        out["outlier_fraction"][c] = 1.0 - n_kept / n_usable
    if work is not None:
        _scratch.give(work)
    out["kept"] = kept_all
    return out
