"""ONNX export of a half-resolution model (issue 17's fast variant): the raw input at twice the
picture's sides, boxes in the raw frame's pixels, the picture at half, raw_scale in the metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.contract.metadata import ModelMetadata, read_metadata
from edge_isp.contract.model_input import Geometry
from edge_isp.errors import InvalidInputError
from edge_isp.export.onnx_export import export_onnx
from edge_isp.model.heads import CenterNetDetector
from edge_isp.model.loading import load_model
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.pipeline import image_scale
from edge_isp.runtime.sources import SimulatedSource
from edge_isp.runtime.sources.scene import MovingScene, Sprite
from tests.runtime.test_pipeline_flow import Collect, make_pipeline

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RAW = (128, 96)  # a classifier's frame: its picture is 64x48
DET_RAW = (128, 128)  # the picture 64x64


@pytest.fixture(scope="module")
def half_detector(tmp_path_factory, profile):
    loaded = load_model("dpnh_s_det", num_classes=2, width_mult=0.35)
    path = tmp_path_factory.mktemp("onnx") / "half.onnx"
    result = export_onnx(loaded.model, path, input_size=DET_RAW, class_names=["a", "b"], profile=profile,
                         with_image=True, top_k=10)  # fmt: skip
    return loaded, result


def test_detector_round_trip_through_onnxruntime(half_detector):
    loaded, result = half_detector
    meta = read_metadata(result.path)
    assert meta == result.metadata and meta.raw_scale == 2
    assert meta.input_size == DET_RAW and meta.image_size == (64, 64)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 4, 64, 64]  # the packed planes of the 128x128 raw
    rng = np.random.default_rng(0)
    raw = rng.random((1, 4, 64, 64), dtype=np.float32) * 0.5
    noise = np.float32([[0.01, 0.002]])
    boxes, scores, labels, image = session.run(None, {"raw": raw, "noise": noise})
    assert image.shape == (1, 3, 64, 64) and boxes.shape == (1, 10, 4) and scores.shape == labels.shape == (1, 10)
    with torch.no_grad():
        picture = loaded.model.isp(torch.from_numpy(raw), torch.from_numpy(noise))
        maps = loaded.model.head(picture)
        reference = CenterNetDetector.decode(maps, top_k=10, stride=loaded.model.head.stride)
    # Boxes come out in the raw frame's pixels: the picture's boxes times 2.
    np.testing.assert_allclose(boxes, reference["boxes"].numpy() * 2, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(scores, reference["scores"].numpy(), atol=1e-5)
    assert np.array_equal(labels, reference["labels"].numpy())
    np.testing.assert_allclose(image, picture.numpy(), atol=1e-4)
    assert all(stats.ok() for stats in result.parity.values())


def test_classifier_export_and_input_sizes(tmp_path, profile):
    loaded = load_model("dpnh_s_cls", num_classes=2, width_mult=0.35)
    result = export_onnx(loaded.model, tmp_path / "c.onnx", input_size=RAW, class_names=["x", "y"], profile=profile,
                         with_image=True)  # fmt: skip
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    logits, image = session.run(None, {"raw": np.full((1, 4, 48, 64), 0.3, np.float32),
                                       "noise": np.float32([[0.01, 0.002]])})  # fmt: skip
    assert logits.shape == (1, 2) and image.shape == (1, 3, 48, 64)
    assert all(s.ok() for s in result.parity.values())
    with pytest.raises(InvalidInputError, match="multiples of 4"):  # the picture (raw / 2) needs even sides
        export_onnx(loaded.model, tmp_path / "d.onnx", input_size=(130, 98), class_names=["x", "y"], profile=profile)


def test_metadata_raw_scale_is_read_from_the_config_and_checked():
    meta = ModelMetadata(task="classification", input_size=(256, 128), raw_scale=2,
                         model_config={"isp": {"resolution": "half"}})  # fmt: skip
    props = meta.to_props()
    assert props["edge_isp.raw_scale"] == "2"
    assert ModelMetadata.from_props(props, strict=False) == meta
    # Older files: no key, and no resolution in the config -> 1; the config alone says 2.
    assert "edge_isp.raw_scale" not in ModelMetadata(task="classification").to_props()
    assert ModelMetadata.from_props({"edge_isp.task": "classification"}, strict=False).raw_scale == 1
    del props["edge_isp.raw_scale"]
    assert ModelMetadata.from_props(props, strict=False).raw_scale == 2
    props["edge_isp.raw_scale"] = "1"
    with pytest.raises(InvalidInputError, match="raw_scale"):
        ModelMetadata.from_props(props, strict=False)


def test_runtime_maps_the_half_resolution_picture_to_frame_pixels():
    # A 640x480 frame cropped to 640x480 and fed as a 320x240 raw (scale 2): the half-resolution
    # picture is 160x120, so each of its pixels covers 4 frame pixels.
    geometry = Geometry((640, 480), (0, 0, 640, 480), (320, 240))
    assert image_scale(geometry, 160, 120) == (4.0, 4.0)
    assert image_scale(geometry, 320, 240) == geometry.scale == (2.0, 2.0)


def test_live_pipeline_shows_the_half_resolution_picture_with_boxes_in_frame_pixels(half_detector, profile):
    """The runtime (ONNX Runtime) on a simulated 128x128 camera: the learned view is the 64x64
    picture, mapped to the frame at 2 frame pixels per view pixel; boxes are in frame pixels."""

    _, result = half_detector
    square = Sprite(label=1, rgb=np.ones((16, 16, 3), np.float32), alpha=np.ones((16, 16), np.float32),
                    frequency_hz=(0.4, 0.3), phase=(0.0, 1.0))  # fmt: skip
    scene = MovingScene(np.full((128, 128, 3), 0.05, np.float32), [square])
    source = SimulatedSource(profile, scene=scene, paced=False, fps=30.0, lux=300.0)
    out = Collect()
    pipeline = make_pipeline(source, make_backend(result.path), profile, [out], when_full="block", max_frames=3)
    pipeline.run(handle_signals=False)
    assert len(out.results) == 3
    for r in out.results:
        assert r.view.shape == (64, 64, 3) and r.view_map.scale == (2.0, 2.0)
        assert r.annotated.shape == (64, 64, 3)
        for det in r.results["detections"]:
            assert all(0 <= v <= 128 for v in det["box"])


def test_a_stride_1_detector_takes_the_raw_sizes_of_a_full_resolution_one(tmp_path, profile):
    """Its deepest map is at 16 picture pixels: a 96x64 raw (picture 48x32) exports and matches
    torch; the raw still needs multiples of 32, like a full-resolution detector's."""
    loaded = load_model("dpnh_s_det", num_classes=2, width_mult=0.35)
    result = export_onnx(loaded.model, tmp_path / "d.onnx", input_size=(96, 64), class_names=["a", "b"],
                         profile=profile, top_k=5)  # fmt: skip
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 4, 32, 48]
    assert all(stats.ok() for stats in result.parity.values())
    with pytest.raises(InvalidInputError, match=r"multiples of 32.*80x64"):
        export_onnx(loaded.model, tmp_path / "e.onnx", input_size=(80, 64), class_names=["a", "b"], profile=profile)
