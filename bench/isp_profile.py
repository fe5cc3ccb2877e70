"""Where a learned ISP's CPU time goes: ONNX Runtime's own profiler on the exported ISP alone.

For each model named (default ``dpnh_s_det``, issue 17's fast variant), its ISP is exported alone
(the registry config with the task set to reconstruction: raw + noise in, the sRGB picture out,
weights random, seed 0: the time does not depend on their values) at the raw size asked (default
640x480), opened as every side opens it (``edge_isp.contract.onnx_session.session_options``: CPU
provider, default graph optimizations, one intra-op thread) with ONNX Runtime's profiler on, run
``--runs`` times after ``--warmup`` runs, and each kernel's time summed over the runs and
divided by them. Reported per frame:

- per ONNX Runtime op type (after its graph optimizations: NCHWc ``Conv`` with fused
  activations, ``ReorderInput``/``ReorderOutput`` layout conversions, ``Upsample`` for Resize...);
- per kind: convolutions (split by the output channels ONNX Runtime computes, which its NCHWc
  kernels pad to their block), layout conversions (Reorder*, Transpose, DepthToSpace), data
  movement (Concat, Split, Slice, Pad, Expand, Resize/Upsample), pooling, element-wise;
- per ISP stage, by the exported node names: Anscombe, prior (the U-Net), colour/tone, inverse
  Anscombe, the rest (planes, unit range, data step), and ONNX Runtime's inserted layout nodes;
- the costliest nodes with their output shapes.

Single-run profiles on these shared machines are noisy: compare variants with
bench/fast_variant.py's interleaved ratios; this says where the time goes, not how much faster
something is.

Run: PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/isp_profile.py [--models dpnh_s_det,dpnhu_s_det]
[--size 640x480] [--runs 20] [--json PATH] (JSON: bench/results/isp_profile.json)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp import __version__
from edge_isp.contract.onnx_session import CPU_PROVIDERS, onnxruntime, session_options
from edge_isp.contract.sizes import format_size, parse_size
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.onnx_export import export_onnx, parity_inputs
from edge_isp.fileio import write_json
from edge_isp.model.joint import JointModel
from edge_isp.model.registry import get_config
from edge_isp.sensor.profile import SensorProfile

RESULTS = Path(__file__).resolve().parent / "results" / "isp_profile.json"
PROFILE = "nexus6p-rear"
ELECTRONS_AT_WHITE = 8.0
LAYOUT = ("ReorderInput", "ReorderOutput", "Transpose", "DepthToSpace", "SpaceToDepth")
MOVEMENT = ("Concat", "Split", "Slice", "Pad", "Expand", "Upsample", "Resize", "Reshape", "Squeeze", "Unsqueeze")
POOLING = ("AveragePool", "MaxPool", "GlobalAveragePool")
STAGES = {"anscombe": "Anscombe", "priors": "prior (U-Net)", "inverse": "inverse Anscombe", "tone": "colour/tone"}


def op_kind(op: str, channels: int | None) -> str:
    """Which kind of work an optimized node does (the module docstring's list)."""
    if op in ("Conv", "FusedConv"):
        return f"conv, {channels} output channels computed" if channels else "conv"
    if op in LAYOUT:
        return "layout conversion"
    if op in MOVEMENT:
        return "data movement"
    if op in POOLING:
        return "pooling"
    return "element-wise"


def stage_of(node: str) -> str:
    """The ISP stage of a node, by the exported names (/isp/anscombe/..., /isp/priors.0/...)."""
    parts = node.split("/")
    if len(parts) < 3 or parts[1] != "isp":
        return "layout nodes ONNX Runtime inserts"
    for key, stage in STAGES.items():
        if parts[2].startswith(key):
            return stage
    return "planes, unit range, data step"


def export_isp(name: str, size: tuple[int, int], profile: SensorProfile, folder: Path) -> Path:
    """The ISP of registered model ``name`` alone (its config as a reconstruction model)."""
    config = dataclasses.replace(get_config(name, pretrained_backbone=False), task="reconstruction")
    torch.manual_seed(0)
    path = folder / f"{name}_isp.onnx"
    export_onnx(JointModel(config).eval(), path, input_size=size, class_names=[], profile=profile)
    return path


def profile_graph(path: Path, inputs: dict, runs: int, warmup: int, folder: Path) -> tuple[list[dict], float]:
    """Per-node kernel time per run (ms, op, output shape) from ONNX Runtime's profiler, and
    the mean wall time of one run as the profiler records it."""
    ort = onnxruntime()
    warm = ort.InferenceSession(str(path), sess_options=session_options(1), providers=list(CPU_PROVIDERS))
    feed = {i.name: inputs[i.name] for i in warm.get_inputs()}
    for _ in range(warmup):
        warm.run(None, feed)
    options = session_options(1)
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "ort_profile")
    session = ort.InferenceSession(str(path), sess_options=options, providers=list(CPU_PROVIDERS))
    for _ in range(runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_node: dict[str, dict] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        shapes = event["args"].get("output_type_shape") or [{}]
        shape = next(iter(shapes[0].values()), None) if shapes and shapes[0] else None
        row = per_node.setdefault(name, {"node": name, "op": event["args"]["op_name"], "ms": 0.0, "shape": shape})
        row["ms"] += event["dur"] / 1e3 / runs
    model_runs = [e["dur"] for e in events if e.get("name") == "model_run"]
    return sorted(per_node.values(), key=lambda r: -r["ms"]), sum(model_runs) / 1e3 / max(len(model_runs), 1)


def summarize(nodes: list[dict], top: int) -> dict:
    total = sum(n["ms"] for n in nodes)

    def table(key) -> dict:
        counts = Counter()
        for n in nodes:
            counts[key(n)] += n["ms"]
        return {k: {"ms": v, "share": v / total} for k, v in counts.most_common()}

    def channels(n: dict) -> int | None:
        return n["shape"][1] if n["shape"] and len(n["shape"]) == 4 else None

    return {
        "kernels_ms": total,
        "by_op": table(lambda n: n["op"]),
        "by_kind": table(lambda n: op_kind(n["op"], channels(n))),
        "by_stage": table(lambda n: stage_of(n["node"])),
        "top_nodes": nodes[:top],
    }


def print_summary(name: str, entry: dict) -> None:
    print(f"\n{name}: ISP alone, {entry['gmacs']:.3f} GMAC, profiled run {entry['run_ms']:.1f} ms, "
          f"kernels {entry['kernels_ms']:.1f} ms per frame")  # fmt: skip
    for title in ("by_kind", "by_stage", "by_op"):
        print(f"  {title.replace('_', ' ')}:")
        for key, row in entry[title].items():
            print(f"    {key:<46}{row['ms']:8.2f} ms {100 * row['share']:6.1f}%")
    print("  costliest nodes:")
    for n in entry["top_nodes"]:
        print(f"    {n['node'][:64]:<66}{n['op']:<16}{n['ms']:7.2f} ms  {n['shape']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="dpnh_s_det", help="registered names, comma-separated (default: %(default)s)"
    )
    parser.add_argument("--size", default="640x480", help="raw frame size WxH (default %(default)s)")
    parser.add_argument("--runs", type=int, default=20, help="profiled runs (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="unprofiled runs first (default %(default)s)")
    parser.add_argument("--top", type=int, default=15, help="costliest nodes listed (default %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results (default %(default)s)")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.top < 0:
        parser.error("--runs must be >= 1, --warmup and --top >= 0")
    size = parse_size(args.size, "--size")
    torch.set_num_threads(1)
    profile = SensorProfile.load(PROFILE)
    inputs = parity_inputs(profile, size, batch=1, electrons_at_white=ELECTRONS_AT_WHITE)
    load_before = os.getloadavg()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = export_isp(name, size, profile, Path(tmp))
            nodes, run_ms = profile_graph(path, inputs, args.runs, args.warmup, Path(tmp))
            models[name] = {"gmacs": graph_stats(path).total_macs / 1e9, "run_ms": run_ms, **summarize(nodes, args.top)}
            print_summary(name, models[name])
    results = {
        "benchmark": "isp_profile",
        "what": "ONNX Runtime profiler on each model's ISP exported alone, CPU provider, one intra-op thread, "
        "default graph optimizations; times per frame (kernel time summed over runs / runs)",
        "raw_size": format_size(size),
        "input": f"raw simulated through {PROFILE} at {ELECTRONS_AT_WHITE:g} photo-electrons at white",
        "runs": args.runs,
        "warmup": args.warmup,
        "note": "one profile on a shared, noisy machine: shares, not absolute times, and no speed-up claims "
        "(bench/fast_variant.py's interleaved ratios are those)",
        "models": models,
        "edge_isp": __version__,
        "onnxruntime": onnxruntime().__version__,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    write_json(args.json, results)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
