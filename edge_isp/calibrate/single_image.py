"""Noise from one raw image of an ordinary scene: Foi et al. 2008, per CFA channel.

Foi, Trimeche, Katkovnik, Egiazarian, "Practical Poissonian-Gaussian noise modeling and
fitting for single-image raw-data", IEEE TIP 17(10), 2008. The model on the normalized
scale (x = (DN - black) / (white - mean black)) is ``z = clip(y + sqrt(a y + b) xi)``:
Poisson-Gaussian noise, then clipping at the raw's 0 DN and at white. Steps, per channel:

1. One level of the Haar transform over 2x2 blocks: the approximation (block mean) and the
   diagonal detail ``(z00 - z01 - z10 + z11) / 2``. The detail cancels a constant and any
   linear ramp, so in smooth regions it is pure noise with the pixels' variance.
2. Smooth regions: the approximation, box-smoothed, must have a Laplacian within 3 times
   what its noise alone gives, and the mask is eroded so that coefficients next to an
   edge or a hot pixel are dropped. The noise used is the robust (MAD) noise of all
   coefficients at the same level, never the coefficient's own detail, so that selection
   does not favour noisier coefficients.
3. Level sets: the smooth coefficients binned by smoothed level (equal counts, and no bin
   wider than 1 % of full scale). Each gives ``y_hat`` (mean approximation), ``s_hat``
   (standard deviation of its details, beyond 5 robust sigmas trimmed) and its count.
   A set where more than a quarter of the pixels sit at a clip level is left out: there
   the unknown levels behind one ``y_hat`` spread widely (everything above white reads
   white), and a single-level model of the set no longer holds (measured: chi2/dof of
   5-10 with such sets, ~1 without).
4. Maximum likelihood of (a, b): for a level set, the clipped model's expectation
   ``E[clip(.)](y)`` is inverted at ``y_hat`` (the level is known very precisely from
   thousands of coefficients, so the integral over the unknown y in Foi's likelihood
   collapses to that point), and ``s_hat`` is Gaussian about the clipped model's standard
   deviation ``std[clip(.)](y)`` with variance ``std^2 / (2 (n - 1))``. The fit starts from
   weighted least squares of ``s_hat^2`` against ``y_hat`` away from the clip levels.
   Standard errors: the inverse Hessian of the negative log-likelihood (numerical),
   scaled by the reduced chi-square of the level sets when it exceeds 1.

The channels are fitted separately and jointly (one (a, b) for all four); the joint fit
is the result. Quantization adds step^2/12 DN^2 to b; the read noise reported for the
profile has it removed, as in the dark analysis.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate.dark import QUANTIZATION_VAR_DN2, quantization_step
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.frame import RawFrame

EDGE_TAU = 3.0
MIN_PER_LEVEL = 100
MAX_LEVEL_WIDTH = 0.01
MIN_LEVEL_SETS = 8
MAX_CLIPPED = 0.25


@dataclasses.dataclass(frozen=True)
class LevelSets:
    """The level sets of one channel: arrays of equal length, plus the clip levels.

    Attributes:
        y_hat: mean level of each set, normalized scale.
        s_hat: noise standard deviation of each set, normalized scale.
        count: coefficients in each set.
        low, high: the clip levels (0 DN and white) on the normalized scale.
        smooth_fraction: fraction of the channel's coefficients judged smooth.
    """

    y_hat: np.ndarray
    s_hat: np.ndarray
    count: np.ndarray
    low: float
    high: float
    smooth_fraction: float


@dataclasses.dataclass(frozen=True)
class FoiFit:
    """A fitted (a, b) with standard errors; ``var(x) = a x + b`` on the normalized scale."""

    a: float
    b: float
    a_se: float
    b_se: float
    cov: np.ndarray
    chi2_reduced: float
    n_level_sets: int


@dataclasses.dataclass(frozen=True)
class SingleImageResult:
    """Foi's fit of one or more images at one gain.

    Attributes:
        analogue_gain: the images' gain.
        range_dn: white minus mean black, DN: the normalized scale's unit.
        channels: per-channel fits (R, Gr, Gb, B), pooled over the images; None where a
            channel alone has too few level sets.
        joint: one (a, b) fitted to all channels: the result.
        level_sets: per image, per channel.
        n_images: images fitted.
        quantization_dn2: variance of the raw's rounding, DN^2 (step^2 / 12).
    """

    analogue_gain: float
    range_dn: float
    channels: tuple[FoiFit | None, ...]
    joint: FoiFit
    level_sets: tuple[tuple[LevelSets, ...], ...]
    n_images: int
    quantization_dn2: float = QUANTIZATION_VAR_DN2

    @property
    def gain_dn_per_e(self) -> float:
        return self.joint.a * self.range_dn

    @property
    def gain_se(self) -> float:
        return self.joint.a_se * self.range_dn

    @property
    def read_noise_dn(self) -> float:
        """Read noise in DN with quantization removed (0 when b is below it)."""
        return math.sqrt(max(self.joint.b * self.range_dn**2 - self.quantization_dn2, 0.0))

    @property
    def read_noise_se(self) -> float:
        read = self.read_noise_dn
        var_se = self.joint.b_se * self.range_dn**2
        return var_se / (2 * read) if read > 0 else math.sqrt(var_se)


# -- clipped normal moments -----------------------------------------------------------------
def clipped_moments(mu: np.ndarray, sigma: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``clip(N(mu, sigma^2), low, high)``, elementwise."""
    from scipy.special import ndtr

    sigma = np.maximum(sigma, 1e-12)
    alpha, beta = (low - mu) / sigma, (high - mu) / sigma
    pa, pb = ndtr(alpha), ndtr(beta)
    da, db = np.exp(-0.5 * alpha**2) / math.sqrt(2 * math.pi), np.exp(-0.5 * beta**2) / math.sqrt(2 * math.pi)
    inside = pb - pa
    m1 = low * pa + high * (1 - pb) + mu * inside + sigma * (da - db)
    m2 = (
        low**2 * pa
        + high**2 * (1 - pb)
        + (mu**2 + sigma**2) * inside
        + 2 * mu * sigma * (da - db)
        + sigma**2 * (alpha * da - beta * db)
    )
    return m1, np.sqrt(np.maximum(m2 - m1**2, 0.0))


# -- level sets -------------------------------------------------------------------------------
def _kernel_norm(kernel: np.ndarray) -> float:
    """L2 norm of ``kernel`` convolved (full) with a 3x3 box: the noise gain of both filters."""
    kh, kw = kernel.shape
    full = np.zeros((kh + 2, kw + 2))
    for dy in range(3):
        for dx in range(3):
            full[dy : dy + kh, dx : dx + kw] += kernel / 9.0
    return float(np.sqrt(np.sum(full**2)))


_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_LAPLACIAN_NOISE = _kernel_norm(_LAPLACIAN)


def _noise_by_level(levels: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Robust noise std expected at each coefficient's level: the MAD of all details in
    its level bin. It depends on the level only, never on the coefficient's own detail:
    a threshold that did would favour noisier coefficients and bias the fit upward."""
    flat_levels, flat_detail = levels.ravel(), np.abs(detail.ravel())
    edges = np.unique(np.quantile(flat_levels, np.linspace(0.0, 1.0, 41)))
    which = np.clip(np.searchsorted(edges, flat_levels, side="right") - 1, 0, max(edges.size - 2, 0))
    centers, sigmas = [], []
    for b in range(max(edges.size - 1, 1)):
        sel = which == b
        if sel.sum() >= 20:
            centers.append(float(np.median(flat_levels[sel])))
            sigmas.append(1.4826 * float(np.median(flat_detail[sel])))
    if not centers:
        return np.full(levels.shape, 1.4826 * float(np.median(flat_detail)))
    centers_arr, first = np.unique(np.array(centers), return_index=True)
    return np.interp(levels, centers_arr, np.array(sigmas)[first])


def level_sets(plane: np.ndarray, low: float, high: float) -> LevelSets:
    """Smooth-region level sets of one channel plane ``(h, w)`` on the normalized scale."""
    from scipy.ndimage import binary_erosion, convolve, uniform_filter

    h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    z = plane[:h, :w].astype(np.float64)
    z00, z01, z10, z11 = z[0::2, 0::2], z[0::2, 1::2], z[1::2, 0::2], z[1::2, 1::2]
    approx = (z00 + z01 + z10 + z11) / 4.0
    clipped = sum(((q <= low) | (q >= high)).astype(np.float32) for q in (z00, z01, z10, z11)) / 4.0
    detail = (z00 - z01 - z10 + z11) / 2.0
    smoothed = uniform_filter(approx, size=3, mode="reflect")
    local_noise = _noise_by_level(smoothed, detail)
    laplacian = convolve(smoothed, _LAPLACIAN, mode="reflect")
    # approx has half the pixel noise (a mean of 4); the Laplacian of its 3x3 mean scales that.
    smooth = np.abs(laplacian) <= EDGE_TAU * 0.5 * local_noise * _LAPLACIAN_NOISE
    smooth = binary_erosion(smooth, structure=np.ones((3, 3), dtype=bool), border_value=0)
    levels, dets, approxes, clips = smoothed[smooth], detail[smooth], approx[smooth], clipped[smooth]
    fraction = float(smooth.mean())
    empty = np.zeros(0)
    if levels.size < MIN_PER_LEVEL:
        return LevelSets(empty, empty, empty, low, high, fraction)
    order = np.argsort(levels, kind="stable")
    levels, dets, approxes, clips = levels[order], dets[order], approxes[order], clips[order]
    n_bins = int(np.clip(levels.size // 1000, 10, 300))
    edges = np.unique(
        np.concatenate(
            [
                np.quantile(levels, np.linspace(0, 1, n_bins + 1)),
                np.arange(levels[0], levels[-1] + MAX_LEVEL_WIDTH, MAX_LEVEL_WIDTH),
            ]
        )
    )
    bounds = np.searchsorted(levels, edges, side="left")
    bounds[-1] = levels.size
    y_hat, s_hat, count = [], [], []
    for lo, hi in itertools.pairwise(bounds):
        if hi - lo < MIN_PER_LEVEL or clips[lo:hi].mean() > MAX_CLIPPED:
            continue
        d = dets[lo:hi]
        med = float(np.median(d))
        mad = 1.4826 * float(np.median(np.abs(d - med)))
        if mad > 0:
            d = d[np.abs(d - med) <= 5.0 * mad]
        if d.size < MIN_PER_LEVEL or not d.std() > 0:
            continue  # too few, or wholly clipped: no information on the noise
        y_hat.append(float(approxes[lo:hi].mean()))
        s_hat.append(float(d.std(ddof=1)))
        count.append(d.size)
    return LevelSets(np.array(y_hat), np.array(s_hat), np.array(count, dtype=float), low, high, fraction)


# -- likelihood -------------------------------------------------------------------------------
def _predicted_std(sets: LevelSets, a: float, b: float) -> np.ndarray | None:
    """The clipped model's std at each set's level, its underlying y found by inversion."""
    top = sets.high + 6.0 * math.sqrt(max(a * sets.high + b, 1e-18))
    bottom = min(sets.low, -6.0 * math.sqrt(max(b, 1e-18))) - 1e-3
    grid = np.linspace(bottom, top, 2048)
    sigma = np.sqrt(np.maximum(a * np.maximum(grid, 0.0) + b, 1e-18))
    mean, std = clipped_moments(grid, sigma, sets.low, sets.high)
    mean = np.maximum.accumulate(mean)
    keep = np.concatenate([[True], np.diff(mean) > 0])
    y = np.interp(sets.y_hat, mean[keep], grid[keep])
    return np.interp(y, grid, std)


def _nll(params: np.ndarray, all_sets: Sequence[LevelSets]) -> float:
    a, b = float(params[0]), float(params[1])
    if not a > 0 or not math.isfinite(b):
        return 1e300
    total = 0.0
    for sets in all_sets:
        if sets.y_hat.size == 0:
            continue
        pred = _predicted_std(sets, a, b)
        var = np.maximum(pred, 1e-15) ** 2 / (2.0 * (sets.count - 1.0))
        total += float(np.sum((sets.s_hat - pred) ** 2 / (2.0 * var) + 0.5 * np.log(var)))
    return total


def _initial(all_sets: Sequence[LevelSets]) -> tuple[float, float]:
    ys, vs, ws = [], [], []
    for sets in all_sets:
        far = (sets.y_hat - sets.low > 4 * sets.s_hat) & (sets.high - sets.y_hat > 4 * sets.s_hat)
        ys.append(sets.y_hat[far])
        vs.append(sets.s_hat[far] ** 2)
        ws.append(sets.count[far] / np.maximum(sets.s_hat[far] ** 4, 1e-30))
    y, v, w = (np.concatenate(x) for x in (ys, vs, ws))
    if y.size < 2 or np.ptp(y) == 0:
        raise InvalidInputError(
            "the image has too few smooth regions away from black and white to fit the noise "
            f"({y.size} usable level sets): use a scene with large uniform areas at several brightnesses"
        )
    design = np.stack([y, np.ones_like(y)], axis=1)
    a, b = np.linalg.lstsq(design * np.sqrt(w)[:, None], v * np.sqrt(w), rcond=None)[0]
    return max(float(a), 1e-3 * float(np.max(v)) + 1e-12), float(b)


def _hessian(f, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    n = x.size
    hess = np.zeros((n, n))
    f0 = f(x)
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * steps[i], np.eye(n)[j] * steps[j]
            if i == j:
                hess[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / steps[i] ** 2
            else:
                hess[i, j] = hess[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * steps[i] * steps[j]
                )
    return hess


def fit_ab(all_sets: Sequence[LevelSets]) -> FoiFit:
    """Maximum-likelihood (a, b) over one or more channels' level sets (clipping modelled)."""
    from scipy.optimize import minimize

    n_sets = int(sum(s.y_hat.size for s in all_sets))
    if n_sets < MIN_LEVEL_SETS:
        raise InvalidInputError(
            f"only {n_sets} level sets found in smooth regions (at least {MIN_LEVEL_SETS} needed): use a scene "
            "with large uniform areas spanning dark to bright, in focus, without motion"
        )
    a0, b0 = _initial(all_sets)
    scale = np.array([a0, max(abs(b0), 1e-3 * a0)])
    res = minimize(
        lambda u: _nll(u * scale, all_sets),
        x0=np.array([1.0, b0 / scale[1]]),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 4000},
    )
    u = res.x
    hess = _hessian(lambda p: _nll(p * scale, all_sets), u, np.array([1e-3, 1e-3 * max(1.0, abs(u[1]))]))
    a, b = float(u[0] * scale[0]), float(u[1] * scale[1])
    chi2 = _chi2_reduced(all_sets, a, b, n_sets)
    try:
        cov_u = np.linalg.inv(hess)
        if np.any(np.diag(cov_u) <= 0):
            raise np.linalg.LinAlgError
        cov = cov_u * np.outer(scale, scale) * max(chi2, 1.0)
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.nan)
    return FoiFit(
        a=a,
        b=b,
        a_se=float(np.sqrt(cov[0, 0])),
        b_se=float(np.sqrt(cov[1, 1])),
        cov=cov,
        chi2_reduced=chi2,
        n_level_sets=n_sets,
    )


def _chi2_reduced(all_sets: Sequence[LevelSets], a: float, b: float, n_sets: int) -> float:
    total = 0.0
    for sets in all_sets:
        if sets.y_hat.size:
            pred = _predicted_std(sets, a, b)
            total += float(np.sum((sets.s_hat - pred) ** 2 * 2.0 * (sets.count - 1.0) / np.maximum(pred, 1e-15) ** 2))
    return total / max(n_sets - 2, 1)


def channel_level_sets(frame: RawFrame) -> tuple[LevelSets, ...]:
    """Level sets of each CFA channel of a frame (order R, Gr, Gb, B)."""
    black = np.asarray(frame.black_level)
    span = frame.white_level - float(black.mean())
    planes = pack(frame.data, frame.cfa).astype(np.float64)
    return tuple(
        level_sets((planes[c] - black[c]) / span, (0.0 - black[c]) / span, (frame.white_level - black[c]) / span)
        for c in range(4)
    )


def _fit_or_none(all_sets: Sequence[LevelSets]) -> FoiFit | None:
    # One channel alone may lack smooth regions where the four together do not.
    try:
        return fit_ab(all_sets)
    except InvalidInputError:
        return None


def single_image(frames: Sequence[RawFrame]) -> SingleImageResult:
    """Fit Foi's (a, b) to one or more raw images taken at the same gain.

    Raises:
        InvalidInputError: no frames, frames at different gains or levels, or too few smooth
            regions (the message says what kind of scene to capture).
    """
    if not frames:
        raise InvalidInputError("the single-image method needs at least one raw image, got none")
    first = frames[0]
    for f in frames[1:]:
        if f.cfa != first.cfa or f.white_level != first.white_level or f.black_level != first.black_level:
            raise InvalidInputError(
                f"images fitted together must share CFA and levels: expected {first.cfa.value}, black "
                f"{first.black_level}, white {first.white_level}; got {f.cfa.value}, {f.black_level}, {f.white_level}"
            )
        if abs(f.analogue_gain - first.analogue_gain) > 0.02 * first.analogue_gain:
            raise InvalidInputError(
                f"images fitted together must share the gain: expected {first.analogue_gain:g}, got {f.analogue_gain:g}"
            )
    per_image = tuple(channel_level_sets(f) for f in frames)
    channels = tuple(_fit_or_none([sets[c] for sets in per_image]) for c in range(4))
    joint = fit_ab([s for sets in per_image for s in sets])
    return SingleImageResult(
        analogue_gain=first.analogue_gain,
        range_dn=first.white_level - float(np.mean(first.black_level)),
        channels=channels,
        joint=joint,
        level_sets=per_image,
        n_images=len(frames),
        quantization_dn2=QUANTIZATION_VAR_DN2 * quantization_step(first.data) ** 2,
    )
