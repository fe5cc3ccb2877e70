"""The simulated camera: a moving scene rendered through a sensor profile at a light level
that can change while it runs. The demo's source, and the one the pipeline is tested on.

Per frame (numpy only, see :mod:`~edge_isp.runtime.sources.rawsynth`): the scene's garments
are composited over the background in linear camera RGB, directly in the mosaic (the
background and the sprites are converted once, at open), then shot, read and row noise, the
black level, rounding and clipping give the raw the sensor would deliver. Compositing in
linear light rather than in sRGB (as the data set's builder does) changes only the soft
edge of each garment.

Frame ``n`` shows the scene at ``t = n / fps``, so a run is reproducible from its seed
whatever the pacing. :attr:`SimulatedSource.last_truth` holds the ground truth of the last
frame read.

Two ways to expose. By default the simulator exposes ideally, as the training data does: the
analogue gain puts white at full scale (or is fixed) and the frame's digital gain brings white
to 1.0. Given ``exposure_time_s`` or an ``auto_exposure`` controller it behaves as a sensor
instead: it obeys exposure-time and analogue-gain controls (``electrons_at_white`` is then the
light collected in :data:`REFERENCE_EXPOSURE_S` and scales with the exposure time), applies
them ``control_delay_frames`` frames after they are written, as a sensor does, clips at the
white level, and its frames carry the exposure and gain they were taken with and digital
gain 1 (or the controller's): the noise is the profile's at that gain.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.data.sources import CLASS_NAMES
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.exposure import ControlDelay, ExposureController, ExposureSetting
from edge_isp.runtime.interfaces import CameraSource
from edge_isp.runtime.sources import rawsynth
from edge_isp.runtime.sources.clock import Clock, Pacer, SystemClock, check_fps
from edge_isp.runtime.sources.scene import DEFAULT_SCALE, MovingScene, build_scene
from edge_isp.sensor.cfa import per_channel_map
from edge_isp.sensor.exposure import Exposure, choose_exposure
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

DEFAULT_PROFILE = "nexus6p-rear"
DEFAULT_LUX = 30.0
CONTROLS = ("lux", "electrons_at_white", "analogue_gain", "exposure_time_s")
# As a sensor: the exposure at which ``electrons_at_white`` (and so ``lux``) is counted.
REFERENCE_EXPOSURE_S = 1 / 30
# The simulated sensor's exposure range, seconds.
SENSOR_EXPOSURE_RANGE_S = (1e-5, 1.0)
# The valid range of each numeric light control, inclusive. Lux spans a moonless night to full
# sunlight; photo-electrons at white span what those give a small to a large pixel. Outside them
# the simulation itself breaks down (Poisson means past ~1e18, digital gains that overflow).
# ``analogue_gain`` is ``"auto"`` or a number in (0, the profile's ``max_analogue_gain``].
CONTROL_RANGES = {"lux": (0.01, 200_000.0), "electrons_at_white": (0.001, 1e7)}


def load_profile(profile: SensorProfile | str | Path) -> SensorProfile:
    """A profile object, or one loaded from a path or a shipped profile's name."""
    return profile if isinstance(profile, SensorProfile) else SensorProfile.load(profile)


class SimulatedSource(CameraSource):
    """Raw frames of a :class:`~edge_isp.runtime.sources.scene.MovingScene` through a profile.

    Args:
        profile: the sensor (a :class:`SensorProfile`, a path or a shipped name).
        width, height: frame size in pixels (even).
        fps: frame rate; with ``paced`` the source delivers no faster than this.
        lux: scene illumination (needs the profile's ``electrons_at_white_per_lux``); or
        electrons_at_white: the light level as mean photo-electrons at white. Default
            :data:`DEFAULT_LUX` lux, or 100 electrons for a profile without a lux scale.
        analogue_gain: ``"auto"`` (white at full scale, as in training) or a fixed gain.
        seed: seeds the scene and the noise: the same seed gives the same frames.
        garments, split, scale, speed: the scene (see :func:`build_scene`).
        scene: a ready scene instead (its size wins over ``width``/``height``).
        paced: wait for each frame's slot; False delivers frames as fast as asked.
        clock: time source (tests pass a :class:`ManualClock`).
        exposure_time_s: behave as a sensor (see the module docstring) starting at this
            exposure; None with no ``auto_exposure``: ideal exposure.
        auto_exposure: a controller that sets exposure time and analogue gain (and the
            frames' digital gain); makes the source a sensor.
        control_delay_frames: as a sensor, frames until a written setting shows (>= 1).

    Live controls: ``lux``, ``electrons_at_white``, ``analogue_gain`` (``"auto"`` or a number;
    a number as a sensor), and as a sensor ``exposure_time_s``; the valid ranges of the light
    controls are :data:`CONTROL_RANGES`, and a value outside is refused with an
    :class:`~edge_isp.errors.InvalidInputError` naming the control and its range.
    """

    name = "sim"

    def __init__(
        self,
        profile: SensorProfile | str | Path = DEFAULT_PROFILE,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        lux: float | None = None,
        electrons_at_white: float | None = None,
        analogue_gain: str | float = "auto",
        seed: int = 0,
        garments: int = 3,
        split: str = "test",
        scale: tuple[float, float] = DEFAULT_SCALE,
        speed: float = 1.0,
        scene: MovingScene | None = None,
        paced: bool = True,
        clock: Clock | None = None,
        fashion_mnist_dir: str | Path | None = None,
        opencv_dir: str | Path | None = None,
        exposure_time_s: float | None = None,
        auto_exposure: ExposureController | None = None,
        control_delay_frames: int = 2,
    ) -> None:
        super().__init__()
        self.profile = load_profile(profile)
        self.fps = check_fps(fps)
        self.paced = bool(paced)
        self.clock = clock or SystemClock()
        self.seed = int(seed)
        if lux is not None and electrons_at_white is not None:
            raise InvalidInputError("give the light level as lux or as electrons_at_white, not both")
        self._lock = threading.Lock()
        self._electrons = 0.0
        if electrons_at_white is not None:
            self._set_electrons(electrons_at_white)
        elif lux is not None or self.profile.electrons_at_white_per_lux is not None:
            self._set_lux(DEFAULT_LUX if lux is None else lux)
        else:
            self._set_electrons(100.0)
        self._gain: str | float = "auto"
        self._set_gain(analogue_gain)
        self.auto_exposure = auto_exposure
        self._sensor: ControlDelay | None = None
        if exposure_time_s is not None or auto_exposure is not None:
            self._sensor = self._sensor_start(exposure_time_s, control_delay_frames)
        self._scene = scene
        self._scene_args = {
            "width": int(width), "height": int(height), "seed": self.seed, "garments": garments, "split": split,
            "scale": scale, "speed": speed, "fashion_mnist_dir": fashion_mnist_dir, "opencv_dir": opencv_dir,
        }  # fmt: skip
        self._pacer = Pacer(self.clock)
        self.sequence = -1
        self.last_truth: dict[str, Any] | None = None
        self.class_names = list(CLASS_NAMES)

    # -- the scene, prepared once --------------------------------------------------------
    @property
    def scene(self) -> MovingScene:
        if self._scene is None:
            self._scene = build_scene(**self._scene_args)
        return self._scene

    def _open(self) -> None:
        scene, profile = self.scene, self.profile
        height, width = scene.height, scene.width
        if height % 2 or width % 2:
            raise InvalidInputError(f"the simulated frame must have even width and height, got {width}x{height}")
        self._channels = rawsynth.channel_index(profile.cfa, height, width)
        background = rawsynth.srgb_to_camera(scene.background, profile)
        self._background = np.take_along_axis(background, self._channels[..., None].astype(np.intp), axis=2)[..., 0]
        self._sprites = [(np.moveaxis(rawsynth.srgb_to_camera(s.rgb, profile), 2, 0), s.alpha) for s in scene.sprites]
        self._black = per_channel_map(profile.black_level, profile.cfa, height, width).astype(np.float32)
        self._rng = np.random.default_rng([self.seed, 0x2A4])
        self._pacer.reset()
        self.sequence = -1
        if self._sensor is not None:
            self._sensor.reset()

    def _close(self) -> None:
        self._pacer.reset()

    def camera_mosaic(self, t: float) -> np.ndarray:
        """The clean scene at time ``t`` in linear camera values through the CFA, ``(H, W)``
        float32 (1.0 = white before white balance). Needs the source open."""
        mosaic = self._background.copy()
        for (camera, alpha), (x, y) in zip(self._sprites, self.scene.positions(t), strict=True):
            size = alpha.shape[0]
            which = self._channels[y : y + size, x : x + size].astype(np.intp)
            values = np.take_along_axis(camera, which[None], axis=0)[0]
            region = mosaic[y : y + size, x : x + size]
            region *= 1 - alpha
            region += values * alpha
        return mosaic

    def _sensor_start(self, exposure_time_s: float | None, delay_frames: int) -> ControlDelay:
        if self.auto_exposure is not None:
            self.auto_exposure.fit_to(SENSOR_EXPOSURE_RANGE_S, (1.0, self.profile.max_analogue_gain))
            start = self.auto_exposure.request
        else:
            start = ExposureSetting(REFERENCE_EXPOSURE_S, 1.0)
        if exposure_time_s is not None:
            start = dataclasses.replace(start, exposure_time_s=_exposure(exposure_time_s))
        if self._gain != "auto":
            start = dataclasses.replace(start, analogue_gain=float(self._gain))
        self._gain = start.analogue_gain
        return ControlDelay(delay_frames, ExposureSetting(start.exposure_time_s, start.analogue_gain))

    def _write_sensor(self, setting: ExposureSetting) -> None:
        """The sensor seam: exposure and gain written now show ``control_delay_frames`` later."""
        choose_exposure(self.profile, 1.0, setting.analogue_gain)  # refuses a gain out of range
        with self._lock:
            self._gain = setting.analogue_gain
            self._sensor.written(self.sequence, ExposureSetting(setting.exposure_time_s, setting.analogue_gain))

    def truth(self, t: float) -> dict[str, Any] | None:
        """The ground truth (boxes, labels) of the scene at time ``t``; None where unknown."""
        return self.scene.truth(t)

    def _read(self, timeout_s: float | None) -> RawFrame:
        with self._lock:
            electrons, gain = self._electrons, self._gain
            self.sequence += 1
            applied = None if self._sensor is None else self._sensor.at(self.sequence)
        if applied is None:
            exposure = choose_exposure(self.profile, electrons, gain)
            exposure_time_s = 1.0 / self.fps
        else:
            collected = electrons * applied.exposure_time_s / REFERENCE_EXPOSURE_S
            exposure = Exposure(applied.analogue_gain, 1.0, collected)
            exposure_time_s = applied.exposure_time_s
        t = self.sequence / self.fps
        raw = rawsynth.synthesize_raw(self.camera_mosaic(t), self.profile, exposure, self._rng, self._black)
        stamp = self._pacer.wait(1.0 / self.fps) if self.paced else self.clock.monotonic()
        truth = self.truth(t)
        self.last_truth = None if truth is None else {**truth, "time_s": t, "frame": self.sequence}
        profile = self.profile
        frame = RawFrame(
            data=raw,
            cfa=profile.cfa,
            bit_depth=profile.bit_depth,
            black_level=profile.black_level,
            white_level=profile.white_level,
            analogue_gain=exposure.analogue_gain,
            exposure_time_s=exposure_time_s,
            timestamp_s=stamp,
            sensor=f"sim:{profile.name}",
            digital_gain=exposure.digital_gain,
        )
        if self.auto_exposure is not None:
            frame = self.auto_exposure.expose(frame, self._write_sensor)
        return frame

    # -- live controls ---------------------------------------------------------------------
    def controls(self) -> dict[str, Any]:
        with self._lock:
            electrons, gain = self._electrons, self._gain
        out: dict[str, Any] = {"electrons_at_white": electrons, "analogue_gain": gain}
        if self._sensor is not None:
            out["exposure_time_s"] = self._sensor.latest.exposure_time_s
        if self.profile.electrons_at_white_per_lux is not None:
            out["lux"] = self.profile.lux(electrons)
        return out

    def set_control(self, name: str, value: Any) -> None:
        if self.auto_exposure is not None and name in ("analogue_gain", "exposure_time_s"):
            raise InvalidInputError(
                f"auto-exposure sets {name} on this simulated sensor; make it without auto_exposure"
            )
        if name == "lux":
            self._set_lux(value)
        elif name == "electrons_at_white":
            self._set_electrons(value)
        elif name == "analogue_gain" and self._sensor is not None:
            latest = self._sensor.latest
            self._write_sensor(ExposureSetting(latest.exposure_time_s, _number(value, "analogue_gain")))
        elif name == "analogue_gain":
            self._set_gain(value)
        elif name == "exposure_time_s" and self._sensor is not None:
            latest = self._sensor.latest
            self._write_sensor(ExposureSetting(_exposure(value), latest.analogue_gain))
        else:
            super().set_control(name, value)

    def _set_lux(self, value: Any) -> None:
        lux = _number(value, "lux")
        electrons = self.profile.electrons_at_white(lux)
        low, high = CONTROL_RANGES["electrons_at_white"]
        if not low <= electrons <= high:
            raise InvalidInputError(
                f"lux {value!r} gives {electrons:.3g} photo-electrons at white through profile "
                f"{self.profile.name!r}, outside the simulation's range {low:g} to {high:g}"
            )
        with self._lock:
            self._electrons = electrons

    def _set_electrons(self, value: Any) -> None:
        electrons = _number(value, "electrons_at_white")
        with self._lock:
            self._electrons = electrons

    def _set_gain(self, value: Any) -> None:
        if value != "auto":
            value = _number(value, "analogue_gain")
        choose_exposure(self.profile, 1.0, value)  # refuses a gain outside the profile's range
        with self._lock:
            self._gain = value


def _exposure(value: Any) -> float:
    seconds = _number(value, "exposure_time_s")
    lo, hi = SENSOR_EXPOSURE_RANGE_S
    if not lo <= seconds <= hi:
        raise InvalidInputError(f"the simulated sensor's exposure_time_s must be in [{lo}, {hi}] s, got {value!r}")
    return seconds


def _number(value: Any, name: str) -> float:
    """``value`` as a float, refused unless a finite number (inside ``name``'s range, if it has one)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    low, high = CONTROL_RANGES.get(name, (0.0, math.inf))
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0 and low <= number <= high):
        valid = "a positive finite number" if name not in CONTROL_RANGES else f"a number from {low:g} to {high:g}"
        raise InvalidInputError(f"{name} must be {valid}, got {value!r}")
    return number
