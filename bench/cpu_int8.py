"""INT8 for boards without TensorRT: ONNX Runtime CPU, one thread, whole model, against FP32.

For each shipped model (``models/garment-det``, ``models/garment-cls``) this makes, in a
temporary folder, every INT8 variant from the shipped FP32 file and times them side by side:

- ``fp32``: the shipped ``model.onnx`` (the baseline);
- ``int8-cpu isp=fp32|wide|int8``: :func:`edge_isp.export.cpu_int8.quantize_int8_cpu` (ONNX
  Runtime's QOperator format, u8 activations, s8 per-channel weights) with the ISP's nodes kept
  float, its wide U-Net convolutions in INT8, or all of it in INT8: the per-part measurement that
  chose the default placement;
- ``int8-cpu wide, qdq``: the default placement in ONNX Runtime's Q/DQ format (it fuses the
  same integer kernels);
- ``int8 (TensorRT Q/DQ)``: the graph made for TensorRT
  (:func:`edge_isp.export.precision.quantize_int8`), for comparison.

Every variant is calibrated on the same feed: ``--calib-images`` training images of ``--data``
simulated at each of ``--light`` lux through the model's sensor profile and the live
preprocessing (:func:`edge_isp.export.calibration.simulated_feed`). Timing: one ONNX Runtime
CPU session per variant with one intra-op and one inter-op thread, all sessions made before
any is timed, then ``--rounds`` rounds that each run every variant ``--runs`` times in turn on
the same frame (interleaved, so a load change on the machine hits every variant alike).
Reported per variant: the median and the 10th-90th percentile spread of the per-run time,
and the ratio of its median to FP32's, with the spread of the per-round ratios.

Measured on this machine's x86 CPU (the JSON names it); an Arm CPU (a Raspberry Pi's
Cortex-A72/A76) has other integer kernels (A76: dot-product instructions; A72: none) and its
ratios may differ: measure there with the same command.

Run: PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_int8.py [--models real-det,real-cls]
JSON: bench/results/cpu_int8.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.contract.metadata import read_metadata
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.export.calibration import simulated_feed
from edge_isp.export.cpu_int8 import ISP_PLACEMENTS, int8_mac_fraction, quantize_int8_cpu
from edge_isp.export.evalset import light_levels, load_images, open_dataset
from edge_isp.export.precision import quantize_int8
from edge_isp.fileio import write_json
from edge_isp.sensor.profile import SensorProfile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cpu_int8.json"
MODELS = {name: ROOT / f"models/{name}/model.onnx" for name in ("real-det", "real-cls", "garment-det", "garment-cls")}
# Calibration images of each model: the real models' real sets, the garment models' demo set.
DATA = {"real-det": ROOT / "data/real", "real-cls": ROOT / "data/real", "garment-det": ROOT / "data/demo",
        "garment-cls": ROOT / "data/demo"}  # fmt: skip
TARGET_RATIO = 0.6


def make_variants(fp32: Path, feed, folder: Path) -> dict[str, Path]:
    variants = {"fp32": fp32}
    for isp in ISP_PLACEMENTS:
        variants[f"int8-cpu isp={isp}"] = quantize_int8_cpu(fp32, folder / f"cpu.{isp}.onnx", feed, isp=isp)
    variants["int8-cpu isp=wide, qdq"] = quantize_int8_cpu(
        fp32, folder / "cpu.wide.qdq.onnx", feed, isp="wide", quant_format="qdq"
    )
    variants["int8 (TensorRT Q/DQ)"] = quantize_int8(fp32, folder / "trt.onnx", feed)
    return variants


def time_interleaved(paths: dict[str, Path], frame: dict[str, np.ndarray], rounds: int, runs: int) -> dict:
    sessions = {name: cpu_session(path, threads=1) for name, path in paths.items()}
    for session in sessions.values():
        for _ in range(3):
            session.run(None, frame)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    round_medians: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            these = []
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, frame)
                these.append(time.perf_counter() - start)
            times[name].extend(these)
            round_medians[name].append(float(np.median(these)))
    base = np.asarray(round_medians["fp32"])
    out = {}
    for name in sessions:
        t = np.asarray(times[name]) * 1e3
        ratios = np.asarray(round_medians[name]) / base
        out[name] = {
            "median_ms": float(np.median(t)),
            "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)),
            "ratio_to_fp32": float(np.median(t) / np.median(np.asarray(times["fp32"]) * 1e3)),
            "round_ratio_p10": float(np.percentile(ratios, 10)),
            "round_ratio_p90": float(np.percentile(ratios, 90)),
        }
    return out


def bench_model(name: str, fp32: Path, args: argparse.Namespace, folder: Path) -> dict:
    meta = read_metadata(fp32)
    profile = SensorProfile.load(meta.profile)
    levels = light_levels(profile, args.light, "lux")
    data = open_dataset(args.data or DATA[name], meta.task, "train", teacher=meta.teacher, input_size=meta.input_size,
                        raw_scale=meta.raw_scale)  # fmt: skip
    calib = load_images(data, meta.task, meta.input_size, args.calib_images)
    feed = simulated_feed(calib.images, profile, [lv.electrons for lv in levels], seed=0)
    variants = make_variants(fp32, feed, folder / name)
    frame = feed.items[0]
    timing = time_interleaved(variants, frame, args.rounds, args.runs)
    for variant, path in variants.items():
        timing[variant]["int8_mac_share"] = 0.0 if variant == "fp32" else int8_mac_fraction(fp32, path)
    return {"model": str(fp32.relative_to(ROOT)), "input_size": list(meta.input_size), "variants": timing}


def table(results: dict) -> str:
    lines = [f"{'model':<13}{'variant':<26}{'median ms':>10}{'p10-p90 ms':>15}{'x fp32':>8}{'rounds p10-p90':>16}"
             f"{'MACs int8':>10}"]  # fmt: skip
    for model, result in results.items():
        for variant, r in result["variants"].items():
            spread = f"{r['p10_ms']:.2f}-{r['p90_ms']:.2f}"
            rounds = f"{r['round_ratio_p10']:.2f}-{r['round_ratio_p90']:.2f}"
            lines.append(f"{model:<13}{variant:<26}{r['median_ms']:>10.2f}{spread:>15}{r['ratio_to_fp32']:>8.2f}"
                         f"{rounds:>16}{r['int8_mac_share']:>10.1%}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="built data set of the calibration images (default: each "
                        "model's own, data/real for real-*, data/demo for garment-*)")  # fmt: skip
    parser.add_argument("--light", type=lambda s: [float(v) for v in s.split(",")], default=[3.0, 6.0, 30.0],
                        help="calibration light levels in lux (default 3,6,30)")  # fmt: skip
    parser.add_argument("--calib-images", type=int, default=16, help="calibration images per light level")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant per round")
    parser.add_argument("--models", default="real-det,real-cls", help=f"which shipped models, of {', '.join(MODELS)} "
                        "(default: the real ones)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            (Path(tmp) / name).mkdir()
            results[name] = bench_model(name, MODELS[name], args, Path(tmp))
    summary = {
        "what": "ONNX Runtime CPU, 1 thread, whole model, batch 1: CPU INT8 variants against the shipped FP32",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
        },
        "note": "x86 with VNNI here; an Arm CPU has other integer kernels and may differ",
        "target_ratio": TARGET_RATIO,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    print(table(results))
    write_json(args.out, summary)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
