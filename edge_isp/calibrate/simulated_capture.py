"""A simulated calibration set-up for `edge-isp calibrate capture --source sim`: a
:class:`~edge_isp.calibrate.synthetic.SyntheticSensor` (a profile's noise model, with fixed
pattern noise and a few hot and dead pixels) in front of a steady flat light, which the
guided capture drives like a camera. It lets a user check a calibration set-up (the capture,
then `calibrate ptc` on its frames) without a camera, against a known answer: the profile.

The light gives ``electrons_per_s`` photo-electrons per second to each pixel (default: the
base gain saturates in :data:`SATURATION_S`); :meth:`SimulatedBench.wait` answers the
capture's prompts as the person would: the first (the flat field) uncovers the lens, the
second (the darks) covers it.
"""

from __future__ import annotations

import numpy as np

from edge_isp.calibrate.synthetic import SyntheticSensor
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

SATURATION_S = 0.01
DEFAULT_SIZE = (128, 96)


class SimulatedBench:
    """A simulated camera and light as a :class:`~edge_isp.calibrate.capture.CalibrationSource`.

    Args:
        profile: the sensor whose noise the frames follow (the answer calibration should find).
        size: (width, height) of the mosaic, even.
        electrons_per_s: photo-electrons per pixel per second under the light; None for
            saturation at base gain in :data:`SATURATION_S`.
        seed: seeds the fixed patterns and the noise.
    """

    def __init__(
        self,
        profile: SensorProfile,
        size: tuple[int, int] = DEFAULT_SIZE,
        *,
        electrons_per_s: float | None = None,
        seed: int = 0,
    ) -> None:
        width, height = size
        self.sensor = SyntheticSensor(
            profile, height, width, dsnu_dn=0.5, prnu=0.005, hot_pixels=3, dead_pixels=2, seed=seed
        )
        self.electrons_per_s = (
            self.sensor.saturation_electrons(1.0) / SATURATION_S if electrons_per_s is None else float(electrons_per_s)
        )
        if not self.electrons_per_s > 0:
            raise InvalidInputError(f"electrons_per_s must be > 0, got {electrons_per_s}")
        self.covered = True
        self.prompts = 0
        self._rng = np.random.default_rng([seed, 0xCA1])
        self._exposure_s, self._gain = SATURATION_S, 1.0

    def wait(self, prompt: str) -> None:
        """Answer the capture's prompt: the first uncovers the lens to the light, the second covers it."""
        self.prompts += 1
        self.covered = self.prompts != 1

    def set_exposure(self, exposure_time_s: float, analogue_gain: float) -> None:
        self._exposure_s, self._gain = float(exposure_time_s), float(analogue_gain)

    def capture(self) -> RawFrame:
        electrons = 0.0 if self.covered else self.electrons_per_s * self._exposure_s
        return self.sensor.frame(electrons, analogue_gain=self._gain, rng=self._rng, exposure_time_s=self._exposure_s)
