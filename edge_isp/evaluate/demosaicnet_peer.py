"""The pretrained demosaicnet of Gharbi et al. (2016) as an outside peer demosaicker.

"Deep Joint Demosaicking and Denoising" (Gharbi, Chaurasia, Paris, Durand; SIGGRAPH Asia
2016) released its Bayer network in the PyPI package ``demosaicnet`` (0.0.14), with the
trained weights inside the wheel (``demosaicnet/data/bayer.pth``). The package itself does
not import beside our environment: its ``modules.py`` imports ``pkg_resources``, which
setuptools removed (version 81 on), and its ``__init__`` imports ``dataset.py``, which needs
``wget`` (a downloader we do not install). So we read the weights file from the installed
package without importing it (``importlib.util.find_spec`` only locates it) and define the
network here with the package's parameter names, as ``edge_isp.model.mobilenet`` does with
torchvision's. ``load_state_dict`` is strict: a different network would not load.

The released network (as its package documents it): a 2x2 stride-2 convolution packs the
three-channel masked mosaic to quarter-resolution features; 15 unpadded 3x3 convolutions
with ReLU (width 64, the last 128, split into "filters" and "masks" that are multiplied);
a 1x1 convolution predicts 12 residual channels, a grouped 2x2 transposed convolution brings
them to full resolution; they are stacked with the (cropped) mosaic and a 3x3 + 1x1 pair
gives RGB. Unpadded, it returns 31 pixels less on every side, and it expects the GRBG
phase (its pattern is "G R / B G"). :func:`demosaicnet_demosaic` pads by mirror
reflection (which keeps the Bayer phase) and crops, so any CFA and size work.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_isp.errors import InvalidInputError, MissingDependencyError
from edge_isp.sensor.cfa import CFA, unpack

WIDTH = 64
DEPTH = 15
# The unpadded network shrinks its input by this many pixels on each side.
BORDER = 31
# Colour index (0 R, 1 G, 2 B) of each position of the network's 2x2 tile, G R / B G.
_TILE = ((1, 0), (2, 1))


def weights_path() -> Path:
    """Where the installed ``demosaicnet`` package keeps its Bayer weights, found without
    importing the package (see the module docstring)."""
    spec = importlib.util.find_spec("demosaicnet")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the demosaicnet peer needs the PyPI package 'demosaicnet' (its wheel holds the pretrained "
            "weights); install it with: pip install --no-deps demosaicnet==0.0.14"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "bayer.pth"
    if not path.is_file():
        raise MissingDependencyError(f"the demosaicnet package is installed but has no weights file at {path}")
    return path


class GharbiBayerNet(nn.Module):
    """The released Bayer network: masked GRBG mosaic (B, 3, H, W) -> RGB (B, 3, H-62, W-62).

    H and W must be even and at least 64. See the module docstring for the layers.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(pack_mosaic=nn.Conv2d(3, 4, 2, stride=2))
        for i in range(DEPTH):
            cin = 4 if i == 0 else WIDTH
            cout = 2 * WIDTH if i == DEPTH - 1 else WIDTH
            layers[f"conv{i + 1}"] = nn.Conv2d(cin, cout, 3)
            layers[f"relu{i + 1}"] = nn.ReLU(inplace=True)
        self.main_processor = nn.Sequential(layers)
        self.residual_predictor = nn.Conv2d(WIDTH, 12, 1)
        self.upsampler = nn.ConvTranspose2d(12, 3, 2, stride=2, groups=3)
        self.fullres_processor = nn.Sequential(
            OrderedDict(
                post_conv=nn.Conv2d(6, WIDTH, 3), post_relu=nn.ReLU(inplace=True), output=nn.Conv2d(WIDTH, 3, 1)
            )
        )

    def forward(self, mosaic: Tensor) -> Tensor:
        features = self.main_processor(mosaic)
        gated = features[:, :WIDTH] * features[:, WIDTH:]
        upsampled = self.upsampler(self.residual_predictor(gated))
        # The mosaic is cropped to the residual's size, centred: (2 * DEPTH) pixels a side.
        border = (mosaic.shape[-1] - upsampled.shape[-1]) // 2
        cropped = mosaic[..., border : border + upsampled.shape[-2], border : border + upsampled.shape[-1]]
        return self.fullres_processor(torch.cat([cropped, upsampled], dim=1))


def load_pretrained(device: torch.device | str = "cpu") -> GharbiBayerNet:
    """The network with the released weights, in eval mode, on ``device``."""
    model = GharbiBayerNet()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().to(device)


def _reflect_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Mirror padding of (B, C, H, W) by any amount (in steps below the current size).
    Mirroring about a pixel maps row -k to row k: the same parity, so the Bayer phase holds."""
    while top or bottom or left or right:
        h, w = x.shape[-2:]
        step = [min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1)]
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


def _phase(cfa: CFA) -> tuple[int, int]:
    """(row, col) of the pattern where the 2x2 tile reads G R / B G."""
    tile = cfa.tile
    for oy in (0, 1):
        for ox in (0, 1):
            if (tile[oy][ox], tile[oy][1 - ox], tile[1 - oy][ox], tile[1 - oy][1 - ox]) == ("G", "R", "B", "G"):
                return oy, ox
    raise AssertionError(f"no GRBG phase in {cfa}")  # every Bayer pattern has one


@torch.no_grad()
def demosaicnet_demosaic(model: GharbiBayerNet, mosaic: Tensor, cfa: CFA | str) -> Tensor:
    """Demosaic Bayer mosaics with the pretrained network.

    Args:
        model: from :func:`load_pretrained`.
        mosaic: (B, H, W) mosaic values on about [0, 1] (the scale the network was trained
            on), H and W even, any size from 2x2.
        cfa: the mosaic's Bayer pattern.

    Returns:
        (B, 3, H, W) RGB on the mosaic's scale, on the model's device, float32.
    """
    if not isinstance(mosaic, Tensor) or mosaic.ndim != 3 or mosaic.shape[-1] % 2 or mosaic.shape[-2] % 2:
        raise InvalidInputError(
            f"demosaicnet takes mosaics (B, H, W) with even H and W, got shape {tuple(getattr(mosaic, 'shape', ()))}"
        )
    oy, ox = _phase(CFA.parse(cfa))
    device = next(model.parameters()).device
    h, w = mosaic.shape[-2:]
    # Shift by (oy, ox) so that the padded array starts on a G R / B G tile; 32 + 32 pixels
    # of margin cover the network's 31-pixel border.
    padded = _reflect_pad(mosaic.to(device, torch.float32)[:, None], 32 + oy, 32 + oy, 32 + ox, 32 + ox)
    rows = torch.arange(padded.shape[-2], device=device) % 2
    cols = torch.arange(padded.shape[-1], device=device) % 2
    colour = torch.tensor(_TILE, device=device)[rows[:, None], cols[None, :]]
    mask = (colour[None] == torch.arange(3, device=device).view(3, 1, 1)).to(torch.float32)
    rgb = model(padded * mask[None])
    # Padded row r sits at output row r - BORDER; original row 0 is padded row 32 + oy.
    top, left = 32 + oy - BORDER, 32 + ox - BORDER
    return rgb[..., top : top + h, left : left + w]


def demosaic_packed(model: GharbiBayerNet, packed: Tensor, cfa: CFA | str) -> Tensor:
    """Packed planes (B, 4, H/2, W/2) (R, Gr, Gb, B) -> RGB (B, 3, H, W) via the mosaic."""
    return demosaicnet_demosaic(model, unpack(packed, CFA.parse(cfa)), cfa)
