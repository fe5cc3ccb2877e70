"""The conventional ISP baseline: demosaic, denoise, colour, tone. numpy and OpenCV only.

Every learned result is compared with this pipeline; it also runs on the board, so it
never imports torch. Images here are channel-last ``(H, W, 3)`` (OpenCV's layout).

The stage functions live in their modules (``from edge_isp.isp.demosaic import
demosaic``, ``from edge_isp.isp.denoise import denoise``); they are not re-exported here,
where their names would hide the modules of the same name.
"""

from edge_isp.isp.colour import TONE_CURVES
from edge_isp.isp.demosaic import DEMOSAIC_METHODS, available_demosaic_methods
from edge_isp.isp.denoise import DENOISE_METHODS
from edge_isp.isp.pipeline import IspConfig, render, render_mosaic, to_uint8

__all__ = [
    "DEMOSAIC_METHODS",
    "DENOISE_METHODS",
    "TONE_CURVES",
    "IspConfig",
    "available_demosaic_methods",
    "render",
    "render_mosaic",
    "to_uint8",
]
