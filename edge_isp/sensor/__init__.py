"""Sensor model: CFA patterns, raw formats, RawFrame, sensor profiles, the raw simulator."""

from edge_isp.sensor.cfa import CFA, PLANE_ORDER, colour_mask, mosaic, pack, unpack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile, shipped_profiles
from edge_isp.sensor.rawfile import describe, load_raw, load_raw_with_color
from edge_isp.sensor.rawformat import Packing, RawFormat, decode, encode, parse_format

__all__ = [
    "CFA",
    "PLANE_ORDER",
    "NoiseAtGain",
    "Packing",
    "RawFormat",
    "RawFrame",
    "SensorProfile",
    "colour_mask",
    "decode",
    "describe",
    "encode",
    "load_raw",
    "load_raw_with_color",
    "mosaic",
    "pack",
    "parse_format",
    "shipped_profiles",
    "unpack",
]
