"""Which of a model's ONNX files runs, per runtime and --precision: the rule, as pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_isp.contract.model_files import choose_model_file, file_precision, sibling_candidates, split_name
from edge_isp.errors import InvalidInputError, MissingFileError

D = Path("/m")


def exists_in(*names: str):
    present = {D / n for n in names}
    return lambda p: p in present


@pytest.mark.parametrize(
    ("name", "base", "precision"),
    [("model.onnx", "model", "fp32"), ("model.fp32.onnx", "model", "fp32"), ("det.int8.onnx", "det", "int8"),
     ("det.int8-cpu.onnx", "det", "int8-cpu"), ("a.b.fp16.onnx", "a.b", "fp16")],
)  # fmt: skip
def test_split_name(name, base, precision):
    assert split_name(D / name) == (D / base, precision)


def test_siblings_and_precision_per_runtime():
    assert sibling_candidates(D / "model.onnx", "fp32") == [D / "model.fp32.onnx", D / "model.onnx"]
    assert sibling_candidates(D / "model.fp32.onnx", "int8-cpu") == [D / "model.int8-cpu.onnx"]
    assert file_precision("onnxruntime-cpu", "int8") == "int8-cpu"
    assert file_precision("tensorrt", "int8") == "int8"
    assert file_precision("onnxruntime-gpu", "int8") == "int8"
    assert file_precision("onnxruntime-cpu", "fp16") == "fp16"


class TestAuto:
    def test_cpu_takes_the_cpu_int8_file_beside_fp32(self):
        exists = exists_in("model.onnx", "model.int8-cpu.onnx")
        got = choose_model_file(D / "model.onnx", "onnxruntime-cpu", exists=exists)
        assert (got.path, got.precision) == (D / "model.int8-cpu.onnx", "int8-cpu")
        assert "--precision fp32" in got.reason

    def test_cpu_takes_it_instead_of_the_qdq_graph_too(self):
        exists = exists_in("m.int8.onnx", "m.int8-cpu.onnx")
        assert choose_model_file(D / "m.int8.onnx", "onnxruntime-cpu", exists=exists).path == D / "m.int8-cpu.onnx"

    def test_cpu_without_it_runs_the_file_given(self):
        got = choose_model_file(D / "model.onnx", "onnxruntime-cpu", exists=exists_in("model.onnx"))
        assert (got.path, got.precision) == (D / "model.onnx", "fp32")

    def test_fp16_given_stays_fp16_on_cpu(self):
        exists = exists_in("m.fp16.onnx", "m.int8-cpu.onnx")
        assert choose_model_file(D / "m.fp16.onnx", "onnxruntime-cpu", exists=exists).path == D / "m.fp16.onnx"

    @pytest.mark.parametrize("runtime", ["tensorrt", "onnxruntime-gpu"])
    def test_gpu_runtimes_run_the_file_given(self, runtime):
        exists = exists_in("model.onnx", "model.int8-cpu.onnx", "model.int8.onnx")
        assert choose_model_file(D / "model.onnx", runtime, exists=exists).path == D / "model.onnx"

    def test_tensorrt_given_the_cpu_file_builds_its_qdq_sibling(self):
        exists = exists_in("m.int8.onnx", "m.int8-cpu.onnx")
        got = choose_model_file(D / "m.int8-cpu.onnx", "tensorrt", exists=exists)
        assert (got.path, got.precision) == (D / "m.int8.onnx", "int8")

    def test_tensorrt_given_the_cpu_file_alone_is_refused_by_name(self):
        with pytest.raises(MissingFileError, match=r"m\.int8\.onnx"):
            choose_model_file(D / "m.int8-cpu.onnx", "tensorrt", exists=exists_in("m.int8-cpu.onnx"))


class TestAsked:
    def test_int8_means_the_runtimes_own_file(self):
        exists = exists_in("model.onnx", "model.int8.onnx", "model.int8-cpu.onnx")
        assert choose_model_file(D / "model.onnx", "onnxruntime-cpu", "int8", exists).path == D / "model.int8-cpu.onnx"
        assert choose_model_file(D / "model.onnx", "tensorrt", "int8", exists).path == D / "model.int8.onnx"
        assert choose_model_file(D / "model.int8-cpu.onnx", "tensorrt", "int8", exists).path == D / "model.int8.onnx"

    def test_fp32_overrides_the_cpu_int8_file(self):
        exists = exists_in("model.onnx", "model.int8-cpu.onnx")
        assert choose_model_file(D / "model.onnx", "onnxruntime-cpu", "fp32", exists).path == D / "model.onnx"
        got = choose_model_file(D / "model.int8-cpu.onnx", "onnxruntime-cpu", "fp32", exists)
        assert got.path == D / "model.onnx"

    def test_a_missing_file_names_itself_and_the_export_step(self):
        with pytest.raises(MissingFileError, match=r"model\.int8-cpu\.onnx.*--precision int8-cpu"):
            choose_model_file(D / "model.onnx", "onnxruntime-cpu", "int8", exists_in("model.onnx"))

    def test_bad_arguments(self):
        with pytest.raises(InvalidInputError, match="precision"):
            choose_model_file(D / "model.onnx", "onnxruntime-cpu", "int4")
        with pytest.raises(InvalidInputError, match="runtime"):
            choose_model_file(D / "model.onnx", "openvino")
