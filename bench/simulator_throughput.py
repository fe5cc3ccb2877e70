"""Throughput of the raw simulator (edge_isp.sensor.simulate) in megapixels per second.

Runs the full simulation (sRGB -> linear -> camera colour -> optional blur -> mosaic ->
Poisson + Gaussian noise -> black, rounding, clipping -> packed model input) through the
nexus6p-rear profile at 8 photo-electrons at white (the paper's "3 lux"), at batch 1
and 8, 256x256 and 512x512, without blur and with "gaussian:1.5" (a 13x13 kernel).

Side by side, the baseline: edge-isp's own numpy path for the same pipeline, image by image
(the live simulated camera's raw synthesis, OpenCV's filter2D for the blur, numpy's Generator
for the noise, the runtime's model input), i.e. what the plain CPU implementation costs.
CUDA rows are added when torch sees a GPU.

Each figure is the median of several timed repeats after warm-up runs. torch's thread
count is left at its default and reported.

Run: .venv/bin/python bench/simulator_throughput.py  (JSON: bench/results/simulator_throughput.json)
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.contract.model_input import live_preprocessor
from edge_isp.fileio import write_json
from edge_isp.runtime.sources import rawsynth
from edge_isp.sensor.cfa import mosaic
from edge_isp.sensor.exposure import choose_exposure
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.optics import parse_blur
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import simulate

ELECTRONS_AT_WHITE = 8.0
BLUR_SPEC = "gaussian:1.5"
CASES = [(batch, size) for size in (256, 512) for batch in (1, 8)]
WARMUP, REPEATS = 2, 7
RESULTS = Path(__file__).resolve().parent / "results" / "simulator_throughput.json"


def numpy_simulate(srgb: np.ndarray, profile: SensorProfile, kernel: np.ndarray | None, rng) -> np.ndarray:
    """The baseline: edge-isp's numpy path, image by image, one thread of numpy: the live
    simulated camera's raw synthesis (runtime.sources.rawsynth), OpenCV's filter2D for the
    blur, and the model input the runtime makes of the frame (contract.model_input)."""
    exposure = choose_exposure(profile, ELECTRONS_AT_WHITE)
    preprocess = live_preprocessor(profile, (srgb.shape[3], srgb.shape[2]), auto_exposure=False)
    flipped = None if kernel is None else np.ascontiguousarray(kernel[::-1, ::-1])
    packed = []
    for image in srgb:
        camera = rawsynth.srgb_to_camera(image.transpose(1, 2, 0), profile).transpose(2, 0, 1)
        if flipped is not None:
            camera = np.stack([cv2.filter2D(c, -1, flipped, borderType=cv2.BORDER_REPLICATE) for c in camera])
        data = rawsynth.synthesize_raw(mosaic(camera, profile.cfa), profile, exposure, rng)
        frame = RawFrame(data, profile.cfa, profile.bit_depth, profile.black_level, profile.white_level,
                         analogue_gain=exposure.analogue_gain, digital_gain=exposure.digital_gain)  # fmt: skip
        packed.append(preprocess(frame).raw[0])
    return np.stack(packed)


def median_seconds(fn, synchronize=lambda: None) -> float:
    for _ in range(WARMUP):
        fn()
    synchronize()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> dict:
    profile = SensorProfile.load("nexus6p-rear")
    kernel = parse_blur(BLUR_SPEC)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    # torch first, the baseline after: OpenCV's and OpenMP's worker threads spin for a
    # while after each call, and interleaving the two libraries made them fight for the cores.
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        generator = torch.Generator(device=device).manual_seed(0)
        for batch, size in CASES:
            srgb = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
            for blur in (None, BLUR_SPEC):
                blur_kernel = kernel.to(device) if blur else None

                def torch_run(srgb=srgb, blur_kernel=blur_kernel, generator=generator):
                    with torch.no_grad():
                        simulate(srgb, profile, ELECTRONS_AT_WHITE, blur=blur_kernel, generator=generator)

                megapixels = batch * size * size / 1e6
                rows.append(
                    {
                        "device": device,
                        "batch": batch,
                        "size": size,
                        "blur": blur or "none",
                        "torch_mp_per_s": megapixels / median_seconds(torch_run, sync),
                    }
                )
    rng = np.random.default_rng(0)
    for row in rows:
        if row["device"] == "cpu":
            batch, size = row["batch"], row["size"]
            srgb_np = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).numpy()
            kernel_np = kernel.numpy() if row["blur"] != "none" else None
            seconds = median_seconds(lambda s=srgb_np, k=kernel_np: numpy_simulate(s, profile, k, rng))
            row["baseline_numpy_mp_per_s"] = batch * size * size / 1e6 / seconds
            row["speedup"] = row["torch_mp_per_s"] / row["baseline_numpy_mp_per_s"]
    for row in rows:
        print_row(row)
    return {
        "benchmark": "simulator_throughput",
        "what": "megapixels of sRGB input simulated to raw per second (median of repeats)",
        "profile": profile.name,
        "electrons_at_white": ELECTRONS_AT_WHITE,
        "blur_spec": BLUR_SPEC,
        "warmup": WARMUP,
        "repeats": REPEATS,
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "rows": rows,
    }


HEADER = f"{'device':<6} {'batch':>5} {'size':>5} {'blur':<13} {'torch MP/s':>11} {'numpy MP/s':>11} {'speedup':>8}"


def print_row(row: dict) -> None:
    baseline = row.get("baseline_numpy_mp_per_s")
    base = f"{baseline:11.2f}" if baseline else f"{'-':>11}"
    speed = f"{row['speedup']:7.2f}x" if baseline else f"{'-':>8}"
    print(
        f"{row['device']:<6} {row['batch']:>5} {row['size']:>5} {row['blur']:<13} "
        f"{row['torch_mp_per_s']:11.2f} {base} {speed}",
        flush=True,
    )


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (default), {os.cpu_count()} CPUs")
    print(HEADER)
    result = run()
    write_json(RESULTS, result)
    print(f"wrote {RESULTS}")
