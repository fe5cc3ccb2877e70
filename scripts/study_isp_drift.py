"""How far end-to-end training moved each part of a joint model from where it started.

    .venv/bin/python scripts/study_isp_drift.py runs/study-cls [--out docs/study/classification/drift.md]
    .venv/bin/python scripts/study_isp_drift.py runs/study-cls --swap

For every seed folder RUNS/seedN (from scripts/study.sh) it compares the joint
model (e) with the checkpoints it was initialized from, the reconstruction ISP (c) and the
clean head (a), and the fine-tuned head (b) with the clean head: the relative L2 change
||trained - init|| / ||init|| of each part's parameters, and the ISP's data-term weights.
If (e)'s ISP barely moves while its head moves as much as (b)'s, the joint model is in
effect a fine-tuned head behind a reconstruction ISP.

--swap writes RUNS/seedN/swap/best.pt: (e)'s checkpoint with its ISP replaced by (c)'s, to be
evaluated beside (e) (`edge-isp eval --checkpoint joint:isp-from-c=...`). If it scores as (e)
does, joint training of the ISP added nothing that the head's fine-tuning did not.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from edge_isp.fileio import atomic_open
from edge_isp.train.checkpoint import load_checkpoint, save_checkpoint


def relative_change(trained: dict, init: dict, prefix: str) -> float:
    """||trained - init|| / ||init|| over the floating-point parameters whose names start with prefix."""
    num = den = 0.0
    for name, value in init.items():
        if name.startswith(prefix) and value.is_floating_point() and name in trained:
            num += float((trained[name].float() - value.float()).pow(2).sum())
            den += float(value.float().pow(2).sum())
    if den == 0.0:
        raise SystemExit(f"no parameters named {prefix}* in common")
    return math.sqrt(num / den)


def data_weights(state: dict) -> str:
    """The ISP's HQS data-term weights, lambda and beta per iteration."""
    lam = torch.exp(state["isp.log_lambda"]).flatten().tolist()
    beta = torch.exp(state["isp.log_beta"]).flatten().tolist()
    return ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(lam, beta, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the study's runs folder, with seedN/{isp,head,joint,baseline}")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    parser.add_argument("--swap", action="store_true", help="write seedN/swap/best.pt: (e) with (c)'s ISP")
    args = parser.parse_args(argv)
    seeds = sorted(p for p in args.runs.glob("seed*") if (p / "joint" / "best.pt").is_file())
    if not seeds:
        raise SystemExit(f"no seed*/joint/best.pt under {args.runs}")
    lines = [
        "| seed | (e) ISP vs (c) | (e) head vs clean head | (b) head vs clean head | "
        "lambda/beta (c) | lambda/beta (e) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for folder in seeds:
        joint = load_checkpoint(folder / "joint" / "best.pt")
        model = {name: load_checkpoint(folder / name / "best.pt")["model"] for name in ("isp", "head")}
        model["joint"] = joint["model"]
        baseline = folder / "baseline" / "best.pt"
        b_change = "-"
        if baseline.is_file():
            b_change = f"{relative_change(load_checkpoint(baseline)['model'], model['head'], 'head.'):.3f}"
        lines.append(
            f"| {folder.name} | {relative_change(model['joint'], model['isp'], 'isp.'):.3f} | "
            f"{relative_change(model['joint'], model['head'], 'head.'):.3f} | {b_change} | "
            f"{data_weights(model['isp'])} | {data_weights(model['joint'])} |"
        )
        if args.swap:
            swapped = dict(joint["model"])
            for name, value in model["isp"].items():
                if name.startswith("isp."):
                    swapped[name] = value
            save_checkpoint(folder / "swap" / "best.pt", {**joint, "model": swapped})
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with atomic_open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
