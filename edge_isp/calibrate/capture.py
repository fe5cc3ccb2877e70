"""Live capture of a calibration set: a photon-transfer sweep at each gain, guided.

The capture drives a camera through what calibration/PROTOCOL.md asks of a person:

1. Flat fields ("point the camera at an evenly lit white surface"): for each gain, find the
   exposure that saturates the sensor (doubling from a start exposure, then a linear
   estimate from the level reached), then ``levels`` exposures equally spaced up to
   ``max_fraction`` of it, ``frames_per_level`` frames each, and a stack at half
   saturation for PRNU.
2. Darks ("cover the lens"): for each gain a stack at the shortest exposure (read noise,
   row noise, DSNU, defects) and, optionally, a pair at every exposure of the sweep (EMVA
   1288 subtracts the dark at the same exposure).

Every frame is checked against the request (the camera must honour manual exposure and
gain: auto exposure off) and against what it should see (light for flats, none for
darks), and saved as it comes (:func:`edge_isp.calibrate.frames.save_frames`).

A camera takes part through :class:`CalibrationSource` (set exposure and gain, capture a
RawFrame). :class:`ControlledSource` adapts a runtime
:class:`~edge_isp.runtime.interfaces.CameraSource` that offers ``exposure_time_s`` and
``analogue_gain`` controls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_isp.calibrate.frames import save_frames
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.frame import RawFrame

FLAT_INSTRUCTIONS = (
    "Point the camera at an evenly lit, matte white surface (a sheet of paper under a steady lamp, or a "
    "diffuser over the lens facing a lit wall) that fills the whole frame. Use DC or high-frequency light "
    "(no flickering mains LED), keep the camera and the light still, and turn auto exposure off."
)
DARK_INSTRUCTIONS = (
    "Cover the lens completely: lens cap on, or the camera face down on a dark cloth, in a dim room. "
    "No light may reach the sensor."
)
MAX_DARK_SIGNAL = 0.02
SETTING_TOLERANCE = 0.05


class CalibrationSource(Protocol):
    """What a capture needs from a camera: manual exposure and gain, then raw frames."""

    def set_exposure(self, exposure_time_s: float, analogue_gain: float) -> None:
        """Fix the exposure time (s) and analogue gain for the frames that follow."""

    def capture(self) -> RawFrame:
        """One raw frame taken with the current settings (its metadata says which)."""


class ControlledSource:
    """A runtime CameraSource with ``exposure_time_s`` and ``analogue_gain`` controls, as a
    :class:`CalibrationSource`. The source must be open."""

    def __init__(self, camera) -> None:
        controls = camera.controls()
        missing = [c for c in ("exposure_time_s", "analogue_gain") if c not in controls]
        if missing:
            raise InvalidInputError(
                f"camera source {camera.name!r} cannot set {', '.join(missing)} manually (its controls: "
                f"{sorted(controls) or 'none'}); calibration needs fixed exposure and gain"
            )
        self.camera = camera

    def set_exposure(self, exposure_time_s: float, analogue_gain: float) -> None:
        self.camera.set_control("exposure_time_s", exposure_time_s)
        self.camera.set_control("analogue_gain", analogue_gain)

    def capture(self) -> RawFrame:
        return self.camera.read()


@dataclasses.dataclass(frozen=True)
class CapturePlan:
    """How many frames at which settings (defaults follow calibration/PROTOCOL.md).

    Attributes:
        gains: analogue gains to calibrate.
        levels: flat-field exposure levels per gain.
        frames_per_level: flat frames per level (2: a pair).
        flat_stack: extra flats at half saturation (PRNU); 0 for none.
        dark_frames: dark stack per gain.
        dark_pair_per_level: also a dark pair at every exposure of the sweep.
        max_fraction: the sweep's last exposure as a fraction of the saturating one (> 1
            so the photon transfer curve shows saturation).
        start_exposure_s, min_exposure_s, max_exposure_s: the search for saturation.
        discard_frames: frames dropped after each change of settings (sensor pipelines
            apply new controls a few frames late).
    """

    gains: tuple[float, ...] = (1.0, 2.0, 4.0)
    levels: int = 20
    frames_per_level: int = 2
    flat_stack: int = 16
    dark_frames: int = 16
    dark_pair_per_level: bool = True
    max_fraction: float = 1.15
    start_exposure_s: float = 1e-3
    min_exposure_s: float = 2e-5
    max_exposure_s: float = 1.0
    discard_frames: int = 0

    def __post_init__(self) -> None:
        if not self.gains or any(not g > 0 for g in self.gains):
            raise InvalidInputError(f"gains must be positive numbers, got {self.gains}")
        # Photon transfer fits the levels below 70 % of saturation and needs 5 of them there.
        if self.levels < 10 or self.frames_per_level < 2 or self.dark_frames < 2:
            raise InvalidInputError(
                "a photon-transfer capture needs levels >= 10, frames_per_level >= 2 and dark_frames >= 2; got "
                f"{self.levels}, {self.frames_per_level}, {self.dark_frames}"
            )
        if not 0 < self.min_exposure_s <= self.start_exposure_s <= self.max_exposure_s:
            raise InvalidInputError(
                "exposures must satisfy 0 < min <= start <= max; got "
                f"{self.min_exposure_s}, {self.start_exposure_s}, {self.max_exposure_s}"
            )

    def frame_count(self) -> int:
        """Frames the plan captures (without the saturation search)."""
        per_gain = self.levels * self.frames_per_level + self.flat_stack + self.dark_frames
        if self.dark_pair_per_level:
            per_gain += 2 * (self.levels - 1)
        return per_gain * len(self.gains)


def _signal_fraction(frame: RawFrame) -> float:
    """Median of the green planes above black, as a fraction of full scale."""
    planes = pack(frame.data, frame.cfa)
    black = float(np.mean(frame.black_level[1:3]))
    green = np.median(planes[1:3][:, ::4, ::4])
    return (float(green) - black) / (frame.white_level - black)


class _Session:
    def __init__(self, source: CalibrationSource, plan: CapturePlan) -> None:
        self.source, self.plan = source, plan

    def take(self, exposure_s: float, gain: float, count: int) -> list[RawFrame]:
        self.source.set_exposure(exposure_s, gain)
        for _ in range(self.plan.discard_frames):
            self.source.capture()
        frames = [self.source.capture() for _ in range(count)]
        for f in frames:
            _check_settings(f, exposure_s, gain)
        return frames

    def saturating_exposure(self, gain: float) -> float:
        plan = self.plan
        t = plan.start_exposure_s
        level = _signal_fraction(self.take(t, gain, 1)[0])
        while level > 0.8 and t > plan.min_exposure_s:
            t = max(t / 4, plan.min_exposure_s)
            level = _signal_fraction(self.take(t, gain, 1)[0])
        while level < 0.3 and t < plan.max_exposure_s:
            t = min(t * 2, plan.max_exposure_s)
            level = _signal_fraction(self.take(t, gain, 1)[0])
        if level < 0.3:
            raise InvalidInputError(
                f"the flat field is too dark: at gain {gain:g} and the longest exposure ({plan.max_exposure_s:g} s) "
                f"it reaches only {level:.0%} of full scale; brighten the light or bring it closer"
            )
        if level > 0.8:
            raise InvalidInputError(
                f"the flat field is too bright: at gain {gain:g} even {plan.min_exposure_s * 1e6:g} us reaches "
                f"{level:.0%} of full scale; dim the light or add a diffuser"
            )
        return t / level


def _check_settings(frame: RawFrame, exposure_s: float, gain: float) -> None:
    # A source that reports 0 does not know its settings; one that reports others ignored ours.
    for name, got, want in (("exposure", frame.exposure_time_s, exposure_s), ("gain", frame.analogue_gain, gain)):
        if got > 0 and abs(got - want) > SETTING_TOLERANCE * want:
            raise InvalidInputError(
                f"the camera took a frame at {name} {got:g} after {want:g} was requested: turn auto exposure and "
                "auto gain off (the calibration needs manual settings)"
            )


def plan_exposures(plan: CapturePlan, saturating_s: float) -> np.ndarray:
    """The sweep's exposures (s): ``levels`` values equally spaced up to ``max_fraction`` of saturation."""
    return plan.max_fraction * saturating_s * np.arange(1, plan.levels + 1) / plan.levels


def run_capture(
    source: CalibrationSource,
    plan: CapturePlan,
    out_dir: str | Path,
    *,
    say: Callable[[str], None] = print,
    wait: Callable[[str], object] = input,
    progress: bool = False,
) -> list[Path]:
    """Capture a calibration set into ``out_dir``, telling the person what to do.

    Args:
        source: the camera.
        plan: what to capture.
        out_dir: where the frames and their manifest go.
        say: shows an instruction or progress message.
        wait: blocks until the person confirms (Enter), given the prompt.
        progress: show a progress bar.

    Returns the ``.npy`` paths written. Raises InvalidInputError when the camera does not
    keep manual settings, the light is too dim or too bright, or light leaks into darks.
    """
    session = _Session(source, plan)
    sweeps: dict[float, np.ndarray] = {}

    def flats() -> Iterator[tuple[str, RawFrame]]:
        say("Step 1 of 2, flat fields. " + FLAT_INSTRUCTIONS)
        wait("Press Enter when the camera sees the white surface. ")
        for gain in plan.gains:
            saturating = session.saturating_exposure(gain)
            sweeps[gain] = plan_exposures(plan, saturating)
            say(f"gain {gain:g}: saturation at about {saturating * 1e3:.3g} ms; {plan.levels} exposure levels")
            for t in _bar(sweeps[gain], progress, f"flats, gain {gain:g}"):
                for frame in session.take(float(t), gain, plan.frames_per_level):
                    yield "flat", frame
            if plan.flat_stack:
                for frame in session.take(0.5 * saturating, gain, plan.flat_stack):
                    yield "flat", frame

    def darks() -> Iterator[tuple[str, RawFrame]]:
        say("Step 2 of 2, dark frames. " + DARK_INSTRUCTIONS)
        wait("Press Enter when the lens is covered. ")
        for gain in plan.gains:
            exposures = sweeps[gain]
            stack = session.take(float(exposures[0]), gain, plan.dark_frames)
            _check_dark(stack[0], gain)
            yield from (("dark", f) for f in stack)
            if plan.dark_pair_per_level:
                for t in _bar(exposures[1:], progress, f"darks, gain {gain:g}"):
                    pair = session.take(float(t), gain, 2)
                    _check_dark(pair[0], gain)
                    yield from (("dark", f) for f in pair)

    def everything() -> Iterator[tuple[str, RawFrame]]:
        yield from flats()
        yield from darks()

    paths = save_frames(out_dir, everything())
    say(f"Captured {len(paths)} frames into {out_dir}. Next: edge-isp calibrate ptc {out_dir} --out PROFILE_DIR")
    return paths


def _check_dark(frame: RawFrame, gain: float) -> None:
    level = _signal_fraction(frame)
    if level > MAX_DARK_SIGNAL:
        raise InvalidInputError(
            f"light reaches the sensor in the dark frames (gain {gain:g}: {level:.1%} of full scale above black); "
            "cover the lens completely and dim the room, then capture again"
        )


def _bar(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="level", leave=False)
