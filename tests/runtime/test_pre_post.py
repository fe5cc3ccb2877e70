"""Pre- and post-processing of the live runtime: RawFrame -> model inputs, outputs -> results,
annotation, metrics and the model's self-description. numpy only, no model needed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edge_isp.contract.metadata import ModelMetadata
from edge_isp.contract.model_input import (
    AutoExposure,
    Geometry,
    Preprocessor,
    UpscaleError,
    area_variance_factor,
    model_input_size,
)
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.annotate import ViewMap, annotate, class_colour, to_bgr8
from edge_isp.runtime.metrics import LatencyWindow, PipelineMetrics, RateMeter
from edge_isp.runtime.postprocess import Postprocessor, nms, softmax, top_k_labels
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


def frame_of(values: np.ndarray, cfa: str = "RGGB", gain: float = 1.0, digital: float = 1.0) -> RawFrame:
    """A 10-bit frame (black 64, white 1023) whose normalized mosaic is ``values``."""
    data = np.clip(np.rint(64 + values * (1023 - 64)), 0, 1023).astype(np.uint16)
    return RawFrame(data, cfa, 10, 64, 1023, analogue_gain=gain, digital_gain=digital)


class TestPreprocess:
    def test_native_size_matches_frame_packed_and_profile_noise(self, profile):
        rng = np.random.default_rng(0)
        frame = frame_of(rng.uniform(0, 1, (64, 96)), cfa="GBRG", gain=2.0, digital=3.0)
        out = Preprocessor(profile, (96, 64))(frame)
        assert out.raw.shape == (1, 4, 32, 48) and out.raw.dtype == np.float32
        np.testing.assert_allclose(out.raw[0], pack(frame.normalized(), frame.cfa) * 3.0, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out.noise[0], profile.normalized_noise(2.0, 3.0), rtol=1e-6)
        assert out.geometry.crop == (0, 0, 96, 64) and out.digital_gain == 3.0

    def test_planes_follow_the_cfa(self, profile):
        # A pure-red scene: only the sensor's red sites are lit, whatever the pattern.
        for cfa, red_at in (("RGGB", (0, 0)), ("BGGR", (1, 1)), ("GRBG", (0, 1)), ("GBRG", (1, 0))):
            values = np.zeros((8, 8))
            values[red_at[0] :: 2, red_at[1] :: 2] = 0.5
            raw = Preprocessor(profile, (8, 8))(frame_of(values, cfa)).raw[0]
            np.testing.assert_allclose(raw.mean(axis=(1, 2)), [0.5, 0, 0, 0], atol=1e-3)

    def test_crop_to_aspect_and_map_boxes_back(self, profile):
        pre = Preprocessor(profile, (640, 480))
        geometry = pre.geometry((1280, 720))
        assert geometry.crop == (160, 0, 1120, 720)
        assert geometry.scale == (1.5, 1.5)
        np.testing.assert_allclose(geometry.to_frame(np.array([[0, 0, 640, 480], [10, 20, 30, 40]])),
                                   [[160, 0, 1120, 720], [175, 30, 205, 60]])  # fmt: skip
        stretch = Preprocessor(profile, (640, 480), fit="stretch").geometry((1280, 720))
        assert stretch.crop == (0, 0, 1280, 720) and stretch.scale == (2.0, 1.5)

    def test_downscale_keeps_level_and_divides_variance(self, profile):
        frame = frame_of(np.full((128, 192), 0.25), gain=1.0)
        out = Preprocessor(profile, (96, 64))(frame)
        assert out.raw.shape == (1, 4, 32, 48)
        np.testing.assert_allclose(out.raw, 0.25, atol=1e-3)
        a, sigma = profile.normalized_noise(1.0)
        # 2x down in each direction averages 4 pixels: variance / 4.
        np.testing.assert_allclose(out.noise[0], [a / 4, sigma / 2], rtol=1e-5)

    def test_noise_correction_matches_the_measured_variance_of_an_area_resize(self, profile):
        # Flat noisy mosaics (Poisson-Gaussian at the profile's level, no quantization: 16-bit
        # container; the frame's scale differs from the profile's, which only logs a warning),
        # shrunk by whole and fractional ratios: the variance left in the planes is what the
        # corrected noise level says, not the plain 1/area rule.
        rng = np.random.default_rng(0)
        a, sigma = profile.normalized_noise(8.0)
        level = 0.3
        white, black = 65535, 0
        for frame_size, size in (((256, 256), (128, 128)), ((320, 256), (256, 192)), ((200, 160), (160, 128))):
            mosaic = level + rng.normal(0, 1, (frame_size[1], frame_size[0])) * np.sqrt(a * level + sigma**2)
            data = np.clip(np.rint(mosaic * white), 0, white).astype(np.uint16)
            frame = RawFrame(data, "RGGB", 16, black, white, analogue_gain=8.0)
            out = Preprocessor(profile, size, fit="stretch")(frame)  # the profile gives the noise level
            measured = float(out.raw[0].var(axis=(1, 2)).mean())
            predicted = float(out.noise[0, 0] * level + out.noise[0, 1] ** 2)
            assert measured == pytest.approx(predicted, rel=0.05), (frame_size, size)
        # 1.25x per side: OpenCV's weights keep 0.6 of the variance per side, not 1 / 1.25.
        assert area_variance_factor((160, 128), (128, 128)) == pytest.approx(0.6, abs=1e-6)
        assert area_variance_factor((256, 256), (128, 64)) == pytest.approx(1 / 8)

    def test_never_upscales(self, profile):
        # The case: a 128x128 frame to a model fixed at 160x128 used to be cropped to
        # 128x102 and upscaled 1.25x; now it is refused with what to do.
        with pytest.raises(UpscaleError, match=r"upscaled.*--dynamic-size"):
            Preprocessor(profile, (160, 128)).geometry((128, 128))
        with pytest.raises(UpscaleError):
            Preprocessor(profile, (64, 64), fit="stretch").geometry((96, 48))
        assert Preprocessor(profile, (128, 96)).geometry((128, 128)).crop == (0, 16, 128, 112)

    def test_dynamic_model_runs_each_frame_cut_to_the_multiple(self, profile):
        geometry = Preprocessor(profile, None, multiple=32).geometry((100, 70))
        assert geometry.input_size == (96, 64)
        assert geometry.crop == (2, 2, 98, 66)
        with pytest.raises(InvalidInputError, match="smaller than"):
            Preprocessor(profile, None, multiple=32).geometry((30, 30))

    def test_auto_exposure_brings_the_mean_to_mid_grey(self, profile):
        pre = Preprocessor(profile, (32, 32), auto_exposure=AutoExposure(target=0.18, smoothing=0.5))
        dark = frame_of(np.full((32, 32), 0.045))
        gains = [pre(dark).digital_gain for _ in range(12)]
        assert gains[0] == pytest.approx(4.0, rel=0.02)  # the first frame seeds the average
        out = pre(dark)
        np.testing.assert_allclose(out.raw.mean(), 0.18, rtol=0.03)
        np.testing.assert_allclose(out.noise[0], profile.normalized_noise(1.0, out.digital_gain), rtol=1e-5)
        # A frame that carries its own exposure decision keeps it.
        assert pre(frame_of(np.full((32, 32), 0.045), digital=2.0)).digital_gain == 2.0

    def test_auto_exposure_smooths_and_clips(self):
        ae = AutoExposure(target=0.2, smoothing=0.5, min_gain=0.5, max_gain=8.0)
        assert ae.gain == 1.0
        ae.update(np.full((4, 8, 8), 0.1, np.float32))
        assert ae.gain == pytest.approx(2.0)
        ae.update(np.full((4, 8, 8), 0.3, np.float32))  # mean -> 0.5 * 0.1 + 0.5 * 0.3 = 0.2
        assert ae.gain == pytest.approx(1.0)
        for _ in range(4):  # mean -> 0.2 / 16
            ae.update(np.zeros((4, 8, 8), np.float32))
        assert ae.gain == 8.0
        with pytest.raises(InvalidInputError, match="target"):
            AutoExposure(target=1.5)

    def test_model_input_size(self):
        assert model_input_size((1, 4, 240, 320)) == (640, 480)
        assert model_input_size((1, 4, 240, 320), (640, 480)) == (640, 480)
        with pytest.raises(InvalidInputError, match=r"640x480 input only.*--dynamic-size"):
            model_input_size((1, 4, 240, 320), (320, 240))
        # A dynamic model runs at each frame's own size unless told, never at its export size.
        assert model_input_size((1, 4, None, None), multiple=32) is None
        assert model_input_size((1, 4, None, None), (64, 64), multiple=32) == (64, 64)
        assert model_input_size((None, 4, None, None)) is None
        with pytest.raises(InvalidInputError, match=r"multiples of 32.*try 96x64"):
            model_input_size((1, 4, None, None), (100, 70), multiple=32)
        with pytest.raises(InvalidInputError, match="B, 4"):
            model_input_size((1, 3, 240, 320))

    def test_bad_input_is_refused(self, profile):
        with pytest.raises(InvalidInputError, match="even"):
            Preprocessor(profile, (65, 48))
        with pytest.raises(InvalidInputError, match="fit"):
            Preprocessor(profile, (64, 48), fit="pad")
        with pytest.raises(InvalidInputError, match="SensorProfile"):
            Preprocessor("nexus6p-rear", (64, 48))
        with pytest.raises(InvalidInputError, match="RawFrame"):
            Preprocessor(profile, (64, 48))(np.zeros((48, 64), np.uint16))

    def test_warns_once_when_the_frame_is_on_another_scale(self, profile, caplog):
        pre = Preprocessor(profile, (8, 8))
        frame = RawFrame(np.full((8, 8), 4096, np.uint16), "RGGB", 16, 256, 65535)
        with caplog.at_level(logging.WARNING):
            pre(frame)
            pre(frame)
        warnings = [r for r in caplog.records if "white level" in r.getMessage()]
        assert len(warnings) == 1 and "65535" in warnings[0].getMessage()


INFO = ModelMetadata(task="detection", class_names=("shirt", "bag"))


def geometry(frame=(200, 100), crop=(0, 0, 200, 100), size=(100, 50)) -> Geometry:
    return Geometry(frame_size=frame, crop=crop, input_size=size)


class TestPostprocess:
    def test_softmax_and_top_k(self):
        probs = softmax(np.array([1.0, 3.0, 2.0, 1000.0]))
        assert probs.sum() == pytest.approx(1.0) and np.isfinite(probs).all()
        info = ModelMetadata(task="classification", class_names=("a", "b", "c"))
        top = top_k_labels(np.array([0.0, 2.0, 1.0, 3.0]), info, k=3)
        assert [t["label"] for t in top] == ["class 3", "b", "c"]  # index 3 has no name
        expected = np.exp([3.0, 2.0, 1.0]) / np.exp([0.0, 2.0, 1.0, 3.0]).sum()
        np.testing.assert_allclose([t["score"] for t in top], expected, rtol=1e-5)
        with pytest.raises(InvalidInputError, match=r"\(C,\)"):
            top_k_labels(np.zeros((2, 3)), info)

    def test_nms_by_hand(self):
        boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
        scores = np.array([0.9, 0.8, 0.7, 0.95])
        # Box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 0.68); box 2 overlaps nothing.
        assert nms(boxes, scores, 0.5).tolist() == [3, 2]
        assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]
        # Class-wise: boxes of another class never suppress.
        assert nms(boxes, scores, 0.5, labels=np.array([0, 1, 0, 0])).tolist() == [3, 1, 2]
        with pytest.raises(InvalidInputError, match="one score per box"):
            nms(boxes, scores[:2], 0.5)

    def test_detections_thresholded_sorted_and_in_frame_pixels(self):
        outputs = {
            "boxes": np.array([[[10, 10, 20, 20], [0, 0, 5, 5], [90, 40, 120, 60], [30, 5, 40, 15]]], np.float32),
            "scores": np.array([[0.5, 0.1, 0.8, 0.31]], np.float32),
            "labels": np.array([[0, 1, 1, 0]], np.int32),
        }
        # The model saw the right half of a 200x100 frame at half resolution.
        dets = Postprocessor(INFO, score_threshold=0.3)(outputs, geometry(crop=(100, 0, 200, 100), size=(50, 50)))
        dets = dets["detections"]
        assert [d["score"] for d in dets] == [0.8, 0.5, 0.31]
        assert dets[0] == {"box": [200.0, 80.0, 200.0, 100.0], "label": "bag", "class_id": 1, "score": 0.8}
        assert dets[1]["box"] == [120.0, 20.0, 140.0, 40.0] and dets[1]["label"] == "shirt"
        assert len(Postprocessor(INFO, score_threshold=0.3, max_detections=1).detections(outputs, geometry())) == 1
        json.dumps(dets)  # results go to JSON outputs as they are

    def test_optional_nms(self):
        outputs = {
            "boxes": np.array([[[0, 0, 10, 10], [1, 1, 11, 11]]], np.float32),
            "scores": np.array([[0.9, 0.8]], np.float32),
            "labels": np.array([[0, 0]], np.int32),
        }
        g = geometry(size=(200, 100))
        assert len(Postprocessor(INFO, score_threshold=0.1).detections(outputs, g)) == 2
        assert len(Postprocessor(INFO, score_threshold=0.1, nms_iou=0.5).detections(outputs, g)) == 1

    def test_nms_across_classes_keeps_one_box_per_object(self):
        # One object scored as two classes at one place, and a second object elsewhere.
        outputs = {
            "boxes": np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]], np.float32),
            "scores": np.array([[0.6, 0.9, 0.5]], np.float32),
            "labels": np.array([[0, 1, 0]], np.int32),
        }
        g = geometry(size=(200, 100))
        assert len(Postprocessor(INFO, score_threshold=0.1, nms_iou=0.5).detections(outputs, g)) == 3
        dets = Postprocessor(INFO, score_threshold=0.1, nms_iou=0.5, nms_across_classes=True).detections(outputs, g)
        assert [(d["class_id"], d["score"]) for d in dets] == [(1, pytest.approx(0.9)), (0, pytest.approx(0.5))]
        with pytest.raises(InvalidInputError, match="nms_across_classes needs an nms_iou"):
            Postprocessor(INFO, nms_across_classes=True)

    def test_missing_or_malformed_outputs_are_named(self):
        with pytest.raises(InvalidInputError, match=r"must return 'boxes'.*\['logits'\]"):
            Postprocessor(INFO)({"logits": np.zeros((1, 2))}, geometry())
        bad = {"boxes": np.zeros((1, 3, 4)), "scores": np.zeros((1, 2)), "labels": np.zeros((1, 3))}
        with pytest.raises(InvalidInputError, match="boxes \\(B, K, 4\\)"):
            Postprocessor(INFO)(bad, geometry())
        with pytest.raises(InvalidInputError, match="score_threshold"):
            Postprocessor(INFO, score_threshold=2.0)

    def test_classification_and_reconstruction(self):
        info = ModelMetadata(task="classification", class_names=("dark", "bright"))
        result = Postprocessor(info, top_k=1)({"logits": np.array([[-1.0, 1.0]])}, geometry())
        assert result == {"labels": [{"label": "bright", "class_id": 1, "score": pytest.approx(0.8808, abs=1e-4)}]}
        assert Postprocessor(ModelMetadata(task="reconstruction"))({"image": np.zeros((1, 3, 4, 4))}, geometry()) == {}


class TestAnnotate:
    def test_model_image_to_bgr(self):
        image = np.zeros((1, 3, 4, 6), np.float32)
        image[0, 0] = 1.0  # red
        image[0, 2, 0, 0] = 2.0  # out of range: clipped
        bgr = to_bgr8(image)
        assert bgr.shape == (4, 6, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
        assert bgr[1, 1].tolist() == [0, 0, 255]
        assert bgr[0, 0].tolist() == [255, 0, 255]
        with pytest.raises(InvalidInputError, match="3, H, W"):
            to_bgr8(np.zeros((4, 6, 3)))

    def test_boxes_land_where_the_view_map_says(self):
        image = np.zeros((100, 200, 3), np.uint8)
        results = {"detections": [{"box": [120, 40, 160, 80], "label": "bag", "class_id": 1, "score": 0.9}]}
        # The view shows the frame from x = 100 at half resolution: the box is at (10..30, 20..40).
        annotate(image, results, ViewMap(origin=(100, 0), scale=(2, 2)), fps=12.5, status="3 lux")
        colour = list(class_colour(1))
        assert image[30, 10].tolist() == colour  # left edge
        assert image[40, 20].tolist() == colour  # bottom edge
        assert image[30, 20].tolist() == [0, 0, 0]  # inside stays untouched
        assert image[95:100, 0:40].any()  # the status line
        assert image[0:20, 120:200].any()  # the FPS

    def test_labels_drawn_and_bad_image_refused(self):
        image = np.zeros((64, 64, 3), np.uint8)
        annotate(image, {"labels": [{"label": "dark", "class_id": 0, "score": 0.7}]})
        assert image[:24].any() and not image[40:].any()
        with pytest.raises(InvalidInputError, match="uint8 BGR"):
            annotate(np.zeros((64, 64, 3), np.float32), {})
        assert class_colour(0) != class_colour(1)


class TestMetrics:
    def test_latency_window(self):
        window = LatencyWindow(window=100)
        for ms in range(1, 201):
            window.add(float(ms))
        s = window.summary()
        assert s["count"] == 200 and s["sum_ms"] == sum(range(1, 201)) and s["max_ms"] == 200
        # Percentiles cover the last 100 samples only: 101..200.
        assert s["p50_ms"] == pytest.approx(150.5) and s["p99_ms"] == pytest.approx(199.01)
        with pytest.raises(InvalidInputError):
            window.add(-1.0)

    def test_rate_meter(self):
        now = [0.0]
        meter = RateMeter(window_s=1.0, clock=lambda: now[0])
        assert meter.rate() == 0.0
        for _ in range(30):
            now[0] += 0.1
            meter.tick()
        assert meter.rate() == pytest.approx(10.0)

    def test_snapshot_schema(self):
        metrics = PipelineMetrics(("inference",), ("frames_captured",))
        metrics.count("frames_captured", 5)
        metrics.dropped("inference", 2)
        for ms in (10.0, 20.0, 30.0):
            metrics.frame_done({"inference": ms, "end_to_end": ms * 2, "unknown": 1.0})
        snap = metrics.snapshot()
        assert snap["frames"] == 3 and snap["dropped"] == 2 and snap["dropped_inference"] == 2
        assert snap["frames_captured"] == 5
        assert snap["latency_ms"]["inference"] == {"p50": 20.0, "p90": pytest.approx(28.0), "p99": pytest.approx(29.8)}
        assert set(snap["latency_ms"]) == {"inference", "end_to_end"}
        json.dumps(snap)
        with pytest.raises(InvalidInputError, match="unknown counter"):
            metrics.count("nope")
