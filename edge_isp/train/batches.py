"""From clean image batches to what each stage feeds its network.

The data loaders give uint8 RGB images (and boxes); here they become tensors, are resized
to the training size, flipped, and turned into simulated raw on the fly through the sensor
profile, at light levels sampled log-uniformly over a range given in lux or in
photo-electrons at white. The baseline stage also renders that raw through the
conventional ISP (numpy, per image), as a camera without the learned ISP would.

Batches: classification ``(images (B, 3, H, W) uint8, labels (B,) int64)``; detection
``(images, boxes (B, N, 4) float32 xyxy pixels, labels (B, N) int64)`` padded to the most
boxes in the batch with label -1.

A model whose raw is larger than its picture (``raw_scale`` 2: a half-resolution ISP) gets its
images at ``raw_scale`` times ``data.size``: the raw is simulated from them (so the mosaic has
the detail a sensor with more pixels than the network's input sees), and the picture it is
scored against (and the clean image the ``head`` stage trains on) is that image area-averaged
by ``raw_scale`` (:func:`area_downsample`), at ``data.size``. Boxes are always in the
picture's pixels, at ``data.size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edge_isp.errors import InvalidInputError
from edge_isp.isp import IspConfig, render_mosaic
from edge_isp.isp.colour import resize_image
from edge_isp.sensor.cfa import unpack
from edge_isp.sensor.optics import parse_blur
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import SimulatedRaw, electrons_from_lux, sample_light_levels, sample_log_uniform, simulate


def scaled_size(size: tuple[int, int] | None, raw_scale: int) -> tuple[int, int] | None:
    """(width, height) ``size`` times ``raw_scale``: where the raw is simulated."""
    return None if size is None else (int(size[0]) * raw_scale, int(size[1]) * raw_scale)


def area_downsample(images: Tensor, factor: int, *, to_uint8_levels: bool = False) -> Tensor:
    """(B, C, H, W) float images averaged over ``factor`` x ``factor`` blocks (H and W must be
    multiples of ``factor``). ``to_uint8_levels``: images on [0, 1] holding uint8 levels come
    back rounded to uint8 levels (half up), which is exactly ``cv2.resize(..., INTER_AREA)`` of
    the uint8 image by an integer factor (tested): the picture the teacher's cache answered on
    (:func:`edge_isp.train.datasets.teacher_answers`)."""
    if factor == 1:
        return images
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise InvalidInputError(f"cannot area-downsample {w}x{h} images by {factor}: sides must be multiples")
    if not to_uint8_levels:
        return torch.nn.functional.avg_pool2d(images, factor)
    levels = torch.round(images * 255.0)
    return torch.floor(torch.nn.functional.avg_pool2d(levels, factor) + 0.5) / 255.0


def _resize(image: np.ndarray, size: tuple[int, int] | None) -> tuple[np.ndarray, float, float]:
    """Resize an (H, W, 3) image to ``size`` = (width, height); returns it and the x, y scales."""
    h, w = image.shape[:2]
    if size is None or (w, h) == tuple(size):
        return image, 1.0, 1.0
    return resize_image(image, size), size[0] / w, size[1] / h


class TaskDataset:
    """A classification or detection loader's items as tensors at one size.

    Args:
        base: an ``ImageFolderDataset`` (items ``(image, label)``) or a
            ``CocoDetectionDataset`` (items ``(image, boxes, labels)``).
        task: ``"classification"`` or ``"detection"``.
        size: (width, height) to resize to (boxes are scaled alike); None keeps the size.
        limit: use only ``limit`` items, spread evenly over the data set (which loaders
            order by class, so the first items would all be of one class).
        raw_scale: images come at ``raw_scale`` times ``size`` (the raw's size), boxes stay in
            ``size`` pixels (the picture's; module docstring). Without ``size``, images keep
            theirs and boxes are divided by ``raw_scale``.

    Items: ``(image (3, H, W) uint8, label int)`` or ``(image, boxes (N, 4) float32,
    labels (N,) int64)``.
    """

    def __init__(
        self,
        base: Any,
        task: str,
        size: tuple[int, int] | None = None,
        limit: int | None = None,
        raw_scale: int = 1,
    ) -> None:
        if task not in ("classification", "detection"):
            raise InvalidInputError(f"task must be classification or detection, got {task!r}")
        self.base = base
        self.task = task
        self.size = tuple(size) if size is not None else None
        self.raw_scale = int(raw_scale)
        n = len(base)
        self.indices = np.arange(n) if limit is None or limit >= n else np.linspace(0, n - 1, limit).round().astype(int)
        self.class_names = list(getattr(base, "class_names", []))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self.indices):
            raise IndexError(i)
        item = self.base[int(self.indices[i])]
        image, sx, sy = _resize(item[0], scaled_size(self.size, self.raw_scale))
        sx, sy = sx / self.raw_scale, sy / self.raw_scale  # boxes in the picture's pixels
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
        if self.task == "classification":
            return tensor, int(item[1])
        boxes = np.asarray(item[1], np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
        return tensor, torch.from_numpy(boxes), torch.from_numpy(np.asarray(item[2], np.int64).reshape(-1))


def _stack_images(images: Sequence[Tensor]) -> Tensor:
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise InvalidInputError(
            f"images in a batch must share one size, got {sorted(shapes)} (C, H, W); set data.size to resize them"
        )
    return torch.stack(list(images))


def collate_classification(items: Sequence[tuple]) -> tuple[Tensor, ...]:
    """Items of :class:`TaskDataset` -> (images (B, 3, H, W) uint8, labels (B,) int64); items
    that carry a teacher's logits (``(image, label, logits (2, C))``) add them, (B, 2, C)."""
    columns = list(zip(*items, strict=True))
    batch = (_stack_images(columns[0]), torch.tensor(columns[1], dtype=torch.int64))
    if len(columns) == 3:
        batch += (torch.stack(list(columns[2])),)
    return batch


def collate_detection(items: Sequence[tuple[Tensor, Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Items with different box counts -> (images, boxes (B, N, 4), labels (B, N)), padded
    with zero boxes labelled -1 up to the largest count N (at least 1)."""
    images, boxes, labels = zip(*items, strict=True)
    most = max(1, *(len(b) for b in boxes))
    padded_boxes = torch.zeros(len(items), most, 4, dtype=torch.float32)
    padded_labels = torch.full((len(items), most), -1, dtype=torch.int64)
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        padded_boxes[i, : len(b)] = b
        padded_labels[i, : len(lab)] = lab
    return _stack_images(images), padded_boxes, padded_labels


def to_float(images: Tensor, device: torch.device | str) -> Tensor:
    """uint8 (B, 3, H, W) -> float32 on [0, 1] on ``device``."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def hflip_mask(batch: int, generator: torch.Generator) -> Tensor:
    """Which of ``batch`` images to mirror, each with probability 1/2, on the CPU."""
    return torch.rand(batch, generator=generator) < 0.5


def apply_hflip(
    images: Tensor, flip: Tensor, boxes: Tensor | None = None, labels: Tensor | None = None, raw_scale: int = 1
) -> tuple[Tensor, Tensor | None]:
    """Mirror the images (and their boxes) where ``flip`` (B,) is true. A Bayer raw
    simulated afterwards keeps its own CFA phase. Boxes are in pixels of the images divided
    by ``raw_scale`` (module docstring)."""
    if not bool(flip.any()):
        return images, boxes
    flip_d = flip.to(images.device)
    images = torch.where(flip_d.view(-1, 1, 1, 1), images.flip(-1), images)
    if boxes is not None:
        width = images.shape[-1] // raw_scale
        mirrored = torch.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], dim=-1)
        real = flip.to(boxes.device).view(-1, 1, 1)
        if labels is not None:
            real = real & (labels >= 0).unsqueeze(-1)
        boxes = torch.where(real, mirrored, boxes)
    return images, boxes


def random_hflip(
    images: Tensor, boxes: Tensor | None = None, labels: Tensor | None = None, *, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """Mirror each image left-right with probability 1/2 (drawn from ``generator``, on the
    CPU), with its boxes (:func:`hflip_mask`, :func:`apply_hflip`)."""
    return apply_hflip(images, hflip_mask(images.shape[0], generator), boxes, labels)


def light_to_electrons(profile: SensorProfile, values: Sequence[float], unit: str) -> list[float]:
    """Light levels in ``unit`` ("lux" or "electrons") -> photo-electrons at white."""
    if unit == "electrons":
        return [float(v) for v in values]
    if unit == "lux":
        return [float(v) for v in electrons_from_lux(profile, torch.tensor([float(v) for v in values]))]
    raise InvalidInputError(f"light unit must be 'lux' or 'electrons', got {unit!r}")


class RawBatcher:
    """Clean sRGB batches -> simulated raw through a sensor profile.

    Args:
        profile: the sensor.
        electrons_range: (low, high) photo-electrons at white; training levels are drawn
            log-uniformly between them, one per image.
        blur: optional PSF kernel (kh, kw) (``edge_isp.sensor.optics.parse_blur``).
        unprocess: "fixed" or "random" camera colour (see ``simulate``).
        analogue_gain: None for "auto", else the gain.
        quantize: round to whole DN.
        read_noise_range: (low, high) factor on the profile's read noise, drawn
            log-uniformly per image with the levels (``simulate``'s ``read_noise_scale``);
            (1, 1), the default, draws nothing and simulates the profile itself.
        electrons_split: (level, fraction): that fraction of the levels is drawn
            log-uniformly from ``low`` to ``level`` electrons, the rest from ``level`` to
            ``high``; None draws once over the whole range.
    """

    def __init__(
        self,
        profile: SensorProfile,
        electrons_range: tuple[float, float],
        *,
        blur: Tensor | None = None,
        unprocess: str = "fixed",
        analogue_gain: float | None = None,
        quantize: bool = True,
        read_noise_range: tuple[float, float] = (1.0, 1.0),
        electrons_split: tuple[float, float] | None = None,
    ) -> None:
        low, high = (float(v) for v in electrons_range)
        if not 0 < low <= high:
            raise InvalidInputError(f"light range needs 0 < low <= high electrons at white, got {low}, {high}")
        if electrons_split is not None:
            level, below = (float(v) for v in electrons_split)
            if not (low < level < high and 0 < below < 1):
                raise InvalidInputError(
                    f"light split needs low < level < high and 0 < fraction < 1, got level {level} in "
                    f"({low}, {high}) and fraction {below}"
                )
            electrons_split = (level, below)
        self.electrons_split = electrons_split
        read_low, read_high = (float(v) for v in read_noise_range)
        if not (0 < read_low <= read_high and math.isfinite(read_high)):
            raise InvalidInputError(f"read noise range needs 0 < low <= high, got {read_low}, {read_high}")
        self.read_noise_range = (read_low, read_high)
        self.profile = profile
        self.low, self.high = low, high
        self.blur = blur
        self.unprocess = unprocess
        self.analogue_gain = "auto" if analogue_gain is None else analogue_gain
        self.quantize = quantize

    @classmethod
    def from_config(cls, sensor: Any) -> RawBatcher:
        """From a :class:`~edge_isp.train.config.SensorSection`."""

        profile = SensorProfile.load(sensor.profile)
        low, high = light_to_electrons(profile, sensor.light_range, sensor.light_unit)
        blur = None if sensor.blur in ("", "none") else parse_blur(sensor.blur)
        split = None
        if sensor.light_split is not None:
            (level,) = light_to_electrons(profile, sensor.light_split[:1], sensor.light_unit)
            split = (level, sensor.light_split[1])
        return cls(
            profile,
            (low, high),
            blur=blur,
            unprocess=sensor.unprocess,
            analogue_gain=sensor.analogue_gain,
            quantize=sensor.quantize,
            read_noise_range=sensor.read_noise_range,
            electrons_split=split,
        )

    def sample_levels(self, batch: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """Training light levels ``(B,)`` in electrons at white, on ``generator``'s device."""
        if self.electrons_split is None:
            return sample_light_levels(batch, self.low, self.high, generator, device=generator.device, dtype=dtype)
        level, below = self.electrons_split
        dark = sample_light_levels(batch, self.low, level, generator, device=generator.device, dtype=dtype)
        bright = sample_light_levels(batch, level, self.high, generator, device=generator.device, dtype=dtype)
        pick = torch.rand(batch, generator=generator, device=generator.device) < below
        return torch.where(pick, dark, bright)

    def noise_range(self, steps: int = 64) -> dict[str, list[float]]:
        """The noise levels ``(a, sigma)`` training draws from: ``{"a": [low, high], "sigma":
        [low, high]}``, over ``steps`` light levels log-spaced across the range at both ends of
        the read-noise range, through the simulator itself (so gain steps are included)."""
        levels = np.geomspace(self.low, self.high, steps)
        grey = torch.full((levels.size, 3, 2, 2), 0.5, dtype=torch.float64)
        noise = [
            simulate(grey, self.profile, torch.from_numpy(levels), analogue_gain=self.analogue_gain, noise=False,
                     quantize=False, read_noise_scale=float(scale)).noise
            for scale in sorted(set(self.read_noise_range))
        ]  # fmt: skip
        values = torch.cat(noise).numpy()
        return {
            "a": [float(values[:, 0].min()), float(values[:, 0].max())],
            "sigma": [float(values[:, 1].min()), float(values[:, 1].max())],
        }

    def __call__(
        self, srgb: Tensor, generator: torch.Generator, electrons_at_white: float | Tensor | None = None
    ) -> SimulatedRaw:
        """Simulate ``srgb`` (B, 3, H, W) on [0, 1]; levels sampled unless given (and the
        read-noise factors with them). ``generator`` must live on ``srgb``'s device."""
        read_noise_scale: float | Tensor = 1.0
        if electrons_at_white is None:
            electrons_at_white = self.sample_levels(srgb.shape[0], generator, srgb.dtype).to(srgb.device)
            if self.read_noise_range != (1.0, 1.0):
                read_noise_scale = sample_log_uniform(
                    srgb.shape[0], *self.read_noise_range, generator, what="read noise factors", dtype=torch.float64
                )
        blur = self.blur.to(srgb) if self.blur is not None else None
        return simulate(
            srgb,
            self.profile,
            electrons_at_white,
            blur=blur,
            analogue_gain=self.analogue_gain,
            unprocess=self.unprocess,
            quantize=self.quantize,
            read_noise_scale=read_noise_scale,
            generator=generator,
        )


def check_conventional_isp(demosaic: str, denoise: str) -> None:
    """Fail early, before training starts, if the conventional ISP or its settings are unusable."""

    IspConfig(demosaic=demosaic, denoise=denoise)


def conventional_isp_batch(
    sim: SimulatedRaw, profile: SensorProfile, demosaic: str, denoise: str, workers: int = 1
) -> Tensor:
    """Render each simulated raw through the conventional ISP (numpy, per image).

    The ISP gets the normalized mosaic (digital gain applied, so white is at 1), its noise
    level ``(a, sigma)`` on that scale, and the white balance and colour matrix the raw was
    simulated with (an ideal colour pipeline: the baseline is judged on its demosaicking
    and denoising, not on a colour estimate). ``workers`` threads render in parallel
    (OpenCV releases the GIL). Returns sRGB (B, 3, H, W) on [0, 1] on the raw's device.
    """
    from concurrent.futures import ThreadPoolExecutor

    packed = sim.packed.detach().float().cpu().numpy()
    noise = sim.noise.detach().double().cpu().numpy()
    gains = sim.white_balance.detach().double().cpu().numpy()
    matrices = torch.linalg.inv(sim.rgb_to_camera.detach().double().cpu()).numpy()

    def one(i: int) -> np.ndarray:
        config = IspConfig(
            demosaic=demosaic,
            denoise=denoise,
            noise=(float(noise[i, 0]), float(noise[i, 1])),
            white_balance=tuple(float(g) for g in gains[i]),
            color_matrix=tuple(tuple(float(v) for v in row) for row in matrices[i]),
        )
        rgb = render_mosaic(unpack(packed[i], profile.cfa), profile.cfa, config)
        return np.clip(np.asarray(rgb, np.float32), 0.0, 1.0).transpose(2, 0, 1)

    indices = range(packed.shape[0])
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            images = list(pool.map(one, indices))
    else:
        images = [one(i) for i in indices]
    # np.stack keeps the transposed (channels-last) layout; the network's config decides that.
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).to(sim.packed.device)
