"""The reconstruction side of the claim: how good are the images, level by level?

Pipelines, all on the same simulated frames and noise draws (the sweep of
:mod:`edge_isp.evaluate.sweep` with task "reconstruction": PSNR and SSIM only):

- ``isp``: the ISP trained for reconstruction (the isp stage's checkpoint), frozen;
- ``conv-nlm`` / ``conv-bm3d``: the conventional ISP (:mod:`edge_isp.isp`: Malvar
  demosaicking, then non-local means or BM3D in the Anscombe domain, with the true noise
  level, white balance and colour matrix);
- ``dmn-nlm`` / ``dmn-bm3d``: the pretrained demosaicnet of Gharbi et al. 2016
  (:mod:`edge_isp.evaluate.demosaicnet_peer`) in place of Malvar, followed by the same
  denoiser, colour matrix and tone curve.

demosaicnet is fed the white-balanced LINEAR mosaic, not an sRGB-encoded one: the denoiser
after it relies on the Poisson-Gaussian noise model of linear data, which an sRGB curve
applied to a noisy mosaic would break (and its clipping of negative values would bias the
dark). The price, measured on a noise-free 128x128 crop of skimage's astronaut: 37.1 dB
fed linear against 40.0 dB fed sRGB, a gap far below the noise at the light levels studied.

BM3D is slow (about a second per 128x128 image on one core): limit the image count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.evaluate.demosaicnet_peer import demosaic_packed, load_pretrained, weights_path
from edge_isp.evaluate.pipelines import EvalBatch, Pipeline, PipelineOutput, load_for_eval
from edge_isp.isp.colour import apply_color_matrix, apply_tone
from edge_isp.isp.denoise import denoise as run_denoise
from edge_isp.isp.pipeline import IspConfig
from edge_isp.train.batches import conventional_isp_batch

DENOISERS = ("nlm", "bm3d")


def _conventional(demosaic: str, denoise: str, workers: int) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        image = conventional_isp_batch(batch.sim, batch.profile, demosaic, denoise, workers).contiguous()
        return PipelineOutput(None, image)

    return run


def demosaicnet_isp(model: torch.nn.Module, batch: EvalBatch, denoise: str, workers: int = 1) -> torch.Tensor:
    """The conventional ISP with demosaicnet as its demosaicker: white balance on the mosaic,
    demosaicnet, ``denoise`` (Anscombe domain, true noise level), colour matrix, clip, sRGB
    curve. Returns (B, 3, H, W) sRGB on [0, 1] on the raw's device."""
    sim = batch.sim
    gains = sim.white_balance.detach().float()
    # Planes R, Gr, Gb, B take the gains of R, G, G, B.
    balanced = sim.packed.detach().float() * gains[:, [0, 1, 1, 2], None, None]
    rgb = demosaic_packed(model, balanced, batch.profile.cfa).cpu().numpy().transpose(0, 2, 3, 1)
    noise = sim.noise.detach().double().cpu().numpy()
    gains_np = gains.double().cpu().numpy()
    matrices = torch.linalg.inv(sim.rgb_to_camera.detach().double().cpu()).numpy()

    def one(i: int) -> np.ndarray:
        # White balance scaled each channel by its gain k: var = (k a) y + (k sigma)^2.
        k = gains_np[i]
        linear = run_denoise(np.ascontiguousarray(rgb[i]), denoise, noise[i, 0] * k, noise[i, 1] * k)
        out = apply_tone(np.clip(apply_color_matrix(linear, matrices[i]), 0.0, 1.0), "srgb")
        return np.asarray(out, np.float32).transpose(2, 0, 1)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            images = list(pool.map(one, range(rgb.shape[0])))
    else:
        images = [one(i) for i in range(rgb.shape[0])]
    return torch.from_numpy(np.stack(images)).to(sim.packed.device)


def _demosaicnet(model: torch.nn.Module, denoise: str, workers: int) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        return PipelineOutput(None, demosaicnet_isp(model, batch, denoise, workers))

    return run


def _learned(isp: torch.nn.Module) -> Callable[[EvalBatch], PipelineOutput]:
    def run(batch: EvalBatch) -> PipelineOutput:
        return PipelineOutput(None, isp(batch.sim.packed, batch.sim.noise))

    return run


def build_recon_pipelines(
    checkpoints: Mapping[str, str | Path],
    *,
    denoisers: Sequence[str] = DENOISERS,
    demosaic: str = "malvar",
    demosaicnet: bool = True,
    device: torch.device | str = "cpu",
    workers: int = 1,
) -> tuple[list[Pipeline], list[str]]:
    """The reconstruction pipelines and the notes on what was skipped.

    ``checkpoints``: {"isp" or "isp:LABEL": path} (other roles are ignored, with a note).
    """
    for method in denoisers:
        if method not in DENOISERS:
            raise InvalidInputError(f"denoisers must be among {', '.join(DENOISERS)}, got {method!r}")
        IspConfig(demosaic=demosaic, denoise=method)
    pipelines: list[Pipeline] = []
    notes: list[str] = []
    isp_names = [n for n in checkpoints if n.partition(":")[0] == "isp"]
    ignored = sorted(set(checkpoints) - set(isp_names))
    if ignored:
        notes.append(f"checkpoints {', '.join(ignored)} ignored: the reconstruction study uses only isp")
    if not isp_names:
        notes.append("isp (ISP trained for reconstruction): skipped, no isp checkpoint")
    for name in isp_names:
        loaded = load_for_eval(checkpoints[name], device)
        if loaded.model.config.isp is None:
            raise InvalidInputError(f"checkpoint {loaded.path} (model {loaded.model.config.name!r}) has no ISP")
        label = name.partition(":")[2]
        key = f"isp:{label}" if label else "isp"
        text = "ISP trained for reconstruction" + (f" [{label}]" if label else "")
        files = {"isp": str(loaded.path)}
        pipelines.append(Pipeline(key, text, _learned(loaded.model.isp), True, files, loaded.trained_on))
    for method in denoisers:
        text = f"conventional ISP ({demosaic} + {method.upper()})"
        pipelines.append(Pipeline(f"conv-{method}", text, _conventional(demosaic, method, workers)))
    if demosaicnet and denoisers:
        try:
            model = load_pretrained(device)
        except EdgeIspError as exc:
            notes.append(f"demosaicnet pipelines skipped: {exc}")
        else:
            for method in denoisers:
                text = f"demosaicnet (Gharbi 2016) + {method.upper()}"
                files = {"demosaicnet": str(weights_path())}
                run = _demosaicnet(model, method, workers)
                training = "pretrained by its authors (noise-free demosaicking)"
                pipelines.append(Pipeline(f"dmn-{method}", text, run, True, files, None, training))
    return pipelines, notes
