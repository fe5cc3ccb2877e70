"""How well can any picture made from a Bayer mosaic agree with the classification teacher?

The real-image classification study scores top-1 agreement with torchvision's ImageNet
MobileNetV2 on the clean crop (docs/STUDY.md, "Real images"). This script measures the ceiling
that the sensor itself puts on that score, without any trained model: the teacher's answer on
pictures that differ from the clean crop only by

- a mild, invisible change (JPEG at quality 90, a 0.5 px Gaussian blur): how sensitive the
  teacher's near-tie answers are;
- the Bayer mosaic at the network's own resolution (the crop at 128 px sampled through the
  sensor's colour filter array, no noise, Malvar-He-Cutler demosaicking): what the full-
  resolution ISP variants can at best see, since their raw has as many pixels as the picture;
- the mosaic at twice that resolution, demosaicked and area-resized to 128 px: a sensor with
  more pixels than the network input, as every real camera has;
- the same two with the sensor's noise at a light level, through Malvar + NLM.

Each row gives top-1 agreement with the teacher's answer on the clean crop, a 95% bootstrap
interval over photographs, and the PSNR against the clean crop. Writes a Markdown table and
JSON. The mosaics come from the same simulator as training (Nexus 6P profile, fixed unprocess).

    .venv/bin/python scripts/study_teacher_ceiling.py --limit 300 \
        --out docs/study/real-classification/ceiling
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge_isp.data.real_build import real_set_dir
from edge_isp.evaluate.scoring import bootstrap_interval
from edge_isp.fileio import atomic_open, write_json
from edge_isp.isp.colour import resize_image
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import electrons_from_lux, simulate
from edge_isp.teacher.classifiers import imagenet_teacher
from edge_isp.train.batches import conventional_isp_batch
from edge_isp.train.teacher_data import RealSplit

Images = list[np.ndarray]


def _resized(images: Images, side: int) -> Images:
    return [np.ascontiguousarray(resize_image(image, (side, side))) for image in images]


def _jpeg(images: Images, quality: int) -> Images:
    out = []
    for image in images:
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        out.append(np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]))
    return out


def _blur(images: Images, sigma_px: float) -> Images:
    return [cv2.GaussianBlur(image, (0, 0), sigma_px) for image in images]


def _through_sensor(images: Images, profile: SensorProfile, lux: float | None, side: int, seed: int) -> Images:
    """The raw a sensor records of ``images`` (noise-free when ``lux`` is None), rendered by the
    conventional ISP (Malvar, plus NLM with noise) and area-resized to ``side``."""
    srgb = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    noisy = lux is not None
    electrons = float(electrons_from_lux(profile, lux)) if noisy else 1e9
    generator = torch.Generator().manual_seed(seed)
    sim = simulate(srgb, profile, electrons, noise=noisy, quantize=noisy, generator=generator)
    rgb = conventional_isp_batch(sim, profile, "malvar", "nlm" if noisy else "none")
    pictures = (rgb.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return _resized(list(pictures), side)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/real", help="the real sets (edge-isp data build --real)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=300, help="crops, spread evenly over the split")
    parser.add_argument("--size", type=int, default=128, help="the network's input side, px")
    parser.add_argument("--lux", type=float, nargs="+", default=[10000.0, 24.0])
    parser.add_argument("--profile", default="nexus6p-rear")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder for ceiling.md and ceiling.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = real_set_dir(args.data, "classification")
    if folder is None:
        parser.error(f"{args.data} holds no real classification set: run edge-isp data build --real --out {args.data}")
    split = RealSplit(folder, args.split)
    picks = np.linspace(0, len(split) - 1, min(args.limit, len(split))).round().astype(int)
    crops = [split.image(int(i)) for i in picks]
    groups = np.asarray([split.groups[int(i)] for i in picks])
    teacher = imagenet_teacher((args.size, args.size))
    profile = SensorProfile.load(args.profile)
    side = args.size
    clean = _resized(crops, side)
    reference = teacher.logits(clean).argmax(1)

    rows: dict[str, Callable[[], Images]] = {
        "clean crop": lambda: clean,
        "clean, JPEG quality 90": lambda: _jpeg(clean, 90),
        "clean, Gaussian blur 0.5 px": lambda: _blur(clean, 0.5),
        f"mosaic at {side} px, no noise, Malvar": lambda: _through_sensor(clean, profile, None, side, args.seed),
        f"mosaic at {2 * side} px, no noise, Malvar, area to {side}": lambda: _through_sensor(
            _resized(crops, 2 * side), profile, None, side, args.seed
        ),
    }
    for lux in args.lux:
        rows[f"mosaic at {side} px, {lux:g} lux, Malvar + NLM"] = lambda lux=lux: _through_sensor(
            clean, profile, lux, side, args.seed
        )
        rows[f"mosaic at {2 * side} px, {lux:g} lux, Malvar + NLM, area to {side}"] = lambda lux=lux: _through_sensor(
            _resized(crops, 2 * side), profile, lux, side, args.seed
        )

    results = []
    for name, make in tqdm(rows.items(), desc="pictures", unit="row"):
        pictures = make()
        agree = teacher.logits(pictures).argmax(1) == reference
        low, high = bootstrap_interval(agree, groups)
        psnr = [cv2.PSNR(p, c) for p, c in zip(pictures, clean, strict=True) if not np.array_equal(p, c)]
        results.append(
            {
                "picture": name,
                "top1_agreement": float(agree.mean()),
                "interval": [low, high],
                "psnr_db": float(np.mean(psnr)) if psnr else None,
            }
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "crops": len(crops),
        "photographs": len(set(groups.tolist())),
        "split": args.split,
        "size_px": side,
        "profile": args.profile,
        "teacher": "mobilenet_v2_imagenet",
        "rows": results,
    }
    write_json(out / "ceiling.json", summary)
    lines = [
        f"Top-1 agreement with the teacher's answer on the clean crop ({len(crops)} held-out crops of "
        f"{summary['photographs']} photographs, {side} px; `scripts/study_teacher_ceiling.py`). "
        "Interval: 95% bootstrap over photographs.",
        "",
        "| picture the teacher sees | top-1 agreement | 95% interval | PSNR (dB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results:
        psnr = "-" if row["psnr_db"] is None else f"{row['psnr_db']:.2f}"
        low, high = row["interval"]
        lines.append(f"| {row['picture']} | {row['top1_agreement']:.1%} | [{low:.1%}, {high:.1%}] | {psnr} |")
    with atomic_open(out / "ceiling.md") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
