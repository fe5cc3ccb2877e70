"""Does a learned ISP's image depend on the noise parameters it is told, or on the frames?

    .venv/bin/python scripts/study_noise_input.py runs/study-cls/seed0/isp/best.pt \
        [--profiles nexus6p-rear,oneplus6-rear] [--lux 3,96] [--scales 0.5,1,2,4] [--limit 256]

Simulates the test images through each profile at each light level (noise seed 0, the
sweep's draws) and runs the checkpoint's ISP on the very same frames, told the true noise
parameters (a, sigma) times each scale. It prints the PSNR against the clean image per
(profile, level, scale), and the true (a, sigma). If the PSNR moves much with the scale on
one camera and little on another, the ISP reads its noise input off the line it was trained
on (docs/STUDY.md, "On a second camera").
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.data import DataLoader

from edge_isp.evaluate.pipelines import load_for_eval
from edge_isp.evaluate.runner import open_eval_data
from edge_isp.evaluate.sweep import noise_generator
from edge_isp.sensor.profile import SensorProfile
from edge_isp.train.batches import RawBatcher, TaskDataset, collate_classification, light_to_electrons, to_float


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def psnr(image: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (B,), the image clipped to [0, 1] as the sweep scores it."""
    mse = (image.clamp(0, 1) - clean).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="an isp or joint checkpoint (its ISP is used)")
    parser.add_argument("--data", default="data/demo", help="built data set (default %(default)s)")
    parser.add_argument("--profiles", default="nexus6p-rear,oneplus6-rear", help="comma-separated")
    parser.add_argument("--lux", type=floats, default=[3.0, 96.0], help="comma-separated levels")
    parser.add_argument("--scales", type=floats, default=[0.5, 1.0, 2.0, 4.0], help="factors on (a, sigma)")
    parser.add_argument("--limit", type=int, default=256, help="test images (default %(default)s)")
    args = parser.parse_args(argv)

    loaded = load_for_eval(args.checkpoint)
    isp = getattr(loaded.model, "isp", loaded.model).eval()
    dataset = TaskDataset(open_eval_data(args.data, "classification"), "classification", loaded.image_size, args.limit)
    batches = list(DataLoader(dataset, batch_size=16, shuffle=False, collate_fn=collate_classification))
    print("| profile | lux | a | sigma | " + " | ".join(f"PSNR x{s:g} (dB)" for s in args.scales) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(args.scales))
    for name in args.profiles.split(","):
        profile = SensorProfile.load(name)
        for lux in args.lux:
            electrons = light_to_electrons(profile, [lux], "lux")[0]
            batcher = RawBatcher(profile, (electrons, electrons))
            totals = torch.zeros(len(args.scales), dtype=torch.float64)
            for index, (images, _) in enumerate(batches):
                clean = to_float(images, "cpu")
                level = torch.full((clean.shape[0],), electrons)
                sim = batcher(clean, noise_generator("cpu", 0, electrons, index), level)
                with torch.no_grad():
                    for k, scale in enumerate(args.scales):
                        totals[k] += psnr(isp(sim.packed, sim.noise * scale), sim.target_srgb).sum()
            a, sigma = (float(v) for v in sim.noise[0])
            cells = " | ".join(f"{float(t) / len(dataset):.2f}" for t in totals)
            print(f"| {name} | {lux:g} | {a:.4g} | {sigma:.4g} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
