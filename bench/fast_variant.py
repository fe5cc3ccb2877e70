"""Issue 17's fast variant against the paper's full-resolution model, side by side on the CPU.

Graphs (ONNX Runtime, CPU provider, one intra-op thread, sequential execution; exported with
``edge_isp.export.onnx_export.export_onnx``; weights untrained and random, seed 0: the speed of
these graphs does not depend on the weights' values, so nothing here says how well they detect):

- fused, full resolution: ``dpn_s_det`` (the paper's ISP at H x W, MobileNetV2 CenterNet with the
  stride-2 stem), raw input W x H;
- fused, fast: ``dpnh_s_det`` (the whole ISP on the packed H/2 x W/2 planes, stride-1 stem), the
  same raw input;
- fused, fast with the lighter ISPs (not trained yet): ``dpnhu_s_det`` and ``dpnhu_xs_det``
  (``dpnh`` with the U-Net on 2x2-unshuffled maps, ``IspNetConfig.unet_stride`` 2, widths
  16/32/64 and 16/16/32); the same detector as ``dpnh_s_det``, so the same "detector alone";
- each one's detector alone: the fused model's own perception network (same stem, backbone,
  neck, heads and box decoding) fed the picture its ISP gives it: W x H RGB for the full model,
  W/2 x H/2 RGB for the fast one;
- a conventional ISP without denoising followed by the full-resolution detector alone (W x H
  RGB, the usual MobileNetV2): the project's ISP (``edge_isp.isp``: white balance on the mosaic,
  Malvar demosaicking, colour matrix, clip, sRGB curve), and the same stages with OpenCV's
  demosaicking (``cv2.cvtColor`` Bayer, bilinear, on the 16-bit mosaic) in place of Malvar;
- the project's ISP with NLM denoising (Malvar + OpenCV non-local means in the Anscombe domain)
  followed by the same detector.

Every row starts from the same input in memory (the packed raw and noise level of a frame
simulated through the nexus6p-rear profile at 8 photo-electrons at white, about 3 lux; the
conventional rows from its mosaic) and ends with boxes; preprocessing a RawFrame into that input
is the same for all rows and not timed. Rows are timed in interleaved rounds (every row once per
round, in a new random order each round) after warm-up runs; each row's time is the median over
rounds with its quartiles and min-max, and each ratio the median of the per-round ratios (the
two runs of a round are seconds apart, so a change of load on a shared machine hits both): on
these shared, noisy machines read the ratios, not the absolute times.

Sizes: 640x480 and 1280x720 raw frames. Detectors take multiples of 32 (the raw's, for both
models), so a frame that is not runs as its centred crop (1280x720 as 1280x704), as in
bench/runtime_pipeline.py.

Cost per frame, from each ONNX graph (``edge_isp.export.graph_stats``: shapes by ONNX Runtime's
symbolic inference, MACs of Conv/ConvTranspose/Gemm/MatMul), split by the exported node names
into ISP, stem + backbone, neck (laterals, top-down merge, smoothing), heads (heatmap, size,
offset) and decoding (peaks and boxes): MACs and activation bytes (every intermediate tensor
once, float32), and the whole graph's layer-by-layer traffic (reads + writes, weights included).

Where torch sees a CUDA GPU (never faked: otherwise the JSON says why not), both fused models also
run in PyTorch FP16 (CUDA graphs) at 1920x1080 (as 1920x1056) against the bound their MACs and
FP16 traffic set on that GPU (``bench/export_latency.py``'s ``gpu_rows``).

Run: PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/fast_variant.py [--sizes 640x480,1280x720]
[--rounds 21] [--json PATH] (JSON: bench/results/fast_variant.json)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_latency import gpu_rows

from edge_isp import __version__
from edge_isp.contract.onnx_session import cpu_session, onnxruntime
from edge_isp.contract.sizes import format_size, parse_size
from edge_isp.export.graph_stats import GraphStats, graph_stats
from edge_isp.export.onnx_export import DETECTION_MULTIPLE, OPSET, export_onnx, parity_inputs
from edge_isp.fileio import write_json
from edge_isp.isp import IspConfig, render_mosaic
from edge_isp.isp.colour import apply_color_matrix, apply_tone, resize_image, white_balance_mosaic
from edge_isp.isp.demosaic import opencv_bayer_code
from edge_isp.model.contract_module import decode_detections
from edge_isp.model.registry import create_model
from edge_isp.sensor.cfa import unpack
from edge_isp.sensor.profile import SensorProfile

RESULTS = Path(__file__).resolve().parent / "results" / "fast_variant.json"
FULL, FAST = "dpn_s_det", "dpnh_s_det"
LIGHT = ("dpnhu_s_det", "dpnhu_xs_det")  # lighter fast ISPs, same detector as FAST (module docstring)
PROFILE = "nexus6p-rear"
ELECTRONS_AT_WHITE = 8.0
NUM_CLASSES = 10
THREADS = 1
GPU_SIZE = (1920, 1080)
PARTS = ("isp", "stem+backbone", "neck", "heads", "decode")
NOTE = (
    "these machines are shared and noisy (other processes load the cores): absolute times drift "
    "between runs; the ratios, each the median of per-round ratios of interleaved runs, are what to read"
)


class DetectorAlone(nn.Module):
    """A joint model's perception network alone: its picture (B, 3, h, w) -> the fused model's
    boxes, scores, labels (boxes in the raw frame's pixels, as the fused graph gives them)."""

    def __init__(self, model: nn.Module, top_k: int) -> None:
        super().__init__()
        self.head = model.head  # named as in the fused graph: its nodes read /head/...
        self.top_k, self.stride, self.raw_scale = top_k, int(model.head.stride), model.config.raw_scale

    def forward(self, image: torch.Tensor):
        return decode_detections(self.head(image), self.top_k, self.stride, self.raw_scale)


def part_of(node: str) -> str:
    """Which part of a detector's graph an exported node belongs to (names as ContractModule and
    DetectorAlone give them: /isp/..., /head/features.N/..., /head/lateral.N/..., ...)."""
    parts = node.split("/")
    if len(parts) < 3 or parts[1] not in ("isp", "head"):
        return "decode"  # the top-level nodes: peaks, top-K, boxes
    if parts[1] == "isp":
        return "isp"
    module = parts[2]
    if module.startswith(("features", "backbone", "normalize")):
        return "stem+backbone"
    # The heads' convolutions, and what CenterNetDetector.forward applies to their maps.
    if module.startswith(("heatmap", "size", "offset", "Softplus", "Sigmoid", "Mul")):
        return "heads"
    return "neck"  # laterals, smoothing, and the top-down Resize + Add with their shape ops


def graph_costs(stats: GraphStats) -> dict:
    """MACs and float32 activation bytes per part (:func:`part_of`), and the totals."""
    by_part = stats.by_part(part_of)
    parts = {
        p: {"gmacs": by_part[p]["macs"] / 1e9, "activation_mb_fp32": 4 * by_part[p]["output_elements"] / 1e6}
        for p in PARTS
        if p in by_part
    }
    return {
        "parts": parts,
        "gmacs": stats.total_macs / 1e9,
        "activation_mb_fp32": 4 * sum(stats.output_elements.values()) / 1e6,
        "traffic_mb_fp32": stats.traffic_bytes(4) / 1e6,
    }


def export_alone(model: nn.Module, path: Path, picture: tuple[int, int], top_k: int) -> Path:
    w, h = picture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes, as in export_onnx
        torch.onnx.export(DetectorAlone(model, top_k).eval(), (torch.rand(1, 3, h, w),), str(path), dynamo=False,
                          opset_version=OPSET, input_names=["image"], output_names=["boxes", "scores", "labels"],
                          do_constant_folding=True)  # fmt: skip
    return path


def opencv_render(mosaic: np.ndarray, cfa, gains, matrix) -> np.ndarray:
    """The conventional ISP's stages with OpenCV's demosaicking: white balance on the mosaic,
    ``cv2.cvtColor`` Bayer (bilinear) on 16 bits, colour matrix, clip, sRGB; (H, W, 3) [0, 1]."""
    balanced = white_balance_mosaic(mosaic, cfa, gains)
    integer = np.rint(np.clip(balanced, 0.0, 1.0) * 65535.0).astype(np.uint16)
    rgb = cv2.cvtColor(integer, opencv_bayer_code(cfa, "bilinear")).astype(np.float32) * np.float32(1 / 65535)
    return apply_tone(np.clip(apply_color_matrix(rgb, matrix), 0.0, 1.0), "srgb")


def nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def detector_size(size: tuple[int, int]) -> tuple[int, int]:
    """The centred crop of a frame that the detectors take: sides down to multiples of 32."""
    return size[0] // DETECTION_MULTIPLE * DETECTION_MULTIPLE, size[1] // DETECTION_MULTIPLE * DETECTION_MULTIPLE


def interleaved(rows: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each row per round: every row once a round, in a new random order each round."""
    for fn in rows.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for index in range(rounds):
        for name in random.Random(index).sample(list(rows), len(rows)):
            start = time.perf_counter()
            rows[name]()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values: list[float]) -> dict:
    """Median, quartiles and min-max of ``values``, and how many."""
    q1, q3 = np.percentile(values, [25, 75])
    return {"median": statistics.median(values), "q1": float(q1), "q3": float(q3),
            "min": min(values), "max": max(values), "n": len(values)}  # fmt: skip


def ratio(times: dict[str, list[float]], top: str, bottom: str, target: str | None = None) -> dict:
    row = spread([a / b for a, b in zip(times[top], times[bottom], strict=True)])
    return {"numerator": top, "denominator": bottom, **row, "target": target}


def measure_size(raw_size: tuple[int, int], profile, rounds: int, warmup: int, folder: Path) -> dict:
    size = detector_size(raw_size)
    w, h = size
    names = [f"class_{i}" for i in range(NUM_CLASSES)]
    inputs = parity_inputs(profile, size, batch=1, electrons_at_white=ELECTRONS_AT_WHITE)
    graphs: dict[str, Path] = {}
    for name in (FULL, FAST, *LIGHT):
        torch.manual_seed(0)
        model = create_model(name, num_classes=NUM_CLASSES, pretrained_backbone=False).eval()
        tag = f"{name}_{w}x{h}"
        export_onnx(model, folder / f"{tag}.onnx", input_size=size, class_names=names, profile=profile)
        graphs[f"{name} fused"] = folder / f"{tag}.onnx"
        if name not in LIGHT:  # a light variant's detector alone is FAST's (same head, same picture)
            picture = (w // model.config.raw_scale, h // model.config.raw_scale)
            graphs[f"{name} detector alone"] = export_alone(model, folder / f"{tag}.alone.onnx", picture, 100)
    sessions = {key: cpu_session(path, THREADS) for key, path in graphs.items()}
    modes = {str(s.get_session_options().execution_mode) for s in sessions.values()}

    mosaic = unpack(inputs["raw"][0], profile.cfa)
    a, sigma = (float(v) for v in inputs["noise"][0])
    malvar = IspConfig(demosaic="malvar", white_balance=profile.white_balance, color_matrix=profile.color_matrix)
    nlm = IspConfig(demosaic="malvar", denoise="nlm", noise=(a, sigma), white_balance=profile.white_balance,
                    color_matrix=profile.color_matrix)  # fmt: skip
    picture_full = nchw(render_mosaic(mosaic, profile.cfa, malvar))
    picture_half = nchw(resize_image(render_mosaic(mosaic, profile.cfa, malvar), (w // 2, h // 2)))
    full_alone = sessions[f"{FULL} detector alone"]

    def conventional(render: Callable[[], np.ndarray]) -> Callable[[], object]:
        return lambda: full_alone.run(None, {"image": nchw(render())})

    rows = {
        "fused full-res (dpn_s_det)": lambda: sessions[f"{FULL} fused"].run(None, inputs),
        "fused fast (dpnh_s_det)": lambda: sessions[f"{FAST} fused"].run(None, inputs),
        f"detector alone, full ({w}x{h} RGB)": lambda: full_alone.run(None, {"image": picture_full}),
        f"detector alone, fast ({w // 2}x{h // 2} RGB)": lambda: sessions[f"{FAST} detector alone"].run(
            None, {"image": picture_half}
        ),
        "conventional Malvar + detector": conventional(lambda: render_mosaic(mosaic, profile.cfa, malvar)),
        "conventional OpenCV demosaic + detector": conventional(
            lambda: opencv_render(mosaic, profile.cfa, profile.white_balance, profile.color_matrix)
        ),
        "conventional Malvar + NLM + detector": conventional(lambda: render_mosaic(mosaic, profile.cfa, nlm)),
        **{f"fused fast, light ISP ({name})": lambda name=name: sessions[f"{name} fused"].run(None, inputs)
           for name in LIGHT},
    }  # fmt: skip
    keys = list(rows)
    times = interleaved(rows, rounds, warmup)
    ratios = {
        "fused full / its detector alone": ratio(times, keys[0], keys[2]),
        "fused fast / its detector alone": ratio(times, keys[1], keys[3], "<= 1.3"),
        "fused fast / fused full": ratio(times, keys[1], keys[0]),
        "conventional Malvar + detector / fused fast": ratio(times, keys[4], keys[1], ">= 1.0"),
        "conventional OpenCV + detector / fused fast": ratio(times, keys[5], keys[1], ">= 1.0"),
        "conventional Malvar + NLM + detector / fused fast": ratio(times, keys[6], keys[1]),
        "conventional Malvar + detector / fused full": ratio(times, keys[4], keys[0]),
        "conventional OpenCV + detector / fused full": ratio(times, keys[5], keys[0]),
        "conventional Malvar + NLM + detector / fused full": ratio(times, keys[6], keys[0]),
    }
    for key in keys[7:]:
        name = key[key.index("(") + 1 : -1]
        ratios[f"{name} / fast detector alone"] = ratio(times, key, keys[3], "<= 1.3")
        ratios[f"conventional Malvar + detector / {name}"] = ratio(times, keys[4], key, ">= 1.0")
        ratios[f"{name} / fused fast"] = ratio(times, key, keys[1])
    return {
        "raw_size": format_size(raw_size),
        "size": format_size(size),
        "execution_modes": sorted(modes),
        "timings_ms": {k: {s: v * 1e3 if s != "n" else v for s, v in spread(t).items()} for k, t in times.items()},
        "ratios": ratios,
        "cost_per_frame": {key: graph_costs(graph_stats(path)) for key, path in graphs.items()},
    }


def gpu_section(profile, folder: Path) -> dict | str:
    """PyTorch FP16 at :data:`GPU_SIZE` against each fused model's roofline, or why not."""
    if not torch.cuda.is_available():
        return "not measured: torch sees no CUDA GPU on this machine"
    size = detector_size(GPU_SIZE)
    out = {"size": format_size(size)}
    for name in (FULL, FAST):
        torch.manual_seed(0)
        model = create_model(name, num_classes=NUM_CLASSES, pretrained_backbone=False).eval()
        path = folder / f"{name}_gpu.onnx"
        export_onnx(model, path, input_size=size, class_names=[f"c{i}" for i in range(NUM_CLASSES)], profile=profile)
        stats = graph_stats(path)
        out[name] = gpu_rows(model, stats.total_macs, stats.traffic_bytes(2), size)
    return out


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def cost_cell(cost: dict | None) -> str:
    return "-" if cost is None else f"{cost['gmacs']:.3f} / {cost['activation_mb_fp32']:.1f}"


def print_tables(results: dict) -> None:
    for entry in results["sizes"]:
        print(
            f"\nraw {entry['raw_size']} (run as {entry['size']}), ms per frame, {results['rounds']} interleaved rounds"
        )
        print(f"{'row':<44}{'median':>9}{'q1':>9}{'q3':>9}{'min':>9}{'max':>9}")
        for name, t in entry["timings_ms"].items():
            print(f"{name:<44}{t['median']:>9.1f}{t['q1']:>9.1f}{t['q3']:>9.1f}{t['min']:>9.1f}{t['max']:>9.1f}")
        print(
            f"\n{'ratio (median of per-round ratios)':<52}{'median':>8}{'q1':>7}{'q3':>7}{'min':>7}{'max':>7}  target"
        )
        for name, r in entry["ratios"].items():
            print(f"{name:<52}{r['median']:>8.2f}{r['q1']:>7.2f}{r['q3']:>7.2f}{r['min']:>7.2f}{r['max']:>7.2f}"
                  f"  {r['target'] or ''}")  # fmt: skip
        print(
            "\nper frame: GMAC / activation MB (fp32, each intermediate tensor once); traffic MB (fp32, layer by layer)"
        )
        print(f"{'graph':<26}" + "".join(f"{p:>16}" for p in (*PARTS, "total")) + f"{'traffic MB':>12}")
        for graph, cost in entry["cost_per_frame"].items():
            cells = [cost["parts"].get(p) for p in PARTS] + [cost]
            text = "".join(f"{cost_cell(c):>16}" for c in cells)
            print(f"{graph:<26}{text}{cost['traffic_mb_fp32']:>12.1f}")
    gpu = results["pytorch_gpu_fp16"]
    print(f"\nPyTorch GPU FP16: {gpu if isinstance(gpu, str) else ''}")
    if not isinstance(gpu, str):
        for name in (FULL, FAST):
            rows = gpu[name]
            for row in [rows] if isinstance(rows, str) else rows:
                print(f"  {name} at {gpu['size']}: {row}")
    print(f"\nNote: {NOTE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x480,1280x720", help="raw frame sizes WxH (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each row first (default %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results (default %(default)s)")
    args = parser.parse_args()
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    sizes = [parse_size(s, "--sizes") for s in args.sizes.split(",")]
    if any(detector_size(s)[0] < DETECTION_MULTIPLE or detector_size(s)[1] < DETECTION_MULTIPLE for s in sizes):
        parser.error(f"--sizes: every side must be at least {DETECTION_MULTIPLE}")
    torch.set_num_threads(1)
    profile = SensorProfile.load(PROFILE)
    load_before, commit = os.getloadavg(), git_commit()  # the code measured, before anything changes
    with tempfile.TemporaryDirectory() as tmp:
        entries = [measure_size(size, profile, args.rounds, args.warmup, Path(tmp)) for size in sizes]
        gpu = gpu_section(profile, Path(tmp))
    results = {
        "benchmark": "fast_variant",
        "what": "fused models (full-resolution dpn_s_det, fast dpnh_s_det) against their detectors alone and "
        "conventional ISP + detector, ONNX Runtime CPU, one intra-op thread, batch 1",
        "weights": "untrained, random (seed 0): speed does not depend on the values; no accuracy is implied",
        "input": f"raw simulated through {PROFILE} at {ELECTRONS_AT_WHITE:g} photo-electrons at white",
        "rounds": args.rounds,
        "warmup": args.warmup,
        "ort_intra_op_threads": THREADS,
        "note": NOTE,
        "sizes": entries,
        "pytorch_gpu_fp16": gpu,
        "edge_isp": __version__,
        "git_commit": commit,
        "onnxruntime": onnxruntime().__version__,
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print_tables(results)
    write_json(args.json, results)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
