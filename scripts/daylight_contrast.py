"""A daylight frame through a learned ISP, against the conventional ISP: is the picture normal?

Real photographs (the held-out crops of a real set) are simulated into raw at a daylight level
through the sensor profile; each frame goes through the model's preprocessing (crop, resize, the
noise level; with ``--clamp`` the model's trained noise range, as ``edge-isp run`` does) and
through the conventional ISP (Malvar + NLM, given the true noise level). Contrast is the RMS
contrast of the picture's luminance (the standard deviation of Rec. 709 luma on [0, 1]), per
image; the table gives its mean, the mean luma, and each picture's PSNR against the clean image.
A picture collapsed to black or grey has a contrast near 0.

    .venv/bin/python scripts/daylight_contrast.py MODEL --data data/real --lux 10000 --out DIR

MODEL is an ONNX file with an ``image`` output (a shipped model) or a training checkpoint of the
isp or joint stage (its ISP). The output folder gets ``daylight.json``, ``daylight.md`` and
``daylight.png`` (the first images: clean, conventional, learned).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from edge_isp.contract.metadata import NoiseRange, read_metadata
from edge_isp.contract.model_input import Preprocessor
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.data.real_build import real_set_dir
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import electrons_from_lux, simulate
from edge_isp.train.batches import conventional_isp_batch
from edge_isp.train.teacher_data import RealSplit

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def contrast(rgb: np.ndarray) -> tuple[float, float]:
    """(RMS contrast, mean) of the luma of an sRGB image (H, W, 3) on [0, 1]."""
    luma = np.clip(rgb, 0, 1) @ LUMA
    return float(luma.std()), float(luma.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


class LearnedIsp:
    """The learned picture of a model: an ONNX file's ``image`` output or a checkpoint's ISP."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.suffix == ".onnx":
            meta = read_metadata(path)
            self.session = cpu_session(str(path))
            self.size = meta.input_size
            self.noise_range = meta.noise_range
            self.model = None
        else:
            from edge_isp.model.loading import load_model

            loaded = load_model(path)
            self.model, self.size, self.noise_range = loaded.model, loaded.input_size, loaded.noise_range

    def __call__(self, raw: np.ndarray, noise: np.ndarray) -> np.ndarray:
        if self.model is None:
            outputs = self.session.run(["image"], {"raw": raw, "noise": noise})
            return outputs[0][0].transpose(1, 2, 0)
        with torch.no_grad():
            image = self.model.isp(torch.from_numpy(raw), torch.from_numpy(noise))
        return image[0].numpy().transpose(1, 2, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/real"))
    parser.add_argument("--lux", type=float, default=10000.0)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--profile", default="nexus6p-rear")
    parser.add_argument("--clamp", action="store_true", help="clamp the noise level to the model's trained range")
    parser.add_argument("--noise-range", help="the trained range when the model does not record it: JSON")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    learned = LearnedIsp(args.model)
    noise_range = NoiseRange.from_json(args.noise_range) if args.noise_range else learned.noise_range
    if args.clamp and noise_range is None:
        parser.error(f"{args.model} records no noise range: give --noise-range")
    profile = SensorProfile.load(args.profile)
    folder = real_set_dir(args.data, "classification")
    if folder is None:
        parser.error(f"{args.data} holds no real classification set (edge-isp data build --real)")
    split = RealSplit(folder, "test")
    picks = np.linspace(0, len(split) - 1, min(args.count, len(split))).round().astype(int)
    width, height = learned.size
    pre = Preprocessor(profile, (width, height), noise_range=noise_range if args.clamp else None)
    electrons = float(electrons_from_lux(profile, args.lux))
    rows, grid = [], []
    for n, index in enumerate(picks):
        clean = cv2.resize(split.image(int(index)), (width, height), interpolation=cv2.INTER_AREA)
        srgb = torch.from_numpy(clean.astype(np.float64) / 255).permute(2, 0, 1)[None]
        sim = simulate(srgb, profile, electrons, generator=torch.Generator().manual_seed(n))
        frame = sim.to_frames(profile)[0]
        model_input = pre(frame)
        picture = learned(model_input.raw, model_input.noise)
        conventional = conventional_isp_batch(sim, profile, "malvar", "nlm")[0].numpy().transpose(1, 2, 0)
        target = clean.astype(np.float32) / 255
        row = {"image": str(split.files[index].name), "clamped": model_input.clamped}
        for name, picture_ in (("clean", target), ("conventional", conventional), ("learned", picture)):
            c, m = contrast(picture_)
            row[name] = {"contrast": c, "mean": m, "psnr": None if name == "clean" else psnr(picture_, target)}
        rows.append(row)
        if n < 4:
            grid.append(np.concatenate([target, np.clip(conventional, 0, 1), np.clip(picture, 0, 1)], axis=1))
    summary = {
        name: {k: float(np.mean([r[name][k] for r in rows])) if name != "clean" or k != "psnr" else None
               for k in ("contrast", "mean", "psnr")}
        for name in ("clean", "conventional", "learned")
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"model": str(args.model), "lux": args.lux, "electrons_at_white": electrons, "clamp": args.clamp,
            "noise_range": None if noise_range is None else json.loads(noise_range.to_json()),
            "images": len(rows), "summary": summary, "rows": rows}  # fmt: skip
    (args.out / "daylight.json").write_text(json.dumps(info, indent=1))
    lines = [f"{args.model} at {args.lux:g} lux ({electrons:.0f} e- at white), {len(rows)} held-out images, "
             f"noise {'clamped to the trained range' if args.clamp else 'as measured'}", "",
             "| picture | RMS contrast | mean luma | PSNR (dB) |", "|---|---|---|---|"]  # fmt: skip
    for name, s in summary.items():
        db = "-" if s["psnr"] is None else f"{s['psnr']:.2f}"
        lines.append(f"| {name} | {s['contrast']:.3f} | {s['mean']:.3f} | {db} |")
    (args.out / "daylight.md").write_text("\n".join(lines) + "\n")
    picture = cv2.cvtColor((np.concatenate(grid) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(args.out / "daylight.png"), picture)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
