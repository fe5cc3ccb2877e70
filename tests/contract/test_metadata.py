"""The exported-model metadata: every contract key written and read back equal; strict refuses what
lenient tolerates; malformed values, noise ranges and profile names refused with the key and model named."""

from __future__ import annotations

import json

import pytest

from edge_isp.contract.metadata import (
    PREFIX,
    REQUIRED_KEYS,
    TASK_OUTPUTS,
    TASKS,
    ModelMetadata,
    NoiseRange,
    output_names,
    read_metadata,
    set_metadata,
    task_from_outputs,
)
from edge_isp.errors import InvalidInputError

onnx = pytest.importorskip("onnx")

META = ModelMetadata(
    version="0.1.0",
    model_config={"name": "dp_s_det", "task": "detection", "isp": {"widths": [8, 16, 32]}},
    task="detection",
    class_names=("shirt", "shoe"),
    input_size=(640, 480),
    profile="nexus6p-rear",
    precision="int8",
    exporter="torch x, onnx y, opset 17",
    top_k=100,
    higher_precision=("isp/priors.0/enc0.0",),
    noise_range=NoiseRange(a=(1e-3, 0.125), sigma=(2e-4, 0.05)),
)


def _empty_model():
    graph = onnx.helper.make_graph([], "g", [], [])
    return onnx.helper.make_model(graph)


def test_contract_keys_and_string_values():
    props = META.to_props()
    for key in REQUIRED_KEYS:
        assert PREFIX + key in props
    assert props["edge_isp.input_size"] == "640x480"
    assert json.loads(props["edge_isp.class_names"]) == ["shirt", "shoe"]
    assert json.loads(props["edge_isp.model_config"])["isp"]["widths"] == [8, 16, 32]
    assert json.loads(props["edge_isp.noise_range"]) == {"a": [1e-3, 0.125], "sigma": [2e-4, 0.05]}
    assert all(isinstance(v, str) for v in props.values())


def test_round_trip_through_a_model(tmp_path):
    model = _empty_model()
    entry = model.metadata_props.add()
    entry.key, entry.value = "other_tool.key", "kept"
    set_metadata(model, META)
    set_metadata(model, META.replace(precision="fp16"))  # replaces, does not duplicate
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    keys = [p.key for p in onnx.load(str(path)).metadata_props]
    assert keys.count("edge_isp.precision") == 1 and "other_tool.key" in keys
    assert read_metadata(path) == META.replace(precision="fp16")
    assert read_metadata(path, strict=False) == META.replace(precision="fp16")


def test_tasks_and_their_outputs_are_one_table():
    assert TASKS == ("classification", "detection", "reconstruction") == tuple(TASK_OUTPUTS)
    assert output_names("classification") == ["logits"]
    assert output_names("detection", with_image=True) == ["boxes", "scores", "labels", "image"]
    assert output_names("reconstruction", with_image=True) == ["image"]
    with pytest.raises(InvalidInputError, match=r"task must be one of"):
        output_names("segmentation")


class TestStrictAndLenient:
    def test_strict_refuses_a_model_without_the_required_keys(self):
        props = META.to_props()
        del props["edge_isp.profile"]
        with pytest.raises(InvalidInputError, match=r"m\.onnx: not an edge-isp export.*edge_isp.profile"):
            ModelMetadata.from_props(props, origin="m.onnx")
        with pytest.raises(InvalidInputError, match="not an edge-isp export"):
            ModelMetadata.from_props({}, output_names=["logits"])

    def test_lenient_tolerates_missing_keys_and_reads_the_task_from_the_outputs(self):
        props = META.to_props()
        del props["edge_isp.profile"]
        assert ModelMetadata.from_props(props, strict=False) == META.replace(profile=None)
        bare = ModelMetadata.from_props({}, strict=False, output_names=["boxes", "scores", "labels", "image"])
        assert bare == ModelMetadata(task="detection")
        assert bare.class_name(3) == "class 3" and bare.input_size is None and bare.noise_range is None
        assert task_from_outputs(["logits"]) == "classification"
        assert task_from_outputs(["image"]) == "reconstruction"
        with pytest.raises(InvalidInputError, match=r"m\.onnx: cannot tell the task"):
            ModelMetadata.from_props({}, strict=False, output_names=["out"], origin="m.onnx")

    def test_lenient_reads_what_a_model_gives(self):
        props = {
            "edge_isp.task": "detection",
            "edge_isp.class_names": '["shirt", "bag"]',
            "edge_isp.input_size": "128x96",
            "edge_isp.profile": "nexus6p-rear",
            "edge_isp.model_config": '{"name": "dp_s_det"}',
            "edge_isp.version": "0.1.0",
        }
        info = ModelMetadata.from_props(props, strict=False)
        expected = ModelMetadata(
            task="detection", class_names=("shirt", "bag"), input_size=(128, 96), profile="nexus6p-rear",
            version="0.1.0", model_config={"name": "dp_s_det"},
        )  # fmt: skip
        assert info == expected
        assert info.class_name(1) == "bag" and info.class_name(7) == "class 7"

    @pytest.mark.parametrize("strict", [True, False])
    @pytest.mark.parametrize(
        ("key", "value", "words"),
        [
            ("class_names", "{", "class_names' is not valid JSON"),
            ("class_names", '{"a": 1}', "class_names' must be a JSON list"),
            ("class_names", "[1, 2]", "class_names' must be a JSON list of strings"),
            ("input_size", "640", "input_size' must be WIDTHxHEIGHT"),
            ("input_size", "641x480", "input_size' must be even"),
            ("top_k", "many", "top_k' must be a whole number"),
            ("task", "segmentation", "task must be one of"),
            ("model_config", "[]", "model_config' must be a JSON dict"),
        ],
    )
    def test_malformed_values_are_refused_in_both_modes(self, strict, key, value, words):
        props = META.to_props()
        props[PREFIX + key] = value
        with pytest.raises(InvalidInputError, match=r"m\.onnx: .*" + words):
            ModelMetadata.from_props(props, strict=strict, origin="m.onnx")


class TestNoiseRange:
    def test_absent_is_none_and_the_range_round_trips(self):
        props = META.to_props()
        del props["edge_isp.noise_range"]
        assert ModelMetadata.from_props(props).noise_range is None
        assert NoiseRange.from_json(META.noise_range.to_json()) == META.noise_range
        assert META.noise_range.contains(0.01, 0.01) and not META.noise_range.contains(0.2, 0.01)

    @pytest.mark.parametrize(
        "value",
        [
            "{",
            "[0, 1]",
            '{"a": [0, 1]}',
            '{"a": [0, 1], "sigma": [0, 1], "b": [0, 1]}',
            '{"a": [0.5, 0.1], "sigma": [0, 1]}',
            '{"a": [-0.1, 0.1], "sigma": [0, 1]}',
            '{"a": [0, Infinity], "sigma": [0, 1]}',
            '{"a": [0, NaN], "sigma": [0, 1]}',
            '{"a": [0, 1, 2], "sigma": [0, 1]}',
            '{"a": ["0", 1], "sigma": [0, 1]}',
            '{"a": [true, 1], "sigma": [0, 1]}',
        ],
    )
    def test_malformed_ranges_are_refused_naming_the_key(self, value):
        props = {**META.to_props(), "edge_isp.noise_range": value}
        with pytest.raises(InvalidInputError, match=r"m\.onnx: metadata 'edge_isp\.noise_range'"):
            ModelMetadata.from_props(props, origin="m.onnx")


class TestProfileName:
    @pytest.mark.parametrize(
        "name", ["../../../etc/passwd", "/etc/passwd", "profiles/imx219", "a\\b", "..", ".hidden", "x..y", "a b"]
    )
    def test_a_path_is_refused_and_the_model_named(self, name):
        props = {**META.to_props(), "edge_isp.profile": name}
        for strict in (True, False):
            with pytest.raises(InvalidInputError, match=r"evil\.onnx: metadata 'edge_isp\.profile' must be a sensor"):
                ModelMetadata.from_props(props, strict=strict, origin="evil.onnx")

    def test_a_path_is_refused_when_the_metadata_is_made_in_code(self):
        with pytest.raises(InvalidInputError, match="sensor profile"):
            META.replace(profile="../../../etc/passwd")

    def test_names_pass(self):
        for name in ("nexus6p-rear", "imx219_v2", "ar0234.cs"):
            assert ModelMetadata.from_props({**META.to_props(), "edge_isp.profile": name}).profile == name

    def test_the_file_is_named_when_read_from_disk(self, tmp_path):
        model = _empty_model()
        set_metadata(model, META)
        for entry in model.metadata_props:
            if entry.key == "edge_isp.profile":
                entry.value = "../../../etc/passwd"
        path = tmp_path / "evil.onnx"
        onnx.save(model, str(path))
        with pytest.raises(InvalidInputError, match=r"evil\.onnx: metadata 'edge_isp\.profile'"):
            read_metadata(path, strict=False)


class TestInputKind:
    RGB = META.replace(input_kind="rgb", noise_range=None, conventional_isp={"demosaic": "malvar", "denoise": "nlm"})

    def test_round_trips_and_names_the_inputs(self):
        props = self.RGB.to_props()
        assert props["edge_isp.input_kind"] == "rgb"
        assert json.loads(props["edge_isp.conventional_isp"]) == {"demosaic": "malvar", "denoise": "nlm"}
        assert ModelMetadata.from_props(props) == self.RGB and self.RGB.input_names == ("rgb",)
        assert META.input_kind == "raw" and META.input_names == ("raw", "noise")

    def test_absent_is_raw_unless_the_graph_has_only_an_rgb_input(self):
        props = {k: v for k, v in META.to_props().items() if k != "edge_isp.input_kind"}
        assert ModelMetadata.from_props(props).input_kind == "raw"
        lenient = ModelMetadata.from_props({}, strict=False, output_names=["boxes"], input_names=["rgb"])
        assert lenient.input_kind == "rgb"
        assert (
            ModelMetadata.from_props({}, strict=False, output_names=["boxes"], input_names=["raw", "noise"]).input_kind
            == "raw"
        )

    @pytest.mark.parametrize(
        "key, value, words",
        [
            ("input_kind", "yuv", "'edge_isp.input_kind' must be one of raw, rgb, got 'yuv'"),
            ("conventional_isp", "[1]", "'edge_isp.conventional_isp' must be a JSON dict"),
            ("conventional_isp", '{"demosaic": "malvar"}', "'edge_isp.conventional_isp': a conventional ISP is"),
            ("conventional_isp", '{"demosaic": "malvar", "denoise": 3}', "demosaic and denoise are names"),
        ],
    )
    def test_malformed_values_are_refused_naming_the_key(self, key, value, words):
        props = {**self.RGB.to_props(), f"edge_isp.{key}": value}
        with pytest.raises(InvalidInputError) as info:
            ModelMetadata.from_props(props, origin="conv.onnx")
        assert words in str(info.value) and "conv.onnx" in str(info.value)

    def test_only_an_rgb_model_names_a_conventional_isp(self):
        with pytest.raises(InvalidInputError, match="only an rgb-input model runs behind a conventional ISP"):
            META.replace(conventional_isp={"demosaic": "malvar", "denoise": "none"})
