"""Tests of edge_isp.calibrate: noise calibration on simulated frames with known parameters."""
