"""Noise-free demosaicking PSNR of the conventional ISP's methods, beside reference peers.

Each natural colour photograph available offline (the images bundled in the
scikit-image wheel, and the photographs among OpenCV's documentation samples under
/usr/share/doc/opencv-doc/examples/data when the Debian package opencv-doc is
installed) is mosaicked through an RGGB Bayer pattern and demosaicked by:

- ours (edge_isp.isp.demosaic): bilinear, malvar, ea, vng;
- colour-demosaicing: bilinear, Malvar2004, Menon2007 (DDFAPD);
- OpenCV called directly on the 8-bit mosaic: bilinear, EA, VNG (no border padding).

PSNR is over the three channels on [0, 1], leaving out a border of BORDER pixels on
each side: the methods differ there in how they invent the scene outside the image
(colour-demosaicing mirrors with the edge repeated, which breaks the CFA phase in the
outer 2 px; OpenCV fills its outer rows with cruder estimates), which is not what is
compared. Two domains: "srgb" mosaics the 8-bit sRGB values directly (the usual
demosaicking benchmark); "linear" mosaics linear light (sRGB decoded), as the ISP
pipeline does, and scores after sRGB encoding.

Agreement: PSNR between our bilinear and colour-demosaicing's, and our malvar and its
Malvar2004, over the whole image and without the border; the same filters should agree
to float rounding away from the border.

Run: .venv/bin/python bench/demosaic_psnr.py  (JSON: bench/results/demosaic_psnr.json)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_isp.fileio import write_json
from edge_isp.isp.colour import srgb_decode, srgb_encode
from edge_isp.isp.demosaic import available_demosaic_methods, demosaic, opencv_bayer_code
from edge_isp.sensor.cfa import CFA, mosaic

BORDER = 8
CFA_PATTERN = CFA.RGGB
RESULTS = Path(__file__).resolve().parent / "results" / "demosaic_psnr.json"
SKIMAGE_IMAGES = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
]
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
# The photographs among the samples (drawings, renders, text and near-binary targets left out).
OPENCV_PHOTOS = [
    "aero1.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "board.jpg",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "home.jpg",
    "left.jpg",
    "leuvenA.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
]


def load_images() -> list[tuple[str, str, np.ndarray]]:
    """(name, source, RGB float32 (H, W, 3) on [0, 1] cropped to even size) for each image found."""
    found = []
    try:
        import skimage.data as data
    except ImportError:
        print("scikit-image not installed: its images are skipped", file=sys.stderr)
    else:
        for name in SKIMAGE_IMAGES:
            img = getattr(data, name)()
            img = img[0] if isinstance(img, tuple) else img  # stereo_motorcycle: (left, right, disparity)
            found.append((name, "skimage", img[..., :3]))
    if OPENCV_DOC.is_dir():
        for name in OPENCV_PHOTOS:
            bgr = cv2.imread(str(OPENCV_DOC / name), cv2.IMREAD_COLOR)
            if bgr is not None:
                found.append((Path(name).stem, "opencv-doc", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    else:
        print(f"{OPENCV_DOC} not found (Debian package opencv-doc): its images are skipped", file=sys.stderr)
    out = []
    for name, source, img in found:
        h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
        out.append((name, source, img[:h, :w].astype(np.float32) / 255))
    return out


def methods() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Name -> function of an RGGB mosaic (H, W) float on [0, 1] returning RGB (H, W, 3)."""
    table: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for m in available_demosaic_methods():
        table[f"ours:{m}"] = lambda x, m=m: demosaic(x, CFA_PATTERN, m)
    try:
        import colour_demosaicing as cd
    except ImportError:
        print("colour-demosaicing not installed (pip install 'edge-isp[bench]'): its columns are skipped")
    else:
        for label, fn in (
            ("bilinear", cd.demosaicing_CFA_Bayer_bilinear),
            ("Malvar2004", cd.demosaicing_CFA_Bayer_Malvar2004),
            ("Menon2007", cd.demosaicing_CFA_Bayer_Menon2007),
        ):
            table[f"colour:{label}"] = lambda x, fn=fn: np.asarray(fn(x.astype(np.float64), CFA_PATTERN.value))
    for m in ("bilinear", "ea", "vng"):
        try:
            code = opencv_bayer_code(CFA_PATTERN, m)
        except ValueError:
            continue
        table[f"opencv:{m}"] = lambda x, code=code: (
            cv2.cvtColor(np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8), code).astype(np.float32) / 255
        )
    return table


def psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    # Identical outputs would give infinity, which JSON cannot hold: cap at 200 dB.
    mse = max(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)), 1e-20)
    return round(float(10 * np.log10(1.0 / mse)), 3)


def run_domain(images, table, domain: str) -> tuple[dict, dict, dict]:
    """PSNR per image and method, agreement per image, seconds per megapixel per method."""
    scores: dict[str, dict[str, float]] = {}
    agreement: dict[str, dict[str, float]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in table}
    for name, _, rgb in images:
        scene = srgb_decode(rgb) if domain == "linear" else rgb
        raw = mosaic(np.moveaxis(scene, -1, 0), CFA_PATTERN)
        outputs = {}
        for method, fn in table.items():
            start = time.perf_counter()
            out = fn(raw)
            seconds[method].append((time.perf_counter() - start) / (raw.size / 1e6))
            outputs[method] = out
        shown = {m: (srgb_encode(o) if domain == "linear" else o) for m, o in outputs.items()}
        scores[name] = {m: psnr(o, rgb, BORDER) for m, o in shown.items()}
        pairs = (("ours:bilinear", "colour:bilinear"), ("ours:malvar", "colour:Malvar2004"))
        agreement[name] = {}
        for ours, theirs in pairs:
            if ours in outputs and theirs in outputs:
                key = f"{ours} vs {theirs}"
                agreement[name][f"{key} (whole image)"] = psnr(outputs[ours], outputs[theirs], 0)
                agreement[name][f"{key} (border {BORDER} left out)"] = psnr(outputs[ours], outputs[theirs], BORDER)
        print(f"  {domain}: {name} done", file=sys.stderr, flush=True)
    return scores, agreement, {m: round(statistics.median(v), 4) for m, v in seconds.items()}


def print_table(title: str, rows: dict[str, dict[str, float]], columns: list[str]) -> dict[str, float]:
    print(f"\n{title}")
    short = [c.replace("colour:", "c:").replace("opencv:", "cv:").replace("ours:", "") for c in columns]
    print(f"{'image':<22}" + "".join(f"{s:>13}" for s in short))
    for name, row in rows.items():
        print(f"{name:<22}" + "".join(f"{row[c]:>13.2f}" for c in columns))
    mean = {c: round(float(np.mean([row[c] for row in rows.values()])), 3) for c in columns}
    print(f"{'mean':<22}" + "".join(f"{mean[c]:>13.2f}" for c in columns))
    return mean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=("srgb", "linear", "both"), default="both")
    parser.add_argument("--out", "--output", dest="out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    images = load_images()
    if not images:
        print("no images found", file=sys.stderr)
        return 1
    table = methods()
    columns = list(table)
    result = {
        "description": "noise-free demosaicking PSNR (dB) on natural colour images, RGGB, 3 channels on [0, 1]",
        "cfa": CFA_PATTERN.value,
        "border_px_left_out": BORDER,
        "images": [{"name": n, "source": s, "height": int(x.shape[0]), "width": int(x.shape[1])} for n, s, x in images],
        "environment": {
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
        },
        "domains": {},
    }
    domains = ("srgb", "linear") if args.domain == "both" else (args.domain,)
    for domain in domains:
        scores, agreement, seconds = run_domain(images, table, domain)
        mean = print_table(f"PSNR (dB), {domain} mosaic, border {BORDER} px left out", scores, columns)
        print(f"\nagreement ({domain}), PSNR (dB) between the outputs:")
        for key in next(iter(agreement.values())):
            values = [a[key] for a in agreement.values()]
            print(f"  {key:<62} min {min(values):8.2f}  median {statistics.median(values):8.2f}")
        print("\nseconds per megapixel (median; a shared machine, indicative only):")
        print("  " + ", ".join(f"{m} {s:.3f}" for m, s in seconds.items()))
        result["domains"][domain] = {
            "psnr_db": scores,
            "mean_psnr_db": mean,
            "agreement_psnr_db": agreement,
            "seconds_per_megapixel": seconds,
        }
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
