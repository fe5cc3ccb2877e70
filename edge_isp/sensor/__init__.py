"""Sensor model: CFA patterns, raw formats, RawFrame, sensor profiles, the raw simulator."""

from edge_isp.sensor.cfa import CFA, PLANE_ORDER, colour_mask, mosaic, pack, unpack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile, shipped_profiles

__all__ = [
    "CFA",
    "PLANE_ORDER",
    "NoiseAtGain",
    "RawFrame",
    "SensorProfile",
    "colour_mask",
    "mosaic",
    "pack",
    "shipped_profiles",
    "unpack",
]
