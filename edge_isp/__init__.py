"""edge-isp: RAW Bayer frames straight into one network that does the ISP and the task."""

__version__ = "0.1.0"
