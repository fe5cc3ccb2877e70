"""One pipeline of two model variants, seed by seed: per light level the mean ± std over seeds of
each and of their paired difference (B minus A within a seed: same held-out images, same noise
draws; or one variant's pipeline against another's, --pipeline-b), with issue 17's criterion: B
costs at most max(1 point, the difference's std), i.e. mean(B - A) >= -max(1, std).

    .venv/bin/python scripts/compare_variants.py --pipeline e --metric map50 \\
        --a docs/study/real-detection/seed0 docs/study/real-detection/seed1 docs/study/real-detection/seed2 \\
        --b docs/study/real-detection-half/seed0 docs/study/real-detection-half/seed1 \\
            docs/study/real-detection-half/seed2 \\
        --labels "full resolution (dpn_s_det)" "half resolution (dpnh_s_det)" \\
        --out docs/study/real-detection-half/fast-vs-full

Each folder is an `edge-isp eval` sweep (sweep.json) of one seed; the i-th folders of A and B
are paired. Writes OUT/compare.md and OUT/compare.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import write_bytes, write_json


def pipeline_values(folder: Path, pipeline: str, metric: str) -> tuple[list[str], np.ndarray]:
    """The sweep's light-level labels and the pipeline's metric per level (mean over noise seeds)."""
    path = folder / "sweep.json"
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist: run `edge-isp eval` into {folder} first")
    sweep = json.loads(path.read_text(encoding="utf-8"))
    if pipeline not in sweep["values"] or metric not in sweep["values"][pipeline]:
        raise InvalidInputError(f"{path} has no {metric} for pipeline {pipeline!r}")
    levels = [f"{v:g} {sweep['settings']['light_unit']}" for v in sweep["settings"]["levels"]]
    return levels, np.asarray(sweep["values"][pipeline][metric], float).mean(axis=0)


def compare(
    a: list[Path], b: list[Path], pipeline: str, metric: str, scale: float = 100.0, pipeline_b: str | None = None
) -> dict:
    """A's ``pipeline`` against B's ``pipeline_b`` (default the same), seed by seed."""
    pipeline_b = pipeline_b or pipeline
    if len(a) != len(b) or not a:
        raise InvalidInputError(f"--a and --b must name the same number of seed folders (got {len(a)} and {len(b)})")
    levels, rows_a, rows_b = None, [], []
    for fa, fb in zip(a, b, strict=True):
        la, va = pipeline_values(fa, pipeline, metric)
        lb, vb = pipeline_values(fb, pipeline_b, metric)
        if la != lb or (levels is not None and la != levels):
            raise InvalidInputError(f"{fa} and {fb} are not swept at the same light levels ({la} vs {lb})")
        levels = la
        rows_a.append(va * scale)
        rows_b.append(vb * scale)
    va, vb = np.stack(rows_a), np.stack(rows_b)
    diff = vb - va
    ddof = 1 if len(a) > 1 else 0
    std = diff.std(axis=0, ddof=ddof)
    mean = diff.mean(axis=0)
    return {
        "pipeline": pipeline if pipeline_b == pipeline else f"{pipeline} vs {pipeline_b}",
        "metric": metric,
        "seeds": len(a),
        "levels": levels,
        "a": {"folders": [str(f) for f in a], "mean": va.mean(0).tolist(), "std": va.std(0, ddof=ddof).tolist()},
        "b": {"folders": [str(f) for f in b], "mean": vb.mean(0).tolist(), "std": vb.std(0, ddof=ddof).tolist()},
        "difference": {"mean": mean.tolist(), "std": std.tolist(), "per_seed": diff.tolist()},
        "within": [bool(m >= -max(1.0, s)) for m, s in zip(mean, std, strict=True)],
    }


def table(result: dict, labels: tuple[str, str]) -> str:
    n = result["seeds"]
    head = f"| {result['metric']}, pipeline ({result['pipeline']}), {n} seed(s) | " + " | ".join(result["levels"])
    lines = [head + " |", "| --- |" + " ---: |" * len(result["levels"])]
    for key, label in zip(("a", "b"), labels, strict=True):
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in zip(result[key]["mean"], result[key]["std"], strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    d = result["difference"]
    cells = [f"{m:+.1f} ± {s:.1f}" for m, s in zip(d["mean"], d["std"], strict=True)]
    lines.append("| difference, paired (B − A) | " + " | ".join(cells) + " |")
    lines.append("| B costs at most max(1, std) | " + " | ".join("yes" if w else "no" for w in result["within"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="seed folders of variant A")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="seed folders of variant B, same order")
    parser.add_argument("--pipeline", default="e", help="pipeline key (default e, the joint model)")
    parser.add_argument("--pipeline-b", help="B's pipeline key, when it is another (default: --pipeline)")
    parser.add_argument("--metric", default="map50", help="metric of sweep.json (default map50)")
    parser.add_argument("--labels", nargs=2, default=("A", "B"), help="names of A and B in the table")
    parser.add_argument("--out", type=Path, help="write OUT/compare.md and OUT/compare.json")
    args = parser.parse_args(argv)
    try:
        result = compare(args.a, args.b, args.pipeline, args.metric, pipeline_b=args.pipeline_b)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = table(result, tuple(args.labels))
    print(text)
    if args.out is not None:
        write_json(args.out / "compare.json", dict(result, labels=list(args.labels)))
        write_bytes(args.out / "compare.md", (text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
