"""A frame whose noise level lies outside a model's trained range is fed the nearest trained
level: a simulated daylight frame, a camera raw file (DNG) and the live pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from edge_isp.contract.metadata import NoiseRange, metadata_of_backend
from edge_isp.contract.model_input import Preprocessor, live_preprocessor
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.rawfile import load_raw
from edge_isp.sensor.simulate import electrons_from_lux, simulate
from edge_isp.train.batches import RawBatcher
from edge_isp.train.config import load_config
from tests.runtime.onnx_models import spot_detector
from tests.runtime.test_pipeline_flow import HEIGHT, WIDTH, Collect, sim_source
from tests.sensor.test_rawfile import write_dng


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


@pytest.fixture(scope="module")
def night_model_range() -> NoiseRange:
    """What a model trained at 2 to 200 lux (the garment configs) records in its metadata."""
    return NoiseRange(**RawBatcher.from_config(load_config(None).sensor).noise_range())


def simulated_frame(profile, lux: float):
    scene = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sim = simulate(scene, profile, electrons_from_lux(profile, lux).double(), generator=torch.Generator())
    return sim.to_frames(profile)[0]


def test_clamp_and_contains():
    trained = NoiseRange(a=(1e-3, 1e-1), sigma=(1e-3, 0.5))
    assert trained.clamp(1e-5, 1e-4) == (1e-3, 1e-3)
    assert trained.clamp(1.0, 2.0) == (1e-1, 0.5)
    assert trained.clamp(2e-2, 0.1) == (2e-2, 0.1) and trained.contains(2e-2, 0.1)


def test_a_simulated_daylight_frame_gets_the_nearest_trained_level(profile, night_model_range):
    frame = simulated_frame(profile, 20000.0)
    guarded = Preprocessor(profile, (64, 64), noise_range=night_model_range)(frame)
    plain = Preprocessor(profile, (64, 64))(frame)
    assert guarded.clamped and not plain.clamped
    a, sigma = guarded.measured_noise
    assert a < night_model_range.a[0] and sigma < night_model_range.sigma[0]
    assert guarded.noise[0].tolist() == pytest.approx([night_model_range.a[0], night_model_range.sigma[0]], rel=1e-6)
    assert np.array_equal(guarded.raw, plain.raw)  # only the noise input changes
    inside = simulated_frame(profile, 30.0)
    kept = Preprocessor(profile, (64, 64), noise_range=night_model_range)(inside)
    assert not kept.clamped and np.array_equal(kept.noise, Preprocessor(profile, (64, 64))(inside).noise)


def test_a_bright_camera_raw_file_is_clamped_too(profile, night_model_range, tmp_path):
    # A 12-bit camera raw of a well-lit scene (a DNG, read through rawpy): auto-exposure needs
    # little gain, so its noise level is the sensor's at ISO 100, far below 2 lux's.
    pytest.importorskip("rawpy")
    rng = np.random.default_rng(3)
    mosaic = np.clip(rng.normal(1500, 30, (48, 64)), 0, 4095).astype(np.uint16)
    write_dng(tmp_path / "day.dng", mosaic, white=4095, iso=100)
    frame = load_raw(tmp_path / "day.dng")
    out = live_preprocessor(profile, (64, 48), noise_range=night_model_range)(frame)
    assert out.clamped and out.measured_noise[0] < night_model_range.a[0]
    assert out.noise[0, 0] == pytest.approx(night_model_range.a[0], rel=1e-6)


def test_the_pipeline_counts_clamped_frames_warns_once_and_says_so(profile, night_model_range, caplog, tmp_path):
    backend = make_backend(spot_detector(tmp_path / "spot.onnx", WIDTH, HEIGHT))
    pre = Preprocessor(profile, (WIDTH, HEIGHT), noise_range=night_model_range)
    out = Collect()
    pipeline = Pipeline(sim_source(profile, lux=20000.0), backend, pre, Postprocessor(metadata_of_backend(backend)),
                        [out], profile=profile, config=PipelineConfig(when_full="block", max_frames=4))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="edge_isp.runtime.pipeline"):
        metrics = pipeline.run(handle_signals=False)
    assert metrics["noise_clamped"] == 4 and len(out.results) == 4
    warnings = [r for r in caplog.records if "outside the levels the model was trained on" in r.getMessage()]
    assert len(warnings) == 1
    assert "clamped" in pipeline._status()
