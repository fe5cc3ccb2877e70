"""The detection teachers' check set: its images, and drawings for checking boxes by eye.

The check set (``docs/study/teacher-checkset.json``) lists held-out images (frames of
``vtest.avi`` from the real detection set's test blocks, and test photographs of
``edge_isp/data/real_photos.json``) with boxes verified by eye, in source pixels. This
module reads its images and draws boxes on them:

    python bench/teacher_checkset.py draw OUT_DIR [--candidates ssd,mtcnn,...] [--truth]

writes one PNG per image with a 50-pixel grid (coordinates every 100), the candidates'
boxes (score >= 0.2, with their index) and/or the check set's boxes, to look at. That is how
the boxes were made and checked (docs/study/teachers.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_isp.data import real_sources  # noqa: E402

CHECKSET = ROOT / "docs" / "study" / "teacher-checkset.json"
COLOURS = {"person": (0, 0, 255), "face": (255, 0, 255), "car": (255, 128, 0), "dog": (0, 200, 0)}


def load_checkset(path: Path = CHECKSET) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def photo_path(photo_id: str) -> Path:
    listing = json.loads(real_sources.PHOTO_LIST.read_text(encoding="utf-8"))
    for entry in listing["photos"]:
        if entry["id"] == photo_id:
            if entry["package"] == "scikit-image":
                return real_sources.sources.skimage_data_dir() / Path(entry["path"]).name
            return Path(entry["path"])
    raise KeyError(photo_id)


def read_image(entry: dict) -> np.ndarray:
    """The check-set image of ``entry`` as (H, W, 3) uint8 RGB."""
    if "frame" in entry:
        capture = cv2.VideoCapture(str(real_sources.VTEST_VIDEO))
        capture.set(cv2.CAP_PROP_POS_FRAMES, entry["frame"])
        ok, bgr = capture.read()
        capture.release()
        if not ok:
            raise RuntimeError(f"cannot read frame {entry['frame']} of {real_sources.VTEST_VIDEO}")
    else:
        bgr = cv2.imread(str(photo_path(entry["photo_id"])), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def draw(rgb: np.ndarray, boxes: list[tuple], zoom: float = 1.0) -> np.ndarray:
    """``boxes``: (xyxy, text, colour BGR). Returns a BGR picture with a coordinate grid."""
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    out = cv2.resize(out, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC) if zoom != 1 else out.copy()
    h, w = out.shape[:2]
    for v in range(0, int(max(h, w) / zoom) + 1, 50):
        colour = (255, 255, 255) if v % 100 == 0 else (160, 160, 160)
        p = int(v * zoom)
        if p < w:
            cv2.line(out, (p, 0), (p, h), colour, 1)
            if v % 100 == 0:
                cv2.putText(out, str(v), (p + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        if p < h:
            cv2.line(out, (0, p), (w, p), colour, 1)
            if v % 100 == 0:
                cv2.putText(out, str(v), (2, p - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    for box, text, colour in boxes:
        x0, y0, x1, y1 = (round(v * zoom) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 1)
        cv2.putText(out, text, (x0, max(10, y0 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("draw")
    p.add_argument("out", type=Path)
    p.add_argument("--candidates", default="", help="comma-separated teacher names (bench/teachers.py)")
    p.add_argument("--truth", action="store_true", help="draw the check set's boxes")
    p.add_argument("--min-score", type=float, default=0.2)
    p.add_argument("--zoom", type=float, default=1.5)
    p.add_argument("--only", default="", help="comma-separated image ids")
    args = parser.parse_args()
    from bench.teachers import open_candidate

    checkset = load_checkset()
    candidates = {n: open_candidate(n) for n in args.candidates.split(",") if n}
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) - {""}
    for entry in checkset["images"]:
        if only and entry["id"] not in only:
            continue
        rgb = read_image(entry)
        boxes, found = [], []
        for name, teacher in candidates.items():
            b, s, lab = teacher.detect(rgb)
            for i, (box, score, label) in enumerate(zip(b, s, lab, strict=True)):
                if score >= args.min_score:
                    cls = teacher.class_names[int(label)].lower()
                    boxes.append((box, f"{name[:3]}{i} {cls[:6]} {score:.2f}", COLOURS.get(cls, (0, 255, 255))))
                    found.append({"id": f"{name[:3]}{i}", "class": cls, "score": round(float(score), 3),
                                  "box": [round(float(v), 1) for v in box]})  # fmt: skip
        if candidates:
            (args.out / f"{entry['id'].replace(':', '_')}.json").write_text(json.dumps(found))
        if args.truth:
            for i, item in enumerate(entry["boxes"]):
                boxes.append((item["box"], f"T{i} {item['class']}", (0, 255, 0)))
        zoom = args.zoom if "frame" in entry else min(args.zoom, 1000 / max(rgb.shape[:2]))
        cv2.imwrite(str(args.out / f"{entry['id'].replace(':', '_')}.png"), draw(rgb, boxes, zoom))
    return 0


if __name__ == "__main__":
    sys.exit(main())
