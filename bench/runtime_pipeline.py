"""The live pipeline's overhead, latency and memory on the CPU with ONNX Runtime.

Model: the registered detector ``dp_s_det`` (Dirty Pixels ISP + MobileNetV2 CenterNet, 10
classes, untrained weights: its answers mean nothing, its cost is the real one) exported to
ONNX at each frame size with the learned ``image`` output, as ``edge-isp export onnx`` does;
or any fixed-size ONNX model given with ``--model``. Frames: simulated raw frames of the
nexus6p-rear profile at 30 lux (the demo's scene), rendered once before timing and cycled
from memory, so frame synthesis is not timed.

Per frame size (640x480, 1280x720):

- baseline, the backend alone: ``backend.infer`` on the frames' prepared inputs, one after
  another (preprocessing done before timing);
- pipeline, throughput: the same frames through the whole pipeline (capture ->
  preprocessing -> inference -> postprocessing + annotation -> an output) with
  ``when_full="block"`` so every frame is processed; overhead = 1 - pipeline FPS / backend FPS,
  and by CPU time (this process's, all threads) per frame, pipeline / backend - 1, which other
  processes on a shared machine disturb far less than wall-clock FPS;
- pipeline, live: the frames delivered at a camera's pace (80 % of the backend's FPS, at most
  30) with the live policy (drop the oldest): end-to-end latency p50/p99 and drops.

Memory: ``--frames`` frames (default 10,000) through the pipeline at a small size (160x128),
in a fresh interpreter without torch (as on a board), RSS sampled every 200 frames; the slope
of RSS against frames over the second half (after warm-up) is reported in KiB per 1000
frames: no growth means a slope near 0.

The backend-alone and pipeline throughput runs alternate in ``--rounds`` rounds and the
median round of each is reported, so a change of load on a shared machine hits both alike.

Run: .venv/bin/python bench/runtime_pipeline.py [--frames N] [--throughput-frames N]
[--sizes 640x480,1280x720] [--model FILE] (JSON: bench/results/runtime_pipeline.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp import __version__
from edge_isp.contract.metadata import metadata_of_backend
from edge_isp.contract.model_input import Preprocessor
from edge_isp.contract.sizes import parse_size
from edge_isp.fileio import write_json
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.interfaces import CameraSource, Output, SourceEnded
from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.runtime.sources import SimulatedSource
from edge_isp.sensor.profile import SensorProfile

RESULTS = Path(__file__).resolve().parent / "results" / "runtime_pipeline.json"
PROFILE = "nexus6p-rear"
LUX = 30.0
DISTINCT_FRAMES = 24
MEMORY_SIZE = (160, 128)
RSS_EVERY = 200


class MemorySource(CameraSource):
    """Cycles through frames held in memory, as fast as asked or at ``fps``; ends after ``limit``."""

    name = "memory"

    def __init__(self, frames: list, limit: int, fps: float | None = None) -> None:
        super().__init__()
        self.frames, self.limit, self.fps = frames, limit, fps

    def _open(self) -> None:
        self.count, self.next_time = 0, time.perf_counter()

    def _close(self) -> None:
        pass

    def _read(self, timeout_s):
        if self.count >= self.limit:
            raise SourceEnded("done")
        if self.fps:
            self.next_time += 1.0 / self.fps
            delay = self.next_time - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        frame = self.frames[self.count % len(self.frames)]
        self.count += 1
        return frame


class Discard(Output):
    name = "discard"

    def publish(self, result) -> None:
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sim_frames(profile: SensorProfile, size: tuple[int, int], n: int) -> list:
    with SimulatedSource(profile, width=size[0], height=size[1], lux=LUX, paced=False, seed=1) as source:
        return [source.read() for _ in range(n)]


def export_detector(size: tuple[int, int], folder: Path, profile: SensorProfile) -> Path:
    # torch only when the benchmark exports its own untrained detector (no --model given).
    import torch

    from edge_isp.export.onnx_export import export_onnx
    from edge_isp.model.registry import create_model

    torch.manual_seed(0)
    model = create_model("dp_s_det", pretrained_backbone=False).eval()
    path = folder / f"dp_s_det_{size[0]}x{size[1]}.onnx"
    names = [f"class_{i}" for i in range(model.config.num_classes)]
    export_onnx(model, path, input_size=size, class_names=names, profile=profile, with_image=True)
    return path


def build(backend, profile, source, config) -> Pipeline:
    info = metadata_of_backend(backend)
    shape = next(s for s in backend.input_specs() if s.name == "raw").shape
    pre = Preprocessor(profile, (2 * shape[3], 2 * shape[2]))
    return Pipeline(source, backend, pre, Postprocessor(info), [Discard()], profile=profile, config=config)


def backend_alone(model: Path, profile, frames: list, count: int, threads: int | None) -> dict:
    backend = make_backend(model, "onnxruntime", device="cpu", threads=threads)
    shape = next(s for s in backend.input_specs() if s.name == "raw").shape
    pre = Preprocessor(profile, (2 * shape[3], 2 * shape[2]))
    feeds = [pre(f).feed() for f in frames]
    with backend:
        for feed in feeds[:3]:
            backend.infer(feed)
        times = []
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            t = time.perf_counter()
            backend.infer(feeds[i % len(feeds)])
            times.append((time.perf_counter() - t) * 1000)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    p50, p99 = np.percentile(times, [50, 99])
    return {"fps": count / seconds, "cpu_ms_per_frame": cpu / count * 1000, "p50_ms": float(p50), "p99_ms": float(p99)}


def pipeline_run(model, profile, frames, count, threads, fps=None, when_full="block") -> dict:
    backend = make_backend(model, "onnxruntime", device="cpu", threads=threads)
    with backend:  # warm ONNX Runtime up outside the timed run
        shape = next(s for s in backend.input_specs() if s.name == "raw").shape
        backend.infer(Preprocessor(profile, (2 * shape[3], 2 * shape[2]))(frames[0]).feed())
    source = MemorySource(frames, count, fps)
    pipeline = build(backend, profile, source, PipelineConfig(when_full=when_full))
    start, cpu = time.perf_counter(), time.process_time()
    metrics = pipeline.run(handle_signals=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    lat = pipeline.latency_summary()
    return {
        "fps": metrics["frames"] / seconds,
        "cpu_ms_per_frame": cpu / max(1, metrics["frames"]) * 1000,
        "frames": metrics["frames"],
        "dropped": metrics["dropped"],
        "end_to_end_p50_ms": lat["end_to_end"]["p50_ms"],
        "end_to_end_p99_ms": lat["end_to_end"]["p99_ms"],
        "stage_p50_ms": {k: round(v["p50_ms"], 3) for k, v in lat.items() if k != "end_to_end" and v["count"]},
    }


def memory_run(profile, model: Path, frames_total: int, threads: int | None) -> dict:
    """The memory run, in this process (which must not have imported torch: see main)."""
    backend = make_backend(model, "onnxruntime", device="cpu", threads=threads)
    shape = next(s for s in backend.input_specs() if s.name == "raw").shape
    frames = sim_frames(profile, (2 * shape[3], 2 * shape[2]), DISTINCT_FRAMES)
    pipeline = build(backend, profile, MemorySource(frames, frames_total), PipelineConfig(when_full="block"))
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        last = -RSS_EVERY
        while not done.is_set():
            n = pipeline.metrics()["frames"]
            if n - last >= RSS_EVERY:
                samples.append((n, rss_bytes()))
                last = n
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        metrics = pipeline.run(handle_signals=False)
    finally:
        done.set()
        sampler.join()
    after_close = rss_bytes()
    # The fit uses the samples taken while running (after close, the pipeline's buffers are gone).
    n = np.array([s[0] for s in samples], float)
    rss = np.array([s[1] for s in samples], float) / 1024
    half = n >= n[-1] / 2
    slope = float(np.polyfit(n[half], rss[half], 1)[0] * 1000) if half.sum() >= 3 else float("nan")
    return {
        "model": str(model.name),
        "size": f"{2 * shape[3]}x{2 * shape[2]}",
        "frames": int(metrics["frames"]),
        "seconds": time.perf_counter() - start,
        "torch_imported": "torch" in sys.modules,
        "rss_start_mib": float(rss[0] / 1024),
        "rss_end_mib": float(rss[-1] / 1024),
        "rss_after_close_mib": after_close / 2**20,
        "rss_max_mib": float(rss.max() / 1024),
        "slope_kib_per_1000_frames": slope,
        "samples": [[int(a), int(b)] for a, b in samples],
    }


def memory_in_subprocess(model: Path, frames: int, threads: int | None) -> dict:
    """Run :func:`memory_run` in a fresh interpreter: no torch, as on a board, so RSS is the runtime's."""
    command = [sys.executable, __file__, "--memory-model", str(model), "--frames", str(frames)]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10000, help="frames in the memory run (default %(default)s)")
    parser.add_argument("--throughput-frames", type=int, default=100, help="frames per FPS measurement")
    parser.add_argument("--sizes", default="640x480,1280x720", help="frame sizes, comma-separated")
    parser.add_argument("--model", type=Path, help="a fixed-size ONNX model instead of the exported dp_s_det")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of backend/pipeline timing")
    parser.add_argument("--memory-model", type=Path, help=argparse.SUPPRESS)  # the memory run's subprocess
    args = parser.parse_args()
    profile = SensorProfile.load(PROFILE)
    if args.memory_model is not None:
        print(json.dumps(memory_run(profile, args.memory_model, args.frames, args.threads)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = [parse_size(s, "--sizes") for s in args.sizes.split(",")] if args.model is None else [None]
        for size in sizes:
            # The detector takes multiples of 32: a 1280x720 frame runs as its centred 1280x704.
            model = args.model or export_detector((size[0] // 32 * 32, size[1] // 32 * 32), folder, profile)
            if size is None:
                shape = next(s for s in make_backend(model).input_specs() if s.name == "raw").shape
                size = (2 * shape[3], 2 * shape[2])
            frames = sim_frames(profile, size, DISTINCT_FRAMES)
            # Alternate the two in rounds so a change of load on a shared machine hits both alike.
            count = max(1, args.throughput_frames // args.rounds)
            alones, throughs = [], []
            for _ in range(args.rounds):
                alones.append(backend_alone(model, profile, frames, count, args.threads))
                throughs.append(pipeline_run(model, profile, frames, count, args.threads))
            alone = min(alones, key=lambda r: abs(r["fps"] - np.median([a["fps"] for a in alones])))
            through = min(throughs, key=lambda r: abs(r["fps"] - np.median([t["fps"] for t in throughs])))
            alone["fps_rounds"] = [a["fps"] for a in alones]
            through["fps_rounds"] = [t["fps"] for t in throughs]
            cpu_alone = float(np.median([a["cpu_ms_per_frame"] for a in alones]))
            cpu_pipeline = float(np.median([t["cpu_ms_per_frame"] for t in throughs]))
            camera_fps = min(30.0, 0.8 * alone["fps"])
            live = pipeline_run(model, profile, frames, count, args.threads, fps=camera_fps, when_full="drop_oldest")
            rows.append({
                "size": f"{size[0]}x{size[1]}", "model": model.name, "backend_alone": alone,
                "pipeline_throughput": through, "overhead": 1 - through["fps"] / alone["fps"],
                "cpu_ms_per_frame": {"backend_alone": cpu_alone, "pipeline": cpu_pipeline},
                "cpu_overhead": cpu_pipeline / cpu_alone - 1, "load_average": os.getloadavg(),
                "pipeline_live": {"camera_fps": camera_fps, **live},
            })  # fmt: skip
            print_row(rows[-1])
        memory_model = args.model or export_detector(MEMORY_SIZE, folder, profile)
        memory = memory_in_subprocess(memory_model, args.frames, args.threads)
    print(
        f"\nmemory: {memory['frames']} frames at {memory['size']} in {memory['seconds']:.0f} s, RSS "
        f"{memory['rss_start_mib']:.1f} (start) -> {memory['rss_end_mib']:.1f} (last sample) MiB, max "
        f"{memory['rss_max_mib']:.1f}, {memory['rss_after_close_mib']:.1f} after close; "
        f"slope over the second half {memory['slope_kib_per_1000_frames']:+.1f} KiB per 1000 frames"
    )
    write_json(RESULTS, {
        "bench": "runtime_pipeline", "edge_isp": __version__, "machine": platform.platform(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "profile": PROFILE, "lux": LUX,
        "sizes": rows, "memory": memory, "command": " ".join(["bench/runtime_pipeline.py", *sys.argv[1:]]),
    })  # fmt: skip
    print(f"wrote {RESULTS}")


def print_row(row: dict) -> None:
    a, t, live = row["backend_alone"], row["pipeline_throughput"], row["pipeline_live"]
    cpu = row["cpu_ms_per_frame"]
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(
            f"{'size':>9} | {'backend FPS':>11} | {'pipeline FPS':>12} | {'overhead':>8} | "
            f"{'backend CPU':>11} | {'pipeline CPU':>12} | {'CPU overhead':>12} | "
            f"{'live @FPS':>9} | {'e2e p50':>8} | {'e2e p99':>8} | {'dropped':>7}"
        )
    print(
        f"{row['size']:>9} | {a['fps']:11.2f} | {t['fps']:12.2f} | {row['overhead']:8.1%} | "
        f"{cpu['backend_alone']:9.1f}ms | {cpu['pipeline']:10.1f}ms | {row['cpu_overhead']:12.1%} | "
        f"{live['camera_fps']:9.1f} | {live['end_to_end_p50_ms']:6.1f}ms | {live['end_to_end_p99_ms']:6.1f}ms | "
        f"{live['dropped']:7d}"
    )
    stages = ", ".join(f"{k} {v:.1f}" for k, v in t["stage_p50_ms"].items())
    print(f"{'':>9}   stage p50 ms (throughput run): {stages}")


if __name__ == "__main__":
    main()
