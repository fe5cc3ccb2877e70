"""The profile's noise model in the other common forms of the Poisson-Gaussian model, both ways.

A :class:`~edge_isp.sensor.profile.SensorProfile` keeps, per analogue gain, the system gain
K (DN/e-) and the read noise (DN): ``var(DN above black) = K * DN + read^2``. Other tools
store the same two numbers on other scales:

============  ============================  ================================================
format        stores                        scale
============  ============================  ================================================
DNG           (S, O) per colour plane       x = (DN - black) / (white - black), per plane;
                                            var(x) = S * x + O
Foi 2008      (a, b)                        x on [0, 1] as in the profile; var = a*x + b
darktable     a[3], b[3] per ISO (R, G, B)  x as DNG, but the variance of a wavelet band of
                                            the demosaicked image (``variance_scale``)
Raspberry Pi  reference_constant, _slope    16-bit DN above black, divided by the analogue
                                            gain; std = constant + slope * sqrt(x)
============  ============================  ================================================

All four describe spatially white, pixel-independent noise, so a profile's row noise and
read-noise shape have no place in them: ``to_*`` drops them and ``from_*`` leaves them at
0 / Gaussian. Where a format holds one value per colour plane, ``from_*`` averages the
planes (K arithmetically, read noise as the root of the mean variance) and returns the
per-plane values as a :class:`PlaneSpread`; a spread above ``spread_tolerance`` also warns.
Where the mapping needs an assumption it is a parameter, with its default documented.
Round trips are exact (to float rounding) wherever the two models are the same.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

RGB_PLANES = ("R", "G", "B")
# darktable's profiling tool (tools/noise/noiseprofile.c) measures the noise of the finest
# Haar HH band, (x00 - x01 - x10 + x11) / 4, whose variance is 1/4 of white pixel noise.
DARKTABLE_HAAR_WHITE = 0.25
DARKTABLE_FILE_VERSION = 0
# libcamera's Raspberry Pi IPA and its tuning tool work on samples shifted to 16 bits.
RPI_SAMPLE_BITS = 16


class NoiseConversionWarning(UserWarning):
    """A conversion had to average, clamp or skip something; the message says what."""


@dataclasses.dataclass(frozen=True)
class PlaneSpread:
    """The per-plane values that a ``from_*`` conversion averaged into one NoiseAtGain.

    Attributes:
        planes: plane names, e.g. ("R", "G", "B").
        gain_dn_per_e: K of each plane, DN/e-.
        read_noise_dn: read noise of each plane, DN.
    """

    planes: tuple[str, ...]
    gain_dn_per_e: tuple[float, ...]
    read_noise_dn: tuple[float, ...]

    @property
    def relative(self) -> float:
        """Largest (max - min) / mean over K and read noise; 0 when the planes agree."""
        worst = 0.0
        for values in (self.gain_dn_per_e, self.read_noise_dn):
            mean = float(np.mean(values))
            if mean > 0:
                worst = max(worst, (max(values) - min(values)) / mean)
        return worst


# -- shared helpers ---------------------------------------------------------------------
def _number(value: Any, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if positive and out <= 0:
        raise InvalidInputError(f"{name} must be > 0, got {out}")
    if non_negative and out < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {out}")
    return out


def _levels(black_level: Any, white_level: Any) -> tuple[np.ndarray, float]:
    """Black levels (4, order R, Gr, Gb, B; a scalar applies to all) and white level, checked."""
    try:
        black = np.asarray(black_level, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"black_level must be numbers, got {black_level!r}") from None
    if black.shape not in ((), (4,)):
        raise InvalidInputError(f"black_level must be one number or 4 (R, Gr, Gb, B), got shape {black.shape}")
    black = np.broadcast_to(black, (4,)).copy()
    if not np.all(np.isfinite(black)):
        raise InvalidInputError(f"black_level must be finite, got {black.tolist()}")
    white = _number(white_level, "white_level")
    if white <= black.max():
        raise InvalidInputError(f"white_level ({white}) must exceed every black level {black.tolist()}")
    return black, white


def _rgb_ranges(black: np.ndarray, white: float) -> tuple[float, float, float]:
    """White minus black of the R, G and B planes (G: the mean of Gr and Gb), in DN."""
    return float(white - black[0]), float(white - (black[1] + black[2]) / 2), float(white - black[3])


def _resolve_gain(profile: SensorProfile, analogue_gain: float | None, iso: float | None) -> float:
    if analogue_gain is not None and iso is not None:
        raise InvalidInputError(f"give analogue_gain or iso, not both (got {analogue_gain} and {iso})")
    if iso is not None:
        return gain_for_iso(profile, iso)
    return 1.0 if analogue_gain is None else _number(analogue_gain, "analogue_gain", positive=True)


def _average(
    planes: Sequence[str], ks: Sequence[float], reads: Sequence[float], tolerance: float, what: str
) -> tuple[float, float, PlaneSpread]:
    spread = PlaneSpread(tuple(planes), tuple(map(float, ks)), tuple(map(float, reads)))
    if spread.relative > tolerance:
        warnings.warn(
            f"{what}: the colour planes disagree by {spread.relative:.1%} (K {list(spread.gain_dn_per_e)} DN/e-, "
            f"read noise {list(spread.read_noise_dn)} DN); the profile keeps their average",
            NoiseConversionWarning,
            stacklevel=3,
        )
    read = math.sqrt(float(np.mean(np.square(reads))))
    return float(np.mean(ks)), read, spread


def _read_from_variance(variance: float, what: str) -> float:
    """sqrt of a fitted zero-signal variance; a negative fit means "no measurable read noise"."""
    if variance < 0:
        warnings.warn(
            f"{what}: the signal-independent variance is negative ({variance:.4g}), as a fit gives when the data "
            "carry a pedestal or clipping; read noise set to 0, which understates the noise near black",
            NoiseConversionWarning,
            stacklevel=3,
        )
        return 0.0
    return math.sqrt(variance)


def gain_for_iso(profile: SensorProfile, iso: float) -> float:
    """Analogue gain at an ISO: ``iso / profile.base_iso``."""
    return _number(iso, "iso", positive=True) / profile.base_iso


def iso_for_gain(profile: SensorProfile, analogue_gain: float) -> float:
    """ISO at an analogue gain: ``analogue_gain * profile.base_iso``."""
    return _number(analogue_gain, "analogue_gain", positive=True) * profile.base_iso


# -- DNG NoiseProfile (tag 51041) -----------------------------------------------------------
def to_dng_noise_profile(
    profile: SensorProfile, analogue_gain: float | None = None, *, iso: float | None = None
) -> list[tuple[float, float]]:
    """The DNG NoiseProfile tag at one gain (or ISO; neither = base gain): [(S, O)] for R, G, B.

    DNG 1.3+ (tag 51041; Adobe DNG SDK ``dng_noise_function``): the noise of a plane is
    ``sqrt(S * x + O)`` with x its linear value on [0, 1] after black subtraction and
    white-level scaling, so with r = white - black of the plane, ``S = K / r`` and
    ``O = (read / r)^2``. A CFA image has one pair per CFA colour (R, G, B); G uses the mean
    of the Gr and Gb black levels.
    """
    n = profile.noise_at(_resolve_gain(profile, analogue_gain, iso))
    ranges = _rgb_ranges(np.asarray(profile.black_level, dtype=np.float64), profile.white_level)
    return [(n.gain_dn_per_e / r, (n.read_noise_dn / r) ** 2) for r in ranges]


def from_dng_noise_profile(
    pairs: Sequence[Sequence[float]],
    *,
    black_level: Any,
    white_level: float,
    analogue_gain: float = 1.0,
    spread_tolerance: float = 0.01,
) -> tuple[NoiseAtGain, PlaneSpread]:
    """A NoiseAtGain from a DNG NoiseProfile: 1 pair (all planes) or 3 (R, G, B).

    ``black_level`` (DN, one or 4 values R, Gr, Gb, B) and ``white_level`` (DN) are the
    file's, which fix the scale of x. Per plane ``K = S * r`` and ``read = sqrt(O) * r``;
    the planes are then averaged, their values returned beside the result.
    """
    black, white = _levels(black_level, white_level)
    gain = _number(analogue_gain, "analogue_gain", positive=True)
    try:
        arr = np.asarray(pairs, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.ndim != 2 or arr.shape[0] not in (1, 3) or arr.shape[1] != 2:
        raise InvalidInputError(f"a DNG NoiseProfile is 1 or 3 (S, O) pairs (one per plane R, G, B), got {pairs!r}")
    if len(arr) == 1:
        arr = np.repeat(arr, 3, axis=0)
    ks, reads = [], []
    for plane, (s, o), r in zip(RGB_PLANES, arr, _rgb_ranges(black, white), strict=True):
        s = _number(s, f"NoiseProfile scale S of plane {plane}", positive=True)
        o = _number(o, f"NoiseProfile offset O of plane {plane}", non_negative=True)
        ks.append(s * r)
        reads.append(math.sqrt(o) * r)
    k, read, spread = _average(RGB_PLANES, ks, reads, spread_tolerance, "DNG NoiseProfile")
    return NoiseAtGain(analogue_gain=gain, gain_dn_per_e=k, read_noise_dn=read), spread


# -- Foi et al. 2008 ------------------------------------------------------------------------
def to_foi(
    profile: SensorProfile, analogue_gain: float | None = None, *, iso: float | None = None
) -> tuple[float, float]:
    """Foi's (a, b) at one gain (or ISO; neither = base gain): ``var(x) = a * x + b``.

    Foi, Trimeche, Katkovnik, Egiazarian, "Practical Poissonian-Gaussian noise modeling and
    fitting for single-image raw-data", IEEE TIP 17(10), 2008. x is the profile's [0, 1]
    scale (white minus mean black = 1), so ``(a, b) = (a, sigma^2)`` of
    :meth:`SensorProfile.normalized_noise`.
    """
    a, sigma = profile.normalized_noise(_resolve_gain(profile, analogue_gain, iso))
    return a, sigma**2


def from_foi(a: float, b: float, *, black_level: Any, white_level: float, analogue_gain: float = 1.0) -> NoiseAtGain:
    """A NoiseAtGain from Foi's (a, b) on the [0, 1] scale of these levels (DN).

    ``K = a * r`` and ``read = sqrt(b) * r`` with r = white - mean black. Foi's b may be
    negative (a pedestal: the zero of x above the true zero of the photon count, or
    clipping); then the read noise is set to 0 with a :class:`NoiseConversionWarning`.
    """
    black, white = _levels(black_level, white_level)
    span = white - float(np.mean(black))
    a = _number(a, "Foi a", positive=True)
    b = _number(b, "Foi b")
    read = _read_from_variance(b, "Foi (a, b)") * span
    return NoiseAtGain(
        analogue_gain=_number(analogue_gain, "analogue_gain", positive=True), gain_dn_per_e=a * span, read_noise_dn=read
    )


# -- darktable noise profiles ---------------------------------------------------------------
def to_darktable(
    profile: SensorProfile, *, maker: str, model: str, variance_scale: float = DARKTABLE_HAAR_WHITE
) -> list[dict[str, Any]]:
    """darktable profile entries, one per gain in the noise table (ISO = gain * base_iso).

    darktable (data/noiseprofiles.json, read by src/common/noiseprofiles.c; version 0)
    keys each entry by ISO with ``a[3]``, ``b[3]`` for R, G, B. Its profiling script
    (tools/noise/darktable-gen-noiseprofile) exports the raw through rawprepare, which maps
    ``(DN - black[cfa pos]) / (white - black[cfa pos])`` to [0, 1], with white balance 1,
    demosaics it, takes the finest Haar HH band, estimates its std by MAD per brightness
    bin and fits ``std^2 = a * x + b``. So a and b are variances of that band, not of a
    raw pixel: ``a = variance_scale * K / r``, ``b = variance_scale * (read / r)^2``.
    The default 1/4 is exact for spatially white noise before demosaicking. Demosaicking
    correlates neighbours and lowers the ratio: on white Gaussian noise through a 2x2 Haar
    HH band it measures 0.016 (R, B) / 0.047 (G) for bilinear, 0.10 / 0.09 for Malvar 2004,
    0.17 / 0.15 for Menon 2007 (colour-demosaicing 0.2, 512x512); darktable's own
    demosaicker (PPG, later RCD) was not measured. Pass the ratio of yours if it matters.
    """
    scale = _number(variance_scale, "variance_scale", positive=True)
    ranges = _rgb_ranges(np.asarray(profile.black_level, dtype=np.float64), profile.white_level)
    entries = []
    for n in profile.noise:
        iso = n.analogue_gain * profile.base_iso
        entries.append(
            {
                "maker": maker,
                "model": model,
                "name": f"{model} iso {iso:g}",
                "iso": iso,
                "a": [scale * n.gain_dn_per_e / r for r in ranges],
                "b": [scale * (n.read_noise_dn / r) ** 2 for r in ranges],
            }
        )
    return entries


def darktable_file(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Nest flat entries into darktable's noiseprofiles.json layout (makers > models > profiles)."""
    makers: dict[str, dict[str, list]] = {}
    for e in entries:
        profile = {k: list(v) if k in ("a", "b") else v for k, v in e.items() if k not in ("maker", "model")}
        makers.setdefault(e["maker"], {}).setdefault(e["model"], []).append(profile)
    return {
        "version": DARKTABLE_FILE_VERSION,
        "noiseprofiles": [
            {"maker": maker, "models": [{"model": model, "profiles": profiles} for model, profiles in models.items()]}
            for maker, models in makers.items()
        ],
    }


def darktable_entries(data: dict[str, Any], *, maker: str, model: str) -> list[dict[str, Any]]:
    """One camera's flat entries from a noiseprofiles.json document (exact maker and model)."""
    if not isinstance(data, dict) or data.get("version") != DARKTABLE_FILE_VERSION:
        raise InvalidInputError(
            f"not a darktable noiseprofiles.json of version {DARKTABLE_FILE_VERSION}: "
            f"got version {data.get('version') if isinstance(data, dict) else type(data).__name__!r}"
        )
    models_seen = []
    for m in data.get("noiseprofiles", []):
        if not isinstance(m, dict) or m.get("maker") != maker:
            continue
        for cam in (c for c in m.get("models", []) if isinstance(c, dict)):
            models_seen.append(cam.get("model"))
            if cam.get("model") == model:
                profiles = [p for p in cam.get("profiles", []) if isinstance(p, dict) and not p.get("skip")]
                return [{"maker": maker, "model": model, **p} for p in profiles]
    raise InvalidInputError(
        f"no darktable noise profile for maker {maker!r} model {model!r}; models of that maker: {models_seen or 'none'}"
    )


def from_darktable(
    entries: Sequence[dict[str, Any]],
    *,
    name: str,
    cfa: CFA | str,
    bit_depth: int,
    black_level: Any,
    white_level: float,
    base_iso: float = 100.0,
    variance_scale: float = DARKTABLE_HAAR_WHITE,
    spread_tolerance: float = 0.05,
) -> tuple[SensorProfile, list[PlaneSpread]]:
    """A SensorProfile whose noise table has one gain per darktable entry (gain = iso / base_iso).

    darktable's files hold no levels, so the caller gives them (the camera's raw black
    and white levels in DN). Inverse of :func:`to_darktable`, same ``variance_scale``. A
    channel whose a is 0 was marked unusable by darktable's script and is left out; a
    negative b gives read noise 0; both warn. The colour matrix is identity and the white
    balance 1, since darktable's noise profiles carry no colour. Between ISOs darktable
    interpolates a and b linearly; the profile interpolates K linearly too but the read
    noise log-linearly, so values between entries differ slightly.
    """
    black, white = _levels(black_level, white_level)
    scale = _number(variance_scale, "variance_scale", positive=True)
    ranges = _rgb_ranges(black, white)
    if not entries:
        raise InvalidInputError("from_darktable needs at least one entry, got none")
    table, spreads = [], []
    for e in sorted(entries, key=lambda e: _number(e.get("iso"), "darktable entry iso", positive=True)):
        iso = float(e["iso"])
        a = [_number(v, f"darktable iso {iso:g} a", non_negative=True) for v in _three(e, "a", iso)]
        b = [_number(v, f"darktable iso {iso:g} b") for v in _three(e, "b", iso)]
        used = [c for c in range(3) if a[c] > 0]
        if not used:
            raise InvalidInputError(f"darktable iso {iso:g}: every channel has a = 0, nothing to convert")
        if len(used) < 3:
            warnings.warn(
                f"darktable iso {iso:g}: channel(s) {[RGB_PLANES[c] for c in range(3) if c not in used]} have a = 0 "
                "(marked unusable by darktable's profiling script) and are left out",
                NoiseConversionWarning,
                stacklevel=2,
            )
        ks = [a[c] / scale * ranges[c] for c in used]
        reads = [_read_from_variance(b[c] / scale, f"darktable iso {iso:g} {RGB_PLANES[c]}") * ranges[c] for c in used]
        k, read, spread = _average([RGB_PLANES[c] for c in used], ks, reads, spread_tolerance, f"darktable iso {iso:g}")
        if table and iso / base_iso <= table[-1].analogue_gain:
            raise InvalidInputError(f"two darktable entries have iso {iso:g}; expected one entry per ISO")
        table.append(NoiseAtGain(analogue_gain=iso / base_iso, gain_dn_per_e=k, read_noise_dn=read))
        spreads.append(spread)
    profile = SensorProfile(
        name=name,
        cfa=CFA.parse(cfa),
        bit_depth=bit_depth,
        black_level=tuple(black.tolist()),
        white_level=white,
        color_matrix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        white_balance=(1.0, 1.0, 1.0),
        noise=tuple(table),
        base_iso=base_iso,
        max_analogue_gain=table[-1].analogue_gain,
        description=f"noise from darktable profiles of {entries[0].get('maker')} {entries[0].get('model')} "
        f"(variance_scale {scale:g}); colour not calibrated",
    )
    return profile, spreads


def _three(entry: dict[str, Any], key: str, iso: float) -> list:
    value = entry.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InvalidInputError(f"darktable iso {iso:g}: {key!r} must list 3 values (R, G, B), got {value!r}")
    return list(value)


# -- Raspberry Pi tuning file ("rpi.noise") ---------------------------------------------------
def rpi_noise_block(tuning: dict[str, Any]) -> dict[str, Any]:
    """The "rpi.noise" parameters of a libcamera Raspberry Pi tuning file (version 1 or 2)."""
    if isinstance(tuning, dict) and "rpi.noise" in tuning:
        return tuning["rpi.noise"]
    algorithms = tuning.get("algorithms", []) if isinstance(tuning, dict) else []
    for algorithm in algorithms:
        if isinstance(algorithm, dict) and "rpi.noise" in algorithm:
            return algorithm["rpi.noise"]
    raise InvalidInputError("the tuning file has no 'rpi.noise' block (looked at the top level and in 'algorithms')")


def to_rpi_noise(profile: SensorProfile, *, reference_gain: float = 1.0) -> dict[str, float]:
    """The "rpi.noise" block: ``{"reference_constant": c, "reference_slope": s}``.

    libcamera's Raspberry Pi IPA (src/ipa/rpi/controller/rpi/noise.cpp) reads the pair as
    the noise "for analogue gain of 1.0" and scales both by sqrt(gain) / mode noise factor
    (binning) each frame. Its tuning tool (utils/raspberrypi/ctt/ctt_noise.py) fits
    ``std = c + s * sqrt(mean)`` to chart patches whose samples are shifted to 16 bits,
    black-subtracted and divided by the analogue gain. For a Poisson-Gaussian sensor at
    gain g, with f = 2^(16 - bit_depth): ``s = sqrt(f * K / g)`` and ``c = f * read / g``
    (g = ``reference_gain``; 1.0 is what noise.cpp assumes). The two curves agree at zero
    signal and for bright signal; in between ``c + s*sqrt(x)`` exceeds
    ``sqrt(c^2 + s^2 x)`` by up to a factor sqrt(2) (at x = c^2 / s^2), so these values
    are the model's parameters, not a least-squares fit of the rpi curve to it.
    """
    gain = _number(reference_gain, "reference_gain", positive=True)
    n = profile.noise_at(gain)
    f = 2.0 ** (RPI_SAMPLE_BITS - profile.bit_depth)
    return {"reference_constant": f * n.read_noise_dn / gain, "reference_slope": math.sqrt(f * n.gain_dn_per_e / gain)}


def from_rpi_noise(
    reference_constant: float, reference_slope: float, *, bit_depth: int, reference_gain: float = 1.0
) -> NoiseAtGain:
    """A NoiseAtGain at ``reference_gain`` from a tuning file's "rpi.noise" pair.

    Inverse of :func:`to_rpi_noise`: ``K = s^2 * g / f``, ``read = c * g / f``.
    ``bit_depth`` is the raw mode's (10 or 12 on most Pi sensors). The tuning tool writes
    the constant as an integer and forces it to 0 when its fit goes negative, so a
    constant of 0 means "unknown", not "noiseless": it warns.
    """
    if not (isinstance(bit_depth, int) and 8 <= bit_depth <= RPI_SAMPLE_BITS):
        raise InvalidInputError(f"bit_depth must be an integer 8..16, got {bit_depth!r}")
    gain = _number(reference_gain, "reference_gain", positive=True)
    c = _number(reference_constant, "rpi.noise reference_constant", non_negative=True)
    s = _number(reference_slope, "rpi.noise reference_slope", positive=True)
    if c == 0:
        warnings.warn(
            "rpi.noise reference_constant is 0: libcamera's tuning tool writes 0 when its fit goes negative, so "
            "the read noise is unknown; it is set to 0 here, which understates the noise near black",
            NoiseConversionWarning,
            stacklevel=2,
        )
    f = 2.0 ** (RPI_SAMPLE_BITS - bit_depth)
    return NoiseAtGain(analogue_gain=gain, gain_dn_per_e=s * s * gain / f, read_noise_dn=c * gain / f)
