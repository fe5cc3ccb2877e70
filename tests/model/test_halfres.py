"""The half-resolution ISP (issue 17's fast variant): shapes, the packed data step, old configs,
the stride-1 detector stem, and loading an ISP of the other resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.model.anscombe import anscombe, inverse_anscombe
from edge_isp.model.heads import CenterNetDetector
from edge_isp.model.isp import DirtyPixelsISP, IspNetConfig, packed_to_half_planes
from edge_isp.model.joint import ModelConfig
from edge_isp.model.registry import REGISTRY, create_model, get_config
from edge_isp.sensor.cfa import pack
from edge_isp.train.checkpoint import load_submodule, save_checkpoint

NOISE = torch.tensor([[2e-3, 1e-3], [5e-2, 2e-2]])


def half_isp(**kwargs) -> DirtyPixelsISP:
    torch.manual_seed(0)
    return DirtyPixelsISP(IspNetConfig(unit_range=True, resolution="half", **kwargs)).eval()


@pytest.mark.parametrize("hw", [(16, 16), (5, 7), (6, 10)])
def test_output_is_the_packed_planes_size(hw):
    packed = torch.rand(2, 4, *hw)
    with torch.no_grad():
        out = half_isp()(packed, NOISE)
    assert out.shape == (2, 3, *hw)
    assert torch.isfinite(out).all()


def test_half_planes_are_r_mean_green_b_with_inverse_variance_weights():
    packed = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 3)
    y, weight = packed_to_half_planes(packed)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.5, 3.0]
    assert weight.flatten().tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(InvalidInputError, match=r"\(B, 4, h, w\)"):
        packed_to_half_planes(torch.zeros(1, 3, 2, 2))


def test_data_step_weighs_green_twice_and_keeps_the_measurement_when_beta_vanishes():
    isp = half_isp()
    y, weight = packed_to_half_planes(torch.ones(1, 4, 2, 2))
    zero = torch.zeros_like(y)
    # lambda = beta = 1 at the start: R and B halfway, G (two measurements) two thirds.
    step = isp.data_step(zero, zero, y, weight, 0)
    assert step[0, :, 0, 0].tolist() == pytest.approx([0.5, 2 / 3, 0.5])
    with torch.no_grad():
        isp.log_beta.fill_(-30.0)
    far = isp.data_step(torch.full_like(y, 5.0), torch.full_like(y, -3.0), y, weight, 0)
    assert torch.allclose(far, y, atol=1e-6)


def test_with_beta_vanishing_the_isp_returns_the_measured_planes():
    """A trained prior cannot move measured values when beta -> 0: the linear output is the
    inverse Anscombe of (R, mean G, B) stabilized, whatever the U-Net says."""
    isp = half_isp()
    with torch.no_grad():
        isp.log_beta.fill_(-30.0)
        for p in isp.priors.parameters():  # a prior that is far from identity
            p.normal_(0.0, 0.5)
    packed = torch.rand(2, 4, 8, 8) * 0.8 + 0.1
    with torch.no_grad():
        linear = isp.reconstruct_linear(packed, NOISE)
        y, _ = packed_to_half_planes(anscombe(packed, NOISE))
        expected = inverse_anscombe(y, NOISE)
    assert torch.allclose(linear, expected, rtol=1e-4, atol=1e-5)


def test_untrained_half_isp_renders_a_noise_free_flat_field():
    colour = torch.tensor([0.2, 0.5, 0.35])
    mosaic_rgb = colour.view(1, 3, 1, 1).expand(1, 3, 16, 16)
    # R, Gr, Gb, B of a flat linear field are the colour's R, G, G, B.
    packed = colour[[0, 1, 1, 2]].view(1, 4, 1, 1).expand(1, 4, 8, 8)
    noise = torch.tensor([[1e-6, 1e-6]])
    with torch.no_grad():
        linear = half_isp().reconstruct_linear(packed, noise)
    assert linear.shape == (1, 3, 8, 8)
    assert torch.allclose(linear, mosaic_rgb[..., :8, :8], atol=2e-3)


def test_half_planes_of_a_real_mosaic_follow_the_cfa_packing():
    """y from the project's own packing (edge_isp.sensor.cfa.pack) of an RGGB mosaic."""
    rng = np.random.default_rng(0)
    mosaic = rng.random((8, 12)).astype(np.float32)
    packed = torch.from_numpy(pack(mosaic, "RGGB"))[None]
    y, _ = packed_to_half_planes(packed)
    assert np.allclose(y[0, 0].numpy(), mosaic[0::2, 0::2])
    assert np.allclose(y[0, 1].numpy(), (mosaic[0::2, 1::2] + mosaic[1::2, 0::2]) / 2)
    assert np.allclose(y[0, 2].numpy(), mosaic[1::2, 1::2])


def test_registered_half_variants_and_their_stems():
    for size in ("s", "m"):
        for task in ("cls", "det", "rec"):
            config = REGISTRY[f"dpnh_{size}_{task}"]
            assert config.isp.resolution == "half" and config.isp.unit_range and config.raw_scale == 2
        assert REGISTRY[f"dpnh_{size}_det"].stem_stride == 1
        assert REGISTRY[f"dpnh_{size}_cls"].stem_stride == 2
    assert REGISTRY["dpn_s_det"].raw_scale == 1 and REGISTRY["dpn_s_det"].stem_stride == 2
    assert REGISTRY["raw_cls"].raw_scale == 1
    assert create_model("dpnh_s_rec").raw_scale == 2


def test_half_resolution_raw_stem_is_pipeline_d_of_the_half_models():
    # rawh_*: no ISP, one 3x3 convolution on the packed planes; the image is their size.
    for task, stem in (("cls", 2), ("det", 1)):
        config = REGISTRY[f"rawh_{task}"]
        assert config.isp is None and config.raw_resolution == "half" and config.raw_scale == 2
        assert config.stem_stride == stem
    assert REGISTRY["raw_det"].raw_resolution == "full" and REGISTRY["raw_det"].stem_stride == 2
    torch.manual_seed(0)
    model = create_model("rawh_cls", num_classes=4, pretrained_backbone=False, width_mult=0.35).eval()
    packed = torch.rand(2, 4, 12, 20)
    with torch.no_grad():
        image = model.image(packed, NOISE)
        assert image.shape == (2, 3, 12, 20) and model.raw_scale == model.isp.raw_scale == 2
        # Exactly the convolution of the planes and the noise level, no shuffle.
        level = NOISE[:, 1:2, None, None].expand(-1, 1, 12, 20)
        expected = torch.nn.functional.conv2d(
            torch.cat([packed, level], 1), model.isp.conv.weight, model.isp.conv.bias, padding=1
        )
        assert torch.equal(image, expected)
    assert create_model("raw_cls", pretrained_backbone=False).image(packed, NOISE).shape == (2, 3, 24, 40)


def test_configs_written_before_the_fields_load_as_full_resolution_stride_2():
    old = get_config("dpn_s_det").to_dict()
    del old["isp"]["resolution"], old["stem_stride"], old["raw_resolution"]
    loaded = ModelConfig.from_dict(old)
    assert loaded.isp.resolution == "full" and loaded.stem_stride == 2 and loaded.raw_scale == 1
    raw = get_config("raw_det").to_dict()
    del raw["raw_resolution"]
    assert ModelConfig.from_dict(raw).raw_scale == 1
    half = ModelConfig.from_dict(get_config("dpnh_s_det").to_dict())
    assert half == REGISTRY["dpnh_s_det"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"resolution": "quarter"}, "resolution"),
        ({"stem_stride": 3}, "stem_stride"),
        ({"raw_resolution": "quarter", "isp": None}, "raw_resolution must be one of"),
        ({"raw_resolution": "half"}, "a model with an ISP takes IspNetConfig.resolution"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        if "resolution" in kwargs:
            IspNetConfig(**kwargs)
        else:
            ModelConfig(name="x", task="detection", **kwargs)


def test_stride_1_detector_decodes_a_planted_peak_at_stride_2():
    model = create_model("dpnh_s_det", num_classes=3, pretrained_backbone=False, width_mult=0.35).eval()
    assert model.head.stride == 2
    picture = torch.rand(1, 3, 64, 64)
    maps = model.head(picture)
    assert maps["heatmap"].shape[-2:] == (32, 32)
    maps = {k: v.detach().clone() for k, v in maps.items()}
    maps["heatmap"].fill_(-10.0)
    maps["heatmap"][0, 1, 5, 9] = 10.0
    maps["offset"][0, :, 5, 9] = torch.tensor([0.5, 0.25])
    maps["size"][0, :, 5, 9] = torch.tensor([8.0, 6.0])
    box = CenterNetDetector.decode(maps, top_k=1, stride=model.head.stride)["boxes"][0, 0]
    # Centre (9.5, 5.25) cells of 2 px: (19, 10.5) in picture pixels.
    assert box.tolist() == pytest.approx([15.0, 7.5, 23.0, 13.5])


def test_an_isp_of_the_other_resolution_is_refused(tmp_path):
    full = create_model("dpn_s_rec")
    path = tmp_path / "full.pt"
    save_checkpoint(path, {"model": full.state_dict(), "model_config": full.config.to_dict(), "stage": "isp"})
    half = create_model("dpnh_s_cls", pretrained_backbone=False, width_mult=0.35)
    with pytest.raises(InvalidInputError, match=r"full resolution.*half"):
        load_submodule(half, path, "isp")
    same = create_model("dpn_s_cls", pretrained_backbone=False, width_mult=0.35)
    load_submodule(same, path, "isp")
    assert torch.equal(same.isp.log_beta, full.isp.log_beta)
