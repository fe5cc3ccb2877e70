"""FP16 conversion and INT8 Q/DQ quantization of exported graphs; calibration feeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edge_isp.contract.metadata import read_metadata
from edge_isp.errors import InvalidInputError
from edge_isp.export.calibration import CalibrationFeed, calibration_stride, chunked, simulated_feed
from edge_isp.export.precision import (
    convert_fp16,
    isp_float_islands,
    layer_name,
    node_names,
    output_layers,
    precision_suffix,
    quantize_int8,
    quantized_nodes,
)

from .conftest import SensitiveClassifier, export_module, sensitive_inputs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(4, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 2, 1)

    def forward(self, raw, noise):
        return self.second(torch.relu(self.first(raw))).mean((2, 3)) + noise[:, :1] * 0


@pytest.fixture(scope="module")
def two_convs(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("prec") / "m.fp32.onnx"
    return export_module(TwoConvs(), path, packed_hw=(8, 8), task="classification", class_names=["a", "b"],
                         outputs=["logits"])  # fmt: skip


def _feed(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return CalibrationFeed([{"raw": rng.random((1, 4, 8, 8), dtype=np.float32),
                             "noise": np.float32([[0.01, 0.001]])} for _ in range(n)])  # fmt: skip


def _run(path, feed):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, item)[0] for item in feed])


def _initializer_types(model):
    return {i.name: i.data_type for i in model.graph.initializer}


class TestFp16:
    def test_weights_fp16_io_float32(self, two_convs, tmp_path):
        out = convert_fp16(two_convs, tmp_path / "m.fp16.onnx")
        model = onnx.load(str(out))
        assert {i.type.tensor_type.elem_type for i in (*model.graph.input, *model.graph.output)} == {
            onnx.TensorProto.FLOAT
        }
        conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
        types = _initializer_types(model)
        assert all(types[w] == onnx.TensorProto.FLOAT16 for w in conv_weights)
        meta = read_metadata(out)
        assert meta.precision == "fp16" and meta.higher_precision == ()
        feed = _feed()
        np.testing.assert_allclose(_run(out, feed), _run(two_convs, feed), atol=2e-3, rtol=1e-2)

    def test_kept_nodes_stay_float32(self, two_convs, tmp_path):
        first = [n for n in node_names(two_convs, ["Conv"]) if "first" in n]
        out = convert_fp16(two_convs, tmp_path / "m.fp16.onnx", keep=first)
        model = onnx.load(str(out))
        kept = next(n for n in model.graph.node if n.name == first[0])
        assert _initializer_types(model)[kept.input[1]] == onnx.TensorProto.FLOAT
        assert read_metadata(out).higher_precision == ("first",)

    def test_unknown_keep_node(self, two_convs, tmp_path):
        with pytest.raises(InvalidInputError, match=r"not in the model"):
            convert_fp16(two_convs, tmp_path / "x.onnx", keep=["/nope/Conv"])


class IslandIsp(nn.Module):
    """An ISP with a learned prior (``priors.0``) and a tone curve's 1x1 colour matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.priors = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1)])
        self.tone = nn.Conv2d(4, 4, 1)

    def forward(self, raw):
        return self.tone(torch.sqrt(self.priors[0](raw) ** 2 + 1e-3))


class WithIsp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.isp = IslandIsp()
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, raw, noise):
        return self.head(self.isp(raw)).mean((2, 3)) + noise[:, :1] * 0


class TestInt8:
    def test_the_isps_delicate_parts_stay_float(self, tmp_path):
        path = export_module(WithIsp(), tmp_path / "isp.onnx", packed_hw=(8, 8), task="classification",
                             class_names=["a", "b"], outputs=["logits"])  # fmt: skip
        assert isp_float_islands(path) == ["/isp/tone/Conv"]
        assert output_layers(path) == ["/head/Conv"]
        out = quantize_int8(path, tmp_path / "isp.int8.onnx", _feed())
        assert sorted(quantized_nodes(out)) == ["/isp/priors.0/Conv"]
        assert read_metadata(out).higher_precision == ("head", "isp/tone")
        ops = {n.name: n.op_type for n in onnx.load(str(out)).graph.node}
        assert ops["/isp/Sqrt"] == "Sqrt"  # element-wise ISP: float, no Q/DQ around it
        everything = quantize_int8(path, tmp_path / "all.int8.onnx", _feed(), isp_islands=False, keep_outputs=False)
        assert len(quantized_nodes(everything)) == 3
        assert isp_float_islands(self._two_convs_path(tmp_path)) == []

    @staticmethod
    def _two_convs_path(tmp_path):
        return export_module(TwoConvs(), tmp_path / "t.onnx", packed_hw=(8, 8), task="classification",
                             class_names=["a", "b"], outputs=["logits"])  # fmt: skip

    def test_qdq_per_channel_symmetric(self, two_convs, tmp_path):
        out = quantize_int8(two_convs, tmp_path / "m.int8.onnx", _feed(), keep_outputs=False)
        model = onnx.load(str(out))
        ops = [n.op_type for n in model.graph.node]
        assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 4
        init = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type != "DequantizeLinear" or node.input[0] not in init:
                continue
            weights = init[node.input[0]]
            assert weights.dtype == np.int8
            scale = init[node.input[1]]
            assert scale.shape == (weights.shape[0],)  # one scale per output channel
            assert np.all(init[node.input[2]] == 0)  # symmetric: TensorRT's zero points
        assert sorted(layer_name(n) for n in quantized_nodes(out)) == ["first", "second"]
        assert read_metadata(out).precision == "int8"
        feed = _feed(seed=1)
        reference = _run(two_convs, feed)
        assert np.abs(_run(out, feed) - reference).max() < 0.05 * np.abs(reference).max() + 1e-3

    def test_keep_leaves_a_node_unquantized_and_cache_is_reused(self, two_convs, tmp_path):
        cache = tmp_path / "ranges.json"
        quantize_int8(two_convs, tmp_path / "a.onnx", _feed(), cache_path=cache)
        assert cache.is_file()
        second = [n for n in node_names(two_convs, ["Conv"]) if "second" in n]
        out = quantize_int8(two_convs, tmp_path / "b.onnx", None, keep=second, cache_path=cache)
        assert [layer_name(n) for n in quantized_nodes(out)] == ["first"]
        assert read_metadata(out).higher_precision == ("second",)

    def test_errors(self, two_convs, tmp_path):
        with pytest.raises(InvalidInputError, match=r"calibration data"):
            quantize_int8(two_convs, tmp_path / "x.onnx", None)
        with pytest.raises(InvalidInputError, match=r"minmax, percentile, entropy"):
            quantize_int8(two_convs, tmp_path / "x.onnx", _feed(), method="kl")

    def test_an_activation_without_range_is_a_clear_error(self, two_convs, tmp_path):
        # ONNX Runtime's histogram calibrators (2048 bins in float32) cannot split a range of
        # 1e-6 at 1.0; NumPy's "Too many bins" becomes an error that says what to change.
        rng = np.random.default_rng(0)
        flat = [{"raw": (1 + 1e-6 * rng.random((1, 4, 8, 8))).astype(np.float32), "noise": np.float32([[0.01, 0.001]])}
                for _ in range(4)]  # fmt: skip
        with pytest.raises(InvalidInputError, match=r"almost no range over 4 calibration batches.*--calib-images"):
            quantize_int8(two_convs, tmp_path / "x.onnx", CalibrationFeed(flat), method="percentile")
        assert not (tmp_path / "x.onnx").exists()
        assert quantize_int8(two_convs, tmp_path / "x.onnx", CalibrationFeed(flat), method="minmax").is_file()

    def test_per_tensor_input_scale_loses_a_small_signal(self, tmp_path):
        """The reason layers must be measured: the sensitive model's first layer, quantized,
        rounds its 0.05 signal to 0 next to a +-100 distractor; FP32 is always right."""
        path = export_module(SensitiveClassifier(), tmp_path / "s.onnx", packed_hw=(8, 8), task="classification",
                             class_names=["pos", "neg"], outputs=["logits"])  # fmt: skip
        raw, noise, labels = sensitive_inputs(16, seed=0)
        feed = CalibrationFeed([{"raw": raw[i : i + 1], "noise": noise[i : i + 1]} for i in range(16)])
        out = quantize_int8(path, tmp_path / "s.int8.onnx", feed)
        assert np.mean(np.argmax(_run(path, feed), 1) == labels) == 1.0
        assert np.mean(np.argmax(_run(out, feed), 1) == labels) <= 0.6


def test_layer_names_and_suffixes():
    assert layer_name("/head/features.3/conv/conv.1/conv.1.0/Conv") == "head/features.3/conv.1/conv.1.0"
    assert layer_name("/isp/priors.0/enc0/enc0.0/Conv") == "isp/priors.0/enc0.0"
    assert layer_name("/head/backbone/classifier/classifier.1/Gemm") == "head/backbone/classifier.1"
    assert precision_suffix("out/m.fp32.onnx", "int8").name == "m.int8.onnx"
    assert precision_suffix("m.onnx", "fp16").name == "m.fp16.onnx"


class TestCalibrationFeeds:
    def test_simulated_every_image_at_every_level(self, profile):
        images = np.random.default_rng(0).integers(0, 256, (3, 3, 16, 16), dtype=np.uint8)
        feed = simulated_feed(images, profile, [8.0, 800.0], batch=1)
        assert len(feed) == 6
        item = feed.get_next()
        assert item["raw"].shape == (1, 4, 8, 8) and item["noise"].shape == (1, 2)
        noises = np.concatenate([i["noise"] for i in feed])
        # a = 1 / electrons at white for this profile: the darker level is noisier.
        np.testing.assert_allclose(noises[:3, 0], 1 / 8.0, rtol=1e-5)
        np.testing.assert_allclose(noises[3:, 0], 1 / 800.0, rtol=1e-5)
        feed.rewind()
        assert feed.get_next() is item
        with pytest.raises(InvalidInputError, match=r"positive electrons"):
            simulated_feed(images, profile, [0.0])
        assert len(simulated_feed(images, profile, [8.0], batch=2)) == 1  # the odd frame cannot fill a batch


class _WholeReader:
    """A calibration reader ONNX Runtime cannot limit to a range: calibrated in one go."""

    def __init__(self, feed):
        self.feed = feed

    def get_next(self):
        return self.feed.get_next()

    def rewind(self):
        self.feed.rewind()


def test_calibration_in_chunks_gives_the_ranges_of_one_pass(two_convs, tmp_path):
    # 40 items go through ONNX Runtime 10 at a time (bounded memory); min/max merge exactly.
    assert calibration_stride(40) == 10 and calibration_stride(256) == 16 and calibration_stride(7) == 7
    assert chunked(_feed(40)) == {"CalibStridedMinMax": 10} and chunked(_WholeReader(_feed(4))) == {}
    chunked_path = quantize_int8(two_convs, tmp_path / "chunks.onnx", _feed(40, seed=3), method="minmax")
    whole_path = quantize_int8(two_convs, tmp_path / "whole.onnx", _WholeReader(_feed(40, seed=3)), method="minmax")
    scales = [
        {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(p)).graph.initializer if "scale" in i.name}
        for p in (chunked_path, whole_path)
    ]
    assert scales[0].keys() == scales[1].keys() and len(scales[0]) > 0
    for name, value in scales[0].items():
        np.testing.assert_allclose(value, scales[1][name], rtol=1e-6, err_msg=name)
