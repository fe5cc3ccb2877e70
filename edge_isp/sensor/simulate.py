"""The raw simulator: clean sRGB images -> realistic low-light Bayer raw through a sensor profile.

Pipeline, per image (batched, in torch, on the input's device and dtype):

1. sRGB -> linear sRGB (inverse tone curve), then linear sRGB -> linear camera RGB
   (inverse colour matrix and white balance: fixed from the profile, or random as in
   Brooks et al. 2019; see :mod:`edge_isp.sensor.colour_torch`).
2. Optical blur of the linear image (:mod:`edge_isp.sensor.optics`).
3. Mosaic through the profile's CFA.
4. Light: a camera value of 1.0 collects ``electrons_at_white`` photo-electrons on average.
   Shot noise is Poisson in electrons; the analogue gain sets the system gain K (DN/e-)
   and the read noise (DN, Gaussian or Tukey-lambda) through ``profile.noise_at``; row
   noise adds one Gaussian offset per sensor row. Then the black level, rounding to
   whole DN and clipping to [0, white level]: what the sensor would deliver.
5. Normalization for the model: ``(raw_dn - black) / (white - black) * d``, packed to
   planes R, Gr, Gb, B. The digital gain ``d = range_dn / (electrons_at_white * K)`` makes
   the scene's white land at 1.0 whatever the light level; the model's noise parameters
   ``(a, sigma)`` are ``profile.normalized_noise(gain, d)``, so ``var = a * x + sigma^2``
   on that scale (row noise comes on top of it).

Gain ("auto", :mod:`edge_isp.sensor.exposure`, shared with the runtime's numpy synthesis):
the analogue gain that brings white to full scale, ``electrons_at_white * K(g) = white -
black``, clipped to [1, ``profile.max_analogue_gain``]; the digital gain does the rest. So
``d > 1`` only when the gain is at its maximum, and ``d < 1`` only when white would saturate
the sensor even at base gain (an over-exposed capture: everything above ``d`` clips). For
the nexus6p-rear profile, whose read noise is constant in electrons, ``a = 1 /
electrons_at_white`` and ``sigma = read_e / electrons_at_white``: the Dirty Pixels paper's
noise model.

Gradients: the result is differentiable with respect to the image. Poisson noise has no
reparameterization, and a Gaussian stand-in is wrong where it matters most (a few
electrons: discrete and skewed), so the exact noise is sampled and passed straight
through: ``y = clean + (noisy - clean).detach()``. The gradient is then that of the
expected raw, ``E[y]``, which is what an image-side optimizer (or a learned optic) can
steer; the noise's dependence on the signal only changes the variance. Rounding is
straight-through the same way; clipping keeps its true (zero) gradient.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor, nn

from edge_isp.errors import InvalidInputError
from edge_isp.sensor import colour_torch
from edge_isp.sensor.cfa import mosaic, pack, unpack
from edge_isp.sensor.exposure import choose_exposure, tukey_lambda_std
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.optics import blur_image
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

UNPROCESS_MODES = ("fixed", "random")


@dataclasses.dataclass(frozen=True, eq=False)
class SimulatedRaw:
    """A batch of simulated raw frames and what they were made from. ``B`` images, ``H x W``.

    Attributes:
        raw_dn: ``(B, H, W)`` the sensor output in DN, black level included, rounded
            (unless ``quantize=False``) and clipped to [0, white level]; input dtype.
        packed: ``(B, 4, H/2, W/2)`` the model input: black subtracted per plane, divided
            by (white - black), times ``digital_gain``; planes R, Gr, Gb, B.
        noise: ``(B, 2)`` the noise parameters ``(a, sigma)`` on the scale of ``packed``.
        analogue_gain: ``(B,)`` the sensor gain used (1.0 = base gain).
        digital_gain: ``(B,)`` the gain ``d`` applied after normalization.
        electrons_at_white: ``(B,)`` mean photo-electrons for a camera value of 1.0.
        target_linear: ``(B, 3, H, W)`` the SHARP clean linear camera RGB, on the scale of
            ``packed`` (white at ``1 / white_balance``); what a restoration should recover.
        blurred_linear: ``(B, 3, H, W)`` the clean linear camera RGB after the optical blur:
            the noise-free signal the sensor saw, ``E[packed] = pack(mosaic(blurred_linear))``
            below clipping. Equal to ``target_linear`` without blur.
        target_srgb: ``(B, 3, H, W)`` the clean sharp sRGB input, [0, 1].
        rgb_to_camera: ``(B, 3, 3)`` linear sRGB -> white-balanced camera RGB used.
        white_balance: ``(B, 3)`` the white-balance gains used (camera R, G, B).
    """

    raw_dn: Tensor
    packed: Tensor
    noise: Tensor
    analogue_gain: Tensor
    digital_gain: Tensor
    electrons_at_white: Tensor
    target_linear: Tensor
    blurred_linear: Tensor
    target_srgb: Tensor
    rgb_to_camera: Tensor
    white_balance: Tensor

    def to_frames(
        self, profile: SensorProfile, exposure_time_s: float = 0.0, sensor: str | None = None
    ) -> list[RawFrame]:
        """One uint16 :class:`RawFrame` per image, with the profile's CFA and levels and the
        digital gain, so the model input of ``frame`` at its own size
        (:mod:`edge_isp.contract.model_input`) reproduces ``packed[i]``."""
        raw = self.raw_dn.detach().round().clamp(0, profile.white_level).cpu().numpy().astype(np.uint16)
        return [
            RawFrame(
                data=raw[i],
                cfa=profile.cfa,
                bit_depth=profile.bit_depth,
                black_level=profile.black_level,
                white_level=profile.white_level,
                analogue_gain=float(self.analogue_gain[i]),
                exposure_time_s=exposure_time_s,
                sensor=sensor or profile.name,
                digital_gain=float(self.digital_gain[i]),
            )
            for i in range(raw.shape[0])
        ]


def sample_log_uniform(
    batch: int,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    *,
    what: str = "values",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``(B,)`` values log-uniform over ``[low, high]``, drawn on ``generator``'s device
    (CPU without one unless ``device`` says), then moved to ``device``. ``what`` names
    them in the error for a bad range."""
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise InvalidInputError(f"{what} need 0 < low <= high, got low={low}, high={high}")
    where = generator.device if generator is not None else device
    u = torch.rand(int(batch), dtype=torch.float64, device=where, generator=generator)
    values = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return values.to(dtype=dtype, device=device)


def sample_light_levels(
    batch: int,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Photo-electrons at white ``(B,)``, log-uniform over ``[low, high]`` electrons."""
    return sample_log_uniform(batch, low, high, generator, what="light levels (electrons)", device=device, dtype=dtype)


def electrons_from_lux(profile: SensorProfile, lux: float | Tensor) -> Tensor:
    """Photo-electrons at white for scene illuminance ``lux`` (a number or ``(B,)``), via
    ``profile.electrons_at_white``; same shape, device and float dtype as a tensor input."""
    values = torch.as_tensor(lux, dtype=torch.float64)
    per_lux = profile.electrons_at_white(1.0)
    flat = values.detach().cpu().reshape(-1)
    if not (torch.isfinite(flat).all() and (flat > 0).all()):
        raise InvalidInputError(f"lux must be positive numbers, got {flat.tolist()[:8]}")
    out = values * per_lux
    if isinstance(lux, Tensor):
        return out.to(dtype=lux.dtype if lux.is_floating_point() else torch.float32, device=lux.device)
    return out.float()


def _per_image(value: float | Tensor, batch: int, name: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(batch, float(array))
    if array.shape != (batch,):
        raise InvalidInputError(f"{name} must be a number or have shape ({batch},), got shape {array.shape}")
    if not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise InvalidInputError(f"{name} must be positive finite numbers, got {array.tolist()[:8]}")
    return array


def _check_image(srgb: Tensor) -> None:
    if not isinstance(srgb, Tensor) or srgb.ndim != 4 or srgb.shape[1] != 3:
        raise InvalidInputError(
            f"simulate expects sRGB images of shape (B, 3, H, W), got {type(srgb).__name__} "
            f"with shape {tuple(getattr(srgb, 'shape', ()))}"
        )
    if not srgb.is_floating_point():
        raise InvalidInputError(f"simulate expects a float tensor in [0, 1], got dtype {srgb.dtype}")
    height, width = srgb.shape[-2:]
    if height % 2 or width % 2:
        raise InvalidInputError(
            f"image height and width must be even (a Bayer tile is 2x2), got {height}x{width}; crop or pad it first"
        )
    low, high = float(srgb.detach().min()), float(srgb.detach().max())
    if not (low >= -1e-3 and high <= 1 + 1e-3):
        raise InvalidInputError(
            f"sRGB values must lie in [0, 1], got [{low:.4g}, {high:.4g}] "
            "(0-255 images: divide by 255; clamp resampling overshoot)"
        )


def _read_noise(shape: tuple[int, ...], lambdas: list[float | None], like: Tensor, generator) -> Tensor:
    """Unit-variance read noise ``shape``: Gaussian, or Tukey-lambda per image where set."""
    noise = torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
    for i, lam in enumerate(lambdas):
        if lam is None:
            continue
        eps = torch.finfo(like.dtype).eps
        u = torch.rand(shape[1:], dtype=like.dtype, device=like.device, generator=generator).clamp(eps, 1 - eps)
        logistic = abs(lam) < 1e-4
        sample = torch.log(u) - torch.log1p(-u) if logistic else (u**lam - (1 - u) ** lam) / lam
        noise[i] = sample / tukey_lambda_std(lam)
    return noise


@torch.no_grad()
def _noisy_signal_dn(mean_electrons: Tensor, models: list[NoiseAtGain], generator) -> Tensor:
    """One noisy draw of the signal above black, DN ``(B, H, W)``, from the mean electrons
    ``(B, H, W)``: Poisson electrons times K, plus read noise and one offset per row."""
    batch, height, _ = mean_electrons.shape

    def per_image(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=mean_electrons.dtype, device=mean_electrons.device).view(batch, 1, 1)

    shot = torch.poisson(mean_electrons, generator=generator) * per_image([m.gain_dn_per_e for m in models])
    read = _read_noise(tuple(mean_electrons.shape), [m.read_noise_lambda for m in models], mean_electrons, generator)
    rows = torch.randn(batch, height, 1, dtype=mean_electrons.dtype, device=mean_electrons.device, generator=generator)
    return (
        shot + read * per_image([m.read_noise_dn for m in models]) + rows * per_image([m.row_noise_dn for m in models])
    )


def simulate(
    srgb: Tensor,
    profile: SensorProfile,
    electrons_at_white: float | Tensor,
    *,
    blur: Tensor | None = None,
    analogue_gain: str | float | Tensor = "auto",
    unprocess: str = "fixed",
    quantize: bool = True,
    noise: bool = True,
    read_noise_scale: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
) -> SimulatedRaw:
    """Simulate the raw a sensor with ``profile`` records of the scenes ``srgb``.

    Args:
        srgb: ``(B, 3, H, W)`` clean sRGB in [0, 1], H and W even; float32 or float64, any device.
        profile: the sensor's levels, CFA, colour and noise.
        electrons_at_white: mean photo-electrons for a camera value of 1.0 (a number or
            ``(B,)``); from lux with :func:`electrons_from_lux`. Not differentiable.
        blur: optional PSF ``(kh, kw)`` or ``(B, kh, kw)`` summing to 1, applied to the
            linear image (:mod:`edge_isp.sensor.optics`).
        analogue_gain: ``"auto"`` (see the module docstring) or the gain(s) to use, a number
            or ``(B,)`` in (0, ``profile.max_analogue_gain``].
        unprocess: ``"fixed"`` (the profile's colour matrix and white balance) or
            ``"random"`` (Brooks et al. 2019, per image).
        quantize: round to whole DN (straight-through gradient).
        noise: add shot, read and row noise; False gives the expected raw.
        read_noise_scale: multiplies the profile's read noise (a number or ``(B,)``), and
            ``sigma`` of the noise parameters with it: a camera like this one but for its
            read noise. Training over a range of it shows a model noise parameters off one
            camera's ``(a, sigma)`` line (another sensor's); 1 is the profile itself.
        generator: random source, on the same device as ``srgb``; None uses torch's global one.

    Returns:
        :class:`SimulatedRaw`.

    Example:
        >>> profile = SensorProfile.load("nexus6p-rear")
        >>> sim = simulate(torch.rand(2, 3, 64, 64), profile, electrons_at_white=8.0)
        >>> sim.packed.shape, sim.noise.shape
        (torch.Size([2, 4, 32, 32]), torch.Size([2, 2]))
    """
    _check_image(srgb)
    if unprocess not in UNPROCESS_MODES:
        raise InvalidInputError(f"unprocess must be one of {', '.join(UNPROCESS_MODES)}, got {unprocess!r}")
    if generator is not None and generator.device.type != srgb.device.type:
        raise InvalidInputError(
            f"the generator is on {generator.device} but the images are on {srgb.device}; "
            "make the generator on the images' device"
        )
    batch, _, height, width = srgb.shape
    dtype, device = srgb.dtype, srgb.device
    electrons = _per_image(electrons_at_white, batch, "electrons_at_white")
    if isinstance(analogue_gain, str):
        asked: list[str | float] = [analogue_gain] * batch
    else:
        asked = [float(g) for g in _per_image(analogue_gain, batch, "analogue_gain")]
    exposures = [choose_exposure(profile, float(e), g) for e, g in zip(electrons, asked, strict=True)]
    gains = np.array([x.analogue_gain for x in exposures])
    digital = np.array([x.digital_gain for x in exposures])
    electrons = np.array([x.electrons_at_white for x in exposures])  # daylight: the exposure is cut
    read_scale = _per_image(read_noise_scale, batch, "read_noise_scale")
    models = []
    for g, s in zip(gains, read_scale, strict=True):
        at_gain = profile.noise_at(float(g))
        models.append(dataclasses.replace(at_gain, read_noise_dn=at_gain.read_noise_dn * float(s)))
    k_dn_per_e = np.array([m.gain_dn_per_e for m in models])
    noise_params = []
    for g, d, s in zip(gains, digital, read_scale, strict=True):
        a, sigma = profile.normalized_noise(float(g), float(d))
        noise_params.append((a, sigma * float(s)))

    def per_image(values) -> Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype, device=device)

    if unprocess == "fixed":
        rgb_to_cam, white_balance = colour_torch.profile_rgb_to_camera(profile, dtype, device)
        rgb_to_cam, white_balance = rgb_to_cam.expand(batch, 3, 3), white_balance.expand(batch, 3)
    else:
        rgb_to_cam = colour_torch.random_rgb_to_camera(batch, generator=generator, dtype=dtype, device=device)
        white_balance = colour_torch.random_white_balance(batch, generator=generator, dtype=dtype, device=device)

    linear = colour_torch.unprocess(colour_torch.srgb_to_linear(srgb), rgb_to_cam, white_balance)
    if blur is None:
        blurred = linear
    else:
        total = float(blur.detach().sum(dim=(-2, -1)).double().sub(1).abs().max())
        if not total < 1e-3:
            raise InvalidInputError(f"a blur kernel must sum to 1 (it moves light, never adds it); off by {total:.3g}")
        blurred = blur_image(linear, blur)

    cfa = profile.cfa
    black_planes = torch.tensor(profile.black_level, dtype=dtype, device=device).view(4, 1, 1)
    black = unpack(black_planes.expand(4, height // 2, width // 2), cfa)
    k_b = per_image(k_dn_per_e).view(batch, 1, 1)
    mean_electrons = per_image(electrons).view(batch, 1, 1) * mosaic(blurred, cfa).clamp(min=0)
    raw = black + k_b * mean_electrons
    if noise:
        noisy = black + _noisy_signal_dn(mean_electrons.detach(), models, generator)
        raw = raw + (noisy - raw).detach()
    if quantize:
        raw = raw + (torch.round(raw) - raw).detach()
    raw = raw.clamp(0.0, profile.white_level)

    d_b = per_image(digital)
    normalized = (raw - black) / (profile.white_level - black) * d_b.view(batch, 1, 1)
    return SimulatedRaw(
        raw_dn=raw,
        packed=pack(normalized, cfa),
        noise=per_image(noise_params),
        analogue_gain=per_image(gains),
        digital_gain=d_b,
        electrons_at_white=per_image(electrons),
        target_linear=linear,
        blurred_linear=blurred,
        target_srgb=srgb,
        rgb_to_camera=rgb_to_cam,
        white_balance=white_balance,
    )


class RawSimulator(nn.Module):
    """:func:`simulate` as a module: the profile and options fixed, the blur kernel a buffer
    (so ``.to(device)`` moves it). ``forward(srgb, electrons_at_white, generator=None)``."""

    def __init__(
        self,
        profile: SensorProfile,
        *,
        blur: Tensor | None = None,
        analogue_gain: str | float = "auto",
        unprocess: str = "fixed",
        quantize: bool = True,
        noise: bool = True,
    ) -> None:
        super().__init__()
        self.profile = profile
        self.register_buffer("blur", blur)
        self.analogue_gain = analogue_gain
        self.unprocess = unprocess
        self.quantize = quantize
        self.noise = noise

    def forward(
        self, srgb: Tensor, electrons_at_white: float | Tensor, generator: torch.Generator | None = None
    ) -> SimulatedRaw:
        return simulate(
            srgb,
            self.profile,
            electrons_at_white,
            blur=self.blur,
            analogue_gain=self.analogue_gain,
            unprocess=self.unprocess,
            quantize=self.quantize,
            noise=self.noise,
            generator=generator,
        )
