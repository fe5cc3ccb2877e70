"""How well INT8 can agree with FP32 on the real classification crops: the teacher itself.

The shipped classifier is measured by top-1 agreement with the ImageNet MobileNetV2 teacher on
crops of real photographs (wallpapers: landscapes, cities, art), where that teacher's answer is
often a near-tie among 1000 classes. This script rounds the *teacher* (no ISP, no noise, the clean
picture the student learns to see) the way the INT8 export rounds the student's MobileNetV2
(:mod:`edge_isp.train.qat`'s fake quantization, held to the export's Q/DQ file by
tests/train/test_qat.py) and measures how often its top-1 answer survives:

- weights only: per-channel symmetric INT8 weights, float activations;
- weights and activations: plus per-tensor symmetric INT8 at each layer's input, ranges at the
  99.99th percentile of ``|x|`` over training crops (the export's calibration);

and how close the teacher's first two answers are (the softmax margin between them). The student
is judged against this same teacher, so the rounding of its own MobileNetV2 flips answers at least
as often: the agreement here bounds what any INT8 classifier of this kind keeps of FP32's.

Run: .venv/bin/python scripts/int8_teacher_ceiling.py [--images 400] [--out docs/study/int8-teacher]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from edge_isp.contract.metadata import read_metadata  # noqa: E402
from edge_isp.data.real_build import real_set_dir  # noqa: E402
from edge_isp.export.evalset import load_images, open_dataset  # noqa: E402
from edge_isp.fileio import atomic_open, write_json  # noqa: E402
from edge_isp.teacher.classifiers import imagenet_teacher  # noqa: E402
from edge_isp.train.qat import FakeQuant, calibrate_ranges, fake_quant_weight, quantized_layers  # noqa: E402

SHIPPED = HERE / "models" / "real-cls" / "model.onnx"


def pictures(data: Path, split: str, count: int) -> torch.Tensor:
    """(N, 3, h, w) float pictures on [0, 1]: the crops the shipped classifier's export report
    takes (its raw size, labelled by its teacher), area-averaged to its picture at uint8 levels
    as training does."""
    md = read_metadata(SHIPPED)
    dataset = open_dataset(data, "classification", split, teacher=md.teacher, input_size=md.input_size,
                           raw_scale=md.raw_scale)  # fmt: skip
    images = load_images(dataset, "classification", md.input_size, count).images
    x = torch.nn.functional.avg_pool2d(torch.from_numpy(images).float(), md.raw_scale)
    return torch.round(x) / 255.0


def answers(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(x[i : i + 50]) for i in range(0, len(x), 50)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE / "data" / "real")
    parser.add_argument("--images", type=int, default=400, help="test crops (the export report's)")
    parser.add_argument("--calib-images", type=int, default=128, help="training crops the ranges come from")
    parser.add_argument("--out", type=Path, default=HERE / "docs" / "study" / "int8-teacher")
    args = parser.parse_args()
    if real_set_dir(args.data, "classification") is None:
        print(f"no real classification set under {args.data}: edge-isp data build --real --out {args.data}")
        return 2
    torch.set_num_threads(1)
    net = imagenet_teacher().module.eval()
    test = pictures(args.data, "test", args.images)
    calib = pictures(args.data, "train", args.calib_images)
    logits = answers(net, test)
    reference = logits.argmax(1)
    probs = logits.softmax(1).topk(2, dim=1).values
    margin = (probs[:, 0] - probs[:, 1]).numpy()
    names = quantized_layers(net, lambda: net(calib[:8]))
    scales = calibrate_ranges(net, names, [lambda i=i: net(calib[i : i + 32]) for i in range(0, len(calib), 32)])
    layers = dict(net.named_modules())
    float_weights = {n: layers[n].weight.data.clone() for n in names}
    for n in names:
        layers[n].weight.data = fake_quant_weight(float_weights[n])
    weights_only = answers(net, test).argmax(1)
    for n in names:
        layers[n].weight.data = float_weights[n]
    quant = FakeQuant(net, scales).attach()
    full = answers(net, test).argmax(1)
    quant.detach()

    def share(mask) -> float:
        return float(np.mean(np.asarray(mask)))

    record = {
        "what": "the ImageNet MobileNetV2 teacher on the clean 128 px pictures of the real classification test "
        "crops, its INT8 rounding against its own FP32 answer",
        "images": len(test),
        "layers_in_int8": len(names),
        "top1_agreement_with_fp32": {
            "int8 weights": share(weights_only == reference),
            "int8 weights and activations": share(full == reference),
        },
        "teacher_margin": {
            "median": float(np.median(margin)),
            "share_below_0.05": share(margin < 0.05),
            "share_below_0.1": share(margin < 0.1),
            "share_below_0.2": share(margin < 0.2),
        },
        "agreement_by_margin": {
            label: {
                "images": int(np.sum(mask)),
                "int8 weights": share((weights_only == reference).numpy()[mask]) if mask.any() else None,
                "int8 weights and activations": share((full == reference).numpy()[mask]) if mask.any() else None,
            }
            for label, mask in (("margin < 0.1", margin < 0.1), ("margin >= 0.1", margin >= 0.1))
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "ceiling.json", record)
    a = record["top1_agreement_with_fp32"]
    m = record["teacher_margin"]
    rows = [
        f"# INT8 against FP32 on the real classification crops: the teacher itself ({len(test)} test crops)",
        "",
        "| teacher (MobileNetV2, clean 128 px picture) | top-1 agreement with its FP32 answer |",
        "|---|---:|",
        f"| INT8 weights (per channel), float activations | {a['int8 weights']:.1%} |",
        f"| INT8 weights and layer inputs (99.99th pct ranges) | {a['int8 weights and activations']:.1%} |",
        "",
        f"Teacher's margin between its first two softmax answers: median {m['median']:.3f}; "
        f"{m['share_below_0.05']:.0%} of crops below 0.05, {m['share_below_0.1']:.0%} below 0.1, "
        f"{m['share_below_0.2']:.0%} below 0.2.",
        "",
        "| crops | count | INT8 weights | INT8 weights and inputs |",
        "|---|---:|---:|---:|",
    ]
    for label, row in record["agreement_by_margin"].items():
        kinds = ("int8 weights", "int8 weights and activations")
        cells = [f"{row[k]:.1%}" if row[k] is not None else "-" for k in kinds]
        rows.append(f"| {label} | {row['images']} | {cells[0]} | {cells[1]} |")
    rows += ["", "`.venv/bin/python scripts/int8_teacher_ceiling.py` (JSON: ceiling.json)", ""]
    with atomic_open(args.out / "ceiling.md", "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
