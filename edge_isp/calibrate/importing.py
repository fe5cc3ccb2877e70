"""A sensor profile from a noise description someone else measured, for a camera not at hand.

Three published forms of the Poisson-Gaussian model carry enough to build a profile's noise
table (the conversions themselves live in :mod:`edge_isp.sensor.noise_formats`):

- darktable's noise profiles (``noiseprofiles.json``): one entry per ISO, so a whole table.
  The file holds no raw levels; the caller gives them. Gain 1 is ``base_iso``, by default
  the lowest ISO imported.
- a DNG NoiseProfile tag (51041): one (S, O) pair per colour plane at the ISO the file was
  shot at, so one gain, ``iso / base_iso``.
- a libcamera Raspberry Pi tuning file's ``rpi.noise`` block: one gain (analogue gain 1).
  Its black level is taken from the file's ``rpi.black_level`` block when not given.

The profile gets an identity colour matrix and unit white balance (none of the forms holds
colour), no row noise and Gaussian read noise (none holds those either). What the
conversions had to average or assume comes back as notes beside the profile.

A sensor profile requires system gain K not to fall as gain rises (the simulator inverts
K(gain) to pick the gain that exposes white to full scale). Published tables sometimes
break that at their top ISOs; the import then refuses with the ISOs and values involved
and names the subset that keeps K rising, to pass as ``isos``. It never drops entries
silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.calibrate import darktable_fit, rpi_tuning
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor import noise_formats
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.noise_formats import DARKTABLE_HAAR_WHITE, PlaneSpread
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
# A single-gain source says nothing about the sensor's gain range; this is SensorProfile's
# own default, and above the table the profile scales K with gain at constant read noise (e-).
SINGLE_GAIN_MAX_ANALOGUE_GAIN = 16.0
DARKTABLE_METHODS = ("fit", "per-iso")


@dataclasses.dataclass(frozen=True)
class ImportedProfile:
    """A profile built from another tool's noise description, and what the import assumed.

    Attributes:
        profile: the sensor profile.
        spreads: per noise-table entry, the per-plane K (DN/e-) and read noise (DN) that
            were averaged into it; empty for sources with one value for all planes.
        notes: one line each for every default applied and every conversion warning.
        fit: the model fitted across ISO (darktable's ``method="fit"``), else None.
    """

    profile: SensorProfile
    spreads: tuple[PlaneSpread, ...]
    notes: tuple[str, ...]
    fit: darktable_fit.DarktableFit | None = None


# -- reading the sources --------------------------------------------------------------------
def read_json_document(path: str | Path, what: str) -> Any:
    """Parse a JSON file; a missing or malformed file raises an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {str(path)!r} does not exist (expected a JSON file)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None


def darktable_cameras(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (maker, model) pair in a darktable noiseprofiles.json document, in file order."""
    cameras = []
    for m in data.get("noiseprofiles", []) if isinstance(data, dict) else []:
        if isinstance(m, dict):
            cameras += [(m.get("maker"), c.get("model")) for c in m.get("models", []) if isinstance(c, dict)]
    return [(str(maker), str(model)) for maker, model in cameras]


def find_darktable_camera(data: dict[str, Any], *, maker: str, model: str) -> list[dict[str, Any]]:
    """One camera's entries (exact maker and model, as darktable spells them).

    When there is no such camera, the error lists the closest (maker, model) pairs in the
    file, compared without regard to case, so a misspelt or mis-cased name is easy to fix.
    """
    try:
        entries = noise_formats.darktable_entries(data, maker=maker, model=model)
    except InvalidInputError:
        if not (isinstance(data, dict) and data.get("version") == noise_formats.DARKTABLE_FILE_VERSION):
            raise
        cameras = darktable_cameras(data)
        keys = {f"{mk} {md}".lower(): (mk, md) for mk, md in cameras}
        wanted = f"{maker} {model}".lower()
        close = difflib.get_close_matches(wanted, list(keys), n=5, cutoff=0.6)
        # A model name alone (most makers repeat theirs in it) also deserves a suggestion.
        close += [k for k in keys if model.lower() and model.lower() in k and k not in close][:5]
        hint = (
            "closest: " + "; ".join(f"maker {keys[k][0]!r} model {keys[k][1]!r}" for k in close)
            if close
            else f"nothing close among its {len(cameras)} cameras"
        )
        raise InvalidInputError(
            f"no darktable noise profile for maker {maker!r} model {model!r}: expected a maker and model "
            f"spelt exactly as in the file; {hint}"
        ) from None
    if not entries:
        raise InvalidInputError(f"darktable lists {maker!r} {model!r} but every one of its entries is marked 'skip'")
    return entries


def parse_dng_noise_profile(text: str) -> list[tuple[float, float]]:
    """``"S,O"`` or ``"S,O,S,O,S,O"`` (planes R, G, B), as exiftool prints the tag, into pairs."""
    fields = [f for f in re.split(r"[,\s]+", str(text).strip()) if f]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise InvalidInputError(f"a DNG NoiseProfile must be numbers 'S,O[,S,O,S,O]', got {text!r}") from None
    if len(values) not in (2, 6):
        raise InvalidInputError(
            f"a DNG NoiseProfile is 2 numbers (S,O for every plane) or 6 (S,O for R, G, B), got {len(values)}: {text!r}"
        )
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def rpi_black_level(tuning: dict[str, Any], bit_depth: int) -> float | None:
    """The black level of a Raspberry Pi tuning file at ``bit_depth`` bits, DN; None if absent.

    libcamera's ``rpi.black_level`` block keeps it on the 16-bit scale the IPA works on
    (4096 = 64 DN at 10 bits, 256 at 12).
    """
    block = tuning.get("rpi.black_level") if isinstance(tuning, dict) else None
    for algorithm in tuning.get("algorithms", []) if isinstance(tuning, dict) else []:
        if isinstance(algorithm, dict) and "rpi.black_level" in algorithm:
            block = algorithm["rpi.black_level"]
    if not isinstance(block, dict) or "black_level" not in block:
        return None
    value = _number(block["black_level"], "rpi.black_level black_level", non_negative=True)
    return value / 2.0 ** (noise_formats.RPI_SAMPLE_BITS - bit_depth)


# -- the three imports ----------------------------------------------------------------------
def import_darktable(
    data: dict[str, Any],
    *,
    maker: str,
    model: str,
    name: str,
    cfa: CFA | str,
    bit_depth: int,
    black_level: float | Sequence[float],
    white_level: float | None = None,
    base_iso: float | None = None,
    isos: Sequence[float] | None = None,
    variance_scale: float = DARKTABLE_HAAR_WHITE,
    max_analogue_gain: float | None = None,
    electrons_at_white_per_lux: float | None = None,
    description: str | None = None,
    source: str = "a darktable noiseprofiles.json",
    method: str = "fit",
) -> ImportedProfile:
    """A profile from one camera's darktable noise profiles: one table entry per ISO.

    Args:
        data: the parsed noiseprofiles.json document.
        maker, model: the camera, spelt as in the file.
        name: the profile's name.
        cfa: Bayer pattern of the camera's raw.
        bit_depth: bits per raw sample.
        black_level: the raw's black level, DN (one number or 4: R, Gr, Gb, B).
        white_level: the raw's white level, DN (default: full scale, ``2**bit_depth - 1``).
            darktable's a and b are on the scale ``(DN - black) / (white - black)``, so
            these levels set K and the read noise in DN. The normalized noise the
            simulator uses does not depend on them (with one black level for all
            planes); only the size of a DN step does.
        base_iso: the ISO of analogue gain 1 (default: the lowest ISO imported).
        isos: the ISOs to import (default: all the camera's entries).
        variance_scale: darktable's band variance over pixel variance; see
            :func:`~edge_isp.sensor.noise_formats.to_darktable` (default 1/4, exact only
            for noise that demosaicking left white).
        max_analogue_gain: the highest gain the profile covers (default: the highest imported).
        electrons_at_white_per_lux: photo-electrons at white per lux, e-/lx (default none:
            the profile then takes light levels in electrons only).
        description: the profile's description (default: the provenance, generated).
        source: where ``data`` came from, for the generated description.
        method: ``"fit"`` (default): the green entries only, the way darktable's denoiser
            uses them, with one physical model fitted across ISO
            (:mod:`edge_isp.calibrate.darktable_fit`); ``"per-iso"``: each ISO converted
            alone with the three planes averaged (how oneplus6-rear was made; its read
            noise zig-zags with ISO and its R/B slopes are not raw-plane gains).
    """
    entries = find_darktable_camera(data, maker=maker, model=model)
    entries = _select_isos(entries, isos, maker, model)
    notes: list[str] = []
    white, white_note = _white(white_level, bit_depth)
    notes += white_note
    if base_iso is None:
        base_iso = min(float(e["iso"]) for e in entries)
        notes.append(f"base ISO not given: the lowest ISO imported, {base_iso:g}, is analogue gain 1")
    base_iso = _number(base_iso, "base_iso", positive=True)
    if method not in DARKTABLE_METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(DARKTABLE_METHODS)}, got {method!r}")
    table, spreads, labels, fit = [], [], [], None
    isos_used = [float(e["iso"]) for e in entries]
    if method == "fit":
        black4 = _black4(black_level)
        fit = darktable_fit.fit_darktable(
            entries, range_dn=white - float(np.mean(black4)), variance_scale=variance_scale,
            where=f"darktable {maker} {model}",
        )  # fmt: skip
        table = fit.table(base_iso)
        notes += list(fit.notes)
        notes.append(
            f"green entries only (as darktable's denoiser uses them); K = {fit.k_per_iso * 100:.5g} DN/e- per ISO 100 "
            f"(standard error {fit.k_rel_se:.1%}; entries within {max(map(abs, fit.k_deviation)):.1%} of the line); "
            f"read noise sqrt((K x {fit.pre_e:.3g} e-)^2 + ({fit.post_dn:.3g} DN)^2); b residuals up to "
            f"{max(map(abs, fit.b_residual)):.0%} of the largest b"
        )
        how = (
            f"green entries only (darktable's denoiser uses only green, times the white balance), fitted across "
            f"ISO with K proportional to ISO ({fit.k_per_iso * 100:.5g} DN/e- per ISO 100, standard error "
            f"{fit.k_rel_se:.1%}) and read noise^2 = (K x {fit.pre_e:.3g} e-)^2 + ({fit.post_dn:.3g} DN)^2"
        )
    else:
        with _conversion_notes(notes):
            for entry in entries:
                single, entry_spreads = noise_formats.from_darktable(
                    [entry],
                    name=name,
                    cfa=cfa,
                    bit_depth=bit_depth,
                    black_level=black_level,
                    white_level=white,
                    base_iso=base_iso,
                    variance_scale=variance_scale,
                )
                table.append(single.noise[0])
                spreads += entry_spreads
                labels.append(f"ISO {float(entry['iso']):g}")
        _check_k_rises(table, labels, isos_used)
        how = "each ISO converted alone, the colour planes' values averaged"
    if description is None:
        description = (
            f"Noise from darktable's measured noise profiles of the {maker} {model} ({source}), ISOs "
            f"{_iso_list(isos_used)} with base ISO {base_iso:g} as analogue gain 1, "
            f"converted with variance_scale {variance_scale:g} (darktable's Haar-band variance over pixel variance); "
            f"{how}; levels black {black_level} and white {white:g} DN given at import (darktable's file holds none); "
            "colour not calibrated (identity matrix, unit white balance)."
        )
    target = _Target(name, cfa, bit_depth, black_level, white, base_iso, electrons_at_white_per_lux)
    top = max_analogue_gain if max_analogue_gain is not None else table[-1].analogue_gain
    return ImportedProfile(target.profile(table, top, description), tuple(spreads), tuple(notes), fit)


def import_dng_noise_profile(
    pairs: Sequence[Sequence[float]],
    *,
    iso: float,
    name: str,
    cfa: CFA | str,
    bit_depth: int,
    black_level: float | Sequence[float],
    white_level: float | None = None,
    base_iso: float = 100.0,
    max_analogue_gain: float | None = None,
    electrons_at_white_per_lux: float | None = None,
    description: str | None = None,
) -> ImportedProfile:
    """A one-gain profile from a DNG NoiseProfile tag recorded at ``iso``.

    ``pairs`` is 1 or 3 (S, O) pairs (planes R, G, B); the levels, DN, are the DNG's own
    BlackLevel and WhiteLevel (white default: full scale), which fix the scale of S and O.
    The entry's analogue gain is ``iso / base_iso``; ``max_analogue_gain`` defaults to the
    larger of that gain and 16. Other gains follow the profile's extrapolation: K
    proportional to gain, read noise constant in electrons.
    """
    iso = _number(iso, "iso", positive=True)
    base_iso = _number(base_iso, "base_iso", positive=True)
    white, notes = _white(white_level, bit_depth)
    with _conversion_notes(notes):
        entry, spread = noise_formats.from_dng_noise_profile(
            pairs, black_level=black_level, white_level=white, analogue_gain=iso / base_iso
        )
    if description is None:
        description = (
            f"Noise from a DNG NoiseProfile tag at ISO {iso:g} (base ISO {base_iso:g}), with the DNG's levels black "
            f"{black_level} and white {white:g} DN; one gain measured, others extrapolated (K proportional to gain, "
            "read noise constant in electrons); colour not calibrated (identity matrix, unit white balance)."
        )
    target = _Target(name, cfa, bit_depth, black_level, white, base_iso, electrons_at_white_per_lux)
    profile = target.profile([entry], _single_gain_max(entry, max_analogue_gain, notes), description)
    return ImportedProfile(profile, (spread,), tuple(notes))


def import_rpi_tuning(
    tuning: dict[str, Any],
    *,
    name: str,
    cfa: CFA | str,
    bit_depth: int,
    black_level: float | Sequence[float] | None = None,
    white_level: float | None = None,
    base_iso: float = 100.0,
    max_analogue_gain: float | None = None,
    electrons_at_white_per_lux: float | None = None,
    description: str | None = None,
    source: str = "a libcamera Raspberry Pi tuning file",
    read_noise_e: Sequence[float] | None = None,
    read_noise_source: str | None = None,
    colour_temperature_k: float | None = rpi_tuning.D65_KELVIN,
) -> ImportedProfile:
    """A profile from a Raspberry Pi tuning file: K at analogue gain 1 from ``rpi.noise``,
    colour from ``rpi.ccm`` and ``rpi.awb``, the read noise from the caller.

    ``bit_depth`` is the raw mode's (10 or 12 on most Pi sensors). The black level, DN,
    defaults to the file's ``rpi.black_level`` at that depth; the white level to full
    scale; the highest gain to the largest gain the file's AGC asks for.

    ``read_noise_e`` (electrons at gain 1 and at the highest gain, or one value for all)
    gives a table over the gain range (:func:`~edge_isp.calibrate.rpi_tuning.read_noise_table`);
    ``read_noise_source`` says where it comes from, for the description. Without it the
    file's ``reference_constant`` is the read noise at gain 1 (0, with a note, in every file
    libcamera ships: its tuning tool clamps a negative fit to 0) and other gains are
    extrapolated. ``colour_temperature_k`` picks the illuminant of the colour (None: no
    colour, identity matrix and unit white balance).
    """
    block = noise_formats.rpi_noise_block(tuning)
    missing = [k for k in ("reference_constant", "reference_slope") if not isinstance(block, dict) or k not in block]
    if missing:
        raise InvalidInputError(
            f"the tuning file's 'rpi.noise' block must hold reference_constant and reference_slope, missing {missing}"
        )
    notes: list[str] = []
    if black_level is None:
        black_level = rpi_black_level(tuning, bit_depth) if isinstance(bit_depth, int) else None
        if black_level is None:
            raise InvalidInputError(
                "the black level is needed: the tuning file has no 'rpi.black_level' block, so give it (DN)"
            )
        notes.append(
            f"black level not given: the tuning file's rpi.black_level, {black_level:g} DN at {bit_depth} bits"
        )
    white, white_note = _white(white_level, bit_depth)
    notes += white_note
    constant, slope = block["reference_constant"], block["reference_slope"]
    if read_noise_e is None:
        with _conversion_notes(notes):
            entry = noise_formats.from_rpi_noise(constant, slope, bit_depth=bit_depth)
    else:  # the file's constant is not used, so its being 0 is no warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", noise_formats.NoiseConversionWarning)
            entry = noise_formats.from_rpi_noise(constant, slope, bit_depth=bit_depth)
    colour = rpi_tuning.rpi_colour(tuning, colour_temperature_k) if colour_temperature_k is not None else None
    if colour is not None:
        notes.append(colour[2])
    else:
        notes.append("colour not imported (identity matrix, unit white balance): " + (
            "not asked for" if colour_temperature_k is None else "the file lacks rpi.ccm or an rpi.awb ct_curve"
        ))  # fmt: skip
    colour_text = colour[2] if colour is not None else "colour not calibrated (identity matrix, unit white balance)"
    conversion = (
        f"K = reference_slope^2 / 2^(16 - {bit_depth}) = {entry.gain_dn_per_e:.4g} DN/e- at analogue gain 1 "
        "(the tuning tool fits std = c + s sqrt(mean) to chart patches on a 16-bit scale divided by the gain)"
    )
    if read_noise_e is None:
        top = _single_gain_max(entry, max_analogue_gain, notes)
        table = [entry]
        noise_text = (
            f"{conversion}; read noise = reference_constant / 2^(16 - {bit_depth}) = {entry.read_noise_dn:.4g} DN; "
            "other gains extrapolated (K proportional to gain, read noise constant in electrons)"
        )
    else:
        top = max_analogue_gain if max_analogue_gain is not None else rpi_tuning.agc_max_gain(tuning)
        if top is None:
            top = SINGLE_GAIN_MAX_ANALOGUE_GAIN
            notes.append(f"max analogue gain not given and the file has no AGC gains: {top:g}")
        elif max_analogue_gain is None:
            notes.append(f"max analogue gain not given: {top:g}, the largest gain the file's AGC asks for")
        unity = dataclasses.replace(entry, read_noise_dn=0.0)
        table, pre_e, post_dn = rpi_tuning.read_noise_table(unity, read_noise_e, top)
        values = [float(v) for v in read_noise_e]
        noise_text = (
            f"{conversion}; reference_constant {constant} gives no read noise, so it is "
            f"{values[0]:g} e- at gain 1 and {values[-1]:g} e- at gain {top:g} "
            f"({read_noise_source or 'given at import'}), spread by a pre/post-amplifier model: "
            f"read(g)^2 = (K(g) x {pre_e:.3g} e-)^2 + ({post_dn:.3g} DN)^2"
        )
    if description is None:
        description = (
            f"Noise from {source}: {noise_text}; levels black {black_level} and white {white:g} DN, "
            f"{bit_depth}-bit mode; {colour_text}."
        )
    target = _Target(name, cfa, bit_depth, black_level, white, base_iso, electrons_at_white_per_lux)
    profile = target.profile(table, top, description, colour=colour[:2] if colour is not None else None)
    return ImportedProfile(profile, (), tuple(notes))


# -- shared steps ---------------------------------------------------------------------------
def _number(value: Any, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or (positive and out <= 0) or (non_negative and out < 0):
        expected = "> 0" if positive else ">= 0" if non_negative else "finite"
        raise InvalidInputError(f"{name} must be a finite number {expected}, got {value!r}")
    return out


def _black4(black_level: float | Sequence[float]) -> tuple[float, float, float, float]:
    """One black level for every plane, or 4 (R, Gr, Gb, B), as the profile's 4-tuple."""
    values = [black_level] if isinstance(black_level, (int, float)) else list(black_level)
    if len(values) not in (1, 4):
        raise InvalidInputError(f"black_level must be one number or 4 (R, Gr, Gb, B), got {len(values)}: {values}")
    numbers = [_number(v, "black_level", non_negative=True) for v in values]
    return tuple(numbers * 4 if len(numbers) == 1 else numbers)


def _iso_list(isos) -> str:
    return ", ".join(f"{iso:g}" for iso in isos)


def _white(white_level: float | None, bit_depth: int) -> tuple[float, list[str]]:
    if white_level is not None:
        return _number(white_level, "white_level", positive=True), []
    if not (isinstance(bit_depth, int) and not isinstance(bit_depth, bool) and 8 <= bit_depth <= 16):
        raise InvalidInputError(f"bit_depth must be an integer 8..16, got {bit_depth!r}")
    white = float(2**bit_depth - 1)
    return white, [f"white level not given: full scale at {bit_depth} bits, {white:g} DN"]


def _select_isos(entries: list[dict[str, Any]], isos: Sequence[float] | None, maker: str, model: str) -> list:
    available = [darktable_fit.entry_iso(e, f"darktable {maker} {model}") for e in entries]
    duplicated = sorted({iso for iso in available if available.count(iso) > 1})
    if isos is None:
        if duplicated:
            raise InvalidInputError(
                f"darktable has more than one entry for {maker} {model} at ISO {_iso_list(duplicated)} (expected "
                f"one per ISO), so which to use is unclear; choose the ISOs with isos (--isos), e.g. "
                f"{_iso_list(sorted(set(available) - set(duplicated)))}"
            )
        return sorted(entries, key=lambda e: float(e["iso"]))
    wanted = [_number(i, "iso", positive=True) for i in isos]
    unknown = [i for i in wanted if i not in available]
    if unknown:
        raise InvalidInputError(
            f"darktable has no entry for {maker} {model} at ISO {_iso_list(unknown)}; "
            f"expected ISOs among {_iso_list(sorted(set(available)))}"
        )
    clash = sorted({i for i in wanted if i in duplicated})
    if clash:
        raise InvalidInputError(
            f"darktable has more than one entry for {maker} {model} at ISO {_iso_list(clash)}, "
            "so those cannot be imported (expected one entry per ISO); leave them out"
        )
    chosen = set(wanted)
    return sorted((e for e in entries if float(e["iso"]) in chosen), key=lambda e: float(e["iso"]))


def _check_k_rises(table: list[NoiseAtGain], labels: list[str], isos: list[float]) -> None:
    for i in range(1, len(table)):
        before, after = table[i - 1].gain_dn_per_e, table[i].gain_dn_per_e
        if after < before:
            keep = _iso_list(isos[:i])
            raise InvalidInputError(
                f"system gain K falls from {before:.5g} DN/e- at {labels[i - 1]} to {after:.5g} at {labels[i]}: a "
                f"sensor profile needs K to rise with gain (expected >= {before:.5g}, got {after:.5g}), since the "
                f"simulator picks the gain from K. Import a subset whose K rises with isos (--isos), e.g. {keep}"
            )


def _single_gain_max(entry: NoiseAtGain, max_analogue_gain: float | None, notes: list[str]) -> float:
    if max_analogue_gain is not None:
        return max_analogue_gain
    top = max(entry.analogue_gain, SINGLE_GAIN_MAX_ANALOGUE_GAIN)
    notes.append(f"max analogue gain not given: {top:g} (the source describes one gain only)")
    return top


@contextlib.contextmanager
def _conversion_notes(notes: list[str]) -> Iterator[None]:
    """Turn the conversions' NoiseConversionWarnings inside the block into lines of ``notes``;
    other warnings are passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", noise_formats.NoiseConversionWarning)
        yield
    for w in caught:
        if issubclass(w.category, noise_formats.NoiseConversionWarning):
            notes.append(str(w.message))
        else:  # not ours to swallow
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@dataclasses.dataclass(frozen=True)
class _Target:
    """The profile an import writes, less what its source gives: the name, the raw's format and
    levels (DN, white resolved), the ISO and lux scales: what every import takes from its caller alike."""

    name: str
    cfa: CFA | str
    bit_depth: int
    black_level: float | Sequence[float]
    white_level: float
    base_iso: float
    electrons_at_white_per_lux: float | None

    def profile(
        self, table: Sequence[NoiseAtGain], max_analogue_gain: float, description: str, colour=None
    ) -> SensorProfile:
        """The profile with the source's noise ``table``, which ``max_analogue_gain`` must cover,
        and ``colour`` ``(color_matrix, white_balance)`` when the source has it."""
        top = _number(max_analogue_gain, "max_analogue_gain", positive=True)
        if top < table[-1].analogue_gain:
            raise InvalidInputError(
                f"max_analogue_gain must cover the noise table: expected >= {table[-1].analogue_gain:g} "
                f"(its highest gain), got {top:g}"
            )
        per_lux = self.electrons_at_white_per_lux
        if per_lux is not None and not (math.isfinite(float(per_lux)) and float(per_lux) > 0):
            raise InvalidInputError(f"electrons_at_white_per_lux must be a positive number (e-/lx), got {per_lux!r}")
        return SensorProfile(
            name=self.name,
            cfa=CFA.parse(self.cfa),
            bit_depth=self.bit_depth,
            black_level=_black4(self.black_level),
            white_level=self.white_level,
            color_matrix=colour[0] if colour else IDENTITY,
            white_balance=colour[1] if colour else (1.0, 1.0, 1.0),
            noise=tuple(table),
            base_iso=self.base_iso,
            max_analogue_gain=top,
            electrons_at_white_per_lux=None if per_lux is None else float(per_lux),
            description=description,
        )
