"""Sensor profiles: one versioned JSON schema for a camera's levels, colour and noise.

The noise model is Poisson-Gaussian per analogue gain: a pixel that collects ``n``
photo-electrons reads ``K * n + N(0, read_noise_dn^2)`` DN above black, with ``K`` the
system gain in DN/e-. Optional row noise adds one Gaussian offset per row.

Between the gains in the table, K is interpolated linearly in gain and the read noise
log-linearly against K (the relation Wei et al. 2020, "ELD", fit on real sensors).
Outside the table, K is proportional to gain and the read noise is held constant in
electrons, the usual first-order model of an analogue amplifier.

Example:
    >>> profile = SensorProfile.load("nexus6p-rear")
    >>> a, sigma = profile.normalized_noise(analogue_gain=1.0)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, ProfileError
from edge_isp.fileio import read_json, write_json
from edge_isp.sensor.cfa import CFA
from edge_isp.shipped import file_or_shipped, shipped_names

SCHEMA = "edge-isp/sensor-profile"
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class NoiseAtGain:
    """The noise model at one analogue gain, in DN of the sensor's raw output.

    Attributes:
        analogue_gain: the gain this entry was measured at (1.0 = base gain).
        gain_dn_per_e: system gain K, DN per photo-electron.
        read_noise_dn: standard deviation of the signal-independent noise, DN.
        row_noise_dn: standard deviation of a per-row offset, DN (0 = none).
        read_noise_lambda: Tukey-lambda shape of the read noise (None = Gaussian).
    """

    analogue_gain: float
    gain_dn_per_e: float
    read_noise_dn: float
    row_noise_dn: float = 0.0
    read_noise_lambda: float | None = None

    @property
    def read_noise_e(self) -> float:
        """Read noise referred to the input, in electrons."""
        return self.read_noise_dn / self.gain_dn_per_e


@dataclasses.dataclass(frozen=True)
class SensorProfile:
    """A camera's levels, colour and noise. See the module docstring for the noise model.

    Attributes:
        name: short identifier, e.g. "imx219".
        cfa: Bayer pattern of the raw output.
        bit_depth: bits per raw sample.
        black_level: DN per plane, order R, Gr, Gb, B.
        white_level: saturation in DN.
        color_matrix: 3x3, white-balanced camera RGB -> linear sRGB (rows sum to ~1).
        white_balance: gains for camera R, G, B that make a neutral surface grey.
        noise: the noise table, sorted by analogue gain.
        base_iso: ISO at analogue gain 1 (for formats keyed on ISO).
        max_analogue_gain: the highest analogue gain the sensor offers.
        electrons_at_white_per_lux: photo-electrons a white surface gives per lux of scene
            illumination at the profile's reference exposure; converts lux to electrons.
        description: free text: where the numbers come from.
    """

    name: str
    cfa: CFA
    bit_depth: int
    black_level: tuple[float, float, float, float]
    white_level: float
    color_matrix: tuple[tuple[float, float, float], ...]
    white_balance: tuple[float, float, float]
    noise: tuple[NoiseAtGain, ...]
    base_iso: float = 100.0
    max_analogue_gain: float = 16.0
    electrons_at_white_per_lux: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    # -- levels ---------------------------------------------------------------------
    @property
    def range_dn(self) -> float:
        """White level minus the mean black level: the DN span of [0, 1]."""
        return float(self.white_level - np.mean(self.black_level))

    @property
    def has_colour(self) -> bool:
        """Whether the profile holds a colour calibration (not the identity matrix with unit
        white balance that noise-only calibrations and imports carry)."""
        identity = np.allclose(self.color_matrix, np.eye(3)) and np.allclose(self.white_balance, 1.0)
        return not identity

    # -- noise ----------------------------------------------------------------------
    def gain_for_frame(self, frame: Any) -> float:
        """The analogue gain at which to look up a frame's noise: ``frame.iso / base_iso``
        for a frame that states its ISO (camera raw files, whose analogue gain is not
        recorded), else ``frame.analogue_gain``."""
        iso = getattr(frame, "iso", None)
        return float(iso) / self.base_iso if iso else float(frame.analogue_gain)

    def noise_at(self, analogue_gain: float) -> NoiseAtGain:
        """The noise model at any analogue gain (interpolated; see the module docstring)."""
        if not (math.isfinite(analogue_gain) and analogue_gain > 0):
            raise InvalidInputError(f"analogue_gain must be a positive number, got {analogue_gain}")
        table = self.noise
        gains = np.array([n.analogue_gain for n in table])
        if analogue_gain <= gains[0] or analogue_gain >= gains[-1] or len(table) == 1:
            end = table[0] if analogue_gain <= gains[0] else table[-1]
            ratio = analogue_gain / end.analogue_gain
            return NoiseAtGain(
                analogue_gain=float(analogue_gain),
                gain_dn_per_e=end.gain_dn_per_e * ratio,
                read_noise_dn=end.read_noise_dn * ratio,
                row_noise_dn=end.row_noise_dn * ratio,
                read_noise_lambda=end.read_noise_lambda,
            )
        exact = np.flatnonzero(gains == analogue_gain)
        if exact.size:
            return table[int(exact[0])]
        i = int(np.searchsorted(gains, analogue_gain)) - 1
        lo, hi = table[i], table[i + 1]
        t = (analogue_gain - lo.analogue_gain) / (hi.analogue_gain - lo.analogue_gain)
        k = lo.gain_dn_per_e + t * (hi.gain_dn_per_e - lo.gain_dn_per_e)
        # log(read) linear in log(K) between the two entries.
        k_ratio = hi.gain_dn_per_e / lo.gain_dn_per_e
        u = t if k_ratio == 1.0 else math.log(k / lo.gain_dn_per_e) / math.log(k_ratio)

        def loglin(a: float, b: float) -> float:
            if a <= 0 or b <= 0:  # log-linear is undefined at 0: fall back to linear in K
                return a + u * (b - a)
            return math.exp(math.log(a) + u * (math.log(b) - math.log(a)))

        return NoiseAtGain(
            analogue_gain=float(analogue_gain),
            gain_dn_per_e=k,
            read_noise_dn=loglin(lo.read_noise_dn, hi.read_noise_dn),
            row_noise_dn=loglin(lo.row_noise_dn, hi.row_noise_dn),
            read_noise_lambda=lo.read_noise_lambda if t < 0.5 else hi.read_noise_lambda,
        )

    def normalized_noise(self, analogue_gain: float, digital_gain: float = 1.0) -> tuple[float, float]:
        """(a, sigma) on the [0, 1] scale (white - black = 1): var(x) = a * x + sigma^2.

        ``digital_gain`` multiplies the normalized raw after capture (exposure
        compensation); it scales a and sigma alike.
        """
        n = self.noise_at(analogue_gain)
        scale = digital_gain / self.range_dn
        return n.gain_dn_per_e * scale, n.read_noise_dn * scale

    def electrons_at_white(self, lux: float) -> float:
        """Convert scene illumination in lux to photo-electrons at white."""
        if self.electrons_at_white_per_lux is None:
            raise ProfileError(
                f"profile {self.name!r} has no 'electrons_at_white_per_lux', so lux cannot be "
                "converted; give the light level in photo-electrons at white instead"
            )
        if not (math.isfinite(lux) and lux > 0):
            raise InvalidInputError(f"lux must be a positive number, got {lux}")
        return lux * self.electrons_at_white_per_lux

    def lux(self, electrons_at_white: float) -> float:
        """Inverse of :meth:`electrons_at_white`."""
        return electrons_at_white / self.electrons_at_white(1.0)

    # -- serialization --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "cfa": self.cfa.value,
            "bit_depth": self.bit_depth,
            "black_level": list(self.black_level),
            "white_level": self.white_level,
            "base_iso": self.base_iso,
            "max_analogue_gain": self.max_analogue_gain,
            "electrons_at_white_per_lux": self.electrons_at_white_per_lux,
            "color_matrix": [list(r) for r in self.color_matrix],
            "white_balance": list(self.white_balance),
            "noise": [dataclasses.asdict(n) for n in self.noise],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "profile") -> SensorProfile:
        if not isinstance(data, dict):
            raise ProfileError(f"{origin}: a sensor profile must be a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ProfileError(f"{origin}: field 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
        if data.get("version") != SCHEMA_VERSION:
            raise ProfileError(
                f"{origin}: field 'version' is {data.get('version')!r}; this edge-isp reads version {SCHEMA_VERSION}"
            )
        required = ("name", "cfa", "bit_depth", "black_level", "white_level", "color_matrix", "white_balance", "noise")
        for key in required:
            if key not in data:
                raise ProfileError(f"{origin}: missing field {key!r}")
        known = {f.name for f in dataclasses.fields(cls)} | {"schema", "version"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"{origin}: unknown field(s) {', '.join(map(repr, unknown))}")
        noise_fields = {f.name for f in dataclasses.fields(NoiseAtGain)}
        entries = []
        for i, entry in enumerate(_as_list(data["noise"], "noise", origin)):
            if not isinstance(entry, dict):
                raise ProfileError(f"{origin}: field 'noise[{i}]' must be an object")
            bad = sorted(set(entry) - noise_fields)
            if bad:
                raise ProfileError(f"{origin}: unknown field(s) in 'noise[{i}]': {', '.join(bad)}")
            numeric = {k: v for k, v in entry.items() if k != "read_noise_lambda"}
            try:
                numeric = {k: float(_numbers(v, f"noise[{i}].{k}", ())) for k, v in numeric.items()}
                entries.append(NoiseAtGain(**numeric, read_noise_lambda=entry.get("read_noise_lambda")))
            except TypeError as exc:
                raise ProfileError(f"{origin}: field 'noise[{i}]': {exc}") from None
            except ProfileError as exc:
                raise ProfileError(f"{origin}: {exc}") from None
        kwargs = {k: v for k, v in data.items() if k not in ("schema", "version")}
        kwargs["noise"] = tuple(entries)
        kwargs["cfa"] = _field(lambda: CFA.parse(data["cfa"]), "cfa", origin)
        try:
            return cls(**kwargs)
        except ProfileError as exc:
            raise ProfileError(f"{origin}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the profile as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, name_or_path: str | Path) -> SensorProfile:
        """Load a profile from a JSON path, or a shipped one by name ("nexus6p-rear")."""
        path = profile_path(name_or_path)
        try:
            data = read_json(path, "sensor profile")
        except InvalidInputError as exc:
            raise ProfileError(str(exc)) from None
        return cls.from_dict(data, origin=str(path))


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package (from calibration/profiles/)."""
    return shipped_names("profiles", ".json")


def profile_path(name_or_path: str | Path) -> Path:
    """The JSON file of a profile: a path that exists, else a shipped profile's name."""
    return file_or_shipped(name_or_path, "profiles", ".json", "sensor profile")


def _as_list(value: Any, field: str, origin: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ProfileError(f"{origin}: field {field!r} must be a list")
    return list(value)


def _field(fn, field: str, origin: str):
    try:
        return fn()
    except InvalidInputError as exc:
        raise ProfileError(f"{origin}: field {field!r}: {exc}") from None


def _numbers(value: Any, field: str, shape: tuple[int, ...] | None) -> np.ndarray:
    """``value`` as float64 numbers of ``shape`` (None: any), finite; else a ProfileError."""
    try:
        raw = np.asarray(value, dtype=object)
        ok = all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in raw.reshape(-1))
        arr = raw.astype(np.float64) if ok else None
    except (ValueError, OverflowError):  # ragged lists; an integer too large for a float
        arr = None
    if arr is None:
        raise ProfileError(f"field {field!r} must be numbers, got {_shown(value)}")
    if shape is not None and arr.shape != shape:
        raise ProfileError(f"field {field!r} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ProfileError(f"field {field!r} must be finite, got {_shown(value)}")
    return arr


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_levels(bit_depth: Any, black_level: Any, white_level: Any) -> tuple[int, tuple[float, ...], float]:
    """The raw levels of a sensor or a frame, checked: ``(bit_depth, black_level (4,), white_level)``.

    ``bit_depth`` an integer 8..16; ``black_level`` one number or 4 (R, Gr, Gb, B), each >= 0;
    ``white_level`` above every black level and within ``bit_depth`` bits. The one check
    for profiles and RawFrames (their sidecars included). Raises :class:`ProfileError`
    naming the field.
    """
    if isinstance(bit_depth, (bool, np.bool_)) or not isinstance(bit_depth, numbers.Integral):
        raise ProfileError(f"field 'bit_depth' must be an integer 8..16, got {bit_depth!r}")
    bit_depth = int(bit_depth)
    if not 8 <= bit_depth <= 16:
        raise ProfileError(f"field 'bit_depth' must be an integer 8..16, got {bit_depth!r}")
    black_arr = _numbers(black_level, "black_level", None)
    if black_arr.shape not in ((), (4,)):
        raise ProfileError(f"field 'black_level' must be one number or 4 (R, Gr, Gb, B), got {black_level!r}")
    black = np.broadcast_to(black_arr, (4,))
    white = float(_numbers(white_level, "white_level", ()))
    if black.min() < 0:
        raise ProfileError(f"field 'black_level' must be >= 0, got {black.tolist()}")
    if white > 2**bit_depth - 1 or white <= black.max():
        raise ProfileError(
            f"field 'white_level' ({white}) must exceed every black level {black.tolist()} "
            f"and fit in {bit_depth} bits (<= {2**bit_depth - 1})"
        )
    return bit_depth, tuple(float(b) for b in black), white


def _validate(p: SensorProfile) -> None:
    if not isinstance(p.name, str) or not p.name:
        raise ProfileError("field 'name' must be a non-empty string")
    if not isinstance(p.description, str):
        raise ProfileError(f"field 'description' must be a string, got {p.description!r}")
    _numbers(p.black_level, "black_level", (4,))
    _, black_levels, white = check_levels(p.bit_depth, p.black_level, p.white_level)
    black = np.asarray(black_levels)
    ccm = _numbers(p.color_matrix, "color_matrix", (3, 3))
    if abs(np.linalg.det(ccm)) < 1e-6:
        raise ProfileError("field 'color_matrix' is singular")
    wb = _numbers(p.white_balance, "white_balance", (3,))
    if np.any(wb <= 0):
        raise ProfileError(f"field 'white_balance' must be positive gains, got {wb.tolist()}")
    for name in ("base_iso", "max_analogue_gain"):
        if not float(_numbers(getattr(p, name), name, ())) > 0:
            raise ProfileError(f"field {name!r} must be positive, got {getattr(p, name)!r}")
    per_lux = p.electrons_at_white_per_lux
    if per_lux is not None and not _numbers(per_lux, "electrons_at_white_per_lux", ()) > 0:
        raise ProfileError("field 'electrons_at_white_per_lux' must be positive")
    if not isinstance(p.noise, Sequence) or len(p.noise) == 0:
        raise ProfileError("field 'noise' must list at least one gain")
    previous_gain = previous_k = 0.0
    for i, n in enumerate(p.noise):
        where = f"noise[{i}]"
        for name in ("analogue_gain", "gain_dn_per_e"):
            if not float(_numbers(getattr(n, name), f"{where}.{name}", ())) > 0:
                raise ProfileError(f"field '{where}.{name}' must be positive, got {getattr(n, name)!r}")
        for name in ("read_noise_dn", "row_noise_dn"):
            if not float(_numbers(getattr(n, name), f"{where}.{name}", ())) >= 0:
                raise ProfileError(f"field '{where}.{name}' must be >= 0, got {getattr(n, name)!r}")
        lam = n.read_noise_lambda
        lam_ok = isinstance(lam, (int, float)) and not isinstance(lam, bool) and math.isfinite(lam) and lam > -0.5
        if lam is not None and not lam_ok:
            # The Tukey-lambda distribution has a finite variance only for lambda > -1/2.
            raise ProfileError(f"field '{where}.read_noise_lambda' must be a number > -0.5 or null, got {lam!r}")
        if n.analogue_gain <= previous_gain:
            raise ProfileError(f"field '{where}.analogue_gain': the noise table must be sorted by increasing gain")
        if n.gain_dn_per_e < previous_k:
            raise ProfileError(
                f"field '{where}.gain_dn_per_e': system gain K must not fall as analogue gain rises "
                f"({n.gain_dn_per_e} after {previous_k})"
            )
        previous_gain, previous_k = n.analogue_gain, n.gain_dn_per_e
    object.__setattr__(p, "black_level", tuple(black.tolist()))
    object.__setattr__(p, "white_level", white)
    object.__setattr__(p, "color_matrix", tuple(tuple(r) for r in ccm.tolist()))
    object.__setattr__(p, "white_balance", tuple(wb.tolist()))
    object.__setattr__(p, "noise", tuple(p.noise))
