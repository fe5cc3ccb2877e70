"""Latency and throughput of the exported joint network per precision, against the baseline.

Rows (ONNX Runtime, CPU execution provider, at each size, default 640x480):

- the joint network (learned ISP + detector, ``dp_s_det``) as exported: FP32, FP16 and INT8
  (Q/DQ, calibrated on raw simulated at 8 and 80 photo-electrons at white), with the ratio of
  each to FP32;
- the baseline at the same size: the conventional ISP (numpy/OpenCV: Malvar demosaicking,
  without and with NLM denoising) followed by the same perception network (the detector head
  alone, FP32 ONNX), the two times added.

The INT8 graph is the one made for TensorRT (symmetric signed-8-bit activations, Q/DQ on the
inputs of Conv/Gemm/MatMul only); ONNX Runtime's CPU provider runs it without the QLinear
fusions its own CPU-oriented quantization (unsigned activations, Q/DQ around every op) would
get, so its CPU latency says nothing about INT8 in TensorRT.

Latency is the median of ``--repeats`` timed runs at batch 1 after warm-up runs; throughput is
frames per second at ``--batch`` (dynamic-batch graphs). The weights are untrained: the speed of
these graphs does not depend on the weights' values.

Where the hardware is (never faked; otherwise the JSON says "not measured" and why):

- a CUDA GPU with torch: the same model in PyTorch, FP16, replayed as a CUDA graph, in frames
  per second and as a fraction of the roofline bound its multiply-accumulates and its
  layer-by-layer memory traffic allow on that GPU (peak figures for known GPUs below);
- TensorRT with a GPU (a Jetson): the engine of each precision built with edge-isp's builder
  and timed with its execution context (CUDA buffers through torch).

Run: .venv/bin/python bench/export_latency.py [--sizes 640x480,320x256] [--repeats 10]
JSON: bench/results/export_latency.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.contract.engine import build_engine
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.contract.sizes import parse_size
from edge_isp.contract.targets import Target
from edge_isp.contract.tensorrt_build import installed_version
from edge_isp.export.calibration import simulated_feed
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.onnx_export import export_onnx, parity_inputs
from edge_isp.export.precision import convert_fp16, quantize_int8
from edge_isp.fileio import write_json
from edge_isp.isp import IspConfig, render_mosaic
from edge_isp.model.contract_module import decode_detections
from edge_isp.model.loading import load_model
from edge_isp.sensor.cfa import unpack
from edge_isp.sensor.profile import SensorProfile

RESULTS = Path(__file__).resolve().parent / "results" / "export_latency.json"
MODEL = "dp_s_det"
WARMUP = 2
# Dense FP16 tensor-core peak (FLOP/s) and DRAM bandwidth (B/s) from NVIDIA's data sheets; a GPU
# not listed gets no roofline fraction rather than a guessed one.
GPU_PEAKS = {
    "H100 80GB HBM3": (989.4e12, 3.35e12),
    "H100 PCIe": (756.0e12, 2.0e12),
    "H200": (989.4e12, 4.8e12),
    "A100-SXM4-80GB": (312.0e12, 2.039e12),
    "A100-SXM4-40GB": (312.0e12, 1.555e12),
}


def median_seconds(fn, repeats: int) -> float:
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class HeadOnly(torch.nn.Module):
    """The joint model's perception network alone: sRGB (B, 3, H, W) -> decoded detections."""

    def __init__(self, head, top_k: int = 100) -> None:
        super().__init__()
        self.head = head
        self.top_k = top_k

    def forward(self, image):
        return decode_detections(self.head(image), self.top_k)


def export_head(model, path: Path, size: tuple[int, int]) -> Path:
    w, h = size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(HeadOnly(model.head).eval(), (torch.rand(1, 3, h, w),), str(path), opset_version=17,
                          dynamo=False, input_names=["image"], output_names=["boxes", "scores", "labels"],
                          dynamic_axes={"image": {0: "batch"}})  # fmt: skip
    return path


def time_onnx(path: Path, inputs: dict, batch: int, repeats: int, threads: int | None) -> dict:
    s = cpu_session(path, threads)
    one = {k: v[:1] for k, v in inputs.items()}
    many = {k: np.repeat(v[:1], batch, axis=0) for k, v in inputs.items()}
    latency = median_seconds(lambda: s.run(None, one), repeats)
    per_batch = median_seconds(lambda: s.run(None, many), max(3, repeats // 3))
    return {"latency_ms": 1e3 * latency, "throughput_fps": batch / per_batch}


def time_baseline(head_path: Path, inputs: dict, profile, denoise: str, repeats: int, threads: int | None) -> dict:
    packed = inputs["raw"][0]
    a, sigma = (float(v) for v in inputs["noise"][0])
    mosaic = unpack(packed, profile.cfa)
    config = IspConfig(demosaic="malvar", denoise=denoise, noise=(a, sigma), white_balance=profile.white_balance,
                       color_matrix=profile.color_matrix)  # fmt: skip
    image = np.ascontiguousarray(np.clip(render_mosaic(mosaic, profile.cfa, config), 0, 1).transpose(2, 0, 1)[None])
    s = cpu_session(head_path, threads)
    isp = median_seconds(lambda: render_mosaic(mosaic, profile.cfa, config), max(3, repeats // 2))
    head = median_seconds(lambda: s.run(None, {"image": image.astype(np.float32)}), repeats)
    total = isp + head
    return {"latency_ms": 1e3 * total, "isp_ms": 1e3 * isp, "network_ms": 1e3 * head, "throughput_fps": 1 / total}


def gpu_rows(model, macs: int, traffic_fp16: float, size: tuple[int, int], batches=(1, 8)) -> list[dict] | str:
    """PyTorch FP16 with CUDA graphs, or the reason it was not measured."""
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch on this machine"
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in GPU_PEAKS.items() if k in name), None)
    net = model.cuda().half().eval()
    w, h = size
    rows = []
    for batch in batches:
        raw = torch.rand(batch, 4, h // 2, w // 2, device="cuda", dtype=torch.half)
        noise = torch.full((batch, 2), 0.01, device="cuda", dtype=torch.half)
        with torch.no_grad():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    net(raw, noise)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                net(raw, noise)

        def replay(graph=graph):
            graph.replay()
            torch.cuda.synchronize()

        seconds = median_seconds(replay, 20)
        row = {"device": name, "batch": batch, "throughput_fps": batch / seconds, "latency_ms": 1e3 * seconds}
        if peak is not None:
            bound = max(2 * macs * batch / peak[0], traffic_fp16 * batch / peak[1])
            row.update({"roofline_ms": 1e3 * bound, "fraction_of_roofline": bound / seconds,
                        "peak_flops": peak[0], "peak_bytes_per_s": peak[1]})  # fmt: skip
        else:
            row["fraction_of_roofline"] = f"not computed: no peak figures for {name!r} in GPU_PEAKS"
        rows.append(row)
    model.float().cpu()
    return rows


def tensorrt_rows(paths: dict, size: tuple[int, int], work: Path) -> list[dict] | str:
    """Each precision's engine built with edge-isp's builder and timed, or why not."""
    if installed_version() is None:
        return "TensorRT is not installed here (it needs a GPU and NVIDIA's bindings; on a Jetson, JetPack's)"
    if not torch.cuda.is_available():
        return "TensorRT is installed but torch sees no CUDA GPU to hold the engine's buffers"

    rows = []
    for precision, path in paths.items():
        target = Target(name="bench", precision=precision, input_size=size, memory_pool_mb=2048)
        result = build_engine(path, target, work / "engines", say=lambda _m: None)
        engine = result.engine.engine
        context = engine.create_execution_context()
        buffers = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(max(1, d) for d in engine.get_tensor_shape(name))
            dtype = torch.int32 if "INT32" in str(engine.get_tensor_dtype(name)) else torch.float32
            buffers[name] = torch.zeros(shape, dtype=dtype, device="cuda")
            if str(engine.get_tensor_mode(name)).endswith("INPUT"):
                context.set_input_shape(name, shape)
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.Stream()

        def run(context=context, stream=stream):
            context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()

        seconds = median_seconds(run, 50)
        rows.append({"precision": precision, "device": torch.cuda.get_device_name(0), "plan": result.plan.api,
                     "latency_ms": 1e3 * seconds, "throughput_fps": 1 / seconds})  # fmt: skip
    return rows


def run(sizes: list[tuple[int, int]], repeats: int, batch: int, threads: int | None) -> dict:
    profile = SensorProfile.load("nexus6p-rear")
    loaded = load_model(MODEL)
    results = {"sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in sizes:
            tag = f"{size[0]}x{size[1]}"
            fp32 = work / f"m{tag}.fp32.onnx"
            export_onnx(loaded.model, fp32, input_size=size, class_names=loaded.class_names, profile=profile,
                        dynamic_batch=True)  # fmt: skip
            calib = np.random.default_rng(0).integers(0, 256, (4, 3, size[1], size[0]), dtype=np.uint8)
            paths = {
                "fp32": fp32,
                "fp16": convert_fp16(fp32, work / f"m{tag}.fp16.onnx"),
                "int8": quantize_int8(fp32, work / f"m{tag}.int8.onnx", simulated_feed(calib, profile, [8.0, 80.0])),
            }
            head = export_head(loaded.model, work / f"h{tag}.onnx", size)
            inputs = parity_inputs(profile, size, batch=1, electrons_at_white=8.0)
            rows = {p: time_onnx(path, inputs, batch, repeats, threads) for p, path in paths.items()}
            for p in rows:
                rows[p]["latency_vs_fp32"] = rows[p]["latency_ms"] / rows["fp32"]["latency_ms"]
            baseline = {
                "conventional ISP (malvar) + network fp32": time_baseline(head, inputs, profile, "none", repeats,
                                                                          threads),
                "conventional ISP (malvar + NLM) + network fp32": time_baseline(head, inputs, profile, "nlm",
                                                                                repeats, threads),
            }  # fmt: skip
            for row in baseline.values():
                row["latency_vs_fp32"] = row["latency_ms"] / rows["fp32"]["latency_ms"]
            stats = graph_stats(fp32)
            results["sizes"].append({
                "size": tag, "gmacs_per_frame": stats.total_macs / 1e9,
                "traffic_mb_per_frame_fp32": stats.traffic_bytes(4) / 1e6,
                "onnxruntime_cpu": rows, "baseline_cpu": baseline,
                "pytorch_gpu_fp16_cuda_graphs": gpu_rows(loaded.model, stats.total_macs, stats.traffic_bytes(2), size),
                "tensorrt": tensorrt_rows(paths, size, work),
            })  # fmt: skip
    return results


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x480", help="comma-separated WxH (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4, help="batch of the throughput runs")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: its own choice)")
    args = parser.parse_args()
    sizes = [parse_size(s, "--sizes") for s in args.sizes.split(",")]
    results = run(sizes, args.repeats, args.batch, args.threads)
    results.update({
        "model": MODEL, "weights": "untrained (speed does not depend on the values)",
        "onnxruntime": ort.__version__, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "ort_threads": args.threads or "default",
        "repeats": args.repeats, "throughput_batch": args.batch,
        "notes": [
            "int8 is the TensorRT-oriented Q/DQ graph (symmetric s8 activations, Q/DQ on Conv/Gemm/MatMul "
            "inputs); ONNX Runtime CPU runs it unfused, so its CPU latency does not predict TensorRT INT8",
            "conventional ISP rows: numpy/OpenCV ISP time plus the detector network alone (ONNX fp32), batch 1",
        ],
    })  # fmt: skip
    print(f"{MODEL} on ONNX Runtime {ort.__version__} CPU ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    for entry in results["sizes"]:
        print(f"\n{entry['size']}: {entry['gmacs_per_frame']:.2f} GMAC per frame")
        print(f"{'model':<48}{'latency ms':>12}{'vs fp32':>9}{'fps (batch)':>13}")
        for name, row in [*((f"joint {p} ONNX", r) for p, r in entry["onnxruntime_cpu"].items()),
                          *entry["baseline_cpu"].items()]:  # fmt: skip
            print(f"{name:<48}{row['latency_ms']:>12.1f}{row['latency_vs_fp32']:>9.2f}{row['throughput_fps']:>13.2f}")
        for key, label in (("pytorch_gpu_fp16_cuda_graphs", "PyTorch GPU FP16 + CUDA graphs"),
                           ("tensorrt", "TensorRT engines")):  # fmt: skip
            value = entry[key]
            if isinstance(value, str):
                print(f"{label}: not measured: {value}")
            else:
                for row in value:
                    print(f"{label}: {row}")
    write_json(RESULTS, results)
    print(f"\nJSON: {RESULTS}")


if __name__ == "__main__":
    main()
