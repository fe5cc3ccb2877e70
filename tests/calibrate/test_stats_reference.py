"""The fast group statistics equal the plain computation they replace, exactly, on a sweep.

`measure_group` reads each frame's planes straight into float32 buffers, skips the clipping test
on frames that clip nowhere, updates its maps in place, takes the noise scale's binned medians by
partitioning each bin's run instead of sorting the sample, and gets its chi-square constants from
scipy.special. The reference below is the straightforward form of the same statistics (a packed
copy of each frame, temporaries, sorts, scipy.stats): every field of every group must come out
identical, on a sweep with defects, a clipped region, transient outliers and a flat stack.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import chi2, norm

from edge_isp.calibrate import distributions, stats
from edge_isp.calibrate.frames import group
from edge_isp.calibrate.stats import CLIP_MARGIN_PX, OUTLIER_FACTOR, OUTLIER_P, ROBUST_SAMPLE, GroupStats
from edge_isp.sensor.cfa import pack


def reference_constants(dof: int) -> tuple[float, float, float]:
    q = max(float(chi2.ppf(1.0 - OUTLIER_P, dof)), OUTLIER_FACTOR * dof)
    return q, float(chi2.median(dof)) / dof, float(chi2.cdf(q, dof + 2) / chi2.cdf(q, dof))


def reference_noise_scale(mean, var, usable, median_ratio):
    step = max(1, int(usable.sum()) // ROBUST_SAMPLE)
    sampled = usable.ravel()[::step]
    ms, vs = mean.ravel()[::step][sampled], var.ravel()[::step][sampled]
    edges = np.unique(np.concatenate([np.quantile(ms, np.linspace(0, 1, 21)), np.linspace(ms.min(), ms.max(), 21)]))
    which = np.clip(np.searchsorted(edges, ms, side="right") - 1, 0, max(edges.size - 2, 0))
    centers, scales, counts = [], [], []
    for b in range(max(edges.size - 1, 0)):
        in_bin = which == b
        if in_bin.sum() < 30:
            continue
        for values, out in ((np.sort(ms[in_bin]), centers), (np.sort(vs[in_bin]), scales)):
            mid = (values.size - 1) / 2.0
            out.append(0.5 * (float(values[int(np.floor(mid))]) + float(values[int(np.ceil(mid))])))
        counts.append(int(in_bin.sum()))
    scales = [s / median_ratio for s in scales]
    floor = 0.5 * min(scales) if scales else 0.0
    if len(centers) < 2 or np.ptp(centers) == 0:
        return np.full(mean.shape, max(float(np.median(vs)) / median_ratio, floor))
    slope, intercept = stats._weighted_line(np.array(centers), np.array(scales), np.sqrt(np.array(counts, float)))
    return np.maximum(intercept + slope * mean, floor)


def reference_channel_stats(mean_map, var_map, usable, n):
    dof = n - 1
    q, median_ratio, factor = reference_constants(dof)
    out = {k: np.zeros(4) for k in ("mean_dn", "var_dn2", "var_se_dn2", "n_kept", "outlier_fraction")}
    kept_all = np.zeros_like(usable)
    for c in range(4):
        u = usable[c]
        n_usable = int(u.sum())
        if n_usable < 16:
            out["mean_dn"][c] = out["var_dn2"][c] = out["var_se_dn2"][c] = np.nan
            continue
        m, v = mean_map[c], var_map[c]
        scale = reference_noise_scale(m, v, u, median_ratio)
        keep = u & ((v <= scale * (q / dof)) | (scale <= 0))
        kept_all[c] = keep
        n_kept = int(keep.sum())
        out["mean_dn"][c] = float(m.mean(dtype=np.float64, where=keep))
        out["var_dn2"][c] = float(v.mean(dtype=np.float64, where=keep)) / factor
        out["var_se_dn2"][c] = float(v.std(dtype=np.float64, where=keep)) / np.sqrt(n_kept) / factor
        out["n_kept"][c] = n_kept
        out["outlier_fraction"][c] = 1.0 - n_kept / n_usable
    out["kept"] = kept_all
    return out


def reference_measure_group(frames, defects=None) -> GroupStats:
    first = s1 = s2 = clipped = None
    frame_means, max_dn = [], 0.0
    for frame in frames:
        planes = pack(frame.data, frame.cfa)
        if first is None:
            first, white = planes.astype(np.float32), frame.white_level
            s1, s2, clipped = np.zeros_like(first), np.zeros_like(first), np.zeros(first.shape, dtype=bool)
        clipped |= (planes == 0) | (planes >= white)
        max_dn = max(max_dn, float(planes.max()))
        if not frame_means:
            frame_means.append(stats._frame_means(planes, defects))
            continue
        d = planes.astype(np.float32) - first
        offset = stats._robust_offset(d)
        frame_means.append(frame_means[0] + offset)
        d -= offset.astype(np.float32)[:, None, None]
        s1 += d
        s2 += d * d
    n = len(frame_means)
    mean_map = first + s1 / n
    var_map = (s2 - s1 * s1 / n) / (n - 1)
    all_mean, all_var = stats._all_pixel_stats(mean_map, var_map, defects, n)
    excluded = stats._dilate(clipped, CLIP_MARGIN_PX)
    clip_mask = excluded.copy()
    if defects is not None:
        excluded |= defects
    return GroupStats(
        n_frames=n, clipped_fraction=clipped.reshape(4, -1).mean(axis=1), all_mean_dn=all_mean, all_var_dn2=all_var,
        frame_means_dn=np.array(frame_means), max_dn=max_dn, mean_map=mean_map, var_map=var_map, clip_mask=clip_mask,
        **reference_channel_stats(mean_map, var_map, ~excluded, n),
    )  # fmt: skip


def test_every_group_of_a_sweep_equals_the_reference(dirty_refs, dirty_sensor):
    groups = [list(g.frames()) for gain_groups in group(dirty_refs).values() for g in gain_groups if len(g.refs) >= 2]
    assert len(groups) > 40 and any(len(g) >= 8 for g in groups)
    # And a dark pair with a patch read as 0 (a sensor clipping below black) in its second frame.
    dark = next(g for g in groups if g[0].data.mean() < 300)
    zeroed = dark[1].data.copy()
    zeroed[10:20, 30:44] = 0
    groups.append([dark[0], dataclasses.replace(dark[1], data=zeroed)])
    rng = np.random.default_rng(5)
    defects = rng.random((4, 64, 64)) < 0.002
    clipped_somewhere = 0
    for i, frames in enumerate(groups):
        mask = defects if i % 2 else None
        fast = stats.measure_group(frames, defects=mask, keep_maps=True)
        reference = reference_measure_group(frames, defects=mask)
        clipped_somewhere += bool(fast.clip_mask.any())
        for field in dataclasses.fields(GroupStats):
            a, b = getattr(fast, field.name), getattr(reference, field.name)
            assert np.array_equal(a, b, equal_nan=True), (i, field.name)
    assert clipped_somewhere > 10  # the clipped disk, the levels past saturation, the zeroed patch


@pytest.mark.parametrize("dof", [1, 2, 7, 15, 31, 63])
def test_distributions_equal_scipy_stats(dof):
    p = np.array([1e-9, 1e-6, 0.01, 0.5, 0.9, 1 - 1e-6])
    assert np.array_equal(distributions.chi2_ppf(p, dof), chi2.ppf(p, dof))
    assert distributions.chi2_median(dof) == float(chi2.median(dof))
    x = np.array([0.0, 0.3, float(dof), 5.0 * dof, 100.0 * dof])
    assert np.array_equal(distributions.chi2_cdf(x, dof), chi2.cdf(x, dof))
    z = np.linspace(-9, 9, 37)
    assert np.array_equal(distributions.norm_cdf(z), norm.cdf(z))
    assert np.array_equal(distributions.norm_ppf(p), norm.ppf(p))
    assert stats._chi2_constants(dof) == reference_constants(dof)


def test_defects_are_not_counted_as_clipped(dirty_refs):
    # A group that clips nowhere, measured with a defect map: the defects are left out of the
    # statistics but are no clipping (the dilated clip mask was once the defect map itself).
    groups = [list(g.frames()) for gain_groups in group(dirty_refs).values() for g in gain_groups if len(g.refs) >= 2]
    frames = next(g for g in groups if not stats.measure_group(g, keep_maps=True).clip_mask.any())
    defects = np.random.default_rng(6).random((4, 64, 64)) < 0.01
    before = defects.copy()
    measured = stats.measure_group(frames, defects=defects, keep_maps=True)
    assert np.array_equal(measured.clipped_fraction, np.zeros(4)) and not measured.clip_mask.any()
    assert np.array_equal(defects, before)


def _integer_differences(rng, shape, kind):
    """A frame-to-frame difference of integer raw data, as float32 (what measure_group hands over)."""
    if kind == "noise":
        d = np.rint(rng.normal(rng.uniform(-20, 20), rng.uniform(0.3, 60), shape))
    elif kind == "outliers":
        d = np.rint(rng.normal(3, 8, shape))
        d.flat[rng.choice(d.size, 50, replace=False)] = rng.integers(-4000, 4000, 50)
    elif kind == "ties":  # most values equal: zero spread in some channels
        d = np.where(rng.random(shape) < 0.8, 5.0, rng.integers(-3, 9, shape))
    else:  # a span too wide for the histograms (32-bit data)
        d = np.rint(rng.normal(0, 5, shape))
        d[..., 0, 0] = [-200_000, 200_000, 0, 1]
        d[..., 1, 0] = [200_000, -200_000, 1, 0]
    return d.astype(np.float32)


@pytest.mark.parametrize("kind", ["noise", "outliers", "ties", "wide"])
@pytest.mark.parametrize("shape", [(4, 96, 128), (4, 67, 41), (4, 384, 512)])
def test_robust_offset_of_whole_numbers_equals_the_sorted_one(kind, shape):
    rng = np.random.default_rng(hash((kind, shape)) % 2**32)
    for _ in range(3):
        d = _integer_differences(rng, shape, kind)
        fast, plain = stats._robust_offset(d, whole=True), stats._robust_offset(d)
        assert np.array_equal(fast, plain), (fast, plain)
    if kind == "wide":
        sample = d[:, :, :: max(1, d.shape[1] * d.shape[2] // ROBUST_SAMPLE)].astype(np.int64).reshape(4, -1)
        assert stats._whole_robust_offset(sample) is None  # the sorts did it


def test_frame_means_of_whole_numbers_equal_the_selected_pixels_mean():
    rng = np.random.default_rng(7)
    planes = rng.integers(0, 65536, (4, 200, 300)).astype(np.float32)
    defects = rng.random(planes.shape) < 0.01
    plain = np.array([planes[c][~defects[c]].mean(dtype=np.float64) for c in range(4)])
    assert np.array_equal(stats._frame_means(planes, defects, small_whole=True), plain)
    assert np.array_equal(stats._frame_means(planes, defects), plain)


@pytest.mark.parametrize("n", [1, 2, 7, 28_087, 28_088])
def test_median_equals_numpy(n):
    rng = np.random.default_rng(n)
    for values in (
        rng.normal(10, 3, n).astype(np.float32),
        rng.integers(0, 5, n).astype(np.float32),
        rng.normal(size=n),
    ):
        assert stats._median(values) == float(np.median(values))
    values = rng.normal(size=n).astype(np.float32)
    values[n // 2] = np.nan
    assert np.isnan(stats._median(values))


def test_masked_mean_and_std_equal_numpy():
    rng = np.random.default_rng(8)
    values = rng.gamma(2.0, 30.0, (384, 512)).astype(np.float32)
    where = rng.random(values.shape) > 0.02
    count = int(np.count_nonzero(where))
    mean = stats._masked_mean(values, where, count)
    assert mean == float(values.mean(dtype=np.float64, where=where))
    spread = stats._masked_std(values, where, count, mean, np.empty(values.shape))
    assert spread == float(values.std(dtype=np.float64, where=where, mean=np.reshape(mean, (1, 1))))


@pytest.mark.parametrize("n", [1, 2, 3, 21, 22, 1_001, 28_087])
def test_sorted_quantiles_equal_numpy(n):
    rng = np.random.default_rng(n)
    q = np.linspace(0, 1, 21)
    for values in (
        rng.normal(1000, 30, n).astype(np.float32),
        rng.integers(0, 5, n).astype(np.float32),
        rng.normal(size=n),
    ):
        fast, plain = stats._sorted_quantiles(np.sort(values), q), np.quantile(values, q)
        assert fast.dtype == plain.dtype and np.array_equal(fast, plain)


def test_scratch_maps_are_reused_and_never_the_callers(dirty_refs):
    # Maps a caller keeps (keep_maps) are its own; the next group's work maps come from the pool.
    groups = [list(g.frames()) for gain_groups in group(dirty_refs).values() for g in gain_groups if len(g.refs) >= 2]
    kept = stats.measure_group(groups[0], keep_maps=True)
    before = kept.mean_map.copy(), kept.var_map.copy()
    for frames in groups[1:6]:
        stats.measure_group(frames)
    assert np.array_equal(kept.mean_map, before[0]) and np.array_equal(kept.var_map, before[1])
    assert all(
        not np.shares_memory(kept.mean_map, a) and not np.shares_memory(kept.var_map, a) for a in stats._scratch.free
    )
    assert 0 < len(stats._scratch.free) <= stats._Scratch.KEEP


@pytest.mark.parametrize("shape", [(4, 64, 64), (4, 7, 9), (4, 3, 2), (4, 1, 5)])
def test_dilation_equals_opencv(shape):
    import cv2

    rng = np.random.default_rng(sum(shape))
    for fraction in (0.001, 0.05, 0.4):
        mask = rng.random(shape) < fraction
        for radius in (1, 2, 3):
            kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
            expected = np.stack([cv2.dilate(m.astype(np.uint8), kernel).astype(bool) for m in mask])
            grown = stats._dilate(mask, radius)
            assert np.array_equal(grown, expected) and not np.shares_memory(grown, mask)


@pytest.mark.parametrize("shape", [(384, 512), (64, 64), (20, 33), (9, 40), (5, 30)])
def test_box_mean_equals_scipy_uniform_filter(shape):
    from scipy.ndimage import uniform_filter

    from edge_isp.calibrate.defects import _box_mean

    rng = np.random.default_rng(shape[0] * shape[1])
    images = [
        rng.normal(100, 10, shape) * (rng.random(shape) > 0.1),  # a response with holes
        (rng.random(shape) > 0.3).astype(np.float64),  # a usable-pixel weight
    ]
    images.append(images[0].copy())
    images[-1][shape[0] // 2, shape[1] // 3] = np.nan
    for image in images:
        expected = uniform_filter(image, size=9, mode="reflect")
        assert np.array_equal(_box_mean(image, 9), expected, equal_nan=True)


def test_scratch_holds_a_bounded_set():
    scratch = stats._Scratch()
    scratch.give(*(np.empty((4, 8, 8), np.float32) for _ in range(12)))
    assert len(scratch.free) == stats._Scratch.KEEP
    big = np.empty(stats._Scratch.KEEP_BYTES // 3, np.uint8)
    scratch.give(big, big.copy(), big.copy(), big.copy())
    assert sum(a.nbytes for a in scratch.free) <= stats._Scratch.KEEP_BYTES
    assert scratch.take(big.shape, np.uint8).shape == big.shape
