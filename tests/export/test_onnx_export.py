"""ONNX export of the joint network: the I/O contract, metadata, parity with torch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edge_isp.contract.metadata import read_metadata
from edge_isp.errors import InvalidInputError
from edge_isp.export.onnx_export import (
    OPSET,
    ParityStats,
    compare_outputs,
    export_onnx,
)
from edge_isp.model.contract_module import decode_detections
from edge_isp.model.heads import CenterNetDetector
from edge_isp.model.joint import ModelConfig
from edge_isp.model.loading import load_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = (64, 64)


@pytest.fixture(scope="module")
def detector(tmp_path_factory, profile):
    """dp_s_det (tiny, untrained), exported with the image output and a dynamic batch."""
    loaded = load_model("dp_s_det", num_classes=3, width_mult=0.35)
    path = tmp_path_factory.mktemp("onnx") / "det.onnx"
    result = export_onnx(loaded.model, path, input_size=SIZE, class_names=["a", "b", "c"], profile=profile,
                         dynamic_batch=True, with_image=True, top_k=20)  # fmt: skip
    return loaded, result


def test_decoding_equals_the_heads_own():
    generator = torch.Generator().manual_seed(0)
    maps = {
        "heatmap": torch.randn(2, 3, 8, 12, generator=generator),
        "size": torch.rand(2, 2, 8, 12, generator=generator) * 20,
        "offset": torch.rand(2, 2, 8, 12, generator=generator),
    }
    boxes, scores, labels = decode_detections(maps, top_k=30)
    reference = CenterNetDetector.decode(maps, top_k=30)
    assert labels.dtype == torch.int32
    torch.testing.assert_close(boxes, reference["boxes"])
    torch.testing.assert_close(scores, reference["scores"])
    assert torch.equal(labels.long(), reference["labels"])


class TestDetectorExport:
    def test_graph_follows_the_contract(self, detector):
        _, result = detector
        graph = onnx.load(str(result.path))
        onnx.checker.check_model(graph)
        assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
        inputs = {i.name: i for i in graph.graph.input}
        assert list(inputs) == ["raw", "noise"]
        raw_dims = [d.dim_value or d.dim_param for d in inputs["raw"].type.tensor_type.shape.dim]
        assert raw_dims == ["batch", 4, 32, 32]
        assert [o.name for o in graph.graph.output] == ["boxes", "scores", "labels", "image"]
        types = {o.name: o.type.tensor_type.elem_type for o in graph.graph.output}
        assert types["labels"] == onnx.TensorProto.INT32 and types["boxes"] == onnx.TensorProto.FLOAT

    def test_runs_at_another_batch_with_contract_shapes(self, detector):
        _, result = detector
        session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        raw = np.random.default_rng(0).random((3, 4, 32, 32), dtype=np.float32)
        noise = np.tile(np.float32([[0.01, 0.002]]), (3, 1))
        boxes, scores, labels, image = session.run(None, {"raw": raw, "noise": noise})
        assert boxes.shape == (3, 20, 4) and scores.shape == (3, 20) and labels.shape == (3, 20)
        assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < 3
        assert image.shape == (3, 3, 64, 64)
        assert np.all(np.diff(scores, axis=1) <= 0)  # top-K order

    def test_metadata(self, detector):
        loaded, result = detector
        meta = read_metadata(result.path)
        assert meta == result.metadata
        assert (meta.task, meta.class_names, meta.input_size) == ("detection", ("a", "b", "c"), SIZE)
        assert meta.profile == "nexus6p-rear" and meta.precision == "fp32" and meta.top_k == 20
        assert ModelConfig.from_dict(meta.model_config) == loaded.config
        assert "opset 17" in meta.exporter and "torch" in meta.exporter

    def test_parity_with_torch_is_reported_and_small(self, detector):
        _, result = detector
        assert set(result.parity) == {"boxes", "scores", "labels", "image"}
        assert result.parity["scores"].max_abs < 1e-4
        assert result.parity["boxes"].max_abs < 1e-2 * max(1.0, result.parity["boxes"].ref_max_abs)
        assert result.parity["boxes"].unmatched == 0
        assert result.parity["image"].max_abs < 1e-4
        assert all(stats.ok() for stats in result.parity.values())
        assert not ParityStats(0.5, 0.1, 1.0).ok() and not ParityStats(0.0, 0.0, 1.0, unmatched=1).ok()

    def test_model_left_in_its_mode(self, detector):
        loaded, _ = detector
        assert not loaded.model.training


def test_classifier_and_reconstruction(tmp_path, profile):
    for name, outputs in (("raw_cls", ["logits"]), ("dp_s_rec", ["image"]), ("dpn_s_rec", ["image"])):
        loaded = load_model(name, num_classes=2, width_mult=0.35)
        result = export_onnx(loaded.model, tmp_path / f"{name}.onnx", input_size=(32, 48),
                             class_names=["x", "y"], profile=profile)  # fmt: skip
        graph = onnx.load(str(result.path))
        assert [o.name for o in graph.graph.output] == outputs
        assert all(s.max_abs <= 1e-4 * max(1.0, s.ref_max_abs) for s in result.parity.values())


def test_bad_arguments(tmp_path, profile):
    loaded = load_model("dp_s_det", num_classes=2, width_mult=0.35)
    with pytest.raises(InvalidInputError, match=r"multiples of 32.*60x64"):
        export_onnx(loaded.model, tmp_path / "m.onnx", input_size=(60, 64), class_names=["a", "b"], profile=profile)
    with pytest.raises(InvalidInputError, match=r"2 classes but 3 class names"):
        export_onnx(loaded.model, tmp_path / "m.onnx", input_size=SIZE, class_names=["a", "b", "c"], profile=profile)
    renamed = dataclasses.replace(profile, name="My camera/v2")
    with pytest.raises(InvalidInputError, match=r"profile's name 'My camera/v2' cannot go in the model's metadata"):
        export_onnx(loaded.model, tmp_path / "m.onnx", input_size=SIZE, class_names=["a", "b"], profile=renamed)
    assert not (tmp_path / "m.onnx").exists()


def test_detection_parity_pairs_swapped_detections():
    boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32)
    scores = np.array([[0.5, 0.5]], np.float32)
    labels = np.array([[1, 2]], np.int32)
    swapped = [boxes[:, ::-1], scores[:, ::-1], labels[:, ::-1]]
    stats = compare_outputs(["boxes", "scores", "labels"], swapped, [boxes, scores, labels])
    assert stats["boxes"] == ParityStats(0.0, 0.0, 30.0, 0)
    moved = boxes.copy()
    moved[0, 0] += 5.0
    stats = compare_outputs(["boxes", "scores", "labels"], [moved, scores, labels], [boxes, scores, labels])
    assert stats["boxes"].unmatched == 1


def test_rgb_input_export_is_the_head_alone(tmp_path, profile):
    """`input_kind="rgb"`: one input 'rgb' (B, 3, H, W), the head's own decoded answers on it, the
    conventional ISP it was trained behind in the metadata."""
    loaded = load_model("dp_s_det", num_classes=2, width_mult=0.35)
    behind = {"demosaic": "malvar", "denoise": "nlm"}
    result = export_onnx(loaded.model, tmp_path / "rgb.onnx", input_size=(64, 32), class_names=["a", "b"],
                         profile=profile, top_k=10, input_kind="rgb", conventional_isp=behind)  # fmt: skip
    graph = onnx.load(str(result.path))
    (rgb,) = graph.graph.input
    assert rgb.name == "rgb" and [d.dim_value for d in rgb.type.tensor_type.shape.dim] == [1, 3, 32, 64]
    assert [o.name for o in graph.graph.output] == ["boxes", "scores", "labels"]
    meta = read_metadata(result.path)
    assert meta == result.metadata and meta.input_kind == "rgb" and meta.conventional_isp == behind
    assert meta.noise_range is None and meta.input_names == ("rgb",)
    assert all(stats.ok() for stats in result.parity.values())
    picture = np.random.default_rng(1).random((1, 3, 32, 64), dtype=np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"rgb": picture})
    with torch.no_grad():
        expected = CenterNetDetector.decode(loaded.model.head(torch.from_numpy(picture)), top_k=10)
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=1e-5)
    np.testing.assert_allclose(boxes, expected["boxes"].numpy(), atol=1e-3)
    np.testing.assert_array_equal(labels, expected["labels"].numpy())


def test_rgb_input_export_refuses_what_it_cannot_be(tmp_path, profile):
    detector = load_model("dp_s_det", num_classes=2, width_mult=0.35).model
    with pytest.raises(InvalidInputError, match="no learned ISP, so no 'image' output"):
        export_onnx(detector, tmp_path / "m.onnx", input_size=SIZE, class_names=["a", "b"], profile=profile,
                    input_kind="rgb", with_image=True)  # fmt: skip
    isp_only = load_model("dp_s_rec", width_mult=0.35).model
    with pytest.raises(InvalidInputError, match="perception network alone; this model has none"):
        export_onnx(isp_only, tmp_path / "m.onnx", input_size=SIZE, class_names=[], profile=profile, input_kind="rgb")
    with pytest.raises(InvalidInputError, match="input kind must be one of raw, rgb"):
        export_onnx(detector, tmp_path / "m.onnx", input_size=SIZE, class_names=["a", "b"], profile=profile,
                    input_kind="yuv")  # fmt: skip
    assert not (tmp_path / "m.onnx").exists()
