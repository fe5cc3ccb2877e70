"""The generalized Anscombe transform (GAT) for Poisson-Gaussian raw: one convention, the
arithmetic both the network (:mod:`edge_isp.model.anscombe`, torch) and the conventional
ISP's denoiser (:mod:`edge_isp.isp.denoise`, numpy) use.

For a normalized raw value ``x`` with ``var(x) = a * E[x] + sigma^2`` (the model input's
``noise`` ``(a, sigma)``), the convention here is the *stabilized value*

    t(x) = sqrt(a * x + 3/8 * a^2 + sigma^2),    noise std about a / 2,

which stays on about [0, 1], the scale of ``x`` (the network's input). Its unit-variance form
(Murtagh, Starck and Bijaoui 1995, in Foi's form), which a denoiser set for one noise level
wants, is ``D = (2 / a) * t``. Back from ``D``: the algebraic inverse (exact on noise-free
values, biased low at a few photo-electrons), or Makitalo and Foi's closed-form approximation of
the exact unbiased inverse ("Optimal inversion of the generalized Anscombe transformation for
Poisson-Gaussian noise", IEEE TIP 22(1), 2013), in the standardized form (unit Poisson gain,
read noise ``s = sigma / a``)

    x / a = D^2/4 + sqrt(3/2)/(4 D) - 11/(8 D^2) + 5 sqrt(3/2)/(8 D^3) - 1/8 - s^2.

The closed form turns up again below ``D = 2 sqrt(3/8)`` (:data:`ZERO_COUNT_D`, the transform of
a noiseless zero), which no non-negative signal produces on average; callers clamp there.

The functions are plain arithmetic, so the same code runs on numpy arrays and torch tensors
(with autograd): the callers do the clamping and the square root in their own library.
"""

from __future__ import annotations

import math
from typing import TypeVar

SQRT_3_2 = math.sqrt(1.5)
ZERO_COUNT_D = 2.0 * math.sqrt(0.375)

Array = TypeVar("Array")


def stabilized_square(x: Array, a: Array, sigma: Array) -> Array:
    """``t(x)^2 = a * x + 3/8 * a^2 + sigma^2``; negative in the dark, where callers clamp."""
    return a * x + (0.375 * a * a + sigma * sigma)  # the per-image constant summed first


def algebraic_inverse(t: Array, a: Array, sigma: Array) -> Array:
    """``x`` with ``t(x) = t``: exact on noise-free values, not clipped."""
    return (t * t - 0.375 * a * a - sigma * sigma) / a


def unbiased_counts(d: Array, s: Array) -> Array:
    """Makitalo-Foi: the expected count ``x / a`` whose transform's expectation is the
    unit-variance ``d`` (``d >= ZERO_COUNT_D``), for read noise ``s = sigma / a``; callers clip
    the result at 0."""
    # Horner's scheme in 1/d, and the read-noise constant summed per image first: the same
    # polynomial in five whole-map operations fewer than term by term (bench/isp_profile.py).
    r = 1.0 / d
    tail = r * (0.25 * SQRT_3_2 + r * (-11.0 / 8.0 + r * (5.0 / 8.0 * SQRT_3_2)))
    return 0.25 * d * d + tail - (0.125 + s * s)
