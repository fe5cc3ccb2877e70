"""One Anscombe convention: the network's layer (torch) and the conventional ISP's transform (numpy)
are the same arithmetic, the ISP's in units of the noise std (a factor 2 / a)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.isp.denoise import anscombe_forward, anscombe_inverse
from edge_isp.model.anscombe import anscombe, inverse_anscombe


@pytest.mark.parametrize(("a", "sigma"), [(1 / 8.0, 0.3), (1 / 800.0, 0.003)])
def test_network_and_isp_agree(a, sigma):
    x = np.linspace(-0.02, 1.2, 257)
    noise = torch.tensor([[a, sigma]], dtype=torch.float64)
    t = anscombe(torch.from_numpy(x).view(1, 1, 1, -1), noise)
    d = anscombe_forward(x, a, sigma)
    inside = a * x + 0.375 * a * a + sigma * sigma > 1e-9  # the layer clamps the dark pole for its gradient
    np.testing.assert_allclose((2.0 / a * t.view(-1).numpy())[inside], d[inside], rtol=1e-12)
    for unbiased in (True, False):
        back = inverse_anscombe(t, noise, unbiased=unbiased).view(-1).numpy()
        np.testing.assert_allclose(back[inside], anscombe_inverse(d, a, sigma, unbiased)[inside], rtol=1e-9, atol=1e-12)
