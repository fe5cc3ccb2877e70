"""MTCNN face detector (Zhang et al. 2016, "Joint Face Detection and Alignment Using
Multi-task Cascaded Convolutional Networks"), as a detection teacher.

The three networks' weights are the ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` state dicts
inside the ``facenet-pytorch`` wheel (2.6.0, installed with ``--no-deps``: only its weight
files are read, because its own code needs torchvision and pins an old torch). The networks
and the cascade are written here from the paper: an image pyramid through the fully
convolutional P-Net (12x12 windows, stride 2), then R-Net on 24x24 and O-Net on 48x48
crops of the surviving squares, each stage thresholding its face probability, refining
the boxes by its regression and suppressing overlaps.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from edge_isp.errors import MissingFileError
from edge_isp.runtime.postprocess import nms


def _prelu_conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k), nn.PReLU(cout)]


class _Net(nn.Module):
    """One MTCNN stage; layer names match facenet-pytorch's state dicts."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "pnet":
            self.conv1, self.prelu1 = _prelu_conv(3, 10, 3)
            self.conv2, self.prelu2 = _prelu_conv(10, 16, 3)
            self.conv3, self.prelu3 = _prelu_conv(16, 32, 3)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)
        elif kind == "rnet":
            self.conv1, self.prelu1 = _prelu_conv(3, 28, 3)
            self.conv2, self.prelu2 = _prelu_conv(28, 48, 3)
            self.conv3, self.prelu3 = _prelu_conv(48, 64, 2)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)
        else:
            self.conv1, self.prelu1 = _prelu_conv(3, 32, 3)
            self.conv2, self.prelu2 = _prelu_conv(32, 64, 3)
            self.conv3, self.prelu3 = _prelu_conv(64, 64, 3)
            self.conv4, self.prelu4 = _prelu_conv(64, 128, 2)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised RGB -> (face probability, box regression)."""
        pool = lambda t, k: nn.functional.max_pool2d(t, k, 2, ceil_mode=True)  # noqa: E731
        if self.kind == "pnet":
            x = pool(self.prelu1(self.conv1(x)), 2)
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return torch.softmax(self.conv4_1(x), 1)[:, 1], self.conv4_2(x)
        x = pool(self.prelu1(self.conv1(x)), 3)
        x = pool(self.prelu2(self.conv2(x)), 3)
        x = self.prelu3(self.conv3(x))
        if self.kind == "onet":
            x = self.prelu4(self.conv4(pool(x, 2)))
        # The weights come from a Caffe model trained on transposed images: flatten as (W, H, C).
        x = x.permute(0, 3, 2, 1).reshape(len(x), -1)
        if self.kind == "rnet":
            x = self.prelu4(self.dense4(x))
            return torch.softmax(self.dense5_1(x), 1)[:, 1], self.dense5_2(x)
        x = self.prelu5(self.dense5(x))
        return torch.softmax(self.dense6_1(x), 1)[:, 1], self.dense6_2(x)


def _normalise(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((images.astype(np.float32) - 127.5) * 0.0078125).permute(0, 3, 1, 2).contiguous()


def _square(boxes: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)


def _refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + reg * np.stack([w, h, w, h], 1)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops resized to ``size``; parts outside the image are black."""
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
        bw, bh = max(1, x1 - x0), max(1, y1 - y0)
        patch = np.zeros((bh, bw, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        out[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _min_overlap_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """NMS by intersection over the smaller box (the last stage's, so nested faces merge)."""
    order, keep = np.argsort(-scores), []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        order = rest[iw * ih / np.maximum(np.minimum(area[i], area[rest]), 1e-9) <= threshold]
    return np.asarray(keep, np.int64)


class MtcnnDetector:
    """MTCNN faces; ``min_face_px`` the smallest face searched, ``thresholds`` the three stages'."""

    class_names = ("face",)

    def __init__(self, weights_dir: Path, min_face_px: int = 12, thresholds=(0.6, 0.7, 0.5)) -> None:
        self.nets = {}
        for kind in ("pnet", "rnet", "onet"):
            net = _Net(kind)
            net.load_state_dict(torch.load(weights_dir / f"{kind}.pt", map_location="cpu", weights_only=True))
            self.nets[kind] = net.eval()
        self.min_face_px, self.thresholds = min_face_px, thresholds

    @classmethod
    def load(cls, weights_dir: str | Path | None = None) -> MtcnnDetector:
        if weights_dir is None:
            spec = importlib.util.find_spec("facenet_pytorch")
            if spec is None or spec.origin is None:
                raise MissingFileError(
                    "the MTCNN teacher's weights come from the facenet-pytorch wheel, which is not installed: "
                    "pip install --no-deps facenet-pytorch==2.6.0"
                )
            weights_dir = Path(spec.origin).parent / "data"
        weights_dir = Path(weights_dir)
        missing = [f"{k}.pt" for k in ("pnet", "rnet", "onet") if not (weights_dir / f"{k}.pt").is_file()]
        if missing:
            raise MissingFileError(f"MTCNN weights folder {weights_dir} lacks {', '.join(missing)}")
        return cls(weights_dir)

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        found = [np.zeros((0, 4)), np.zeros(0)]
        scale = 12.0 / self.min_face_px
        while min(h, w) * scale >= 12:
            size = (max(12, round(w * scale)), max(12, round(h * scale)))
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            prob, reg = self.nets["pnet"](_normalise(resized[None]))
            prob, reg = prob[0].numpy(), reg[0].numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys):
                boxes = np.stack([xs * 2, ys * 2, xs * 2 + 12, ys * 2 + 12], 1) / scale
                boxes = _refine(boxes, reg[:, ys, xs].T)
                keep = nms(boxes, prob[ys, xs], 0.5)
                found = [np.concatenate([found[0], boxes[keep]]), np.concatenate([found[1], prob[ys, xs][keep]])]
            scale *= 0.709
        boxes, scores = found
        for stage, size, threshold in (("rnet", 24, self.thresholds[1]), ("onet", 48, self.thresholds[2])):
            if not len(boxes):
                break
            boxes = _square(boxes[nms(boxes, scores, 0.7)])
            prob, reg = self.nets[stage](_normalise(_crops(image, boxes, size)))
            keep = np.flatnonzero(prob.numpy() >= threshold)
            boxes, scores = _refine(boxes[keep], reg.numpy()[keep]), prob.numpy()[keep]
        if len(boxes):
            keep = _min_overlap_nms(boxes, scores, 0.7)
            boxes, scores = boxes[keep], scores[keep]
        return boxes.astype(np.float32).reshape(-1, 4), scores.astype(np.float32), np.zeros(len(boxes), np.int64)
