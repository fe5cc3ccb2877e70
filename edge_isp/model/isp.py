"""The Dirty Pixels ISP: packed raw + noise level -> sRGB, differentiable.

After Diamond et al. (TOG 2021): a generalized Anscombe transform stabilizes the
Poisson-Gaussian noise; an unrolled half-quadratic-splitting (HQS) loop alternates a U-Net
prior with a data-consistency step against the measured mosaic; the inverse Anscombe returns
to linear intensity; a learned colour/tone stage maps to sRGB.

The data-consistency update of iteration k, with the Bayer mask M and the measured
(transformed) mosaic y spread to three colour channels:

    z = prior(x)                       # the prior predicts the noise/artifact residual
    x = (lambda_k * M * y + beta_k * (x - z)) / (lambda_k * M + beta_k)

so measured pixels are pulled towards the measurement by lambda_k and the rest comes from the
prior; with beta_k -> 0 the measured pixels are kept exactly.

Input: ``packed`` (B, 4, H/2, W/2) normalized raw in the plane order R, Gr, Gb, B, and
``noise`` (B, 2) = (a, sigma) on the same scale. Output: (B, 3, H, W) sRGB, about [0, 1].

Half resolution (``IspNetConfig.resolution = "half"``, issue 17's fast variant): the whole ISP
runs on the packed planes, h x w = H/2 x W/2, and gives (B, 3, h, w). Every half-resolution
pixel (one 2x2 Bayer tile) has one measured R, two measured G and one measured B, so nothing
is missing: the measurement is ``y = (R, (Gr + Gb) / 2, B)`` with the mask 1 everywhere, and
the data step weighs each channel by the inverse of its noise variance relative to a single
plane, ``W = (1, 2, 1)`` (the mean of two greens has half the variance):

    x = (lambda_k * W * y + beta_k * (x - z)) / (lambda_k * W + beta_k)

which keeps ``y`` exactly as beta_k -> 0. The U-Net starts from ``y`` (no bilinear fill) and
sees the per-plane noise std ``a / 2``. The four planes sit a quarter of a half-resolution pixel
from the tile's centre (R up-left, B down-right, the greens on the other diagonal); ``y`` treats
them as co-sited and leaves that shift to the prior. A camera whose sensor has more pixels than
the network input gets its detail this way: the raw is 2H x 2W for an H x W picture.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.errors import InvalidInputError
from edge_isp.model.anscombe import Anscombe, InverseAnscombe, anscombe_span, noise_std_map

# Which packed plane (R, Gr, Gb, B) belongs to which colour channel.
_PLANE_COLOUR = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))
# Where the ISP runs: "full" demosaicks to H x W (the paper's); "half" stays on the packed planes.
RESOLUTIONS = ("full", "half")
# The half-resolution data step's weight per colour channel (R, G, B): the inverse of each
# measurement's noise variance relative to one plane; G is the mean of Gr and Gb.
HALF_DATA_WEIGHT = (1.0, 2.0, 1.0)


@dataclasses.dataclass(frozen=True)
class IspNetConfig:
    """Settings of :class:`DirtyPixelsISP`.

    Attributes:
        widths: channels of the U-Net at its 3 scales (the paper's small model: 8, 16, 32).
        iterations: unrolled HQS iterations (the paper's released models use 1).
        anscombe: use the Anscombe pair (False is the "no Anscombe" ablation).
        unbiased_inverse: Makitalo-Foi unbiased inverse instead of the algebraic one.
        unit_range: rescale the stabilized signal so black is 0 and white 1 at every noise
            level (``anscombe_span``), and the noise map with it, before the U-Net and the data
            step, and back before the inverse: the network then sees one signal range from
            starlight to daylight instead of one shrinking as the square root of ``a``
            (docs/STUDY.md, "Real images": the ISP's picture collapses in daylight without it).
        resolution: "full" (the paper's: demosaic to the raw's H x W) or "half" (the whole ISP on
            the packed H/2 x W/2 planes, output H/2 x W/2; see the module docstring). Checkpoints
            and ONNX files written before this field existed are full-resolution models.
        unet_stride: 1 (the paper's) or 2: the U-Net works on the 2x2 pixel-unshuffled input (a
            quarter of the positions, four times the channels; its first convolution a 6x6 one of
            stride 2, the same thing without the copy) and its 12-channel output is shuffled back,
            so its top level runs on a quarter of the pixels at widths that fill ONNX Runtime's
            blocked convolutions (16 channels, not 8; bench/isp_profile.py).
            Sides must then be multiples of 8 where it runs (the ISP pads). Checkpoints and ONNX
            files written before this field existed have 1.
    """

    widths: tuple[int, int, int] = (8, 16, 32)
    iterations: int = 1
    anscombe: bool = True
    unbiased_inverse: bool = True
    unit_range: bool = False
    resolution: str = "full"
    unet_stride: int = 1

    @property
    def raw_scale(self) -> int:
        """How many times larger (per side) the raw is than the ISP's image: 1 or 2."""
        return 2 if self.resolution == "half" else 1

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise InvalidInputError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise InvalidInputError(f"widths must be 3 positive channel counts, got {self.widths}")
        if self.unet_stride not in (1, 2):
            raise InvalidInputError(f"unet_stride must be 1 or 2, got {self.unet_stride!r}")
        if self.iterations < 1:
            raise InvalidInputError(f"iterations must be >= 1, got {self.iterations}")
        if self.unit_range and not self.anscombe:
            raise InvalidInputError("unit_range rescales the Anscombe transform's output: it needs anscombe=True")


def packed_to_colour_planes(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread packed planes (B, 4, h, w) to the masked mosaic M*y (B, 3, 2h, 2w) and M.

    Built from ``pixel_shuffle`` (ONNX DepthToSpace) so the graph exports cleanly; the plane
    order R, Gr, Gb, B is exactly an RGGB tile in pixel_shuffle's channel order.
    """
    if packed.ndim != 4 or packed.shape[1] != 4:
        raise InvalidInputError(f"packed raw must have shape (B, 4, h, w), got {tuple(packed.shape)}")
    weights = packed.new_tensor(_PLANE_COLOUR).reshape(1, 12, 1, 1)
    tiled = packed.repeat(1, 3, 1, 1) * weights
    masked = F.pixel_shuffle(tiled, 2)
    mask = F.pixel_shuffle(torch.ones_like(tiled) * weights, 2)
    return masked, mask


def packed_to_half_planes(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed planes (B, 4, h, w) -> the half-resolution measurement y (B, 3, h, w) = (R,
    (Gr + Gb) / 2, B) and its data-step weight (1, 3, 1, 1) (:data:`HALF_DATA_WEIGHT`)."""
    if packed.ndim != 4 or packed.shape[1] != 4:
        raise InvalidInputError(f"packed raw must have shape (B, 4, h, w), got {tuple(packed.shape)}")
    y = torch.cat([packed[:, 0:1], 0.5 * (packed[:, 1:2] + packed[:, 2:3]), packed[:, 3:4]], dim=1)
    return y, packed.new_tensor(HALF_DATA_WEIGHT).view(1, 3, 1, 1)


def bilinear_fill(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill unmeasured pixels by normalized convolution with a bilinear kernel (fixed)."""
    k = masked.new_tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).expand(3, 1, 3, 3)
    num = F.conv2d(F.pad(masked, (1, 1, 1, 1), mode="reflect"), k, groups=3)
    den = F.conv2d(F.pad(mask, (1, 1, 1, 1), mode="reflect"), k, groups=3)
    return num / den


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with leaky ReLUs. With ``stride`` 2 the first one is a 6x6
    convolution of stride 2: exactly a 3x3 convolution of the 2x2 pixel-unshuffled input (each
    output sees the 3x3 unshuffled cells around it), without the unshuffle's copy."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3 * stride, stride=stride, padding=stride),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling. The U-Net's 1x1 ``up`` convolutions act on each pixel
    alone, so they run before it (on a quarter of the pixels) with the same result as after."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _merge(block: nn.Sequential, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``block(cat([up, skip]))`` without the concatenation: the block's first convolution as
    the sum of its two halves (split by input channel) on each input, the same sum. ONNX
    Runtime adds the second into the first's output buffer; concatenating two thin (8-channel)
    maps costs it layout conversions and a copy (bench/isp_profile.py)."""
    conv, n = block[0], up.shape[1]
    x = F.conv2d(up, conv.weight[:, :n], conv.bias, padding=conv.padding)
    x = x + F.conv2d(skip, conv.weight[:, n:], None, padding=conv.padding)
    return block[1:](x)


class UNetPrior(nn.Module):
    """A 3-scale U-Net: (image (B, 3, H, W), noise std map (B, 1, H, W)) -> residual (B, 3, H, W).

    H and W must be multiples of 4 (two 2x downsamplings; 8 with ``stride`` 2, which runs it on
    the 2x2 pixel-unshuffled input, see ``IspNetConfig.unet_stride``); :class:`DirtyPixelsISP` pads.
    The last layer starts at zero, so an untrained prior leaves its input unchanged.
    """

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32), in_channels: int = 4, stride: int = 1) -> None:
        super().__init__()
        w0, w1, w2 = widths
        self.stride = stride
        self.enc0 = _block(in_channels, w0, stride)
        self.enc1 = _block(w0, w1)
        self.mid = _block(w1, w2)
        self.up1 = nn.Conv2d(w2, w1, 1)
        self.dec1 = _block(2 * w1, w1)
        self.up0 = nn.Conv2d(w1, w0, 1)
        self.dec0 = _block(2 * w0, w0)
        self.out = nn.Conv2d(w0, 3 * stride * stride, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, sigma_map: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(torch.cat([x, sigma_map], dim=1))
        e1 = self.enc1(F.avg_pool2d(e0, 2))
        m = self.mid(F.avg_pool2d(e1, 2))
        d1 = self.dec1(torch.cat([_upsample(self.up1(m)), e1], dim=1))
        d0 = _merge(self.dec0, _upsample(self.up0(d1)), e0)
        out = self.out(d0)
        return F.pixel_shuffle(out, self.stride) if self.stride > 1 else out


def srgb_curve(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve of linear ``x`` on [0, 1]: ``12.92 x`` up to 0.0031308, then
    ``1.055 x^(1/2.4) - 0.055``. Written as the smaller of the two (the power branch, taken from
    0.0031308, lies above the line below the threshold and below it beyond, so the minimum is
    the curve; where the two meet, 0.0031308 to 0.003166, they differ by under 1e-5) and the
    power as ``exp(log(x) / 2.4)``: ONNX Runtime runs Where and a fractional Pow element by
    element, several times slower than Min, Log and Exp (bench/isp_profile.py)."""
    power = 1.055 * torch.exp(torch.log(x.clamp_min(0.0031308)) * (1.0 / 2.4)) - 0.055
    return torch.minimum(12.92 * x, power)


class ColourTone(nn.Module):
    """Learned colour and tone: a 3x3 colour matrix (starts at identity), the sRGB curve,
    and a small pointwise residual network (starts at zero) that can bend it."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.matrix = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.matrix.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
        self.residual = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.LeakyReLU(0.2), nn.Conv2d(hidden, 3, 1))
        nn.init.zeros_(self.residual[2].weight)
        nn.init.zeros_(self.residual[2].bias)

    def forward(self, linear: torch.Tensor) -> torch.Tensor:
        srgb = srgb_curve(self.matrix(linear).clamp(0.0, 1.0))
        return srgb + self.residual(srgb)


class DirtyPixelsISP(nn.Module):
    """The learned ISP. See the module docstring for the computation and the shapes."""

    def __init__(self, config: IspNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or IspNetConfig()
        self.anscombe = Anscombe(self.config.anscombe)
        self.inverse = InverseAnscombe(self.config.anscombe, self.config.unbiased_inverse)
        self.priors = nn.ModuleList(
            UNetPrior(self.config.widths, stride=self.config.unet_stride) for _ in range(self.config.iterations)
        )
        # Positive through exp; lambda = beta at the start weighs measurement and prior equally.
        self.log_lambda = nn.Parameter(torch.zeros(self.config.iterations))
        self.log_beta = nn.Parameter(torch.zeros(self.config.iterations))
        self.tone = ColourTone()

    def data_step(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        """The HQS data-consistency update of iteration ``k``."""
        lam, beta = self.log_lambda[k].exp(), self.log_beta[k].exp()
        return (lam * mask * y + beta * (x - z)) / (lam * mask + beta)

    @property
    def raw_scale(self) -> int:
        """How many times larger (per side) the raw is than this ISP's image: 1 or 2."""
        return self.config.raw_scale

    def reconstruct_linear(self, packed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Packed raw -> denoised, demosaicked linear RGB (B, 3, H, W), before colour/tone
        ((B, 3, H/2, W/2) at half resolution)."""
        h, w = packed.shape[-2:]
        half = self.config.resolution == "half"
        # The U-Net needs sides that are multiples of 4 (8 with unet_stride 2) where it runs:
        # pad the packed planes.
        multiple = 4 * self.config.unet_stride // (1 if half else 2)
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            packed = F.pad(packed, (0, pw, 0, ph), mode="replicate")
        stabilized = self.anscombe(packed, noise)
        if self.config.unit_range:
            low, span = anscombe_span(noise, stabilized)
            stabilized = (stabilized - low) / span
        if half:
            y, mask = packed_to_half_planes(stabilized)
            x = y
        else:
            y, mask = packed_to_colour_planes(stabilized)
            x = bilinear_fill(y, mask)
        sigma_map = noise_std_map(noise, x) if self.config.anscombe else noise[:, 1:2, None, None].expand_as(x[:, :1])
        if self.config.unit_range:
            sigma_map = sigma_map / span
        for k, prior in enumerate(self.priors):
            z = prior(x, sigma_map)
            x = self.data_step(x, z, y, mask, k)
        if self.config.unit_range:
            x = x * span + low
        linear = self.inverse(x, noise)
        return linear[..., :h, :w] if half else linear[..., : 2 * h, : 2 * w]

    def forward(self, packed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.tone(self.reconstruct_linear(packed, noise))
