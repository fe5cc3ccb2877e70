"""Sensor noise calibration: from a camera's raw frames to a sensor profile.

Methods (each a module, each usable alone):

- :mod:`~edge_isp.calibrate.ptc`: photon transfer (EMVA 1288) from flat-field pairs and
  darks: K, read noise, saturation, linearity, SNR, dynamic range, PRNU, DSNU.
- :mod:`~edge_isp.calibrate.dark`: dark frames: black level, read noise (Gaussian and
  Tukey-lambda shape, as Wei et al. 2020), row noise, DSNU, defects.
- :mod:`~edge_isp.calibrate.single_image`: one ordinary raw image (Foi et al. 2008).
- :mod:`~edge_isp.calibrate.gain_fit`: K against gain and read noise against K, and the
  profile built from them.

Around them: :mod:`~edge_isp.calibrate.frames` (finding and grouping frames),
:mod:`~edge_isp.calibrate.pipeline` (a method end to end, with exports, plots and report),
:mod:`~edge_isp.calibrate.capture` (a guided capture from a live camera),
:mod:`~edge_isp.calibrate.synthetic` (frames with known noise, for checks) and
:mod:`~edge_isp.calibrate.importing` (a profile from published noise data: darktable's
noise profiles, a DNG NoiseProfile, a Raspberry Pi tuning file, when no camera is at hand).
"""

from edge_isp.calibrate.capture import CalibrationSource, CapturePlan, run_capture
from edge_isp.calibrate.dark import DarkResult, analyze_dark
from edge_isp.calibrate.frames import FrameRef, discover
from edge_isp.calibrate.gain_fit import GainFit, GainPoint, build_profile, fit_gains
from edge_isp.calibrate.pipeline import Calibration, calibrate_dark, calibrate_image, calibrate_ptc
from edge_isp.calibrate.ptc import PtcResult, photon_transfer
from edge_isp.calibrate.single_image import SingleImageResult, single_image

__all__ = [
    "Calibration",
    "CalibrationSource",
    "CapturePlan",
    "DarkResult",
    "FrameRef",
    "GainFit",
    "GainPoint",
    "PtcResult",
    "SingleImageResult",
    "analyze_dark",
    "build_profile",
    "calibrate_dark",
    "calibrate_image",
    "calibrate_ptc",
    "discover",
    "fit_gains",
    "photon_transfer",
    "run_capture",
    "single_image",
]
