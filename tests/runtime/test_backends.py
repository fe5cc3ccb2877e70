"""Inference backends: the choice by file, ONNX Runtime on the CPU, the torch development
backend against its own export, and TensorRT's missing-dependency message. TensorRT itself
runs only under the ``tensorrt`` and ``gpu`` markers, on a machine that has them."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from edge_isp.contract.metadata import ModelMetadata, metadata_of_backend, read_onnx_props
from edge_isp.contract.model_input import Preprocessor
from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError
from edge_isp.runtime.backends import choose_backend, make_backend
from edge_isp.runtime.backends.onnxruntime_backend import choose_providers
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

from .onnx_models import brightness_classifier, spot_detector

NOISE = np.array([[0.01, 0.02]], np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "spot": spot_detector(root / "spot.onnx", 64, 48),
        "cls": brightness_classifier(root / "cls.onnx"),
        "bare": brightness_classifier(root / "bare.onnx", metadata=False),
    }


class TestChoice:
    def test_auto_picks_by_file_type(self):
        assert choose_backend("m.engine") == "tensorrt"
        assert choose_backend("m.PLAN") == "tensorrt"
        assert choose_backend("m.onnx") == "onnxruntime"
        assert choose_backend("runs/best.pt") == "torch"
        with pytest.raises(InvalidInputError, match=r"expected one of .*\.onnx.*got \.tflite"):
            choose_backend("m.tflite")

    def test_explicit_backend_must_fit_the_file(self):
        assert choose_backend("m.onnx", "onnxruntime") == "onnxruntime"
        with pytest.raises(InvalidInputError, match="edge-isp export engine"):
            choose_backend("m.onnx", "tensorrt")
        with pytest.raises(InvalidInputError, match=r"the onnxruntime backend runs \.onnx"):
            choose_backend("m.engine", "onnxruntime")
        with pytest.raises(InvalidInputError, match="choose one of auto, tensorrt"):
            choose_backend("m.onnx", "openvino")
        assert choose_backend("dp_s_det", "torch") == "torch"  # a registry name, for development

    def test_providers(self):
        assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
        both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        assert choose_providers(both) == both
        assert choose_providers(both, "cpu") == ["CPUExecutionProvider"]
        with pytest.raises(InvalidInputError, match="no CUDA provider"):
            choose_providers(["CPUExecutionProvider"], "cuda")
        with pytest.raises(InvalidInputError, match="device must be"):
            choose_providers(both, "gpu")


class TestOnnxRuntime:
    def test_specs_metadata_and_answer(self, models, caplog):
        with caplog.at_level(logging.INFO, logger="edge_isp.runtime.backends"):
            backend = make_backend(models["spot"])
        assert backend.name == "onnxruntime"
        assert backend.description == "onnxruntime (CPUExecutionProvider)"
        assert any("CPUExecutionProvider" in r.getMessage() and "chosen" in r.getMessage() for r in caplog.records)
        specs = {s.name: s for s in backend.input_specs()}
        assert specs["raw"].shape == (1, 4, 24, 32) and specs["raw"].dtype == np.float32
        outs = {s.name: s for s in backend.output_specs()}
        assert outs["labels"].dtype == np.int32 and outs["image"].shape == (1, 3, 48, 64)
        info = metadata_of_backend(backend)
        assert info.task == "detection" and info.class_names == ("thing", "spot") and info.input_size == (64, 48)
        raw = np.zeros((1, 4, 24, 32), np.float32)
        raw[0, :, 10, 3] = 0.7
        with backend:
            out = backend.infer({"raw": raw, "noise": NOISE})
        np.testing.assert_allclose(out["boxes"][0, 0], [-1, 13, 15, 29])  # centre (7, 21)
        np.testing.assert_allclose(out["scores"][0], [0.7, 0.01], rtol=1e-6)

    def test_dynamic_axes_and_open_close(self, models):
        backend = make_backend(models["cls"], "onnxruntime", device="cpu", threads=1)
        assert backend.input_specs()[0].shape == (1, 4, None, None)
        with pytest.raises(InvalidInputError, match="not open"):
            backend.infer({"raw": np.zeros((1, 4, 8, 8), np.float32), "noise": NOISE})
        for size, level, expected in ((8, 0.1, -5.0), (20, 0.3, 5.0)):
            with backend:
                logits = backend.infer({"raw": np.full((1, 4, size, size), level, np.float32), "noise": NOISE})
            np.testing.assert_allclose(logits["logits"], [[-expected, expected]], rtol=1e-4)
        with backend, pytest.raises(InvalidInputError, match="must be float32"):
            backend.infer({"raw": np.zeros((1, 4, 8, 8), np.float64), "noise": NOISE})

    def test_metadata_read_with_onnx_and_without(self, models, monkeypatch):
        expected = {"edge_isp.task": "classification", "edge_isp.class_names": '["dark", "bright"]',
                    "edge_isp.profile": "nexus6p-rear"}  # fmt: skip
        assert read_onnx_props(models["cls"]) == expected
        monkeypatch.setitem(sys.modules, "onnx", None)  # the board may have ONNX Runtime only
        assert read_onnx_props(models["cls"]) == expected
        info = metadata_of_backend(make_backend(models["bare"]))
        assert info == ModelMetadata(task="classification")

    def test_bad_files(self, tmp_path):
        with pytest.raises(MissingFileError, match="does not exist"):
            make_backend(tmp_path / "none.onnx")
        junk = tmp_path / "junk.onnx"
        junk.write_bytes(b"not a model")
        with pytest.raises(InvalidInputError, match="ONNX Runtime cannot load"):
            make_backend(junk)
        with pytest.raises(InvalidInputError, match="not a readable ONNX model"):
            read_onnx_props(junk)


class TestTensorRT:
    def test_missing_tensorrt_names_jetpack_and_the_extra(self, tmp_path, monkeypatch):
        engine = tmp_path / "m.engine"
        engine.write_bytes(b"\0" * 16)
        monkeypatch.setitem(sys.modules, "tensorrt", None)
        with pytest.raises(MissingDependencyError, match=r"JetPack.*--system-site-packages"):
            make_backend(engine)

    def test_missing_pycuda_names_the_jetson_extra(self, tmp_path, monkeypatch):
        from edge_isp.runtime.backends.tensorrt_backend import import_tensorrt

        monkeypatch.setitem(sys.modules, "tensorrt", type(sys)("tensorrt"))
        monkeypatch.setitem(sys.modules, "pycuda", None)
        monkeypatch.setitem(sys.modules, "pycuda.driver", None)
        with pytest.raises(MissingDependencyError, match=r"edge-isp\[jetson\].*pip install -e '\.\[jetson\]'"):
            import_tensorrt()

    def test_missing_onnxruntime_names_the_runtime_extra_and_the_checkout_route(self, tmp_path, monkeypatch):
        (tmp_path / "m.onnx").write_bytes(b"\0" * 16)
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(MissingDependencyError) as caught:
            make_backend(tmp_path / "m.onnx", "onnxruntime")
        message = str(caught.value)
        assert "pip install 'edge-isp[runtime]'" in message and "pip install -e '.[runtime]'" in message
        assert "scripts/bootstrap.sh" in message

    def test_engine_checked_against_its_sidecar(self, tmp_path, caplog):
        from edge_isp.contract.engine_cache import EngineCache
        from edge_isp.contract.engine_sidecar import EngineKey, check_engine

        key = EngineKey("ab" * 32, "fp16", "10.3.0", "Orin", "8.7", None)
        model = {"edge_isp.task": "detection", "edge_isp.class_names": '["shirt"]'}
        entry = EngineCache(tmp_path, say=lambda _: None).store(
            key, "det", b"plan bytes", {"model": model, "onnx": "/models/det.onnx"}
        )
        assert check_engine(entry.engine_path, "10.3.0", "Orin", "8.7") == model
        with pytest.raises(InvalidInputError, match=r"built with TensorRT 10\.3\.0, this is TensorRT 10\.7\.0.*"
                                                    r"edge-isp export engine /models/det\.onnx"):  # fmt: skip
            check_engine(entry.engine_path, "10.7.0", "Orin", "8.7")
        with pytest.raises(InvalidInputError, match="built for Orin"):
            check_engine(entry.engine_path, "10.3.0", "NVIDIA H100", "9.0")
        entry.engine_path.write_bytes(b"another plan")
        with pytest.raises(InvalidInputError, match="changed since it was built"):
            check_engine(entry.engine_path, "10.3.0", "Orin", "8.7")
        bare = tmp_path / "trtexec.engine"
        bare.write_bytes(b"plan")
        with caplog.at_level(logging.WARNING):
            assert check_engine(bare, "10.3.0", "Orin", "8.7") == {}
        assert any("no sidecar" in r.getMessage() for r in caplog.records)

    def test_adapter_bookkeeping_against_a_stand_in_api(self, tmp_path, monkeypatch):
        """Not TensorRT: a stand-in for its and pycuda's Python API (a classifier on the mean of
        ``raw``) checks only this adapter's own logic: specs, binding a new shape, pinned and
        device buffers, copies, context push/pop, and releasing everything on close."""
        trt, cuda = _stand_in_tensorrt()
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "pycuda", type(sys)("pycuda"))
        monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
        engine = tmp_path / "cls.engine"
        engine.write_bytes(b"plan")
        backend = make_backend(engine)
        assert backend.description == "tensorrt 10.3.0 on StandIn GPU"
        assert [(s.name, s.shape) for s in backend.input_specs()] == [("raw", (1, 4, None, None)), ("noise", (1, 2))]
        with backend:
            for size, level in ((8, 0.1), (8, 0.3), (16, 0.3)):
                feed = {"raw": np.full((1, 4, size, size), level, np.float32), "noise": NOISE}
                np.testing.assert_allclose(backend.infer(feed)["logits"], [[level, -level]], rtol=1e-6)
            assert cuda.state["allocs"] == 6 and cuda.state["freed"] == 3  # 3 tensors, bound for 2 shapes
        assert cuda.state["freed"] == 6 and cuda.state["depth"] == 0 and cuda.state["detached"] == 1
        engine.write_bytes(b"bad")
        with pytest.raises(InvalidInputError, match="cannot deserialize"):
            make_backend(engine)
        assert cuda.state["depth"] == 0 and cuda.state["detached"] == 2

    @pytest.mark.gpu
    @pytest.mark.tensorrt
    def test_engine_matches_onnxruntime(self, models, tmp_path):
        trt = pytest.importorskip("tensorrt")
        pytest.importorskip("pycuda.driver")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        assert parser.parse(models["cls"].read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        profile.set_shape("raw", (1, 4, 4, 4), (1, 4, 16, 16), (1, 4, 32, 32))
        config.add_optimization_profile(profile)
        engine = tmp_path / "cls.engine"
        engine.write_bytes(bytes(builder.build_serialized_network(network, config)))
        reference = make_backend(models["cls"])
        with make_backend(engine) as backend, reference:
            assert backend.name == "tensorrt"
            for size, level in ((8, 0.1), (16, 0.3), (8, 0.25)):  # a new shape rebinds the buffers
                feed = {"raw": np.full((1, 4, size, size), level, np.float32), "noise": NOISE}
                np.testing.assert_allclose(backend.infer(feed)["logits"], reference.infer(feed)["logits"], atol=1e-4)


def test_torch_backend_matches_its_onnx_export(tmp_path):
    torch = pytest.importorskip("torch")
    from edge_isp.export.onnx_export import export_onnx
    from edge_isp.model.loading import load_model
    from edge_isp.model.registry import create_model
    from edge_isp.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("dp_s_cls", num_classes=3, pretrained_backbone=False).eval()
    checkpoint = tmp_path / "best.pt"
    save_checkpoint(checkpoint, {
        "stage": "joint", "model_config": model.config.to_dict(), "model": model.state_dict(),
        "class_names": ["shirt", "bag", "boot"],
        "train_config": {"sensor": {"profile": "nexus6p-rear"}, "data": {"size": [32, 32]}},
    })  # fmt: skip
    profile = SensorProfile.load("nexus6p-rear")
    onnx_path = tmp_path / "model.onnx"
    export_onnx(load_model(checkpoint).model, onnx_path, input_size=(32, 32), class_names=["shirt", "bag", "boot"],
                profile=profile, with_image=True)  # fmt: skip

    dev, exported = make_backend(checkpoint, device="cpu"), make_backend(onnx_path)
    assert dev.name == "torch" and dev.description.startswith("torch ")
    dev_info, onnx_info = metadata_of_backend(dev), metadata_of_backend(exported)
    for field in ("task", "class_names", "input_size", "profile"):
        assert getattr(dev_info, field) == getattr(onnx_info, field)
    assert [s.name for s in dev.output_specs()] == [s.name for s in exported.output_specs()] == ["logits", "image"]
    rng = np.random.default_rng(1)
    frame = RawFrame(rng.integers(64, 1023, (32, 32)).astype(np.uint16), "RGGB", 10, 64, 1023, digital_gain=2.0)
    feed = Preprocessor(profile, (32, 32))(frame).feed()
    with dev, exported:
        got, want = dev.infer(feed), exported.infer(feed)
    np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)
    np.testing.assert_allclose(got["image"], want["image"], atol=1e-4)


def _stand_in_tensorrt():
    """Minimal stand-ins for ``tensorrt`` and ``pycuda.driver`` (see the test that uses them)."""
    state = {"allocs": 0, "freed": 0, "depth": 0, "detached": 0, "memory": {}}

    class Allocation:
        def __init__(self, nbytes):
            state["allocs"] += 1
            self.address = 4096 * state["allocs"]
            state["memory"][self.address] = bytearray(nbytes)

        def __int__(self):
            return self.address

        def free(self):
            assert state["depth"] > 0, "freed without a current context"
            state["freed"] += 1
            del state["memory"][self.address]

    class Context:
        def push(self):
            state["depth"] += 1

        @staticmethod
        def pop():
            state["depth"] -= 1

        def detach(self):
            state["detached"] += 1

    class Device:
        def __init__(self, index):
            pass

        def name(self):
            return "StandIn GPU"

        def compute_capability(self):
            return 8, 7

        def retain_primary_context(self):
            return Context()

    class Stream:
        handle = 1

        def synchronize(self):
            pass

    def htod(device, host, stream):
        state["memory"][int(device)][:] = host.tobytes()

    def dtoh(host, device, stream):
        host[...] = np.frombuffer(bytes(state["memory"][int(device)]), host.dtype).reshape(host.shape)

    cuda = type(sys)("pycuda.driver")
    cuda.state = state
    cuda.init = lambda: None
    cuda.Device, cuda.Context, cuda.Stream = Device, Context, Stream
    cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    cuda.mem_alloc = Allocation
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = htod, dtoh

    tensors = {"raw": ("in", (1, 4, -1, -1)), "noise": ("in", (1, 2)), "logits": ("out", (1, 2))}

    class ExecutionContext:
        def __init__(self):
            self.shapes, self.addresses = {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self.shapes.get(name, tensors[name][1])

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def execute_async_v3(self, stream_handle):
            assert state["depth"] > 0, "ran without a current context"
            raw = np.frombuffer(bytes(state["memory"][self.addresses["raw"]]), np.float32)
            mean = np.float32(raw.mean())
            state["memory"][self.addresses["logits"]][:] = np.array([[mean, -mean]], np.float32).tobytes()
            return True

    class Engine:
        num_io_tensors = len(tensors)

        def get_tensor_name(self, i):
            return list(tensors)[i]

        def get_tensor_mode(self, name):
            return tensors[name][0]

        def get_tensor_dtype(self, name):
            return np.float32

        def get_tensor_shape(self, name):
            return tensors[name][1]

        def get_tensor_profile_shape(self, name, profile):
            # A profile over a range of sizes: the height and width stay dynamic.
            return [(1, 4, 2, 2), (1, 4, 240, 320), (1, 4, 1080, 1920)]

        def create_execution_context(self):
            return ExecutionContext()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            assert state["depth"] > 0, "deserialized without a current context"
            return Engine() if plan == b"plan" else None

    trt = type(sys)("tensorrt")
    trt.__version__ = "10.3.0"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Runtime = Runtime
    trt.TensorIOMode = type("TensorIOMode", (), {"INPUT": "in", "OUTPUT": "out"})
    trt.nptype = lambda dtype: dtype
    return trt, cuda


def test_onnxruntime_errors_survive_gstreamer_in_the_process(tmp_path):
    """GStreamer (the RTSP output) links libunwind; without libgcc's unwinder loaded first, an
    ONNX Runtime error (its C++ exception) aborts the whole process instead of raising."""
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    script = f"""
import numpy
import edge_isp.runtime.backends as backends
try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
except (ImportError, ValueError):
    print("no gstreamer")
    raise SystemExit(0)
Gst.init(None)
try:
    backends.make_backend({str(junk)!r})
except Exception as exc:
    print(type(exc).__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    if done.stdout.strip() == "no gstreamer":
        pytest.skip("GStreamer's Python bindings are not installed")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "InvalidInputError"


def test_torch_backend_leaves_a_profile_path_out_of_its_metadata(tmp_path):
    """Model metadata names a profile, never a path: a checkpoint trained with a profile's
    path runs under the torch backend as a model without a profile (``--profile`` then says)."""
    torch = pytest.importorskip("torch")
    from edge_isp.model.registry import create_model
    from edge_isp.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("dp_s_cls", num_classes=2, pretrained_backbone=False).eval()
    checkpoint = tmp_path / "best.pt"
    save_checkpoint(checkpoint, {
        "stage": "joint", "model_config": model.config.to_dict(), "model": model.state_dict(),
        "class_names": ["a", "b"], "train_config": {"sensor": {"profile": "calibration/profiles/nexus6p-rear.json"}},
    })  # fmt: skip
    info = metadata_of_backend(make_backend(checkpoint, device="cpu"))
    assert info.profile is None and info.task == "classification" and info.class_names == ("a", "b")


def test_onnxruntime_on_a_cpu_runs_the_cpu_int8_file_beside_the_model(tmp_path, caplog):
    model = spot_detector(tmp_path / "det.onnx", 32, 32)
    cpu_int8 = tmp_path / "det.int8-cpu.onnx"
    cpu_int8.write_bytes(model.read_bytes())  # a stand-in: only the file choice is under test here
    with caplog.at_level(logging.INFO, logger="edge_isp.runtime.backends"):
        assert make_backend(model, "onnxruntime", device="cpu").path == cpu_int8
    assert "det.int8-cpu.onnx: the CPU INT8 model beside det.onnx" in caplog.text
    assert make_backend(model, "onnxruntime", device="cpu", precision="fp32").path == model
    assert make_backend(model, "auto", device="cpu", precision="int8").path == cpu_int8
    cpu_int8.unlink()
    with pytest.raises(MissingFileError, match=r"det\.int8-cpu\.onnx"):
        make_backend(model, "onnxruntime", device="cpu", precision="int8")
    with pytest.raises(InvalidInputError, match="precision"):
        make_backend(model, "onnxruntime", device="cpu", precision="int4")


def test_run_names_the_file_that_runs(tmp_path, capsys):
    from edge_isp.cli import main

    model = spot_detector(tmp_path / "det.onnx", 32, 32)
    (tmp_path / "det.int8-cpu.onnx").write_bytes(model.read_bytes())  # a stand-in, as above
    argv = ["run", "--source", "sim", "--model", str(model), "--max-frames", "2", "--process-all", "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    assert f"model {tmp_path / 'det.int8-cpu.onnx'}:" in capsys.readouterr().out
    assert main([*argv, "--precision", "fp32"]) == 0
    assert f"model {model}:" in capsys.readouterr().out
