"""Shared simulated capture sets: frames drawn with known noise, read back by the methods."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.frames import ref_from_frame

GAINS = (1.0, 4.0, 16.0)
SIZE = 128


def refs_of(items):
    return [ref_from_frame(t.frame, t.kind, f"{t.kind}{i}") for i, t in enumerate(items)]


def with_outliers(items, fraction: float, seed: int):
    """Cosmic-ray-like outliers: a few random pixels of each frame jump by 300..3000 DN."""
    rng = np.random.default_rng(seed)
    for item in items:
        data = item.frame.data.copy()
        n = max(1, int(fraction * data.size))
        idx = rng.choice(data.size, n, replace=False)
        data.flat[idx] = np.minimum(data.flat[idx] + rng.integers(300, 3000, n), item.frame.white_level)
        yield synthetic.TruthFrame(item.kind, dataclasses.replace(item.frame, data=data.astype(np.uint16)))


@pytest.fixture(scope="session")
def profile():
    return synthetic.example_profile(row_noise_fraction=0.2)


@pytest.fixture(scope="session")
def clean_sensor(profile):
    return synthetic.SyntheticSensor(profile, SIZE, SIZE, seed=3)


@pytest.fixture(scope="session")
def dirty_sensor(profile):
    """Hot and dead pixels, DSNU and PRNU."""
    return synthetic.SyntheticSensor(profile, SIZE, SIZE, hot_pixels=40, dead_pixels=10, dsnu_dn=1.0, prnu=0.01, seed=4)


@pytest.fixture(scope="session")
def clean_refs(clean_sensor):
    return refs_of(synthetic.ptc_sweep(clean_sensor, GAINS, levels=20, seed=11))


@pytest.fixture(scope="session")
def dirty_refs(dirty_sensor):
    """Defects, a region clipped in every flat, transient outliers, and a PRNU flat stack."""
    field = synthetic.flat_field(SIZE, SIZE, clipped_disk=0.12)
    items = synthetic.ptc_sweep(dirty_sensor, GAINS, levels=20, flat_stack=8, illumination=field, seed=12)
    return refs_of(with_outliers(items, 2e-4, seed=13))
