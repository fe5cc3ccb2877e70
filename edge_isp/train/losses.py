"""Training losses: CenterNet detection (targets and loss), reconstruction (L1, SSIM), classification.

Detection follows Zhou et al. 2019 ("Objects as Points"). Each box puts a Gaussian peak
of height 1 on its class's heatmap at the stride-4 cell holding its centre; the radius is
the largest corner displacement that still leaves a box with IoU >= ``min_overlap`` with
the true one (worst of three cases: both corners moved the same way, both inwards, both
outwards), the Gaussian's sigma is (2r + 1) / 6, and it is cut at r cells. The heatmap
loss is the penalty-reduced focal loss (alpha 2, beta 4) over the number of objects; the
size (box width and height, input pixels) and offset (centre's sub-cell position, cells)
are regressed with L1 at the centre cells only.

SSIM is Wang et al. 2004 with an 11-tap Gaussian window (sigma 1.5), K1 = 0.01,
K2 = 0.03, on valid windows only; it matches ``skimage.metrics.structural_similarity``
with ``gaussian_weights=True, use_sample_covariance=False``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import DETECTOR_STRIDE
from edge_isp.train.config import KD_BALANCES

# reconstruction_loss's log-MSE floor: an image counts at most as one at 50 dB.
LOG_MSE_EPS = 1e-5


def gaussian_radius(width: float, height: float, min_overlap: float = 0.7) -> float:
    """Largest corner displacement r (same units as the box) keeping IoU >= ``min_overlap``.

    Three cases, each a quadratic in r solved for its smallest positive root:
    shifted box ``(w - r)(h - r)`` overlap; shrunk box ``(w - 2r)(h - 2r)``; grown box
    ``(w + 2r)(h + 2r)``. The radius is the minimum of the three.
    """
    if not (width > 0 and height > 0 and 0 < min_overlap < 1):
        raise InvalidInputError(
            f"gaussian_radius needs w, h > 0 and 0 < min_overlap < 1, got {width}, {height}, {min_overlap}"
        )
    s, p, t = width + height, width * height, min_overlap
    shifted = (s - math.sqrt(s * s - 4 * p * (1 - t) / (1 + t))) / 2
    shrunk = (s - math.sqrt(s * s - 4 * p * (1 - t))) / 4
    grown = (-s + math.sqrt(s * s - 4 * p * (1 - 1 / t))) / 4
    return min(shifted, shrunk, grown)


@dataclasses.dataclass
class DetectionTargets:
    """What the detector should output, at stride 4.

    Attributes:
        heatmap: (B, C, h, w) Gaussian peaks on [0, 1], exactly 1 at each centre cell.
        index: (B, N) long, flat index ``cy * w + cx`` of each box's centre cell.
        size: (B, N, 2) box width and height in input pixels.
        offset: (B, N, 2) centre position inside its cell, in cells, [0, 1).
        mask: (B, N) float, 1 for a real box, 0 for padding.
    """

    heatmap: Tensor
    index: Tensor
    size: Tensor
    offset: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> DetectionTargets:
        """The same targets on ``device``."""
        return DetectionTargets(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def detection_targets(
    boxes: Tensor,
    labels: Tensor,
    num_classes: int,
    output_hw: tuple[int, int],
    stride: int = DETECTOR_STRIDE,
    min_overlap: float = 0.7,
) -> DetectionTargets:
    """Build CenterNet targets from padded boxes.

    Args:
        boxes: (B, N, 4) xyxy in input pixels; rows whose label is -1 are padding.
        labels: (B, N) class indices, -1 for padding.
        num_classes: heatmap channels.
        output_hw: (h, w) of the detector's maps (input size / stride).
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2]:
        raise InvalidInputError(
            f"boxes must be (B, N, 4) and labels (B, N), got {tuple(boxes.shape)}, {tuple(labels.shape)}"
        )
    if labels.numel() and int(labels.max()) >= num_classes:
        raise InvalidInputError(f"box labels must be < num_classes={num_classes}, got {int(labels.max())}")
    b, n = labels.shape
    h, w = output_hw
    # Built on the CPU (a few boxes, scalar work) and moved once.
    heatmap = torch.zeros(b, num_classes, h, w)
    index = torch.zeros(b, n, dtype=torch.long)
    size = torch.zeros(b, n, 2)
    offset = torch.zeros(b, n, 2)
    mask = torch.zeros(b, n)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    boxes_cpu, labels_cpu = boxes.detach().float().cpu(), labels.detach().cpu()
    for i in range(b):
        for j in range(n):
            label = int(labels_cpu[i, j])
            x0, y0, x1, y1 = (float(v) for v in boxes_cpu[i, j])
            if label < 0 or x1 <= x0 or y1 <= y0:
                continue
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            col, row = min(max(math.floor(cx), 0), w - 1), min(max(math.floor(cy), 0), h - 1)
            radius = max(0, int(gaussian_radius((x1 - x0) / stride, (y1 - y0) / stride, min_overlap)))
            sigma = (2 * radius + 1) / 6
            dist2 = (xs - col) ** 2 + (ys - row) ** 2
            window = ((xs - col).abs() <= radius) & ((ys - row).abs() <= radius)
            peak = torch.exp(-dist2 / (2 * sigma * sigma)) * window
            heatmap[i, label] = torch.maximum(heatmap[i, label], peak)
            index[i, j] = row * w + col
            size[i, j] = torch.tensor([x1 - x0, y1 - y0])
            offset[i, j] = torch.tensor([cx - col, cy - row])
            mask[i, j] = 1.0
    return DetectionTargets(heatmap, index, size, offset, mask).to(boxes.device)


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of peaks.

    ``logits`` and ``target`` are (B, C, h, w); cells where ``target == 1`` are positives.
    Written with log-sigmoid, so it stays finite for any logit.
    """
    if logits.shape != target.shape:
        raise InvalidInputError(f"focal_loss needs equal shapes, got {tuple(logits.shape)} and {tuple(target.shape)}")
    prob = torch.sigmoid(logits)
    positive = target.eq(1.0).to(logits.dtype)
    pos_term = F.logsigmoid(logits) * (1 - prob) ** alpha * positive
    neg_term = F.logsigmoid(-logits) * prob**alpha * (1 - target) ** beta * (1 - positive)
    num_pos = positive.sum().clamp_min(1.0)
    return -(pos_term.sum() + neg_term.sum()) / num_pos


def _gather(maps: Tensor, index: Tensor) -> Tensor:
    """(B, 2, h, w) maps at flat cell indices (B, N) -> (B, N, 2)."""
    b, c = maps.shape[:2]
    flat = maps.reshape(b, c, -1)
    return torch.gather(flat, 2, index.unsqueeze(1).expand(b, c, index.shape[1])).permute(0, 2, 1)


def regression_l1(maps: Tensor, targets: Tensor, index: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error per coordinate at the centre cells of the real boxes."""
    pred = _gather(maps, index)
    weight = mask.unsqueeze(-1).to(pred.dtype)
    return (torch.abs(pred - targets) * weight).sum() / (2 * weight.sum()).clamp_min(1.0)


def centernet_loss(
    maps: dict[str, Tensor],
    targets: DetectionTargets,
    heatmap_weight: float = 1.0,
    size_weight: float = 0.1,
    offset_weight: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total detection loss and its parts (``heatmap``, ``size``, ``offset``, detached)."""
    parts = {
        "heatmap": focal_loss(maps["heatmap"], targets.heatmap),
        "size": regression_l1(maps["size"], targets.size, targets.index, targets.mask),
        "offset": regression_l1(maps["offset"], targets.offset, targets.index, targets.mask),
    }
    total = heatmap_weight * parts["heatmap"] + size_weight * parts["size"] + offset_weight * parts["offset"]
    return total, {k: v.detach() for k, v in parts.items()}


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype=like.dtype, device=like.device)


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per image: (B, C, H, W) pair -> (B,), differentiable in both.

    The window shrinks to the image's smaller side (kept odd) for images below 11 pixels.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise InvalidInputError(
            f"ssim needs two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    size = min(window_size, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2
    c = x.shape[1]
    g = _gaussian_window(size, sigma, x)
    kx, ky = g.view(1, 1, 1, size).expand(c, 1, 1, size), g.view(1, 1, size, 1).expand(c, 1, size, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


def reconstruction_loss(
    prediction: Tensor,
    target: Tensor,
    l1_weight: float = 1.0,
    ssim_weight: float = 0.0,
    log_mse_weight: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``l1_weight * L1 + ssim_weight * (1 - SSIM) + log_mse_weight * mean_i ln(MSE_i + eps)``
    of (B, 3, H, W) sRGB images, and the parts.

    The last term is minus the batch's mean PSNR (up to the factor 10 / ln 10): each image's
    error counts relative to its own size, so a daylight image that goes from 37 to 24 dB costs
    as much as a starlight image gains going from 11 to 24 dB. An L1 or SSIM mean over a batch
    that spans 0.5 lux to daylight is ruled by the dark images' large errors instead, and the
    ISP trained on it gave up daylight for them (docs/STUDY.md, "Real images"). ``eps`` = 1e-5
    caps the weight of an image at 50 dB.
    """
    if prediction.shape != target.shape:
        raise InvalidInputError(
            f"reconstruction needs equal shapes, got prediction {tuple(prediction.shape)}, target {tuple(target.shape)}"
        )
    l1 = F.l1_loss(prediction, target)
    parts = {"l1": l1.detach()}
    total = l1_weight * l1
    if ssim_weight > 0:
        dissimilarity = 1 - ssim(prediction, target).mean()
        parts["ssim"] = 1 - dissimilarity.detach()
        total = total + ssim_weight * dissimilarity
    if log_mse_weight > 0:
        mse = (prediction - target).pow(2).flatten(1).mean(1)
        log_mse = torch.log(mse + LOG_MSE_EPS).mean()
        parts["psnr"] = (-10.0 / math.log(10.0)) * log_mse.detach()
        total = total + log_mse_weight * log_mse
    return total, parts


# log(KL + eps)'s default eps: below 0.01 (times T^2) the student already gives the teacher's answer.
LOG_KD_EPS = 0.01


def classification_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (B, C) against class indices (B,)."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def distillation_loss(
    student: Tensor, teacher: Tensor, temperature: float, balance: str = "mean", log_eps: float = LOG_KD_EPS
) -> Tensor:
    """KL(teacher || student) of the ``temperature``-softened class distributions, times
    ``temperature**2`` so its gradient keeps the scale of a cross-entropy (Hinton, Vinyals and
    Dean 2015, "Distilling the Knowledge in a Neural Network"). Logits (B, C). ``balance``:
    "mean" over B, or "log": the mean over B of log(KL + ``log_eps``), in which each image's
    divergence counts relative to its own size (the dark images' large divergences no longer
    rule the batch's gradient); an image's gradient is then its KL's times 1 / (KL + log_eps)."""
    if student.shape != teacher.shape:
        raise InvalidInputError(
            f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} differ in shape"
        )
    if balance not in KD_BALANCES:
        raise InvalidInputError(f"distillation balance must be one of {', '.join(KD_BALANCES)}, got {balance!r}")
    log_student = F.log_softmax(student.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=1)
    per_image = (log_teacher.exp() * (log_teacher - log_student)).sum(1) * temperature**2
    if balance == "log":
        return torch.log(per_image.clamp_min(0.0) + log_eps).mean()
    return per_image.mean()
