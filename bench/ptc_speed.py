"""`edge-isp calibrate ptc` of this tree against another checkout's, side by side on one sweep.

The sweep is the one issue #18 timed: 1024x768 frames of a simulated 12-bit sensor
(:func:`edge_isp.calibrate.synthetic.example_profile`, row noise 20 % of the read noise, 100
hot and 20 dead pixels, 1 DN DSNU, 1 % PRNU), one gain, 25 flat pairs up to 1.15x
saturation, a 16-frame flat stack at half saturation, 16 darks plus a dark pair at every
exposure: 130 RawFrame files. Each checkout runs the command in its own process
(``python -m edge_isp calibrate ptc SWEEP --out DIR``, its own code on ``PYTHONPATH``),
alternating, ``--repeats`` times; the table gives the median wall time and the CPU time
(user + system) of each with their range over the runs, and the ratios of the medians. On a
shared machine the CPU time is the steadier of the two; the JSON records the load average. This
tree measures frame groups on threads only where cores are idle (CPUs less the 1-minute load):
on a busy machine it measures them one after the other (threads there added CPU and wall time).

Then the results are compared. Against the other checkout: K, read noise, row noise and black
level (profile.json), the defect count, and the saturation capacity (report.md), with K's and
the read noise's differences in units of their standard errors. Against ``--reference`` (a
checkout whose results this tree must reproduce; by default the other): every number of
report.md (K and its fit per channel, read noise, row noise, black level, DSNU, PRNU,
saturation, SNR, EMVA quantities, linearity, dark current, defects, the read-noise shape) as
printed, every number of profile.json within 1e-9 relative, and defects.json, equal.

The speed baseline is the code before the speed work of issue #18: ``git archive 04ddc58 | tar -x
-C /tmp/base``, then ``--other /tmp/base``. Its results differ on purpose in one respect: issue #18
moved the saturation to the variance peak (the old code put it a level early), which moves the K
fit's upper end (K and the read noise a fraction of a standard error apart, the same defects).
The results baseline is then the tree before this round's speed work (``git archive 6ecd36b``):
``--reference /tmp/ref``; tests/calibrate/test_stats_reference.py also holds this tree's group
statistics equal, bit for bit, to their plain computation.

Run: .venv/bin/python bench/ptc_speed.py --other /tmp/base --reference /tmp/ref [--frames DIR] [--repeats 3]
(JSON: bench/results/ptc_speed.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from edge_isp.calibrate import synthetic  # noqa: E402
from edge_isp.fileio import write_json  # noqa: E402

RESULTS = HERE / "bench" / "results" / "ptc_speed.json"
WIDTH, HEIGHT, LEVELS = 1024, 768, 25


def generate(folder: Path) -> int:
    profile = synthetic.example_profile(row_noise_fraction=0.2)
    sensor = synthetic.SyntheticSensor(
        profile, HEIGHT, WIDTH, hot_pixels=100, dead_pixels=20, dsnu_dn=1.0, prnu=0.01, seed=0
    )
    items = synthetic.ptc_sweep(sensor, (1.0,), levels=LEVELS, flat_stack=16, dark_pair_per_level=True, seed=1)
    return len(synthetic.write_frames(folder, items))


def run(checkout: Path, frames: Path, out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one `calibrate ptc` run of ``checkout``'s code."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "edge_isp", "calibrate", "ptc", str(frames), "--out", str(out), "--name", "ptc-bench",
         "--no-progress"],
        cwd=checkout, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def outcome(out: Path) -> dict:
    profile = json.loads((out / "profile.json").read_text())
    noise = profile["noise"][0]
    report = (out / "report.md").read_text()
    k_se = re.search(r"K \(channels combined\): \*\*[0-9.]+ ± ([0-9.e-]+) DN/e-", report)
    read_se = re.search(r"- read noise: \*\*[0-9.]+ ± ([0-9.e-]+) DN", report)
    saturation = re.search(r"saturation capacity: ([0-9]+) e-", report)
    return {
        "gain_dn_per_e": noise["gain_dn_per_e"],
        "gain_se": float(k_se.group(1)),
        "read_noise_dn": noise["read_noise_dn"],
        "read_noise_se": float(read_se.group(1)),
        "row_noise_dn": noise["row_noise_dn"],
        "black_level_dn": profile["black_level"],
        "defects": sum(json.loads((out / "defects.json").read_text())["counts"].values()),
        "saturation_e": float(saturation.group(1)),
    }


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?nan|[-+]?inf")


def _leaves(value, path=""):
    """(path, value) of every number or string in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def identical_results(a: Path, b: Path) -> dict:
    """The two output folders compared: report.md's numbers as printed, profile.json's numbers
    (largest relative difference; strings and structure equal), defects.json equal."""
    words_a, words_b = (NUMBER.findall((d / "report.md").read_text()) for d in (a, b))
    differing = [(x, y) for x, y in zip(words_a, words_b, strict=False) if x != y]
    leaves_a, leaves_b = (list(_leaves(json.loads((d / "profile.json").read_text()))) for d in (a, b))
    same_shape = [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    worst = 0.0
    for (_, x), (_, y) in zip(leaves_a, leaves_b, strict=False):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if x != y:
                worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
        elif x != y:
            same_shape = False
    defects = [json.loads((d / "defects.json").read_text()) for d in (a, b)]
    return {
        "report_numbers": len(words_a),
        "report_numbers_differing": len(differing) + abs(len(words_a) - len(words_b)),
        "report_differences": differing[:10],
        "profile_same_fields": same_shape,
        "profile_max_relative_difference": worst,
        "defects_equal": defects[0] == defects[1],
        "identical": not differing
        and len(words_a) == len(words_b)
        and same_shape
        and worst <= 1e-9
        and defects[0] == defects[1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with (e.g. /work/main)")
    parser.add_argument(
        "--reference", type=Path, help="the checkout whose results this tree must reproduce (default: --other)"
    )
    parser.add_argument("--frames", type=Path, help="the sweep's folder (made there if absent; default: temporary)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ptc_speed_"))
    frames = args.frames or root / "frames"
    try:
        n = generate(frames) if not (frames / "manifest.json").exists() else len(list(frames.rglob("*.npy")))
        times: dict[str, list[tuple[float, float]]] = {"other": [], "this": []}
        for i in range(args.repeats):
            order = ("other", "this") if i % 2 == 0 else ("this", "other")
            for who in order:
                checkout = args.other.resolve() if who == "other" else HERE
                times[who].append(run(checkout, frames, root / who))
        results = {who: outcome(root / who) for who in times}
        reference = (args.reference or args.other).resolve()
        if reference != args.other.resolve():
            run(reference, frames, root / "reference")
        same = identical_results(root / ("reference" if reference != args.other.resolve() else "other"), root / "this")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {who: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for who, t in times.items()}
    a, b = results["other"], results["this"]
    comparison = {
        "k_relative": b["gain_dn_per_e"] / a["gain_dn_per_e"] - 1,
        "k_in_se": (b["gain_dn_per_e"] - a["gain_dn_per_e"]) / a["gain_se"],
        "read_noise_relative": b["read_noise_dn"] / a["read_noise_dn"] - 1,
        "read_noise_in_se": (b["read_noise_dn"] - a["read_noise_dn"]) / a["read_noise_se"],
        "row_noise_relative": b["row_noise_dn"] / a["row_noise_dn"] - 1,
        "black_level_max_diff_dn": max(
            abs(x - y) for x, y in zip(a["black_level_dn"], b["black_level_dn"], strict=True)
        ),
        "defects": (a["defects"], b["defects"]),
        "saturation_e": (a["saturation_e"], b["saturation_e"]),
    }
    record = {
        "what": f"edge-isp calibrate ptc, {n} frames of {WIDTH}x{HEIGHT}, one gain, {LEVELS} levels",
        "other": str(args.other),
        "repeats": args.repeats,
        "wall_s": {k: v[0] for k, v in median.items()},
        "cpu_s": {k: v[1] for k, v in median.items()},
        "wall_range_s": {k: [min(w for w, _ in t), max(w for w, _ in t)] for k, t in times.items()},
        "cpu_range_s": {k: [min(c for _, c in t), max(c for _, c in t)] for k, t in times.items()},
        "wall_ratio": median["other"][0] / median["this"][0],
        "cpu_ratio": median["other"][1] / median["this"][1],
        "all_runs": times,
        "results": results,
        "comparison": comparison,
        "reference": str(reference),
        "same_results_as_reference": same,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
    }
    write_json(RESULTS, record)
    print(f"{'checkout':<10}{'wall (s)':>10}{'range':>14}{'CPU (s)':>10}{'range':>14}   (median of {args.repeats})")
    for who in ("other", "this"):
        wall, cpu = record["wall_range_s"][who], record["cpu_range_s"][who]
        print(
            f"{who:<10}{median[who][0]:>10.2f}{f'{wall[0]:.2f}-{wall[1]:.2f}':>14}"
            f"{median[who][1]:>10.2f}{f'{cpu[0]:.2f}-{cpu[1]:.2f}':>14}"
        )
    print(f"ratio     {record['wall_ratio']:>10.2f}{'':>14}{record['cpu_ratio']:>10.2f}   (other / this)")
    print(
        f"K {b['gain_dn_per_e']:.6g} vs {a['gain_dn_per_e']:.6g} ({comparison['k_in_se']:+.2f} se); read noise "
        f"{b['read_noise_dn']:.5g} vs {a['read_noise_dn']:.5g} ({comparison['read_noise_in_se']:+.2f} se); row noise "
        f"{comparison['row_noise_relative']:+.2%}; black level within {comparison['black_level_max_diff_dn']:.3g} DN; "
        f"defects {b['defects']} vs {a['defects']}; saturation {b['saturation_e']:.0f} vs {a['saturation_e']:.0f} e-"
    )
    print(
        f"against {reference}: {same['report_numbers']} numbers of report.md, "
        f"{same['report_numbers_differing']} differing; profile.json largest relative difference "
        f"{same['profile_max_relative_difference']:.2g}; "
        f"defects.json {'equal' if same['defects_equal'] else 'DIFFERENT'}"
        f" -> {'same results' if same['identical'] else 'RESULTS DIFFER'}"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
