"""The generalized Anscombe transform for Poisson-Gaussian raw, and its inverses, as layers.

The convention and the arithmetic are :mod:`edge_isp.sensor.anscombe`'s (shared with the
conventional ISP): the forward transform is the stabilized value

    A(y) = sqrt(max(a * y + 3/8 * a^2 + sigma^2, 0)),    noise std about a / 2,

so values stay on about [0, 1]. Two inverses:

- algebraic: solves A(y) for y; biased at low counts;
- unbiased: Makitalo and Foi's closed form, which removes the bias that dominates below ~10
  photo-electrons.

Shapes: ``y`` is ``(B, C, H, W)``; ``noise`` is ``(B, 2)`` holding ``(a, sigma)`` per image.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.anscombe import ZERO_COUNT_D, algebraic_inverse, stabilized_square, unbiased_counts


def _split_noise(noise: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if noise.ndim != 2 or noise.shape[1] != 2 or noise.shape[0] != like.shape[0]:
        raise InvalidInputError(
            f"noise must have shape (B, 2) = (a, sigma) per image with B={like.shape[0]}, got {tuple(noise.shape)}"
        )
    a = noise[:, 0].clamp_min(1e-8).view(-1, *([1] * (like.ndim - 1)))
    sigma = noise[:, 1].view(-1, *([1] * (like.ndim - 1)))
    return a, sigma


def anscombe(y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward transform. ``y`` (B, C, H, W) normalized raw; returns values with noise std ~a/2."""
    a, sigma = _split_noise(noise, y)
    # The clamp keeps the gradient finite where a dark, noisy pixel goes below the pole.
    return torch.sqrt(stabilized_square(y, a, sigma).clamp_min(1e-12))


def inverse_anscombe(t: torch.Tensor, noise: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Map transformed values ``t`` (B, C, H, W) back to the normalized raw scale.

    With ``unbiased=True`` the Makitalo-Foi closed form is used; it expects ``t`` to be an
    estimate of the *expected* transformed value (a denoised image), which is what the ISP
    produces.
    """
    a, sigma = _split_noise(noise, t)
    if not unbiased:
        return algebraic_inverse(t, a, sigma)
    # In the unit-variance form D = 2/a * t. Below ZERO_COUNT_D (the transform of a zero
    # count) the closed form turns; it is ~0 there, so clamping keeps it monotone and finite.
    d = (t * (2.0 / a)).clamp_min(ZERO_COUNT_D)
    return a * unbiased_counts(d, sigma / a).clamp_min(0.0)


def anscombe_span(noise: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A(0), A(1) - A(0))`` per image, shaped to broadcast over ``like``: where black and
    white land after :func:`anscombe`. ``(A(y) - A(0)) / (A(1) - A(0))`` puts the stabilized
    signal on [0, 1] at every light level (its noise std is then ``a / 2`` over the span);
    without it the stabilized white sits at about ``sqrt(a)``: 0.35 at 3 lux but 0.006 in
    daylight, on the Nexus 6P's scale."""
    a, sigma = _split_noise(noise, like)
    offset = 0.375 * a * a + sigma * sigma
    low = torch.sqrt(offset.clamp_min(1e-12))
    return low, torch.sqrt(a + offset) - low


def noise_std_map(noise: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The stabilized noise std ``a / 2`` as a constant channel shaped like ``like[:, :1]``."""
    a, _ = _split_noise(noise, like)
    return (0.5 * a).expand(like.shape[0], 1, *like.shape[2:])


class Anscombe(nn.Module):
    """Module form of :func:`anscombe`; ``enabled=False`` makes it the identity (an ablation)."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled

    def forward(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return anscombe(y, noise) if self.enabled else y


class InverseAnscombe(nn.Module):
    """Module form of :func:`inverse_anscombe`; identity when ``enabled=False``."""

    def __init__(self, enabled: bool = True, unbiased: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.unbiased = unbiased

    def forward(self, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return inverse_anscombe(t, noise, self.unbiased) if self.enabled else t
