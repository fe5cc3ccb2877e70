"""The INT8 calibration feed sees what the deployed model sees: for the same recorded frames (saved
to disk and read back, digital gain 1, larger than the model input, so the live runtime crops,
auto-exposes and area-resizes them), the feed's ``raw`` and ``noise`` are exactly the model inputs
the live pipeline gives its backend."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_isp.contract.metadata import ModelMetadata
from edge_isp.contract.model_input import live_preprocessor
from edge_isp.errors import InvalidInputError
from edge_isp.export.calibration import frames_feed, recorded_frames
from edge_isp.runtime.interfaces import InferenceBackend, TensorSpec
from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.runtime.sources.replay import ReplaySource
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

FRAME_W, FRAME_H = 200, 150  # what the camera recorded
MODEL_W, MODEL_H = 64, 32  # the model's input: another aspect ratio, about 3x smaller


class RecordingBackend(InferenceBackend):
    """A classifier stand-in that keeps every feed the pipeline gives it."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self._inputs = [
            TensorSpec("raw", np.dtype(np.float32), (1, 4, MODEL_H // 2, MODEL_W // 2)),
            TensorSpec("noise", np.dtype(np.float32), (1, 2)),
        ]
        self._outputs = [TensorSpec("logits", np.dtype(np.float32), (1, 2))]
        self.feeds: list[dict[str, np.ndarray]] = []

    def _infer(self, feed):
        self.feeds.append({k: v.copy() for k, v in feed.items()})
        return {"logits": np.zeros((1, 2), np.float32)}


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


@pytest.fixture
def recording(tmp_path, profile):
    """Three dim camera frames (a few percent of white, digital gain 1) on disk."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:FRAME_H, 0:FRAME_W]
    black, white = profile.black_level[0], profile.white_level
    for i, level in enumerate((0.02, 0.004, 0.03)):
        scene = level * (1 + 0.8 * np.sin(x / 9.0 + i) * np.cos(y / 13.0))
        dn = black + rng.poisson(scene * (white - black) * 4) / 4 + rng.normal(0, 2, scene.shape)
        data = np.clip(np.rint(dn), 0, white).astype(np.uint16)
        frame = RawFrame(data=data, cfa=profile.cfa, bit_depth=profile.bit_depth, black_level=profile.black_level,
                         white_level=white, analogue_gain=4.0, timestamp_s=i / 30, sensor="test")  # fmt: skip
        frame.save(tmp_path / f"frame.{i:03d}")
    return tmp_path


def live_model_inputs(folder, profile) -> list[dict[str, np.ndarray]]:
    """What `edge-isp run` gives the model for a camera replayed from ``folder``."""
    backend = RecordingBackend()
    pipeline = Pipeline(
        ReplaySource(folder, paced=False),
        backend,
        live_preprocessor(profile, (MODEL_W, MODEL_H), auto_exposure=True),
        Postprocessor(ModelMetadata(task="classification", class_names=("a", "b"))),
        config=PipelineConfig(when_full="block"),
    )
    pipeline.run(handle_signals=False)
    return backend.feeds


def test_calibration_feed_equals_the_live_model_input(recording, profile):
    feed = frames_feed(recorded_frames(recording), profile, (MODEL_W, MODEL_H))
    live = live_model_inputs(recording, profile)
    assert len(feed) == len(live) == 3
    for item, seen in zip(feed, live, strict=True):
        assert item["raw"].dtype == np.float32 and item["raw"].shape == (1, 4, MODEL_H // 2, MODEL_W // 2)
        np.testing.assert_array_equal(item["raw"], seen["raw"])
        np.testing.assert_array_equal(item["noise"], seen["noise"])


def test_the_feed_crops_auto_exposes_and_area_resizes(recording, profile):
    """The first frame's input by hand: crop to 2:1 on whole tiles, gain = 0.18 / mean, area
    resize, and the noise level scaled by what the area resize leaves of a pixel's variance."""
    frame = recorded_frames(recording)[0]
    item = frames_feed([frame], profile, (MODEL_W, MODEL_H)).get_next()
    # 100x75 tiles cut to 2:1 -> 100x50 tiles, centred: rows 12..62 of tiles, i.e. pixels 24..124.
    planes = pack(frame.normalized()[24:124, 0:200], frame.cfa)
    gain = 0.18 / float(np.clip(planes[:, ::4, ::4], 0, 1).mean())
    assert 5 < gain < 64  # auto-exposure really brightened it, below its 64x cap
    expected = cv2.resize((planes * np.float32(gain)).transpose(1, 2, 0), (32, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(item["raw"][0], expected.transpose(2, 0, 1), rtol=1e-4, atol=1e-6)
    # Each output pixel is a mean over a 3.125 x 3.125 pixel window, each input pixel weighted
    # by its overlap with the window: the noise variance keeps sum(w^2) of itself per side.
    kept = _kept_variance(100, 32) * _kept_variance(50, 16)
    assert kept < 1 / ((50 * 100) / (16 * 32))  # less than the plain 1/area a fractional ratio gives
    a, sigma = profile.normalized_noise(4.0, gain)
    np.testing.assert_allclose(item["noise"][0], [a * kept, sigma * math.sqrt(kept)], rtol=1e-4)


def _kept_variance(size_in: int, size_out: int) -> float:
    """The mean over output pixels of sum(w_i^2) for an area resize, from its definition."""
    scale = size_in / size_out
    total = 0.0
    for j in range(size_out):
        lo, hi = j * scale, (j + 1) * scale
        overlaps = [min(hi, i + 1) - max(lo, i) for i in range(int(lo), min(size_in, int(np.ceil(hi))))]
        total += sum((o / scale) ** 2 for o in overlaps if o > 0)
    return total / size_out


def test_a_frame_of_another_cfa_is_refused(recording, profile):
    frame = recorded_frames(recording)[0]
    other = RawFrame.from_metadata(frame.data, {**frame.metadata(), "cfa": "BGGR"})
    with pytest.raises(InvalidInputError, match="CFA BGGR"):
        frames_feed([other], profile, (MODEL_W, MODEL_H))
