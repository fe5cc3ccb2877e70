"""The masked optical-black area of a raw file: black level and read noise per plane.

Most camera sensors have rows or columns covered from light beside the active area (DNG's
``ActiveArea`` leaves them outside; LibRaw reports them as the margins of ``raw_image``).
Their pixels read the black level plus read noise (and the dark signal's pattern), so they
give a black level per plane to a fraction of a DN, where a file's own metadata is an
integer (LibRaw's is off by about 1 DN on some planes of some cameras), and a read-noise
figure from the same exposure as the image, a check beside any estimate from the image.

The read noise here is the spatial standard deviation of the masked pixels of one plane:
temporal read noise plus the fixed pattern (DSNU) of those pixels. It equals the temporal
read noise only where DSNU is small, which is the usual case at short exposures.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_isp.sensor.cfa import CFA, PLANE_ORDER

# A strip narrower than this (pixels) is more likely a transition or dummy area than a
# masked one; fewer samples than this per plane give no useful level.
MIN_STRIP_PX = 4
MIN_PIXELS_PER_PLANE = 64
# Samples further than this many robust standard deviations from the median are hot or
# dead pixels, not read noise.
CLIP_SIGMAS = 6.0


@dataclasses.dataclass(frozen=True)
class OpticalBlack:
    """What a file's masked area says.

    Attributes:
        black_level_dn: mean of the masked pixels per plane, R, Gr, Gb, B (DN).
        read_noise_dn: their standard deviation per plane (DN): read noise plus DSNU.
        pixels: masked pixels used, all planes together.
        regions: which strips were used, e.g. ``"left 16 columns"``.
        file_black_level_dn: the black level the file's metadata states, per plane.
        used: whether the frame's black level was taken from here.
        reason: why not, when ``used`` is False.
    """

    black_level_dn: tuple[float, float, float, float]
    read_noise_dn: tuple[float, float, float, float]
    pixels: int
    regions: str
    file_black_level_dn: tuple[float, float, float, float]
    used: bool
    reason: str = ""

    @property
    def read_noise_mean_dn(self) -> float:
        """Root of the mean variance over the four planes (DN)."""
        return float(np.sqrt(np.mean(np.square(self.read_noise_dn))))

    def describe(self) -> str:
        levels = "  ".join(f"{n} {b:.2f}" for n, b in zip(PLANE_ORDER, self.black_level_dn, strict=True))
        noise = "  ".join(f"{n} {r:.3g}" for n, r in zip(PLANE_ORDER, self.read_noise_dn, strict=True))
        status = "used as the black level" if self.used else f"not used: {self.reason}"
        return (
            f"optical black   {self.regions}, {self.pixels} pixels ({status})\n"
            f"  black level   {levels} DN\n"
            f"  read noise    {noise} DN (spatial std: read noise + DSNU)"
        )


def measure_optical_black(
    raw: np.ndarray,
    *,
    top: int,
    left: int,
    height: int,
    width: int,
    cfa: CFA,
    file_black_level: tuple[float, float, float, float],
    white_level: float,
) -> OpticalBlack | None:
    """The masked area of a full raw array around its active area, or None when it has none.

    Args:
        raw: ``(raw_height, raw_width)`` full sensor readout, DN, margins included.
        top, left, height, width: the active area inside ``raw``.
        cfa: the Bayer pattern as seen from the active area's origin ``(top, left)``.
        file_black_level: the file's own black level per plane (R, Gr, Gb, B), DN.
        white_level: the file's white level, DN.

    The masked means replace the file's black level (``used``) only when every plane has
    enough samples and each mean lies within 2 % of the range (or 8 DN) of the file's own
    level: margins that hold image or dummy data fail that test.
    """
    raw = np.asarray(raw)
    rows, cols = np.indices(raw.shape, sparse=True)
    bottom, right = top + height, left + width
    strips = {
        "top": (slice(0, top), slice(None)),
        "bottom": (slice(bottom, None), slice(None)),
        "left": (slice(top, bottom), slice(0, left)),
        "right": (slice(top, bottom), slice(right, None)),
    }
    sizes = {"top": top, "bottom": raw.shape[0] - bottom, "left": left, "right": raw.shape[1] - right}
    unit = {"top": "rows", "bottom": "rows", "left": "columns", "right": "columns"}
    chosen = [name for name in strips if sizes[name] >= MIN_STRIP_PX]
    if not chosen:
        return None
    per_plane: list[list[np.ndarray]] = [[] for _ in PLANE_ORDER]
    for name in chosen:
        ys, xs = strips[name]
        block = raw[ys, xs].astype(np.float64)
        phase_y = (rows[ys] - top) % 2
        phase_x = (cols[:, xs] - left) % 2
        for i, (py, px) in enumerate(cfa.plane_offsets()):
            per_plane[i].append(block[(phase_y == py) & (phase_x == px)])
    samples = [np.concatenate(p) for p in per_plane]
    regions = ", ".join(f"{name} {sizes[name]} {unit[name]}" for name in chosen)
    stats = [_clipped_mean_std(s) for s in samples]
    black = tuple(float(m) for m, _ in stats)
    noise = tuple(float(sd) for _, sd in stats)
    file_black = tuple(float(b) for b in file_black_level)
    tolerance = max(8.0, 0.02 * (white_level - max(file_black)))
    reason = ""
    if min(s.size for s in samples) < MIN_PIXELS_PER_PLANE:
        reason = f"fewer than {MIN_PIXELS_PER_PLANE} masked pixels per plane"
    else:
        off = [abs(m - f) for m, f in zip(black, file_black, strict=True)]
        if max(off) > tolerance:
            reason = (
                f"its mean differs from the file's black level by up to {max(off):.3g} DN (more than "
                f"{tolerance:.3g}): the margins may hold image or dummy data rather than masked pixels"
            )
    return OpticalBlack(black, noise, int(sum(s.size for s in samples)), regions, file_black, not reason, reason)  # type: ignore[arg-type]


def _clipped_mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation without hot/dead pixels (beyond CLIP_SIGMAS robust sigmas)."""
    if values.size == 0:
        return float("nan"), float("nan")
    median = float(np.median(values))
    spread = max(1.4826 * float(np.median(np.abs(values - median))), 0.5)  # 0.5 DN: integer samples
    kept = values[np.abs(values - median) <= CLIP_SIGMAS * spread]
    return float(kept.mean()), float(kept.std(ddof=1)) if kept.size > 1 else 0.0
