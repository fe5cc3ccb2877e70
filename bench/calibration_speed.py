"""Time to calibrate a 12-megapixel sensor from a 20-level photon-transfer sweep at 3 gains.

A simulated IMX477-sized sensor (4056x3040, 12-bit, black 256) with known noise
(:func:`edge_isp.calibrate.synthetic.example_profile`, row noise 20 % of the read noise),
1000 hot and 200 dead pixels, 1 DN DSNU, 1 % PRNU, vignetting and a clipped highlight in
every flat, and cosmic-ray outliers (2e-5 of the pixels of each frame), is captured as
calibration/PROTOCOL.md asks: per gain, 20 flat pairs up to 1.15x saturation and 16 dark
frames. The frames are written as RawFrame files (.npy + .json), then timed:

- discover: find the files and read their metadata;
- photon transfer: :func:`edge_isp.calibrate.ptc.photon_transfer` (every frame read from
  disk, EMVA statistics, dark analysis, fits);
- full calibration: ``calibrate_ptc`` (the above plus the gain fit, profile, exports,
  plots, report), which is what ``edge-isp calibrate ptc`` runs;
- baseline: a plain EMVA 1288 photon transfer in a few lines of numpy (pair-difference
  variance and mean per channel over all pixels, a least-squares line through the
  origin up to 70 % of the brightest level, read noise from one dark pair), with none of
  the handling of clipping, defects and outliers, on the same frames.

Both are scored against the truth (K and read noise per gain). Generating the frames is
not timed.

Also measured (accuracy, not speed): the single-image method (Foi) on 768x768 scenes at
gains 1, 4, 16 and three light levels (white at 30 %, 100 % and 250 % of full scale, the
last clipping its bright half), clean and with 300 hot and 50 dead pixels: the errors of
(a, b) against the truth, as the tests check them (same seeds).

Run: .venv/bin/python bench/calibration_speed.py [--keep DIR]
(JSON: bench/results/calibration_speed.json)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.frames import assign_dark_flat, discover, group
from edge_isp.calibrate.pipeline import calibrate_ptc
from edge_isp.calibrate.ptc import photon_transfer
from edge_isp.calibrate.single_image import single_image
from edge_isp.contract.sizes import parse_size
from edge_isp.fileio import write_json
from edge_isp.sensor.cfa import pack

RESULTS = Path(__file__).resolve().parent / "results" / "calibration_speed.json"
HEIGHT, WIDTH = 3040, 4056
GAINS = (1.0, 4.0, 16.0)
LEVELS = 20
DARKS = 16


def _with_outliers(items, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    for item in items:
        data = item.frame.data.copy()
        n = int(fraction * data.size)
        idx = rng.choice(data.size, n, replace=False)
        data.flat[idx] = np.minimum(data.flat[idx] + rng.integers(300, 3000, n), item.frame.white_level)
        yield synthetic.TruthFrame(item.kind, dataclasses.replace(item.frame, data=data))


def generate(folder: Path, sensor: synthetic.SyntheticSensor, height: int, width: int) -> int:
    field = synthetic.flat_field(height, width, clipped_disk=0.05)
    items = synthetic.ptc_sweep(sensor, GAINS, levels=LEVELS, dark_frames=DARKS, illumination=field, seed=1)
    return len(synthetic.write_frames(folder, _with_outliers(items, 2e-5, seed=2)))


def baseline(refs) -> dict[float, tuple[float, float]]:
    """Plain EMVA photon transfer: no clipping, defect or outlier handling."""
    out = {}
    for gain, groups in group(refs).items():
        darks = next(g for g in groups if g.kind == "dark")
        d0, d1 = (pack(f.data, f.cfa).astype(np.float64) for f in itertools.islice(darks.frames(), 2))
        dark_mean = (d0 + d1).mean(axis=(1, 2)) / 2
        dark_var = (d0 - d1).var(axis=(1, 2)) / 2
        signal, variance = [], []
        for g in (g for g in groups if g.kind == "flat"):
            a, b = (pack(f.data, f.cfa).astype(np.float64) for f in itertools.islice(g.frames(), 2))
            signal.append((a + b).mean(axis=(1, 2)) / 2 - dark_mean)
            variance.append((a - b).var(axis=(1, 2)) / 2 - dark_var)
        s, v = np.array(signal), np.array(variance)
        ks = []
        for c in range(4):
            sel = s[:, c] <= 0.7 * s[:, c].max()
            ks.append(float(np.sum(s[sel, c] * v[sel, c]) / np.sum(s[sel, c] ** 2)))
        out[gain] = (float(np.mean(ks)), float(np.sqrt(max(dark_var.mean() - 1 / 12, 0.0))))
    return out


def image_accuracy(profile) -> list[dict]:
    """(a, b) errors of the single-image method, per gain, light level and sensor."""
    size, rows = 768, []
    sensors = {
        "clean": synthetic.SyntheticSensor(profile, size, size, seed=1),
        "hot+dead": synthetic.SyntheticSensor(profile, size, size, hot_pixels=300, dead_pixels=50, seed=2),
    }
    for variant, sensor in sensors.items():
        for gain in GAINS:
            truth = sensor.truth(gain)
            a = truth.gain_dn_per_e / profile.range_dn
            b = (truth.read_noise_dn**2 + 1 / 12) / profile.range_dn**2
            for peak in (0.3, 1.0, 2.5):
                seed = int(gain * 10 + peak * 3)
                y = synthetic.scene(size, size, seed=seed, peak=peak)
                frame = sensor.frame(
                    y * profile.range_dn / truth.gain_dn_per_e,
                    analogue_gain=gain,
                    rng=np.random.default_rng(100 + seed),
                )
                t0 = time.perf_counter()
                fit = single_image([frame]).joint
                rows.append(
                    {
                        "sensor": variant,
                        "gain": gain,
                        "white_at": peak,
                        "a_error_pct": 100 * (fit.a / a - 1),
                        "a_se_pct": 100 * fit.a_se / fit.a,
                        "b_error_pct": 100 * (fit.b / b - 1),
                        "b_se_pct": 100 * fit.b_se / fit.b,
                        "clipped_pct": 100 * float(np.mean(frame.data == profile.white_level)),
                        "seconds": time.perf_counter() - t0,
                    }
                )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="write the frames here and keep them (reused if present)")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="WxH (default %(default)s: 12.3 MP)")
    args = parser.parse_args()
    width, height = parse_size(args.size, "--size")
    profile = synthetic.example_profile(row_noise_fraction=0.2)
    sensor = synthetic.SyntheticSensor(
        profile, height, width, hot_pixels=1000, dead_pixels=200, dsnu_dn=1.0, prnu=0.01, seed=0
    )
    root = args.keep or Path(tempfile.mkdtemp(prefix="calibration_speed_"))
    frames_dir, out_dir = root / "frames", root / "out"
    try:
        t0 = time.perf_counter()
        reused = (frames_dir / "manifest.json").exists()
        if not reused:
            generate(frames_dir, sensor, height, width)
        generate_s = None if reused else time.perf_counter() - t0
        t0 = time.perf_counter()
        refs = assign_dark_flat(discover(frames_dir))
        discover_s = time.perf_counter() - t0
        n_frames = len(refs)
        t0 = time.perf_counter()
        result = photon_transfer(refs)
        ptc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        calibrate_ptc(refs, out_dir, name="bench")
        full_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive = baseline(refs)
        baseline_s = time.perf_counter() - t0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    rows = []
    for g in result.gains:
        truth = sensor.truth(g.analogue_gain)
        k_naive, read_naive = naive[g.analogue_gain]
        rows.append(
            {
                "gain": g.analogue_gain,
                "k_true": truth.gain_dn_per_e,
                "k_error_pct": 100 * (g.gain_dn_per_e / truth.gain_dn_per_e - 1),
                "k_se_pct": 100 * g.gain_se / g.gain_dn_per_e,
                "read_true_dn": truth.read_noise_dn,
                "read_error_pct": 100 * (g.read_noise_dn / truth.read_noise_dn - 1),
                "row_error_pct": 100 * (g.dark.row_noise_dn / truth.row_noise_dn - 1),
                "defects_found": g.defects.count(),
                "baseline_k_error_pct": 100 * (k_naive / truth.gain_dn_per_e - 1),
                "baseline_read_error_pct": 100 * (read_naive / truth.read_noise_dn - 1),
            }
        )
    image_rows = image_accuracy(profile)
    megapixels = width * height / 1e6
    record = {
        "what": "calibrate a 12 MP sensor from a 20-level photon-transfer sweep at 3 gains (simulated, known truth)",
        "size": [width, height],
        "megapixels": megapixels,
        "frames": n_frames,
        "gains": list(GAINS),
        "seconds": {
            "generate_frames_not_timed": generate_s,
            "discover": discover_s,
            "photon_transfer": ptc_s,
            "full_calibration": full_s,
            "baseline_plain_emva": baseline_s,
        },
        "accuracy": rows,
        "single_image_accuracy": image_rows,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }
    write_json(RESULTS, record)

    print(f"{n_frames} frames of {megapixels:.1f} MP ({width}x{height}), gains {', '.join(f'{g:g}' for g in GAINS)}")
    print(f"{'step':<34}{'seconds':>10}{'MP/s':>10}")
    for name, key in (
        ("discover (metadata)", "discover"),
        ("photon transfer (edge-isp)", "photon_transfer"),
        ("full calibration (edge-isp)", "full_calibration"),
        ("baseline: plain EMVA (numpy)", "baseline_plain_emva"),
    ):
        sec = record["seconds"][key]
        print(f"{name:<34}{sec:>10.1f}{n_frames * megapixels / sec:>10.0f}")
    print()
    print(f"{'gain':>5}{'K err %':>10}{'(se %)':>8}{'read err %':>12}{'row err %':>11}{'defects':>9}"
          f"{'baseline K %':>14}{'baseline read %':>17}")  # fmt: skip
    for r in rows:
        print(
            f"{r['gain']:>5g}{r['k_error_pct']:>10.2f}{r['k_se_pct']:>8.2f}{r['read_error_pct']:>12.2f}"
            f"{r['row_error_pct']:>11.1f}{r['defects_found']:>9}{r['baseline_k_error_pct']:>14.2f}"
            f"{r['baseline_read_error_pct']:>17.2f}"
        )
    print("\nsingle image (Foi), 768x768: error of (a, b) against the truth, % (standard error)")
    print(
        f"{'sensor':<10}{'gain':>5}{'white at':>10}{'clipped':>9}{'a err %':>10}{'(se)':>7}{'b err %':>10}{'(se)':>7}"
    )
    for r in image_rows:
        print(
            f"{r['sensor']:<10}{r['gain']:>5g}{r['white_at']:>10g}{r['clipped_pct']:>8.0f}%{r['a_error_pct']:>10.2f}"
            f"{r['a_se_pct']:>7.2f}{r['b_error_pct']:>10.2f}{r['b_se_pct']:>7.2f}"
        )
    print(f"\nwritten {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
