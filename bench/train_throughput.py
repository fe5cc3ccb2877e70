"""Training throughput of every registry variant, with its size and cost per frame.

For each model in ``edge_isp.model.registry`` a full training step as the trainer takes it
(edge_isp.train.stages): simulate raw from a clean sRGB batch through the nexus6p-rear
profile at light levels drawn log-uniformly over 2-200 lux, forward, the stage's loss
(cross-entropy; CenterNet targets and loss with 3 boxes per image; L1 + 0.2 SSIM for
reconstruction), backward, AdamW step. Batch 16, at the study's resolutions:
classification 64x64, detection 128x128, and the ISP alone (``*_rec``, the isp stage) at
both. Figures are training images per second: the median of timed steps after warm-up,
taken in interleaved rounds (one step of every row per round, in a new random order each
round), so that load from other processes on a shared machine falls on all rows alike.

Memory order: channels-last (NHWC), as the trainer runs by default (``run.channels_last``);
``--compare-formats`` adds every row in torch's default contiguous order (NCHW).

Side by side, per task, the baselines a camera without the learned ISP would train:
``head`` (the perception head on clean sRGB, no raw: the same network minus the ISP)
and ``baseline`` (the head on the conventional ISP's rendering of the same simulated raw,
numpy per image, Malvar demosaicking, no denoising). ``vs head`` is the variant's speed
over the head's.

Size and cost: parameters, and multiply-accumulates per frame of inference (batch 1) at
128x128 and 640x480 sensor input, counted with forward hooks on every nn.Conv2d and
nn.Linear (out elements x in-channels / groups x kernel area; out x in for Linear). The
ISP's fixed bilinear-fill convolution (functional, 9 MACs per pixel and channel) and the
elementwise work are not counted.

Run: .venv/bin/python bench/train_throughput.py [--steps N] [--models a,b]
(JSON: bench/results/train_throughput.json)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.fileio import write_json
from edge_isp.model.registry import create_model, get_config, list_models
from edge_isp.train.config import TrainConfig, load_config
from edge_isp.train.stages import STAGE_SPECS, Stage, StageModule, seeded_generator

BATCH = 16
NUM_CLASSES = 10
STUDY_SIZE = {"classification": [64], "detection": [128], "reconstruction": [64, 128]}
COST_SIZES = [(128, 128), (640, 480)]  # (width, height) of the sensor input
RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per frame, from Conv2d and Linear hooks."""
    total = 0

    def hook(layer: nn.Module, args, output) -> None:
        nonlocal total
        if isinstance(layer, nn.Linear):
            per_out = layer.in_features
        else:
            per_out = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        total += output.numel() // output.shape[0] * per_out

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module.eval()(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def _config() -> TrainConfig:
    return load_config(None, overrides=["sensor.light_range=[2.0, 200.0]", "loss.rec_ssim=0.2"])


def _batch(task: str, size: int, device: torch.device) -> tuple:
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(BATCH, 3, size, size, generator=g) * 255).to(torch.uint8)
    if task != "detection":
        return images, torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
    corner = torch.rand(BATCH, 3, 2, generator=g) * size * 0.6
    extent = 12 + torch.rand(BATCH, 3, 2, generator=g) * size * 0.3
    boxes = torch.cat([corner, (corner + extent).clamp(max=size)], dim=-1)
    return images, boxes, torch.randint(0, NUM_CLASSES, (BATCH, 3), generator=g)


class StepRunner:
    """One row: a model, its stage and optimizer; :meth:`step` is one training step as the
    trainer takes it, timed."""

    def __init__(self, model_name: str, stage: str, size: int, device: torch.device, channels_last: bool) -> None:
        model = create_model(model_name, num_classes=NUM_CLASSES, pretrained_backbone=False).to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        spec = STAGE_SPECS[stage]
        if spec.head_only:
            model.isp.requires_grad_(False)
        self.stage = Stage(spec, _config(), model.config.task, NUM_CLASSES, device)
        self.module = StageModule(model, spec).train()
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        self.batch = _batch(model.config.task, size, device)
        self.clean = self.batch[0].to(device).float() / 255
        self.device = device
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.count = 0
        self.times: list[float] = []

    def step(self, record: bool = True) -> None:
        self.sync()
        start = time.perf_counter()
        inputs, target = self.stage.inputs(self.clean, seeded_generator(self.device, 0, self.count))
        prediction, image = self.module(*inputs)
        loss, _ = self.stage.loss(prediction, image, target, self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.sync()
        self.count += 1
        if record:
            self.times.append(time.perf_counter() - start)


def cost(model_name: str, head_only: bool = False) -> dict:
    """Parameters and GMACs per frame at :data:`COST_SIZES`, of the whole model or of its
    head alone on the sRGB image the sensor input stands for (the baselines' network)."""
    model = create_model(model_name, num_classes=NUM_CLASSES, pretrained_backbone=False)
    net = model.head if head_only else model
    out = {"params": sum(p.numel() for p in net.parameters())}
    out["isp_params"] = 0 if head_only else sum(p.numel() for p in model.isp.parameters())
    for width, height in COST_SIZES:
        packed, noise = torch.rand(1, 4, height // 2, width // 2), torch.tensor([[1 / 80, 2 / 80]])
        if head_only:
            out[f"gmacs_{width}x{height}"] = count_macs(net, torch.rand(1, 3, height, width)) / 1e9
            out[f"isp_gmacs_{width}x{height}"] = 0.0
        else:
            out[f"gmacs_{width}x{height}"] = count_macs(model, packed, noise) / 1e9
            out[f"isp_gmacs_{width}x{height}"] = count_macs(model.isp, packed, noise) / 1e9
    return out


def run(models: list[str], steps: int, warmup: int, formats: list[str]) -> dict:
    """Time every row in interleaved rounds (one step of each row per round), so a load
    spike from another process on a shared machine hits all rows alike; report medians."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    plan = []
    for device in devices:
        for task in ("classification", "detection", "reconstruction"):
            names = [n for n in models if get_config(n).task == task]
            if not names:
                continue
            stages = [(n, "isp" if task == "reconstruction" else "joint") for n in names]
            if task != "reconstruction":
                head_model = "dp_s_cls" if task == "classification" else "dp_s_det"
                stages = [(head_model, "head"), (head_model, "baseline"), *stages]
            plan += [
                (device, fmt, task, size, name, stage)
                for fmt in formats
                for size in STUDY_SIZE[task]
                for name, stage in stages
            ]
    runners = [
        StepRunner(name, stage, size, device, fmt == "channels_last") for device, fmt, task, size, name, stage in plan
    ]
    for runner in runners:
        for _ in range(warmup):
            runner.step(record=False)
    for round_index in range(steps):
        print(f"round {round_index + 1}/{steps}", file=sys.stderr, flush=True)
        # A new order each round: the row after a change of workload pays for fresh
        # allocations (page faults), which should not always fall on the same row.
        for runner in random.Random(round_index).sample(runners, len(runners)):
            runner.step()
    costs: dict[tuple[str, bool], dict] = {}
    rows, reference = [], {}
    print(HEADER)
    for (device, fmt, task, size, name, stage), runner in zip(plan, runners, strict=True):
        head_only = stage in ("head", "baseline")
        if (name, head_only) not in costs:
            costs[name, head_only] = cost(name, head_only)
        seconds = statistics.median(runner.times)
        row = {
            "device": str(device),
            "memory_format": fmt,
            "task": task,
            "size": size,
            "model": stage if head_only else name,
            "stage": stage,
            "batch": BATCH,
            "images_per_s": BATCH / seconds,
            "step_ms": seconds * 1e3,
            "step_ms_all": [round(t * 1e3, 2) for t in runner.times],
            **costs[name, head_only],
        }
        if stage == "head":
            reference[device, fmt, task, size] = row["images_per_s"]
        ref = reference.get((device, fmt, task, size))
        row["vs_head"] = row["images_per_s"] / ref if ref else None
        rows.append(row)
        print_row(row)
    return {
        "benchmark": "train_throughput",
        "what": "training images per second (full step: simulate raw, forward, loss, backward, AdamW), "
        "median over interleaved rounds; parameters and GMACs per frame (Conv2d + Linear) at 128x128 "
        "and 640x480 sensor input",
        "batch": BATCH,
        "num_classes": NUM_CLASSES,
        "steps": steps,
        "warmup": warmup,
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "rows": rows,
    }


HEADER = (
    f"{'device':<6} {'order':<6} {'task':<14} {'size':>4} {'model':<16} {'img/s':>8} {'vs head':>8} {'params M':>9} "
    f"{'GMAC 128':>9} {'GMAC 640x480':>13} {'of it ISP':>10}"
)


def print_row(row: dict) -> None:
    vs = f"{row['vs_head']:7.2f}x" if row.get("vs_head") else f"{'-':>8}"
    c = (
        f"{row['params'] / 1e6:9.3f} {row['gmacs_128x128']:9.3f} {row['gmacs_640x480']:13.3f} "
        f"{row['isp_gmacs_640x480']:10.3f}"
    )
    order = "NHWC" if row["memory_format"] == "channels_last" else "NCHW"
    where = f"{row['device']:<6} {order:<6} {row['task']:<14} {row['size']:>4}"
    print(f"{where} {row['model']:<16} {row['images_per_s']:8.1f} {vs} {c}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Training throughput and cost of every registry variant.")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds, one step per row each (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--models", help="comma-separated registry names (default: all)")
    parser.add_argument(
        "--compare-formats",
        action="store_true",
        help="also time every row in torch's default contiguous (NCHW) memory order, beside channels-last",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models.split(",") if args.models else list_models()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, batch {BATCH}")
    formats = ["channels_last", "contiguous"] if args.compare_formats else ["channels_last"]
    result = run(models, args.steps, args.warmup, formats)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
