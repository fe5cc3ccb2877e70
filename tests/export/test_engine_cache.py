"""The engine cache: keys, sidecars, atomic writes, rebuilds with a reason; and build_engine
with a stand-in for TensorRT (the real build runs under the tensorrt marker)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from edge_isp.contract.engine_cache import EngineCache, EngineError
from edge_isp.contract.engine_sidecar import EngineKey, compatibility_problems, read_sidecar
from edge_isp.contract.gpu import GpuInfo
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import sha256_file

KEY = EngineKey("ab" * 32, "int8", "10.3.0", "Orin", "8.7", 0, {"workspace_bytes": 1 << 30})


class Recorder:
    def __init__(self):
        self.lines = []

    def __call__(self, text):
        self.lines.append(text)


class TestKey:
    def test_digest_is_stable_and_short(self):
        assert KEY.digest == EngineKey(**KEY.to_dict()).digest
        assert len(KEY.digest) == 16 and int(KEY.digest, 16) >= 0

    @pytest.mark.parametrize(
        ("field", "value"),
        [("onnx_sha256", "cd" * 32), ("precision", "fp16"), ("tensorrt_version", "10.3.1"), ("gpu_name", "Xavier"),
         ("compute_capability", "7.2"), ("dla_core", None), ("settings", {"workspace_bytes": 1})],
    )  # fmt: skip
    def test_every_field_changes_the_digest(self, field, value):
        assert dataclasses.replace(KEY, **{field: value}).digest != KEY.digest

    def test_from_dict_needs_the_fields(self):
        with pytest.raises(InvalidInputError, match=r"engine key needs"):
            EngineKey.from_dict({"precision": "int8"})


class TestCache:
    def test_store_then_lookup(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())
        entry = cache.store(KEY, "dp_s_det", b"PLAN", {"target": {"name": "orin-nx"}})
        assert entry.engine_path.name == f"dp_s_det.int8.{KEY.digest}.engine"
        assert entry.engine_path.read_bytes() == b"PLAN"  # the plain plan, nothing prepended
        side = json.loads(entry.sidecar_path.read_text())
        assert side["key"] == KEY.to_dict()
        assert side["engine_sha256"] == hashlib.sha256(b"PLAN").hexdigest()
        assert side["target"] == {"name": "orin-nx"}
        found = cache.lookup(KEY, "dp_s_det")
        assert found is not None and found.engine_path == entry.engine_path
        assert read_sidecar(entry.engine_path)["digest"] == KEY.digest
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left

    def test_other_key_misses(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())
        cache.store(KEY, "m", b"PLAN", {})
        assert cache.lookup(dataclasses.replace(KEY, tensorrt_version="10.4.0"), "m") is None

    def test_changed_engine_is_not_trusted(self, tmp_path):
        say = Recorder()
        cache = EngineCache(tmp_path, say)
        entry = cache.store(KEY, "m", b"PLAN", {})
        entry.engine_path.write_bytes(b"PLAN but truncated?")
        assert cache.lookup(KEY, "m") is None
        assert "sha256 differs" in say.lines[-1]

    def test_engine_missing_beside_its_sidecar(self, tmp_path):
        say = Recorder()
        cache = EngineCache(tmp_path, say)
        cache.store(KEY, "m", b"PLAN", {}).engine_path.unlink()
        assert cache.lookup(KEY, "m") is None
        assert "missing" in say.lines[-1]

    def test_unreadable_sidecar(self, tmp_path):
        say = Recorder()
        cache = EngineCache(tmp_path, say)
        entry = cache.store(KEY, "m", b"PLAN", {})
        entry.sidecar_path.write_text("{")
        assert cache.lookup(KEY, "m") is None
        assert "not valid JSON" in say.lines[-1]

    def test_timing_cache_is_per_version_and_gpu(self, tmp_path):
        cache = EngineCache(tmp_path)
        a = cache.timing_cache_path("10.3.0", "orin", "8.7")
        assert a.name == "timing.10.3.0.orin.sm87.cache"
        assert a != cache.timing_cache_path("10.3.0", "orin", "7.2")


class TestLoadOrBuild:
    def test_builds_once_then_loads_from_the_cache(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())
        builds = []

        def build():
            builds.append(1)
            return b"PLAN"

        engine, entry, built = cache.load_or_build(KEY, "m", build, lambda plan: ("engine", plan))
        assert built and engine == ("engine", b"PLAN") and len(builds) == 1
        assert "build_seconds" in entry.info
        engine, _, built = cache.load_or_build(KEY, "m", build, lambda plan: ("engine", plan))
        assert not built and len(builds) == 1

    @pytest.mark.parametrize("failure", ["none", "raise"])
    def test_engine_that_fails_to_load_is_rebuilt_with_the_reason(self, tmp_path, failure):
        say = Recorder()
        cache = EngineCache(tmp_path, say)
        cache.store(KEY, "m", b"OLD", {})

        def load(plan):
            if plan == b"OLD":
                if failure == "raise":
                    raise RuntimeError("serialization version mismatch")
                return None
            return "engine"

        engine, entry, built = cache.load_or_build(KEY, "m", lambda: b"NEW", load)
        assert built and engine == "engine" and entry.engine_path.read_bytes() == b"NEW"
        message = say.lines[-1]
        assert "failed to deserialize" in message and "rebuilding" in message
        assert ("serialization version mismatch" if failure == "raise" else "TensorRT returned no engine") in message

    def test_failed_build_leaves_nothing(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())

        def build():
            raise EngineError("TensorRT failed")

        with pytest.raises(EngineError):
            cache.load_or_build(KEY, "m", build, lambda plan: plan)
        assert list(tmp_path.iterdir()) == []

    def test_fresh_plan_that_does_not_load_is_not_kept(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())
        with pytest.raises(EngineError, match=r"cannot deserialize"):
            cache.load_or_build(KEY, "m", lambda: b"PLAN", lambda plan: None)
        assert list(tmp_path.iterdir()) == []

    def test_rebuild_ignores_the_cache(self, tmp_path):
        cache = EngineCache(tmp_path, Recorder())
        cache.store(KEY, "m", b"OLD", {})
        _, entry, built = cache.load_or_build(KEY, "m", lambda: b"NEW", lambda p: p, rebuild=True)
        assert built and entry.engine_path.read_bytes() == b"NEW"


def test_compatibility_problems():
    info = {"key": KEY.to_dict()}
    assert compatibility_problems(info, "10.3.0", "Orin", "8.7") == []
    problems = compatibility_problems(info, "10.7.0", "Xavier", "7.2")
    assert len(problems) == 2 and "TensorRT 10.3.0" in problems[0] and "Xavier" in problems[1]


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


class FakeBackend:
    """Stands in for TensorRT: records builds; the plan is the ONNX bytes plus the plan's flags."""

    def __init__(self, version="10.3.0"):
        self._version = version
        self.builds = []

    def version(self):
        return self._version

    def build(self, onnx_path, plan, timing_cache, progress):
        self.builds.append((plan, timing_cache))
        timing_cache.write_bytes(b"timing")
        return onnx_path.read_bytes()[:64] + ",".join(plan.builder_flags).encode()

    def load(self, plan):
        return {"plan": plan}


class TestBuildEngine:
    @pytest.fixture
    def int8_model(self, tmp_path):
        onnx = pytest.importorskip("onnx")
        from edge_isp.contract.metadata import ModelMetadata, set_metadata

        x = onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, [1, 4, 32, 32])
        y = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 4, 32, 32])
        model = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Relu", ["raw"], ["logits"])],
                                                              "g", [x], [y]))  # fmt: skip
        set_metadata(
            model,
            ModelMetadata(
                task="classification",
                class_names=("a",),
                input_size=(64, 64),
                profile="nexus6p-rear",
                version="0",
                model_config={},
                precision="int8",
            ),
        )
        path = tmp_path / "m.int8.onnx"
        onnx.save(model, str(path))
        return path

    def test_build_then_cache_then_new_version(self, tmp_path, int8_model):
        from edge_isp.contract.engine import build_engine
        from edge_isp.contract.targets import Target

        target = Target(name="t", precision="int8", input_size=(64, 64), memory_pool_mb=16, dla_core=0)
        gpu = GpuInfo("Orin", (8, 7))
        backend = FakeBackend()
        first = build_engine(int8_model, target, tmp_path / "c", backend=backend, gpu=gpu, say=Recorder())
        assert first.built and first.plan.builder_flags == ("INT8", "GPU_FALLBACK")
        side = first.entry.info
        assert side["key"]["onnx_sha256"] == sha256_file(int8_model)
        assert side["key"]["gpu_name"] == "Orin" and side["key"]["compute_capability"] == "8.7"
        assert side["model"]["edge_isp.precision"] == "int8"  # the runtime can read the model's metadata
        assert backend.builds[0][1].name == "timing.10.3.0.orin.sm87.cache"
        second = build_engine(int8_model, target, tmp_path / "c", backend=backend, gpu=gpu, say=Recorder())
        assert not second.built and len(backend.builds) == 1
        third = build_engine(int8_model, target, tmp_path / "c", backend=FakeBackend("10.4.0"), gpu=gpu, say=Recorder())
        assert third.built and third.entry.engine_path != first.entry.engine_path

    def test_dynamic_size_model_gets_one_engine_per_size(self, tmp_path):
        onnx = pytest.importorskip("onnx")
        from edge_isp.contract.engine import build_engine
        from edge_isp.contract.metadata import ModelMetadata, set_metadata
        from edge_isp.contract.targets import Target

        x = onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, [1, 4, "raw_height", "raw_width"])
        y = onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 4, "raw_height", "raw_width"])
        model = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Relu", ["raw"], ["image"])],
                                                              "g", [x], [y]))  # fmt: skip
        meta = ModelMetadata(task="reconstruction", input_size=(64, 64), profile="nexus6p-rear", version="0",
                             model_config={}, precision="fp16", size_multiple=64)  # fmt: skip
        set_metadata(model, meta)
        path = tmp_path / "m.fp16.onnx"
        onnx.save(model, str(path))
        gpu, backend = GpuInfo("Orin", (8, 7)), FakeBackend()
        built = {}
        for size in ((640, 512), (320, 256), (640, 512)):
            target = Target(name="t", precision="fp16", input_size=size, memory_pool_mb=16)
            built[size] = build_engine(path, target, tmp_path / "c", backend=backend, gpu=gpu, say=Recorder())
        small, big = built[(320, 256)], built[(640, 512)]
        assert big.plan.input_shapes == {"raw": ((1, 4, 256, 320),) * 3}
        assert small.plan.input_shapes == {"raw": ((1, 4, 128, 160),) * 3}
        assert small.entry.engine_path != big.entry.engine_path
        assert big.entry.info["key"]["settings"]["input_size"] == [640, 512]
        assert len(backend.builds) == 2  # the second 640x512 came from the cache
        off = Target(name="t", precision="fp16", input_size=(640, 480), memory_pool_mb=16)
        with pytest.raises(InvalidInputError, match=r"640x480.*multiples of 64"):
            build_engine(path, off, tmp_path / "c", backend=backend, gpu=gpu)

    def test_precision_and_size_must_match_the_target(self, tmp_path, int8_model):
        from edge_isp.contract.engine import build_engine
        from edge_isp.contract.targets import Target

        gpu = GpuInfo("Orin", (8, 7))
        fp16 = Target(name="t", precision="fp16", input_size=(64, 64), memory_pool_mb=16)
        with pytest.raises(InvalidInputError, match=r"wants a fp16 engine.*int8 model"):
            build_engine(int8_model, fp16, tmp_path, backend=FakeBackend(), gpu=gpu)
        big = Target(name="t", precision="int8", input_size=(640, 480), memory_pool_mb=16)
        with pytest.raises(InvalidInputError, match=r"640x480.*64x64"):
            build_engine(int8_model, big, tmp_path, backend=FakeBackend(), gpu=gpu)
