"""ONNX metadata: every contract key written, read back equal, malformed values refused."""

from __future__ import annotations

import json

import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.export.metadata import PREFIX, REQUIRED_KEYS, ExportMetadata, output_names, read_metadata, set_metadata

onnx = pytest.importorskip("onnx")

META = ExportMetadata(
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


def test_missing_keys_say_it_is_not_an_export():
    props = META.to_props()
    del props["edge_isp.profile"]
    with pytest.raises(InvalidInputError, match=r"not an edge-isp export.*edge_isp.profile"):
        ExportMetadata.from_props(props)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [("class_names", "{", "not valid JSON"), ("class_names", '{"a": 1}', "JSON list"), ("input_size", "640", "WxH")],
)
def test_malformed_values(key, value, words):
    props = META.to_props()
    props[PREFIX + key] = value
    with pytest.raises(InvalidInputError, match=words):
        ExportMetadata.from_props(props, origin="m.onnx")


def test_output_names_per_task():
    assert output_names("classification") == ["logits"]
    assert output_names("detection", with_image=True) == ["boxes", "scores", "labels", "image"]
    assert output_names("reconstruction", with_image=True) == ["image"]
    with pytest.raises(InvalidInputError, match=r"task must be one of"):
        output_names("segmentation")
