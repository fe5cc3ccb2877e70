"""Choosing the TensorRT API path and the builder settings from the version: pure code."""

from __future__ import annotations

import pytest

from edge_isp.contract.build_plan import (
    UnsupportedTensorRTError,
    api_path,
    parse_version,
    plan_build,
    spatial_shapes,
)
from edge_isp.contract.trtexec import format_command, trtexec_args
from edge_isp.errors import InvalidInputError


@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("8.5.2.2", "weak-8"),  # JetPack 5.1 (Xavier)
        ("8.6.1", "weak-8"),
        ("10.3.0.30", "weak-10"),  # JetPack 6
        ("10.0.0b6", "weak-10"),
        ("10.13.2", "weak-10"),
        ("11.0.0", "strong-11"),
        ("11.4.1.2", "strong-11"),
        ("12.1", "strong-11"),
    ],
)
def test_api_path_from_version(version, path):
    assert api_path(version) == path


def test_old_and_garbage_versions():
    with pytest.raises(UnsupportedTensorRTError, match=r"8.4.1 is too old.*8.5 or later"):
        api_path("8.4.1")
    with pytest.raises(InvalidInputError, match=r"not a TensorRT version"):
        parse_version("latest")
    assert parse_version("10.0.0b6") == (10, 0, 0)


class TestPlan:
    def test_tensorrt_10_sets_the_precision_flag_of_the_graph(self):
        assert plan_build("10.3", "fp16", workspace_mb=1).builder_flags == ("FP16",)
        # INT8 alone: the layers kept in fp32 stay fp32, as their accuracy was measured.
        assert plan_build("10.3", "int8", workspace_mb=1).builder_flags == ("INT8",)
        assert plan_build("10.3", "fp32", workspace_mb=1).builder_flags == ()
        assert plan_build("10.3", "int8", workspace_mb=1).network_flags == ()

    def test_tensorrt_11_is_strongly_typed_without_precision_flags(self):
        for precision in ("fp32", "fp16", "int8"):
            plan = plan_build("11.3.0", precision, workspace_mb=1)
            assert plan.api == "strong-11"
            assert plan.network_flags == ("STRONGLY_TYPED",)
            assert not set(plan.builder_flags) & {"FP16", "INT8"}

    def test_tensorrt_8_needs_explicit_batch_and_has_no_monitor(self):
        plan = plan_build("8.5.2", "int8", workspace_mb=1)
        assert plan.network_flags == ("EXPLICIT_BATCH",)
        assert not plan.progress_monitor
        assert plan_build("10.3", "int8", workspace_mb=1).progress_monitor

    def test_workspace_in_bytes(self):
        assert plan_build("10.3", "fp16", workspace_mb=1024).workspace_bytes == 1 << 30

    def test_dla_with_gpu_fallback(self):
        plan = plan_build("10.3", "int8", workspace_mb=1, dla_core=1)
        assert plan.dla_core == 1 and plan.builder_flags == ("INT8", "GPU_FALLBACK")
        assert (
            "GPU_FALLBACK"
            not in plan_build("10.3", "fp16", workspace_mb=1, dla_core=0, gpu_fallback=False).builder_flags
        )

    def test_dla_refusals(self):
        with pytest.raises(InvalidInputError, match=r"DLA runs only fp16 or int8"):
            plan_build("10.3", "fp32", workspace_mb=1, dla_core=0)
        with pytest.raises(UnsupportedTensorRTError, match=r"DLA.*TensorRT 10 or 8.x"):
            plan_build("11.3", "int8", workspace_mb=1, dla_core=0)

    def test_optimization_level(self):
        assert plan_build("10.3", "fp16", workspace_mb=1, optimization_level=5).optimization_level == 5
        with pytest.raises(UnsupportedTensorRTError, match=r"8.6 or later"):
            plan_build("8.5.2", "fp16", workspace_mb=1, optimization_level=3)
        with pytest.raises(InvalidInputError, match=r"0..5"):
            plan_build("10.3", "fp16", workspace_mb=1, optimization_level=6)

    def test_dynamic_batch_gets_a_profile_from_1_to_batch(self):
        shapes = {"raw": ("batch", 4, 240, 320), "noise": ("batch", 2)}
        plan = plan_build("10.3", "fp16", workspace_mb=1, input_shapes=shapes, batch=4)
        assert plan.input_shapes == {
            "raw": ((1, 4, 240, 320), (4, 4, 240, 320), (4, 4, 240, 320)),
            "noise": ((1, 2), (4, 2), (4, 2)),
        }
        static = plan_build("10.3", "fp16", workspace_mb=1, input_shapes={"raw": (1, 4, 240, 320)})
        assert static.input_shapes is None

    def test_dynamic_size_is_fixed_at_the_engine_size(self):
        # A dynamic-size export: batch, height and width all dynamic in the file.
        shapes = {"raw": ("batch", 4, "raw_height", "raw_width"), "noise": ("batch", 2)}
        spatial = spatial_shapes("raw", (640, 480))
        assert spatial == {"raw": (240, 320)}
        plan = plan_build("10.3", "fp16", workspace_mb=1, input_shapes=shapes, batch=2, input_size=(640, 480),
                          spatial=spatial)  # fmt: skip
        assert plan.input_size == (640, 480)
        assert plan.input_shapes == {
            "raw": ((1, 4, 240, 320), (2, 4, 240, 320), (2, 4, 240, 320)),
            "noise": ((1, 2), (2, 2), (2, 2)),
        }
        fixed_batch = {"raw": (1, 4, "raw_height", "raw_width"), "noise": (1, 2)}
        plan = plan_build("10.3", "fp16", workspace_mb=1, input_shapes=fixed_batch, input_size=(128, 96),
                          spatial=spatial_shapes("raw", (128, 96)))  # fmt: skip
        assert plan.input_shapes["raw"] == ((1, 4, 48, 64),) * 3  # min = opt = max
        assert spatial_shapes("rgb", (128, 96)) == {"rgb": (96, 128)}
        with pytest.raises(InvalidInputError, match=r"'raw'.*dynamic height and width.*input size"):
            plan_build("10.3", "fp16", workspace_mb=1, input_shapes=fixed_batch)
        with pytest.raises(InvalidInputError, match=r"dynamic axis 1"):
            plan_build("10.3", "fp16", workspace_mb=1, input_shapes={"raw": (1, "c", 8, 8)})

    def test_bad_arguments(self):
        with pytest.raises(InvalidInputError, match=r"precision"):
            plan_build("10.3", "int4", workspace_mb=1)
        with pytest.raises(InvalidInputError, match=r"workspace"):
            plan_build("10.3", "fp16", workspace_mb=0)


class TestTrtexec:
    def test_tensorrt_10_int8_on_dla(self):
        plan = plan_build("10.3", "int8", workspace_mb=2048, dla_core=0)
        args = trtexec_args("m.int8.onnx", plan, "m.engine", "timing.cache")
        assert args == [
            "trtexec", "--onnx=m.int8.onnx", "--saveEngine=m.engine", "--int8", "--memPoolSize=workspace:2048",
            "--useDLACore=0", "--allowGPUFallback", "--timingCacheFile=timing.cache",
        ]  # fmt: skip

    def test_tensorrt_11_has_no_precision_flags(self):
        args = trtexec_args("m.fp16.onnx", plan_build("11.3", "fp16", workspace_mb=64), "m.engine")
        assert "--fp16" not in args and "--int8" not in args and "--stronglyTyped" not in args
        assert "--memPoolSize=workspace:64" in args

    def test_dynamic_shapes_and_level(self):
        shapes = {"raw": ("batch", 4, 240, 320), "noise": ("batch", 2)}
        plan = plan_build("10.3", "fp16", workspace_mb=64, input_shapes=shapes, batch=2, optimization_level=4)
        args = trtexec_args("m.onnx", plan, "m.engine")
        assert "--minShapes=raw:1x4x240x320,noise:1x2" in args
        assert "--maxShapes=raw:2x4x240x320,noise:2x2" in args
        assert "--builderOptimizationLevel=4" in args

    def test_dynamic_size_engine_has_one_shape(self):
        shapes = {"raw": (1, 4, "raw_height", "raw_width"), "noise": (1, 2)}
        plan = plan_build("10.3", "int8", workspace_mb=64, input_shapes=shapes, input_size=(640, 480),
                          spatial=spatial_shapes("raw", (640, 480)))  # fmt: skip
        args = trtexec_args("m.int8.onnx", plan, "m.engine")
        for flag in ("--minShapes", "--optShapes", "--maxShapes"):
            assert f"{flag}=raw:1x4x240x320,noise:1x2" in args

    def test_format_quotes_and_breaks_lines(self):
        text = format_command(["trtexec", "--onnx=my model.onnx", "--fp16"])
        assert text == "trtexec \\\n    '--onnx=my model.onnx' \\\n    --fp16"
