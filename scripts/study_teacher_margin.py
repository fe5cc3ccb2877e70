"""Why agreement with a classification teacher stays low even in daylight: its answers are close calls.

For held-out crops of the real set, the teacher's softmax on the clean crop (from the cache) is
split by confidence (top-1 probability), and agreement with the teacher is measured for the
teacher itself on the conventional ISP's picture of the raw simulated at a daylight level
(``edge-isp eval``'s pipeline (a)). A picture that changes the answer of a confident teacher is a
bad picture; one that flips a near-tie may be an excellent one (docs/STUDY.md, "Real images").

    .venv/bin/python scripts/study_teacher_margin.py --checkpoint runs/study-real-cls/seed0/head/best.pt
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from edge_isp.evaluate.runner import open_real_eval_data
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import electrons_from_lux, simulate
from edge_isp.train.batches import TaskDataset, conventional_isp_batch
from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a head (or joint) checkpoint trained with a [teacher]")
    parser.add_argument("--data", default="data/real")
    parser.add_argument("--lux", type=float, default=10000.0)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    state = load_checkpoint(args.checkpoint)
    teacher = state["train_config"]["teacher"]
    size = tuple(state["train_config"]["data"]["size"])
    head = model_from_checkpoint(args.checkpoint).eval().head
    base = open_real_eval_data(args.data, "classification", "test", teacher, size)
    data = TaskDataset(base, "classification", size, args.limit)
    logits = base.answers.logits[data.indices, 0]
    p = np.exp(logits - logits.max(1, keepdims=True))
    confidence = (p / p.sum(1, keepdims=True)).max(1)
    profile = SensorProfile.load("nexus6p-rear")
    images = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    sim = simulate(images, profile, float(electrons_from_lux(profile, args.lux)), generator=torch.Generator())
    with torch.no_grad():
        clean = head(images).argmax(1).numpy()
        conventional = head(conventional_isp_batch(sim, profile, "malvar", "nlm")).argmax(1).numpy()
    labels = np.asarray([data[i][1] for i in range(len(data))])
    print(f"{len(labels)} held-out crops, {args.lux:g} lux, conventional ISP (Malvar + NLM) into the teacher:")
    print(f"  the head on the clean crop agrees with the cached teacher on {np.mean(clean == labels):.1%}")
    for low, high in ((0.0, 0.3), (0.3, 0.5), (0.5, 0.8), (0.8, 1.01)):
        pick = (confidence >= low) & (confidence < high)
        if pick.any():
            agree = np.mean(conventional[pick] == labels[pick])
            band = f"{low:.1f}-{min(high, 1):.1f}"
            print(f"  teacher top-1 probability {band}: {pick.sum():4d} crops, agreement {agree:.1%}")
    overall, median = np.mean(conventional == labels), np.median(confidence)
    print(f"  all: agreement {overall:.1%}; median teacher top-1 probability {median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
