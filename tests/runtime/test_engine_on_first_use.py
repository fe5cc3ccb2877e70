"""`run --model model.onnx` builds and caches this GPU's TensorRT engine on first use, or says
why ONNX Runtime runs it. TensorRT is reached through the seams (builder, gpu, pycuda check);
a stand-in builder checks the decisions, the cache and the messages, never TensorRT itself
(the `tensorrt`-marked tests in tests/export build real engines)."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from edge_isp.contract.engine_cache import EngineError
from edge_isp.contract.engine_sidecar import read_sidecar
from edge_isp.contract.gpu import GpuInfo, NoGpuError
from edge_isp.contract.metadata import read_metadata, set_metadata
from edge_isp.contract.progress import BuildCancelled, BuildProgress
from edge_isp.errors import InvalidInputError, MissingDependencyError
from edge_isp.runtime.backends import engine_on_first_use as eofu
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge_isp.runtime.backends.tensorrt_backend import profile_shape
from tests.runtime.onnx_models import spot_detector

ORIN = GpuInfo("Orin", (8, 7))


class StandInBuilder:
    """Takes TensorRT's place in the build: records builds; a plan is bytes of the ONNX file."""

    def __init__(self, version="10.3.0", fail: Exception | None = None):
        self._version, self.fail, self.builds = version, fail, []

    def version(self):
        return self._version

    def build(self, onnx_path, plan, timing_cache, progress):
        self.builds.append((plan, timing_cache, progress))
        if self.fail is not None:
            raise self.fail
        timing_cache.write_bytes(b"timing")
        return onnx_path.read_bytes()[:32]

    def load(self, plan):
        return {"plan": plan}


def no_pycuda():
    raise ModuleNotFoundError("No module named 'pycuda'", name="pycuda")


@pytest.fixture
def model(tmp_path):
    return spot_detector(tmp_path / "det.onnx", 64, 64)


def first_use(model, tmp_path, **kwargs):
    kwargs.setdefault("builder", StandInBuilder())
    kwargs.setdefault("gpu", ORIN)
    kwargs.setdefault("runtime_check", lambda: None)
    kwargs.setdefault("progress", BuildProgress(show=False))
    said = []
    choice = eofu.engine_on_first_use(model, cache_dir=tmp_path / "cache", say=said.append, **kwargs)
    return choice, said


def test_builds_once_for_this_gpu_then_finds_it_in_the_cache(model, tmp_path):
    builder = StandInBuilder()
    choice, _ = first_use(model, tmp_path, builder=builder)
    assert choice.engine is not None and choice.engine.is_file() and choice.engine.parent == tmp_path / "cache"
    assert choice.message.startswith("TensorRT runs det.onnx (fp32): engine built for Orin with TensorRT 10.3.0 in ")
    assert str(choice.engine) in choice.message and "\n" not in choice.message
    (plan, timing, progress) = builder.builds[0]
    assert plan.precision == "fp32" and timing.parent == tmp_path / "cache" and timing.read_bytes() == b"timing"
    assert isinstance(progress, BuildProgress), "the build gets progress (bars on a terminal, Ctrl-C)"
    sidecar = read_sidecar(choice.engine)
    assert sidecar["key"]["gpu_name"] == "Orin" and sidecar["target"]["input_size"] == [64, 64]
    assert sidecar["model"]["edge_isp.task"] == "detection"  # the runtime knows the model from the engine

    again, _ = first_use(model, tmp_path, builder=builder)
    assert again.engine == choice.engine and len(builder.builds) == 1
    assert again.message.startswith("TensorRT runs det.onnx (fp32): engine found in the cache for Orin")
    other_gpu, _ = first_use(model, tmp_path, builder=builder, gpu=GpuInfo("RTX 4090", (8, 9)))
    assert other_gpu.engine != choice.engine and len(builder.builds) == 2, "an engine is for one GPU"


def test_without_tensorrt_onnx_runtime_runs_it_quietly(model, tmp_path):
    class Absent(StandInBuilder):
        def version(self):
            raise MissingDependencyError("TensorRT's Python bindings are not installed")

    choice, _ = first_use(model, tmp_path, builder=Absent())
    assert choice == eofu.EngineChoice(None, "ONNX Runtime runs det.onnx: TensorRT is not installed here", True)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_the_real_adapter_reports_tensorrt_absent(model, tmp_path):
    choice = eofu.engine_on_first_use(model, cache_dir=tmp_path / "cache", say=lambda _: None)
    assert choice.engine is None and choice.expected and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"runtime_check": no_pycuda}, "running an engine needs pycuda (No module named 'pycuda'); pip install"),
        ({"builder": StandInBuilder(fail=EngineError("TensorRT 10.3.0 cannot parse det.onnx: bad op"))},
         "building its TensorRT 10.3.0 engine failed (TensorRT 10.3.0 cannot parse det.onnx: bad op)"),
    ],
)  # fmt: skip
def test_falls_back_with_the_reason(model, tmp_path, kwargs, reason):
    choice, _ = first_use(model, tmp_path, **kwargs)
    assert choice.engine is None and not choice.expected and choice.message.startswith("ONNX Runtime runs det.onnx")
    assert reason in choice.message
    assert not list((tmp_path / "cache").glob("*.engine")), "a failed build leaves no engine"


def test_no_gpu_and_a_size_tensorrt_cannot_take_fall_back(tmp_path, monkeypatch):
    def no_gpu(index=0):
        raise NoGpuError("no CUDA GPU found to build a TensorRT engine on (nvidia-smi: not installed)")

    monkeypatch.setattr("edge_isp.contract.gpu.detect_gpu", no_gpu)
    model = spot_detector(tmp_path / "det.onnx", 64, 64)
    choice, _ = first_use(model, tmp_path, gpu=None)
    assert choice.engine is None and "no CUDA GPU found" in choice.message

    odd = spot_detector(tmp_path / "odd.onnx", 80, 60)  # not multiples of 32
    choice, _ = first_use(odd, tmp_path)
    assert choice.engine is None and "input_size" in choice.message and "multiple of 32" in choice.message


def test_ctrl_c_during_the_build_stops_the_run(model, tmp_path):
    with pytest.raises(BuildCancelled):
        first_use(model, tmp_path, builder=StandInBuilder(fail=BuildCancelled("engine build cancelled (Ctrl-C)")))


def test_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert eofu.engine_cache_dir() == tmp_path / "xdg" / "edge-isp" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert eofu.engine_cache_dir() == tmp_path / "home" / ".cache" / "edge-isp" / "engines"


class TestMakeBackend:
    def test_the_engine_runs_where_one_was_made(self, model, tmp_path, monkeypatch, caplog):
        engine = tmp_path / "det.fp32.abc.engine"
        engine.write_bytes(b"plan")
        made = []
        monkeypatch.setattr(
            eofu, "engine_on_first_use", lambda path, say, input_size=None: eofu.EngineChoice(engine, "TensorRT runs")
        )
        monkeypatch.setattr(
            "edge_isp.runtime.backends.TensorRTBackend",
            lambda path, device: made.append((path, device)) or type("B", (), {"description": "trt"})(),
        )
        with caplog.at_level(logging.INFO, logger="edge_isp.runtime.backends"):
            make_backend(model, "auto", engine_on_first_use=True)
        assert made == [(engine, 0)] and "TensorRT runs" in caplog.text

    @pytest.mark.parametrize(
        ("backend", "device", "asked"),
        [("auto", "auto", True), ("auto", "auto", False), ("onnxruntime", "auto", True), ("auto", "cpu", True)],
    )
    def test_only_auto_on_a_gpu_asks_for_an_engine(self, model, monkeypatch, backend, device, asked):
        calls = []

        def fake(path, say, input_size=None):
            calls.append(path)
            return eofu.EngineChoice(None, "ONNX Runtime runs det.onnx: because", False)

        monkeypatch.setattr(eofu, "engine_on_first_use", fake)
        made = make_backend(model, backend, device=device, engine_on_first_use=asked)
        assert isinstance(made, OnnxRuntimeBackend)
        assert calls == ([model] if (backend, device, asked) == ("auto", "auto", True) else [])

    def test_a_fallback_is_a_warning_with_its_reason(self, model, monkeypatch, caplog):
        choice = eofu.EngineChoice(None, "ONNX Runtime runs det.onnx, not TensorRT 10.3: no CUDA GPU found", False)
        monkeypatch.setattr(eofu, "engine_on_first_use", lambda path, say, input_size=None: choice)
        with caplog.at_level(logging.INFO, logger="edge_isp.runtime.backends"):
            assert isinstance(make_backend(model, "auto", engine_on_first_use=True), OnnxRuntimeBackend)
        (record,) = [r for r in caplog.records if "not TensorRT" in r.message]
        assert record.levelno == logging.WARNING


def test_a_model_without_metadata_is_refused_by_name(tmp_path):
    from tests.runtime.onnx_models import brightness_classifier

    bare = brightness_classifier(tmp_path / "bare.onnx", metadata=False)
    with pytest.raises(InvalidInputError) as refused:
        read_metadata(bare)
    choice, _ = first_use(bare, tmp_path)
    assert choice.engine is None and choice.message.endswith(str(refused.value))


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_on_a_gpu_with_tensorrt_run_builds_then_reuses_an_engine_that_agrees_with_onnx_runtime(model, tmp_path):
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    import numpy as np

    first = eofu.engine_on_first_use(model, cache_dir=tmp_path / "cache", say=print)
    assert first.engine is not None, first.message
    assert " built for " in first.message
    second = eofu.engine_on_first_use(model, cache_dir=tmp_path / "cache", say=print)
    assert second.engine == first.engine and " found in the cache " in second.message
    rng = np.random.default_rng(0)
    feed = {"raw": rng.uniform(0, 1, (1, 4, 32, 32)).astype(np.float32), "noise": np.zeros((1, 2), np.float32)}
    with make_backend(first.engine) as trt_backend, OnnxRuntimeBackend(model, device="cpu") as ort_backend:
        want, got = ort_backend.infer(feed), trt_backend.infer(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-3, err_msg=name)


def test_a_dynamic_size_model_gets_an_engine_at_the_size_asked_for(model, tmp_path):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(model))
    raw = next(i for i in graph.graph.input if i.name == "raw")
    for axis, name in ((2, "raw_height"), (3, "raw_width")):
        raw.type.tensor_type.shape.dim[axis].dim_param = name
    set_metadata(graph, read_metadata(model).replace(size_multiple=32))
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(graph, str(dynamic))
    builder = StandInBuilder()
    at_export, _ = first_use(dynamic, tmp_path, builder=builder)
    asked, _ = first_use(dynamic, tmp_path, builder=builder, input_size=(640, 480))
    assert [b[0].input_shapes["raw"][0] for b in builder.builds] == [(1, 4, 32, 32), (1, 4, 240, 320)]
    assert at_export.engine != asked.engine
    assert read_sidecar(asked.engine)["key"]["settings"]["input_size"] == [640, 480]
    # A fixed-size model's engine is its own size whatever is asked (run refuses the mismatch).
    fixed, _ = first_use(model, tmp_path, builder=builder, input_size=(640, 480))
    assert builder.builds[-1][0].input_size == (64, 64) and fixed.engine is not None


def test_an_engine_reports_the_size_its_profile_fixes():
    # Height and width fixed by the profile (a dynamic-size model's engine), batch still a range.
    assert profile_shape((-1, 4, -1, -1), (1, 4, 240, 320), (4, 4, 240, 320)) == (None, 4, 240, 320)
    assert profile_shape((1, 2), (1, 2), (1, 2)) == (1, 2)
