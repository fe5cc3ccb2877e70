"""Defective pixels: hot, cold and stuck ones from dark frames, dead ones from flat fields.

A pixel is judged against the others of its CFA channel, by robust statistics (median and
MAD), so a few defects cannot hide themselves by inflating the spread:

- hot: its dark level (mean of the dark stack, and its median over the frames, so that a
  cosmic ray in one frame does not count) is more than 6 robust standard deviations above
  the channel's median (excess dark current, a leaky diode);
- cold: as far below;
- stuck: it barely moves from frame to frame (temporal variance below the chi-square
  quantile 1e-9 of the channel's); needs >= 8 dark frames, and noise large enough that a
  healthy pixel rarely (< 1e-9) reads one whole number in every frame, to tell;
- dead / over-responsive: in a flat field (dark subtracted) it gives less than half, or
  more than 1.5 times, the response of its 9x9 neighbourhood in the same channel.

Coordinates are (row, column) in the full mosaic.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edge_isp.calibrate.distributions import chi2_median, chi2_ppf, norm_cdf
from edge_isp.fileio import write_json
from edge_isp.sensor.cfa import CFA, PLANE_ORDER

DEFECT_KINDS = ("hot", "cold", "stuck", "dead", "overresponsive")
SIGMA_THRESHOLD = 6.0
STUCK_P = 1e-9
MIN_FRAMES_FOR_STUCK = 8


@dataclasses.dataclass(frozen=True)
class DefectMap:
    """Defective pixels of a sensor: ``pixels[kind]`` is an ``(N, 2)`` int array of (row, col)."""

    height: int
    width: int
    pixels: dict[str, np.ndarray]

    @classmethod
    def empty(cls, height: int, width: int) -> DefectMap:
        return cls(height, width, {k: np.zeros((0, 2), dtype=np.int64) for k in DEFECT_KINDS})

    @classmethod
    def from_packed(cls, masks: dict[str, np.ndarray], cfa: CFA) -> DefectMap:
        """From ``(4, h, w)`` boolean masks per kind, in packed plane order."""
        any_mask = next(iter(masks.values()))
        height, width = 2 * any_mask.shape[1], 2 * any_mask.shape[2]
        pixels = {}
        for kind in DEFECT_KINDS:
            coords = []
            mask = masks.get(kind)
            if mask is not None:
                for c, (oy, ox) in enumerate(cfa.plane_offsets()):
                    ys, xs = np.nonzero(mask[c])
                    coords.append(np.stack([2 * ys + oy, 2 * xs + ox], axis=1))
            pixels[kind] = np.concatenate(coords) if coords else np.zeros((0, 2), dtype=np.int64)
        return cls(height, width, pixels)

    def count(self, kind: str | None = None) -> int:
        """Number of defective pixels of one kind, or of all (a pixel counts once)."""
        if kind is not None:
            return len(self.pixels[kind])
        return int(self.mosaic_mask().sum())

    def mosaic_mask(self) -> np.ndarray:
        """``(H, W)`` boolean, True at any defect."""
        mask = np.zeros((self.height, self.width), dtype=bool)
        for coords in self.pixels.values():
            mask[coords[:, 0], coords[:, 1]] = True
        return mask

    def packed_mask(self, cfa: CFA) -> np.ndarray:
        """``(4, H/2, W/2)`` boolean in packed order, True at any defect."""
        mask = self.mosaic_mask()
        return np.stack([mask[oy::2, ox::2] for oy, ox in cfa.plane_offsets()])

    def union(self, other: DefectMap) -> DefectMap:
        pixels = {k: np.unique(np.concatenate([self.pixels[k], other.pixels[k]]), axis=0) for k in DEFECT_KINDS}
        return DefectMap(self.height, self.width, pixels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "counts": {k: self.count(k) for k in DEFECT_KINDS},
            "pixels": {k: self.pixels[k].tolist() for k in DEFECT_KINDS},
        }

    def save(self, path) -> None:
        """Write the map as JSON (row, col lists per kind), atomically."""
        write_json(path, self.to_dict())


def _robust_sigma(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, 1.4826 * float(np.median(np.abs(values - med)))


@dataclasses.dataclass(frozen=True)
class DarkLimits:
    """Per-channel (R, Gr, Gb, B) median dark level and the hot/cold distance from it, DN, and
    why stuck pixels were not looked for in some channels (None: they were, where possible)."""

    median: np.ndarray
    limit: np.ndarray
    stuck_note: str | None = None


def dark_defects(mean_map: np.ndarray, var_map: np.ndarray, n_frames: int, cfa: CFA) -> tuple[DefectMap, DarkLimits]:
    """Hot, cold and stuck pixels from a dark stack's ``(4, h, w)`` mean and variance maps.

    Hot and cold are candidates until :func:`confirm_persistent` has seen them in most
    frames: a cosmic ray in one frame lifts a pixel's mean as much as a hot pixel does.
    """
    hot = np.zeros(mean_map.shape, dtype=bool)
    cold = np.zeros_like(hot)
    stuck = np.zeros_like(hot)
    untestable: list[str] = []
    medians, limits = np.zeros(4), np.zeros(4)
    for c in range(4):
        med, sigma = _robust_sigma(mean_map[c])
        # The mean of L frames still carries temporal noise; with no DSNU the MAD of
        # integer-valued data can collapse, so never judge tighter than that noise.
        sigma = max(sigma, float(np.sqrt(np.median(var_map[c]) / n_frames)), 0.5)
        medians[c], limits[c] = med, SIGMA_THRESHOLD * sigma
        hot[c] = mean_map[c] > med + limits[c]
        cold[c] = mean_map[c] < med - limits[c]
        if n_frames >= MIN_FRAMES_FOR_STUCK:
            dof = n_frames - 1
            scale = float(np.median(var_map[c])) / (chi2_median(dof) / dof)
            # Integer samples repeat: a healthy pixel reads one value in every frame with
            # probability p_same, which chi-square (a continuous law) knows nothing of. Only
            # when that is rarer than STUCK_P does a pixel that never moves mean anything.
            if identical_probability(scale, n_frames) <= STUCK_P:
                stuck[c] = var_map[c] < scale * float(chi2_ppf(STUCK_P, dof)) / dof
            else:
                untestable.append(PLANE_ORDER[c])
    note = None
    if untestable:
        note = (
            f"stuck pixels not looked for in {', '.join(untestable)}: at this temporal noise a healthy pixel reads "
            f"the same whole number in all {n_frames} dark frames too often to tell it from a stuck one "
            "(more frames make it rarer)"
        )
    maps = {"hot": hot, "cold": cold, "stuck": stuck}
    return DefectMap.from_packed(maps, cfa), DarkLimits(medians, limits, note)


def identical_probability(variance_dn2: float, n_frames: int) -> float:
    """Probability that a pixel with Gaussian temporal noise of ``variance_dn2`` (quantization
    included) reads the same integer in all ``n_frames`` frames, averaged over where its
    mean falls between two integers."""
    sigma = math.sqrt(max(variance_dn2 - 1.0 / 12.0, 1e-12))  # the quantization is what rounding adds
    offsets = (np.arange(16) + 0.5) / 16
    values = np.arange(-np.ceil(8 * sigma) - 1, np.ceil(8 * sigma) + 2)
    p = norm_cdf((values[None, :] + 0.5 - offsets[:, None]) / sigma) - norm_cdf(
        (values[None, :] - 0.5 - offsets[:, None]) / sigma
    )
    return float(np.mean(np.sum(p**n_frames, axis=1)))


def plane_index(coords: np.ndarray, cfa: CFA) -> np.ndarray:
    """The packed plane (0..3, order R, Gr, Gb, B) of each mosaic (row, col)."""
    lookup = np.zeros((2, 2), dtype=np.int64)
    for c, (oy, ox) in enumerate(cfa.plane_offsets()):
        lookup[oy, ox] = c
    return lookup[coords[:, 0] % 2, coords[:, 1] % 2]


def confirm_persistent(
    candidates: DefectMap, medians: dict[str, np.ndarray], limits: DarkLimits, cfa: CFA
) -> DefectMap:
    """Keep the hot and cold candidates whose median over the frames is still beyond the limit.

    ``medians[kind]``: for each candidate pixel of that kind, its median value over the
    stack (frames aligned to the first).
    """
    pixels = dict(candidates.pixels)
    for kind, sign in (("hot", 1.0), ("cold", -1.0)):
        coords = candidates.pixels[kind]
        if len(coords):
            c = plane_index(coords, cfa)
            keep = sign * (medians[kind] - limits.median[c]) > limits.limit[c]
            pixels[kind] = coords[keep]
    return DefectMap(candidates.height, candidates.width, pixels)


def _box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter(image, size, mode="reflect")`` of a 2-D float64 image, the
    same numbers without importing scipy.ndimage: each axis in turn (rows' axis first), each line
    extended by reflection (``d c b a | a b c d | d c b a``), its running sum (the first window
    summed in order, then one value in and one out at each step, in order: a cumulative sum)
    divided by ``size`` at each position, as SciPy's C loop does. Images smaller than the
    window, whose reflections repeat, are left to SciPy."""
    if min(image.shape) < size:
        from scipy.ndimage import uniform_filter

        return uniform_filter(image, size=size, mode="reflect")
    before, after = size // 2, size - size // 2 - 1
    out = image
    for axis in (0, 1):
        n = out.shape[axis]

        def span(start, stop=None, step=None, axis=axis):
            return (slice(None), slice(start, stop, step)) if axis else (slice(start, stop, step),)

        extended = np.concatenate(
            [out[span(before - 1, None, -1)], out, out[span(n - 1, n - 1 - after, -1)]], axis=axis
        )
        steps = np.empty(out.shape)
        first = steps[span(0, 1)]
        first[...] = 0.0
        for k in range(size):
            first += extended[span(k, k + 1)]
        np.subtract(extended[span(size, None)], extended[span(0, n - 1)], out=steps[span(1, None)])
        out = np.cumsum(steps, axis=axis, out=steps)
        out /= size
    return out


def flat_defects(response: np.ndarray, cfa: CFA, usable: np.ndarray | None = None) -> DefectMap:
    """Dead and over-responsive pixels from a ``(4, h, w)`` dark-subtracted flat response."""
    dead = np.zeros(response.shape, dtype=bool)
    over = np.zeros_like(dead)
    usable = np.ones(response.shape, dtype=bool) if usable is None else usable
    for c in range(4):
        # The neighbourhood mean over usable pixels only, so a clipped region next door
        # does not make its neighbours look dead.
        weight = _box_mean(usable[c].astype(np.float64), 9)
        total = _box_mean(np.where(usable[c], response[c], 0.0).astype(np.float64), 9)
        local = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0.2)
        ok = usable[c] & (local > 0)
        dead[c] = ok & (response[c] < 0.5 * local)
        over[c] = ok & (response[c] > 1.5 * local)
    return DefectMap.from_packed({"dead": dead, "overresponsive": over}, cfa)
