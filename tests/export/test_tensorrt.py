"""The real TensorRT build, where TensorRT and a GPU are: run with `pytest -m tensorrt`.

Not run on the development machines (TensorRT cannot be installed there); these tests are the
adapter's only execution, so they cover each path the installed version takes: parse, flags,
timing cache, progress monitor, Ctrl-C's cancel, the cache round trip, deserialization.
"""

from __future__ import annotations

import pytest

from edge_isp.contract.build_plan import api_path
from edge_isp.contract.engine import TensorRTBackend, build_engine
from edge_isp.contract.progress import BuildCancelled, BuildProgress
from edge_isp.contract.targets import Target
from edge_isp.export.onnx_export import export_onnx
from edge_isp.export.precision import convert_fp16
from edge_isp.model.loading import load_model

from .conftest import ColourClassifier, export_module

pytestmark = pytest.mark.tensorrt
trt = pytest.importorskip("tensorrt")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    fp32 = export_module(ColourClassifier(), root / "c.fp32.onnx", packed_hw=(32, 32), task="classification",
                         class_names=["blue", "red"], outputs=["logits"])  # fmt: skip
    return {"fp32": fp32, "fp16": convert_fp16(fp32, root / "c.fp16.onnx")}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_load_and_cache(models, precision, tmp_path):
    target = Target(name="t", precision=precision, input_size=(64, 64), memory_pool_mb=256)
    messages = []
    progress = BuildProgress(show=False)
    first = build_engine(models[precision], target, tmp_path, progress=progress, say=messages.append)
    assert first.built and first.engine is not None
    assert first.plan.api == api_path(trt.__version__)
    assert first.entry.engine_path.stat().st_size > 0
    assert any(tmp_path.glob("timing.*.cache"))
    if first.plan.progress_monitor:
        assert progress.finished  # TensorRT reported its phases
    second = build_engine(models[precision], target, tmp_path, say=messages.append)
    assert not second.built


def test_corrupt_engine_is_rebuilt(models, tmp_path):
    target = Target(name="t", precision="fp32", input_size=(64, 64), memory_pool_mb=256)
    first = build_engine(models["fp32"], target, tmp_path, say=lambda _m: None)
    data = bytearray(first.entry.engine_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.entry.engine_path.write_bytes(bytes(data))
    messages = []
    again = build_engine(models["fp32"], target, tmp_path, say=messages.append)
    assert again.built and any("rebuilding" in m for m in messages)


def test_cancel_from_the_monitor(models, tmp_path):
    backend = TensorRTBackend(say=lambda _m: None)
    progress = BuildProgress(show=False)
    progress.cancel()
    target = Target(name="t", precision="fp32", input_size=(64, 64), memory_pool_mb=256)
    if api_path(backend.version()) == "weak-8":
        pytest.skip("TensorRT 8 has no progress monitor to cancel through")
    with pytest.raises(BuildCancelled):
        build_engine(models["fp32"], target, tmp_path, backend=backend, progress=progress, rebuild=True)
    assert not list(tmp_path.glob("*.engine"))


def test_dynamic_size_onnx_builds_one_fixed_engine_per_size(tmp_path, profile):
    loaded = load_model("dpnh_s_det", num_classes=2, width_mult=0.35)
    path = export_onnx(loaded.model, tmp_path / "d.fp32.onnx", input_size=(64, 64), class_names=["a", "b"],
                       profile=profile, dynamic_size=True).path  # fmt: skip
    shapes = {}
    for size in ((128, 96), (320, 256)):
        target = Target(name="t", precision="fp32", input_size=size, memory_pool_mb=256)
        result = build_engine(path, target, tmp_path / "cache", say=lambda _m: None)
        engine = result.engine.engine
        low, opt, high = (tuple(s) for s in engine.get_tensor_profile_shape("raw", 0))
        assert low == opt == high == (1, 4, size[1] // 2, size[0] // 2)
        shapes[size] = result.entry.engine_path
    assert len(set(shapes.values())) == 2
