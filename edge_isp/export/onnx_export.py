"""Export a joint network to ONNX with the contract of docs/ARCHITECTURE.md, checked and
compared with torch through ONNX Runtime.

Graph: inputs ``raw`` (B, 4, H/2, W/2) and ``noise`` (B, 2), float32 (input kind ``raw``: the
fused model), or ``rgb`` (B, 3, H, W) sRGB on [0, 1] (input kind ``rgb``: the perception network
alone, run behind a conventional ISP); outputs ``logits``
(classification), ``boxes``/``scores``/``labels`` (detection: the K highest heatmap peaks,
boxes xyxy in full-resolution pixels, labels int32) or ``image`` (reconstruction), plus
optionally ``image`` (B, 3, H, W), the learned ISP's sRGB. Written with the TorchScript
exporter (``dynamo=False``; the torch.export one needs onnxscript) at opset 17, which
TensorRT 8.5 and later parse.

The traced network is :class:`edge_isp.model.contract_module.ContractModule` (the runtime's torch
backend runs the same module).

Size: by default every axis but (optionally) the batch is fixed at the export size, and the
tracer folds everything built from the input's shape (the Bayer mask, the U-Net's and the
detector's upsampling sizes, the decoding's cell grid) into constants. With ``dynamic_size`` the
height and width of every input and spatial output are dynamic axes, so those are computed from
the input's shape inside the graph and one file runs at any frame size that is a multiple of
:func:`size_multiple` (recorded as metadata ``edge_isp.size_multiple``); the export checks it
against torch at the export size and at a second size.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_isp import __version__
from edge_isp.contract.metadata import (
    INPUT_KINDS,
    ModelMetadata,
    NoiseRange,
    check_conventional_isp,
    check_input_kind,
    is_profile_name,
    set_metadata,
)
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.contract.sizes import format_size
from edge_isp.errors import InvalidInputError, require
from edge_isp.fileio import write_bytes
from edge_isp.model.contract_module import DEFAULT_TOP_K, DENSE_DETECTION_OUTPUTS, ContractModule
from edge_isp.sensor.simulate import simulate

OPSET = 17
DETECTION_MULTIPLE = 32


@dataclasses.dataclass(frozen=True)
class ParityStats:
    """How far an ONNX Runtime output is from torch's on the same input.

    ``max_abs`` / ``mean_abs``: the differences; ``ref_max_abs``: the largest torch value
    (the scale to read them against). For detections, values are compared after pairing each
    torch detection with the ONNX one of the same label nearest in box (top-K order can swap
    near-equal scores); ``unmatched`` counts torch detections without a partner within 1 px.
    """

    max_abs: float
    mean_abs: float
    ref_max_abs: float
    unmatched: int = 0

    def ok(self, tolerance: float = 1e-3) -> bool:
        """Within ``tolerance`` of the output's scale (at least 1), every detection paired."""
        return self.unmatched == 0 and self.max_abs <= tolerance * max(1.0, self.ref_max_abs)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata: ModelMetadata
    parity: dict[str, ParityStats]
    seconds: float


def size_multiple(task: str, raw_scale: int = 1, stem_stride: int = 2, has_isp: bool = True) -> int:
    """The multiple both sides of a dynamic-size model's full-resolution frame must be.

    Detection: 32 of the picture's pixels (the deepest features' stride), halved behind a
    stride-1 stem, times ``raw_scale``: 32 for both ``dp_*_det`` and ``dpnh_*_det``. Otherwise
    the ISP's U-Net (two 2x poolings where it runs) without padding: 4 for a full-resolution
    ISP (it runs on the H x W mosaic), 8 for a half-resolution one (on the H/2 x W/2 planes);
    2 (a Bayer tile) without an ISP. At these sizes the traced graph takes the same path as at
    the export size: the ISP pads only sizes that are not multiples (a Python branch that the
    tracer fixes at the export size).
    """
    if task == "detection":
        return DETECTION_MULTIPLE * stem_stride // 2 * raw_scale
    return 4 * raw_scale if has_isp else 2


def check_input_size(
    task: str, input_size: tuple[int, int], raw_scale: int = 1, stem_stride: int = 2
) -> tuple[int, int]:
    """Validate (width, height) for ``task``: even (Bayer tiles), multiples of 32 for detection,
    both times ``raw_scale`` (the picture, input / raw_scale, must meet them); a detector with a
    stride-1 stem (``stem_stride``) halves the picture's 32 (its deepest map is at 16 pixels), so
    a half-resolution detector takes the same raw sizes as a full-resolution one."""
    w, h = (int(v) for v in input_size)
    multiple = (DETECTION_MULTIPLE * stem_stride // 2 if task == "detection" else 2) * raw_scale
    if w < multiple or h < multiple or w % multiple or h % multiple:
        raise InvalidInputError(
            f"input size for a {task} model must be positive multiples of {multiple} (width x height), got {w}x{h}"
        )
    return w, h


def parity_inputs(
    profile: Any, input_size: tuple[int, int], batch: int = 1, electrons_at_white: float = 30.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """A realistic model input: a smooth random scene simulated through ``profile`` (a
    ``SensorProfile``) at ``electrons_at_white``. Returns ``{"raw", "noise"}`` float32."""
    w, h = input_size
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, h // 16), max(2, w // 16), generator=generator)
    scene = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    sim = simulate(scene, profile, electrons_at_white, generator=generator)
    return {"raw": sim.packed.float().numpy(), "noise": sim.noise.float().numpy()}


def parity_rgb(input_size: tuple[int, int], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """An rgb model's input: a smooth random sRGB scene (B, 3, H, W) on [0, 1], float32."""
    w, h = input_size
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, h // 16), max(2, w // 16), generator=generator)
    scene = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    return {"rgb": scene.float().numpy()}


def compare_outputs(names: list[str], got: list[np.ndarray], expected: list[np.ndarray]) -> dict[str, ParityStats]:
    """Per-output :class:`ParityStats` of ``got`` (ONNX Runtime) against ``expected`` (torch)."""
    stats = {}
    detection = {"boxes", "scores", "labels"} <= set(names)
    pairs = dict(zip(names, zip(got, expected, strict=True), strict=True))
    if detection:
        stats.update(_detection_parity(pairs))
    for name, (g, e) in pairs.items():
        if detection and name in ("boxes", "scores", "labels"):
            continue
        diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
        stats[name] = ParityStats(float(diff.max(initial=0)), float(diff.mean()) if diff.size else 0.0,
                                  float(np.abs(e).max(initial=0)))  # fmt: skip
    return stats


def _detection_parity(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, ParityStats]:
    (gb, eb), (gs, es), (gl, el) = pairs["boxes"], pairs["scores"], pairs["labels"]
    box_diffs, score_diffs, unmatched = [], [], 0
    for i in range(eb.shape[0]):
        distance = np.abs(eb[i][:, None, :] - gb[i][None, :, :]).max(-1)
        distance = np.where(el[i][:, None] == gl[i][None, :], distance, np.inf)
        j = distance.argmin(1)
        for k in range(eb.shape[1]):
            if distance[k, j[k]] > 1.0:
                unmatched += 1
                continue
            box_diffs.append(distance[k, j[k]])
            score_diffs.append(abs(float(es[i, k]) - float(gs[i, j[k]])))
    boxes = np.asarray(box_diffs or [0.0])
    scores = np.asarray(score_diffs or [0.0])
    return {
        "boxes": ParityStats(float(boxes.max()), float(boxes.mean()), float(np.abs(eb).max(initial=0)), unmatched),
        "scores": ParityStats(float(scores.max()), float(scores.mean()), float(np.abs(es).max(initial=0)), unmatched),
        "labels": ParityStats(0.0, 0.0, float(np.abs(el).max(initial=0)), unmatched),
    }


def exporter_string() -> str:
    onnx = require("onnx", "export", "exporting to ONNX")
    return f"torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET}"


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: tuple[int, int],
    class_names: list[str],
    profile: Any,
    batch: int = 1,
    dynamic_batch: bool = False,
    with_image: bool = False,
    top_k: int = DEFAULT_TOP_K,
    dense: bool = False,
    noise_range: NoiseRange | None = None,
    input_kind: str = "raw",
    conventional_isp: dict[str, str] | None = None,
    teacher: dict[str, Any] | None = None,
    dynamic_size: bool = False,
) -> ExportResult:
    """Export ``model`` (a ``JointModel``) to ``path`` and compare it with torch.

    Args:
        model: the network; exported in eval mode (its mode is restored afterwards).
        path: the ``.onnx`` file to write (atomically).
        input_size: (width, height) of the full-resolution frame (the raw: twice the picture's
            sides for a half-resolution model).
        class_names: one per class; saved in the metadata.
        profile: the ``SensorProfile`` the model was trained for: its name goes in the
            metadata and the parity input is simulated through it.
        batch: the batch of the graph (with ``dynamic_batch``, of the parity input only).
        dynamic_batch: make the batch axis dynamic ("batch").
        with_image: add the ``image`` output.
        top_k: detections per image (detection models).
        dense: a detector's heatmap/size/offset maps instead of decoded boxes: not the
            deployment contract, the graph a sensitivity ranking measures.
        noise_range: the noise levels the model was trained on, for the metadata
            (:attr:`~edge_isp.model.loading.LoadedModel.noise_range`); raw models only.
        input_kind: "raw" (the fused model: inputs ``raw``, ``noise``) or "rgb" (the
            perception head alone: input ``rgb`` (B, 3, H, W), sRGB on [0, 1]).
        conventional_isp: for an rgb model, the conventional ISP it was trained behind
            (``{"demosaic", "denoise"}``, a baseline checkpoint's), for the metadata.
        teacher: the ``[teacher]`` table the model was distilled from, for the metadata.
        dynamic_size: make height and width dynamic (see the module docstring); ``input_size``
            is then the size the graph is traced and checked at, and the metadata's
            ``input_size``, and must be a multiple of :func:`size_multiple`.
    """
    onnx = require("onnx", "export", "exporting to ONNX")

    config = model.config
    input_size = check_input_size(config.task, input_size, config.raw_scale, config.stem_stride)
    multiple = None
    if dynamic_size:
        # An rgb model's picture is the frame itself: no ISP, no raw scale.
        raw_scale = config.raw_scale if input_kind == "raw" else 1
        multiple = size_multiple(
            config.task, raw_scale, config.stem_stride, config.isp is not None and input_kind == "raw"
        )
        if input_size[0] % multiple or input_size[1] % multiple:
            raise InvalidInputError(
                f"a dynamic-size {config.task} model ({config.name}) runs at frame sizes that are multiples of "
                f"{multiple}; export it at one (got {input_size[0]}x{input_size[1]})"
            )
    if config.task != "reconstruction" and len(class_names) != config.num_classes:
        raise InvalidInputError(
            f"the model has {config.num_classes} classes but {len(class_names)} class names were given"
        )
    if batch < 1:
        raise InvalidInputError(f"batch must be >= 1, got {batch}")
    if not is_profile_name(profile.name):
        raise InvalidInputError(
            f"the sensor profile's name {profile.name!r} cannot go in the model's metadata, which names a "
            "profile with letters, digits, '.', '_' and '-' only (never a path); rename it (its field 'name')"
        )
    input_names = INPUT_KINDS[check_input_kind(input_kind)]
    if conventional_isp is not None:
        conventional_isp = check_conventional_isp(conventional_isp)
    start = time.perf_counter()
    was_training = model.training
    wrapper = ContractModule(model, top_k, with_image, dense, input_kind).eval()
    names = wrapper.names
    inputs = parity_rgb(input_size, batch) if input_kind == "rgb" else parity_inputs(profile, input_size, batch)
    args = tuple(torch.from_numpy(inputs[name]) for name in input_names)
    dynamic = dynamic_axes(input_names, names, dynamic_batch, dynamic_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.export.tmp")
    # The second size proves the shape-dependent parts really follow the input.
    other = None if multiple is None else (input_size[0] + multiple, input_size[1] + 2 * multiple)
    more = {}
    if other is not None:
        more = parity_rgb(other, batch) if input_kind == "rgb" else parity_inputs(profile, other, batch, seed=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(wrapper, args, str(tmp), opset_version=OPSET, dynamo=False, input_names=list(input_names),
                              output_names=names, dynamic_axes=dynamic, do_constant_folding=True)  # fmt: skip
        graph = onnx.load(str(tmp))
        # The references in eval mode too (the wrapper shares the model's modules).
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(*args)]
            reference = [t.numpy() for t in wrapper(*(torch.from_numpy(more[n]) for n in input_names))] if more else []
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
    metadata = ModelMetadata(
        version=__version__,
        # Through JSON, so the in-memory metadata equals what a reader gets (tuples -> lists).
        model_config=json.loads(json.dumps(config.to_dict())),
        task=config.task,
        class_names=tuple(class_names),
        input_size=input_size,
        profile=profile.name,
        precision="fp32",
        exporter=exporter_string(),
        top_k=int(expected[0].shape[1]) if config.task == "detection" and not dense else None,
        noise_range=noise_range if input_kind == "raw" else None,
        raw_scale=config.raw_scale if input_kind == "raw" else 1,
        input_kind=input_kind,
        conventional_isp=conventional_isp if input_kind == "rgb" else None,
        teacher=teacher,
        size_multiple=multiple,
    )
    set_metadata(graph, metadata)
    onnx.checker.check_model(graph, full_check=True)
    data = graph.SerializeToString()
    session = cpu_session(data)
    parity = compare_outputs(names, session.run(names, inputs), expected)
    if other is not None:
        tag = f"@{format_size(other)}"
        parity.update({k + tag: v for k, v in compare_outputs(names, session.run(names, more), reference).items()})
    write_bytes(path, data)
    return ExportResult(path, metadata, parity, time.perf_counter() - start)


def dynamic_axes(
    input_names: tuple[str, ...], output_names: list[str], batch: bool, size: bool
) -> dict[str, dict[int, str]] | None:
    """The exporter's ``dynamic_axes``: axis 0 of everything ("batch"), and axes 2 and 3 of the
    4-D inputs (``raw``, ``rgb``) and of the ``image`` output ("height", "width"; the raw's
    planes and a half-resolution image are half the frame, but the names only say the axes
    vary). None when nothing is dynamic."""
    axes: dict[str, dict[int, str]] = {}
    for name in (*input_names, *output_names):
        spatial = size and name in ("raw", "rgb", "image", *DENSE_DETECTION_OUTPUTS)
        entry = {0: "batch"} if batch else {}
        if spatial:
            entry.update({2: f"{name}_height", 3: f"{name}_width"})
        if entry:
            axes[name] = entry
    return axes or None
