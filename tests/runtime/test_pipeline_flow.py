"""The whole live pipeline with ONNX Runtime on the simulated and replay sources: frames flow,
answers are right for a scene whose answer is known, drops are counted under a slow backend,
shutdown is clean, camera errors do not stop it, and no torch is ever imported."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_isp.contract.metadata import metadata_of_backend
from edge_isp.contract.model_input import Preprocessor
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.frame_queue import FrameQueue, QueueClosed
from edge_isp.runtime.interfaces import CameraSource, InferenceBackend, Output, SourceError
from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.runtime.sources import SimulatedSource, open_source
from edge_isp.runtime.sources.scene import MovingScene, Sprite
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

from .onnx_models import brightness_classifier, spot_detector

WIDTH, HEIGHT, FPS = 128, 96, 30.0
REPO = Path(__file__).resolve().parents[2]


class Collect(Output):
    """Keeps every result; refuses a publish after close (a half-written output)."""

    name = "collect"

    def __init__(self) -> None:
        self.results = []
        self.opened = self.closed = False

    def open(self) -> Collect:
        self.opened = True
        return self

    def publish(self, result) -> None:
        assert self.opened and not self.closed, "publish outside open..close"
        self.results.append(result)

    def close(self) -> None:
        self.closed = True


class SlowBackend(InferenceBackend):
    """Another backend, ``delay_s`` slower per frame."""

    name = "slow"

    def __init__(self, inner: InferenceBackend, delay_s: float) -> None:
        super().__init__()
        self.inner, self.delay_s = inner, delay_s
        self.description = f"slow {inner.description}"

    def input_specs(self):
        return self.inner.input_specs()

    def output_specs(self):
        return self.inner.output_specs()

    def metadata(self):
        return self.inner.metadata()

    def _open(self) -> None:
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def _infer(self, feed):
        time.sleep(self.delay_s)
        return self.inner.infer(feed)


class FlakySource(CameraSource):
    """Wraps a source; every ``every``-th read fails as a camera would."""

    name = "flaky"

    def __init__(self, inner: CameraSource, every: int) -> None:
        super().__init__()
        self.inner, self.every, self.reads = inner, every, 0

    def _open(self) -> None:
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def _read(self, timeout_s):
        self.reads += 1
        if self.reads % self.every == 0:
            raise SourceError("USB camera went away")
        return self.inner.read(timeout_s)


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


@pytest.fixture(scope="module")
def spot_model(tmp_path_factory) -> Path:
    return spot_detector(tmp_path_factory.mktemp("spot") / "spot.onnx", WIDTH, HEIGHT)


def white_square_scene(speed: float = 1.0) -> MovingScene:
    """A 16-pixel white square moving over a dark grey background."""
    square = Sprite(label=1, rgb=np.ones((16, 16, 3), np.float32), alpha=np.ones((16, 16), np.float32),
                    frequency_hz=(0.4, 0.3), phase=(0.0, 1.0))  # fmt: skip
    return MovingScene(np.full((HEIGHT, WIDTH, 3), 0.05, np.float32), [square], speed=speed)


def sim_source(profile, scene=None, paced=False, lux=300.0) -> SimulatedSource:
    return SimulatedSource(profile, scene=scene or white_square_scene(), paced=paced, fps=FPS, lux=lux)


def make_pipeline(source, backend, profile, outputs, **config) -> Pipeline:
    info = metadata_of_backend(backend)
    shape = backend.input_specs()[0].shape
    size = (2 * shape[3], 2 * shape[2]) if shape[2] else None
    pre = Preprocessor(profile, size)
    return Pipeline(source, backend, pre, Postprocessor(info), outputs, profile=profile,
                    config=PipelineConfig(**config))  # fmt: skip


def test_sim_source_boxes_land_on_the_moving_square(profile, spot_model):
    scene = white_square_scene()
    source, backend, out = sim_source(profile, scene), make_backend(spot_model), Collect()
    pipeline = make_pipeline(source, backend, profile, [out], when_full="block", max_frames=15, conventional_every=5)
    metrics = pipeline.run(handle_signals=False)

    assert [r.index for r in out.results] == list(range(15))
    for r in out.results:
        (det,) = r.results["detections"]  # the 0.01-score decoy is below the threshold
        assert det["label"] == "spot" and det["score"] > 0.5
        (truth,) = scene.truth(r.index / FPS)["boxes"]
        cx, cy = (det["box"][0] + det["box"][2]) / 2, (det["box"][1] + det["box"][3]) / 2
        assert truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3], (r.index, det, truth)
        assert r.annotated.shape == (HEIGHT, WIDTH, 3) and r.annotated.dtype == np.uint8
        assert (r.conventional is not None) == (r.index % 5 == 0)
        assert r.results["frame"] == r.index
        for stage in ("preprocess", "inference", "postprocess", "annotate", "end_to_end"):
            assert r.latency_ms[stage] >= 0
        assert r.latency_ms["end_to_end"] >= r.latency_ms["inference"]
    # The learned view is the model's own image: bright where the square is.
    last = out.results[-1]
    x0, y0, x1, y1 = (int(v) for v in scene.truth(last.index / FPS)["boxes"][0])
    white = (last.annotated.min(axis=2) > 200).astype(float)  # boxes and labels drawn are coloured
    assert white[y0:y1, x0:x1].mean() > 0.5 and white.mean() < 0.05
    assert metrics["frames"] == 15 and metrics["dropped"] == 0 and metrics["frames_captured"] == 15
    assert metrics["latency_ms"]["end_to_end"]["p99"] >= metrics["latency_ms"]["end_to_end"]["p50"] > 0
    assert out.closed and not source.is_open and not backend._is_open and not pipeline.running


def test_replay_source_classifies_each_recorded_frame(profile, tmp_path):
    levels = [0.05, 0.5, 0.1, 0.6, 0.02, 0.4]
    for i, level in enumerate(levels):
        values = np.full((64, 64), level)
        data = np.rint(64 + values * (1023 - 64)).astype(np.uint16)
        RawFrame(data, "RGGB", 10, 64, 1023, timestamp_s=i / 10).save(tmp_path / "rec" / f"{i:06d}")
    model = brightness_classifier(tmp_path / "cls.onnx", threshold=0.2)
    source = open_source(f"replay:{tmp_path / 'rec'}", paced=False)
    out = Collect()
    pipeline = make_pipeline(source, make_backend(model), profile, [out], when_full="block", conventional_every=2)
    pipeline.run(handle_signals=False)

    assert [r.index for r in out.results] == list(range(len(levels)))
    expected = ["bright" if level > 0.2 else "dark" for level in levels]
    assert [r.results["labels"][0]["label"] for r in out.results] == expected
    for r, level in zip(out.results, levels, strict=True):
        # No image output: the learned view is the conventional ISP of the frame.
        assert r.annotated.shape == (64, 64, 3)
        assert (r.conventional is not None) == (r.index % 2 == 0)
        if r.conventional is not None:
            assert abs(r.conventional[40:, 40:].mean() - r.annotated[40:, 40:].mean()) < 1  # same picture
        assert (r.annotated[40:, 40:].mean() > 128) == (level > 0.2)
    assert not source.is_open and out.closed


def test_slow_backend_drops_the_oldest_frames_and_counts_them(profile, spot_model):
    source = sim_source(profile)
    backend = SlowBackend(make_backend(spot_model), delay_s=0.03)
    out = Collect()
    pipeline = make_pipeline(source, backend, profile, [out], queue_size=1, max_frames=60)
    metrics = pipeline.run(handle_signals=False)

    indices = [r.index for r in out.results]
    assert metrics["dropped"] > 0 and metrics["frames"] == len(indices) < 60
    # Every captured frame is either processed or counted as dropped.
    assert metrics["frames"] + metrics["dropped"] == metrics["frames_captured"] == 60
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert indices[-1] == 59  # the newest frame always gets through
    assert sum(v for k, v in metrics.items() if k.startswith("dropped_")) == metrics["dropped"]


def test_sigterm_stops_everything_cleanly(profile, spot_model):
    source = sim_source(profile, paced=True)
    backend, out = make_backend(spot_model), Collect()
    pipeline = make_pipeline(source, backend, profile, [out])
    previous = signal.getsignal(signal.SIGTERM)

    def terminate_when_running():
        deadline = time.monotonic() + 10
        while len(out.results) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_running)
    killer.start()
    metrics = pipeline.run(duration_s=20)
    killer.join()
    assert metrics["frames"] >= 5 and metrics["uptime_s"] < 15
    assert not pipeline.running and not any(t.name.startswith("edge-isp-") for t in threading.enumerate())
    assert not source.is_open and out.closed and not backend._is_open
    assert signal.getsignal(signal.SIGTERM) is previous


def test_camera_errors_are_counted_and_the_pipeline_carries_on(profile, spot_model):
    source = FlakySource(sim_source(profile), every=4)
    out = Collect()
    pipeline = make_pipeline(source, make_backend(spot_model), profile, [out], when_full="block", max_frames=12,
                             source_error_pause_s=0.0)  # fmt: skip
    metrics = pipeline.run(handle_signals=False)
    assert metrics["frames"] == 12 and metrics["source_errors"] == 3  # reads 4, 8 and 12 failed
    assert not source.is_open


def test_a_failing_stage_stops_the_pipeline_and_raises(profile, spot_model):
    class Broken(SlowBackend):
        def _infer(self, feed):
            raise RuntimeError("kernel launch failed")

    source, out = sim_source(profile), Collect()
    backend = Broken(make_backend(spot_model), 0.0)
    pipeline = make_pipeline(source, backend, profile, [out], max_frames=1000)
    with pytest.raises(RuntimeError, match="kernel launch failed"):
        pipeline.run(handle_signals=False)
    assert not source.is_open and out.closed and not backend._is_open and not pipeline.running


def test_queue_drop_oldest_and_block():
    q = FrameQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1  # the oldest makes room
    q.close()
    assert q.put(4) is None and [q.get(), q.get()] == [2, 3]
    with pytest.raises(QueueClosed):
        q.get()
    blocking = FrameQueue(1, "block")
    blocking.put("a")
    waiter = threading.Thread(target=blocking.put, args=("b",))
    waiter.start()
    time.sleep(0.05)
    assert waiter.is_alive() and len(blocking) == 1  # waits for room
    assert blocking.get() == "a"
    waiter.join(1)
    assert blocking.get() == "b"
    blocking.abort()
    with pytest.raises(QueueClosed):
        blocking.get()


def test_metrics_snapshot_renders_as_prometheus(profile, spot_model):
    from edge_isp.runtime.outputs.prometheus import pipeline_families, render

    pipeline = make_pipeline(sim_source(profile), make_backend(spot_model), profile, [], max_frames=5,
                             when_full="block")  # fmt: skip
    text = render(pipeline_families(pipeline.run(handle_signals=False)))
    assert "edge_isp_frames_total 5" in text
    assert 'edge_isp_stage_latency_seconds{stage="inference",quantile="0.99"}' in text


def test_the_runtime_never_imports_torch(spot_model):
    script = textwrap.dedent(
        f"""
        import importlib, json, pkgutil, sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked: the runtime must not import it")

        sys.meta_path.insert(0, BlockTorch())
        import edge_isp.contract, edge_isp.runtime
        modules = [m.name for m in pkgutil.walk_packages(edge_isp.runtime.__path__, "edge_isp.runtime.")]
        # The contracts every side imports, and the INT8 calibration feed of recorded frames.
        modules += [m.name for m in pkgutil.walk_packages(edge_isp.contract.__path__, "edge_isp.contract.")]
        modules += ["edge_isp.cli.run_commands", "edge_isp.cli.demo_commands", "edge_isp.export.calibration",
                    "edge_isp.deploy.doctor"]
        for name in modules:
            importlib.import_module(name)

        import numpy as np
        from edge_isp.runtime.backends import make_backend
        from edge_isp.runtime.interfaces import Output
        from edge_isp.contract.metadata import metadata_of_backend
        from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
        from edge_isp.runtime.postprocess import Postprocessor
        from edge_isp.contract.model_input import Preprocessor
        from edge_isp.runtime.sources import SimulatedSource
        from edge_isp.runtime.sources.scene import MovingScene, Sprite
        from edge_isp.sensor.profile import SensorProfile

        class Count(Output):
            n = 0
            def publish(self, result):
                Count.n += 1

        profile = SensorProfile.load("nexus6p-rear")
        square = Sprite(1, np.ones((16, 16, 3), np.float32), np.ones((16, 16), np.float32), (0.4, 0.3), (0.0, 1.0))
        scene = MovingScene(np.full(({HEIGHT}, {WIDTH}, 3), 0.05, np.float32), [square])
        backend = make_backend({str(spot_model)!r})
        pipeline = Pipeline(
            SimulatedSource(profile, scene=scene, paced=False), backend,
            Preprocessor(profile, ({WIDTH}, {HEIGHT})), Postprocessor(metadata_of_backend(backend)), [Count()],
            profile=profile, config=PipelineConfig(when_full="block", max_frames=5, conventional_every=2),
        )
        metrics = pipeline.run(handle_signals=False)
        print(json.dumps({{"modules": len(modules), "frames": metrics["frames"], "published": Count.n,
                          "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] == [] and report["modules"] >= 30
    assert report["frames"] == report["published"] == 5


def _cli(argv: list[str]) -> int:
    from edge_isp.cli import demo_commands, run_commands

    parser = argparse.ArgumentParser(prog="edge-isp")
    sub = parser.add_subparsers(dest="command")
    run_commands.register(sub)
    demo_commands.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_run_command_replays_and_records(profile, spot_model, tmp_path, capsys):
    for i in range(4):
        values = np.full((HEIGHT, WIDTH), 0.05)
        values[40:56, 20 + 10 * i : 36 + 10 * i] = 0.9  # a bright square moving right
        data = np.rint(64 + values * (1023 - 64)).astype(np.uint16)
        RawFrame(data, "RGGB", 10, 64, 1023).save(tmp_path / "rec" / f"{i:06d}")
    code = _cli(["run", "--source", f"replay:{tmp_path / 'rec'}", "--model", str(spot_model), "--process-all",
                 "--record", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "detection, input 128x96, profile nexus6p-rear, on onnxruntime (CPUExecutionProvider)" in printed
    assert "4 frame(s) processed, 0 dropped" in printed
    (jsonl,) = (tmp_path / "out").glob("*.jsonl")
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3]
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 1  # finished, not left as .partial.mp4
    for i, line in enumerate(lines):
        (det,) = line["results"]["detections"]
        assert 20 + 10 * i <= (det["box"][0] + det["box"][2]) / 2 <= 36 + 10 * i  # on the square


def test_demo_without_its_model_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingFileError, match=r"edge-isp export onnx .* -o .*--with-image.* --model PATH"):
        _cli(["demo", "--model", str(tmp_path / "missing.onnx")])


def test_run_command_refuses_options_that_do_not_fit(tmp_path, spot_model):
    bare = brightness_classifier(tmp_path / "bare.onnx", metadata=False)
    with pytest.raises(InvalidInputError, match=r"no sensor profile.*--profile"):
        _cli(["run", "--source", "sim", "--model", str(bare)])
    with pytest.raises(InvalidInputError, match="--loop is for replay"):
        _cli(["run", "--source", "sim", "--model", str(spot_model), "--loop"])
    with pytest.raises(InvalidInputError, match="128x96 input only"):
        _cli(["run", "--source", "sim", "--model", str(spot_model), "--input-size", "64x64"])


def test_run_command_reads_a_run_config(spot_model, tmp_path, capsys):
    for i in range(3):
        data = np.full((HEIGHT, WIDTH), 100, np.uint16)
        RawFrame(data, "RGGB", 10, 64, 1023).save(tmp_path / "rec" / f"{i:06d}")
    (tmp_path / "model.onnx").write_bytes(spot_model.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(
        f'source = "replay:{tmp_path / "rec"}"\nmodel = "model.onnx"\nbackend = "onnxruntime"\n'
        '[outputs]\nrecord = "out"\n'
    )
    assert _cli(["run", "--config", str(config), "--process-all", "--max-frames", "2"]) == 0
    assert "2 frame(s) processed" in capsys.readouterr().out
    (jsonl,) = (tmp_path / "out").glob("*.jsonl")  # the output the file asked for, relative to it
    assert len(jsonl.read_text().splitlines()) == 2
    with pytest.raises(InvalidInputError, match="needs --source and --model"):
        _cli(["run"])


def test_auto_exposure_by_default_for_cameras_and_replayed_recordings():
    from edge_isp.cli.run_commands import wants_auto_exposure

    assert wants_auto_exposure("auto", "v4l2") and wants_auto_exposure("auto", "replay")
    assert not wants_auto_exposure("auto", "sim") and not wants_auto_exposure("off", "replay")
    assert wants_auto_exposure("on", "sim")
