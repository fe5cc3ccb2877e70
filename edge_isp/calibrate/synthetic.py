"""Raw frames drawn from a known noise model: the ground truth for calibration checks.

A :class:`SyntheticSensor` turns mean photo-electrons per pixel into a uint16
:class:`~edge_isp.sensor.frame.RawFrame` through the profile's noise model at a gain:

    DN = black + DSNU + K * Poisson(PRNU * electrons + hot) + read + row,

rounded to integers and clipped to [0, white]. ``read`` is Gaussian, or Tukey-lambda when
the profile gives a shape; ``row`` is one Gaussian offset per row and frame. DSNU, PRNU,
hot pixels (extra electrons) and dead pixels (stuck at black, no response, no noise) are
drawn once from the seed and stay fixed across frames, as on a real sensor.

It serves the tests and the benchmark, and lets a user check a calibration set-up
end to end without a camera. It is numpy only and exact: every parameter is known.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from pathlib import Path

import numpy as np

from edge_isp.calibrate import tukey
from edge_isp.calibrate.frames import save_frames
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import per_channel_map
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile


@dataclasses.dataclass(frozen=True)
class TruthFrame:
    """A simulated frame and what it is: ``kind`` is "dark", "flat" or "scene"."""

    kind: str
    frame: RawFrame


class SyntheticSensor:
    """A simulated sensor with fixed patterns drawn once from ``seed``.

    Args:
        profile: levels, CFA and the noise model (K, read, row noise, Tukey shape per gain).
        height, width: mosaic size in pixels (even).
        dsnu_dn: standard deviation of the per-pixel dark offset, DN.
        prnu: relative standard deviation of the per-pixel response (0.01 = 1 %).
        hot_pixels: number of pixels with 300..3000 extra electrons in every frame.
        dead_pixels: number of pixels stuck at the black level.
        seed: seed of the fixed patterns.
    """

    def __init__(
        self,
        profile: SensorProfile,
        height: int,
        width: int,
        *,
        dsnu_dn: float = 0.0,
        prnu: float = 0.0,
        hot_pixels: int = 0,
        dead_pixels: int = 0,
        seed: int = 0,
    ) -> None:
        if height % 2 or width % 2 or height < 2 or width < 2:
            raise InvalidInputError(f"a synthetic sensor needs an even size, got {height}x{width}")
        self.profile = profile
        self.height, self.width = int(height), int(width)
        rng = np.random.default_rng(seed)
        self.black_map = per_channel_map(profile.black_level, profile.cfa, height, width)
        self.dsnu_map = rng.normal(0.0, dsnu_dn, (height, width)) if dsnu_dn > 0 else None
        self.prnu_map = 1.0 + rng.normal(0.0, prnu, (height, width)) if prnu > 0 else None
        n = height * width
        picks = rng.choice(n, size=hot_pixels + dead_pixels, replace=False)
        self.hot_index = np.sort(picks[:hot_pixels])
        self.hot_electrons = rng.uniform(300.0, 3000.0, hot_pixels)
        self.dead_index = np.sort(picks[hot_pixels:])
        self.dsnu_dn, self.prnu = float(dsnu_dn), float(prnu)

    def truth(self, analogue_gain: float) -> NoiseAtGain:
        """The noise parameters frames at ``analogue_gain`` are drawn with."""
        return self.profile.noise_at(analogue_gain)

    def saturation_electrons(self, analogue_gain: float) -> float:
        """Electrons that bring a pixel from black to white at ``analogue_gain``."""
        return self.profile.range_dn / self.truth(analogue_gain).gain_dn_per_e

    def frame(
        self,
        electrons: float | np.ndarray,
        *,
        analogue_gain: float,
        rng: np.random.Generator,
        exposure_time_s: float = 0.0,
    ) -> RawFrame:
        """One frame whose pixels collect ``electrons`` on average (scalar or ``(H, W)``)."""
        noise = self.truth(analogue_gain)
        shape = (self.height, self.width)
        mean_e = np.broadcast_to(np.asarray(electrons, dtype=np.float64), shape)
        if self.prnu_map is not None:
            mean_e = mean_e * self.prnu_map
        if self.hot_index.size:
            mean_e = mean_e.copy()
            mean_e.flat[self.hot_index] += self.hot_electrons
        dn = noise.gain_dn_per_e * rng.poisson(np.maximum(mean_e, 0.0)).astype(np.float64)
        dn += self.black_map
        if self.dsnu_map is not None:
            dn += self.dsnu_map
        if noise.read_noise_lambda is None:
            dn += rng.normal(0.0, noise.read_noise_dn, shape)
        else:
            dn += tukey.sample(rng, shape, noise.read_noise_dn, noise.read_noise_lambda)
        if noise.row_noise_dn > 0:
            dn += rng.normal(0.0, noise.row_noise_dn, (self.height, 1))
        dn.flat[self.dead_index] = self.black_map.flat[self.dead_index]
        data = np.clip(np.rint(dn), 0, self.profile.white_level).astype(np.uint16)
        return RawFrame(
            data=data,
            cfa=self.profile.cfa,
            bit_depth=self.profile.bit_depth,
            black_level=self.profile.black_level,
            white_level=self.profile.white_level,
            analogue_gain=float(analogue_gain),
            exposure_time_s=float(exposure_time_s),
            sensor=f"synthetic-{self.profile.name}",
        )


def flat_field(
    height: int,
    width: int,
    cfa: str = "RGGB",
    *,
    channel_response: tuple[float, float, float, float] = (0.55, 1.0, 1.0, 0.75),
    vignetting: float = 0.15,
    clipped_disk: float = 0.0,
) -> np.ndarray:
    """Relative illumination ``(H, W)`` of a flat-field capture, 1.0 = the green centre.

    ``channel_response`` scales each CFA plane (R, Gr, Gb, B) as a white light would;
    ``vignetting`` darkens the corners by that fraction; ``clipped_disk`` > 0 adds a disk
    of radius ``clipped_disk`` (fraction of the height) at 50x brightness, which clips at
    white in every frame (a specular highlight or a lamp in view).
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = ((y - height / 2) ** 2 + (x - width / 2) ** 2) / ((height / 2) ** 2 + (width / 2) ** 2)
    field = (1.0 - vignetting * r2) * per_channel_map(channel_response, cfa, height, width)
    if clipped_disk > 0:
        cy, cx = 0.3 * height, 0.7 * width
        field[(y - cy) ** 2 + (x - cx) ** 2 < (clipped_disk * height) ** 2] = 50.0
    return field


def ptc_sweep(
    sensor: SyntheticSensor,
    gains: collections.abc.Sequence[float],
    *,
    levels: int = 20,
    frames_per_level: int = 2,
    dark_frames: int = 16,
    dark_pair_per_level: bool = False,
    flat_stack: int = 0,
    max_fraction: float = 1.15,
    illumination: np.ndarray | None = None,
    seed: int = 1,
) -> collections.abc.Iterator[TruthFrame]:
    """Frames of a photon-transfer capture, as a person following PROTOCOL.md takes them.

    For each gain: ``levels`` exposures of the flat field, equally spaced up to
    ``max_fraction`` of the exposure that saturates the centre green, ``frames_per_level``
    frames each; ``dark_frames`` dark frames at the shortest exposure (and a dark pair at
    every exposure if ``dark_pair_per_level``); ``flat_stack`` extra flats at half
    saturation for PRNU. Exposure times are 10 ms / gain at saturation. Frames are
    yielded one at a time so that a 12-megapixel sweep need not fit in memory.
    """
    rng = np.random.default_rng(seed)
    field = flat_field(sensor.height, sensor.width, sensor.profile.cfa) if illumination is None else illumination
    for gain in gains:
        e_sat = sensor.saturation_electrons(gain)
        t_sat = 0.01 / gain
        fractions = max_fraction * np.arange(1, levels + 1) / levels
        for f in fractions:
            for _ in range(frames_per_level):
                frame = sensor.frame(f * e_sat * field, analogue_gain=gain, rng=rng, exposure_time_s=f * t_sat)
                yield TruthFrame("flat", frame)
        for _ in range(flat_stack):
            frame = sensor.frame(0.5 * e_sat * field, analogue_gain=gain, rng=rng, exposure_time_s=0.5 * t_sat)
            yield TruthFrame("flat", frame)
        for _ in range(dark_frames):
            frame = sensor.frame(0.0, analogue_gain=gain, rng=rng, exposure_time_s=fractions[0] * t_sat)
            yield TruthFrame("dark", frame)
        if dark_pair_per_level:
            for f in fractions[1:]:
                for _ in range(2):
                    yield TruthFrame("dark", sensor.frame(0.0, analogue_gain=gain, rng=rng, exposure_time_s=f * t_sat))


def scene(height: int, width: int, *, seed: int = 0, peak: float = 1.0) -> np.ndarray:
    """A piecewise smooth test scene ``(H, W)`` on the normalized scale, values in [0, peak].

    Each CFA plane sees the same half-resolution picture: a smooth background, a shadow
    band at 0.003..0.033 whatever ``peak`` is, and rectangles and disks of constant or
    graded brightness whose sharp edges the single-image method must avoid. ``peak`` > 1
    makes the brightest parts clip at white.
    """
    rng = np.random.default_rng(seed)
    h, w = height // 2, width // 2
    y, x = np.mgrid[0:h, 0:w].astype(np.float64) / max(h, w)
    img = 0.35 + 0.25 * np.sin(2.1 * x + 0.7) * np.cos(1.7 * y + 0.3)
    for _ in range(14):
        cy, cx = rng.uniform(0.0, 1.0, 2)
        size = rng.uniform(0.05, 0.25)
        level = rng.uniform(0.0, 1.0) ** 1.5
        slope = rng.uniform(-0.5, 0.5)
        if rng.random() < 0.5:
            inside = (np.abs(y - cy) < size) & (np.abs(x - cx) < size * rng.uniform(0.5, 2.0))
        else:
            inside = (y - cy) ** 2 + (x - cx) ** 2 < size**2
        img[inside] = np.clip(level + slope * (x[inside] - cx), 0.0, 1.0)
    img = img / img.max() * peak
    # A shadow band whose level does not scale with the exposure, as deep shadows in an
    # over-exposed scene: it keeps the read noise measurable.
    band = slice(0, max(1, w // 8))
    img[:, band] = 0.003 + 0.03 * y[:, band]
    mosaic = np.empty((h * 2, w * 2))
    for dy in (0, 1):
        for dx in (0, 1):
            mosaic[dy::2, dx::2] = img
    return mosaic


def write_frames(folder: str | Path, frames: collections.abc.Iterable[TruthFrame]) -> list[Path]:
    """Save simulated frames with :func:`edge_isp.calibrate.frames.save_frames`."""
    return save_frames(folder, ((item.kind, item.frame) for item in frames))


def example_profile(
    *,
    gains: collections.abc.Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    gain_dn_per_e_at_1: float = 0.4,
    read_noise_dn_at_1: float = 2.0,
    read_noise_exponent: float = 0.8,
    row_noise_fraction: float = 0.0,
    read_noise_lambda: float | None = None,
    bit_depth: int = 12,
    black_level: float = 256.0,
) -> SensorProfile:
    """A made-up 12-bit sensor to simulate from: K = 0.4 DN/e- x gain and read noise
    log-linear in K (``read = 2 DN * (K / 0.4) ** 0.8``), the form ELD reports.

    Not a real camera: the numbers are chosen to look like a small CMOS sensor.
    """
    entries = []
    for g in gains:
        k = gain_dn_per_e_at_1 * g
        read = read_noise_dn_at_1 * (k / gain_dn_per_e_at_1) ** read_noise_exponent
        entries.append(
            NoiseAtGain(
                analogue_gain=float(g),
                gain_dn_per_e=k,
                read_noise_dn=read,
                row_noise_dn=row_noise_fraction * read,
                read_noise_lambda=read_noise_lambda,
            )
        )
    return SensorProfile(
        name="synthetic",
        cfa="RGGB",
        bit_depth=bit_depth,
        black_level=(black_level,) * 4,
        white_level=float(2**bit_depth - 1),
        color_matrix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        white_balance=(1.0, 1.0, 1.0),
        noise=tuple(entries),
        max_analogue_gain=float(max(gains)),
        description="made-up sensor for calibration tests (not a real camera)",
    )
