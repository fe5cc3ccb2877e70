"""The demosaicnet peer: the released weights load into our network, and it demosaics a
clean photo well through every Bayer phase (a wrong phase or crop would cost > 10 dB)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA, mosaic, pack

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("demosaicnet") is None, reason="the demosaicnet package (its weights) is not installed"
)


@pytest.fixture(scope="module")
def model():
    from edge_isp.evaluate.demosaicnet_peer import load_pretrained

    return load_pretrained()


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    from skimage import data

    crop = data.astronaut()[120:168, 140:188].astype(np.float32) / 255.0  # face and hair: edges and colour
    return torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.clamp(0, 1) - b) ** 2).mean()))


@pytest.mark.parametrize("cfa", list(CFA))
def test_demosaics_a_clean_photo_through_every_phase(model, photo, cfa):
    from edge_isp.evaluate.demosaicnet_peer import demosaic_packed, demosaicnet_demosaic

    out = demosaicnet_demosaic(model, mosaic(photo, cfa), cfa)
    assert out.shape == photo.shape
    # Measured 42.1-42.2 dB on this crop; bilinear demosaicking gets 32.1 dB.
    assert _psnr(out, photo) > 38.0
    assert torch.allclose(demosaic_packed(model, pack(mosaic(photo, cfa), cfa), cfa), out)


def test_a_shifted_phase_is_much_worse(model, photo):
    # The same mosaic declared with the wrong pattern: what a one-pixel slip would do.
    from edge_isp.evaluate.demosaicnet_peer import demosaicnet_demosaic

    right = _psnr(demosaicnet_demosaic(model, mosaic(photo, "RGGB"), "RGGB"), photo)
    wrong = _psnr(demosaicnet_demosaic(model, mosaic(photo, "RGGB"), "GRBG"), photo)
    assert right > wrong + 10.0


def test_tiny_images_and_bad_input(model):
    from edge_isp.evaluate.demosaicnet_peer import demosaicnet_demosaic

    flat = torch.full((1, 6, 6), 0.4)
    out = demosaicnet_demosaic(model, flat, "RGGB")
    assert out.shape == (1, 3, 6, 6)
    with pytest.raises(InvalidInputError, match="even"):
        demosaicnet_demosaic(model, torch.zeros(1, 7, 8), "RGGB")


def test_weights_are_the_packages_and_load_strictly():
    from edge_isp.evaluate.demosaicnet_peer import GharbiBayerNet, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(GharbiBayerNet().state_dict())
    assert weights_path().parent.parent.name == "demosaicnet"
