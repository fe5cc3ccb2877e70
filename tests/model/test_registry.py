"""Every registered variant: shapes, dtypes, forward and backward; configs; the detector decode."""

from __future__ import annotations

import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import DETECTOR_STRIDE, CenterNetDetector
from edge_isp.model.joint import JointModel, ModelConfig
from edge_isp.model.registry import REGISTRY, create_model, get_config, list_models


@pytest.mark.parametrize("name", list_models())
def test_variant_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, pretrained_backbone=False, width_mult=0.35)
    packed = torch.rand(2, 4, 32, 32)
    noise = torch.tensor([[0.01, 0.005], [0.1, 0.05]])
    out = model(packed, noise)
    task = REGISTRY[name].task
    if task == "classification":
        assert out.shape == (2, 5) and out.dtype == torch.float32
        loss = out.logsumexp(dim=1).mean()
    elif task == "detection":
        # Half-resolution detectors (stride-1 stem) give the full-resolution ones' map sizes.
        assert out["heatmap"].shape == (2, 5, 64 // DETECTOR_STRIDE, 64 // DETECTOR_STRIDE)
        assert out["size"].shape == out["offset"].shape == (2, 2, 16, 16)
        loss = sum(v.mean() for v in out.values())
    else:
        side = 64 // REGISTRY[name].raw_scale  # a half-resolution ISP's picture is half the raw's
        assert out.shape == (2, 3, side, side)
        loss = out.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    # The ISP (or raw stem) is in the gradient path: end-to-end training reaches it.
    isp_grads = [p.grad for p in model.isp.parameters() if p.grad is not None]
    assert isp_grads and any(torch.count_nonzero(g) > 0 for g in isp_grads)


def test_registry_has_the_ablations():
    names = list_models()
    assert {"dp_s_cls", "dp_s_det", "dp_s_rec", "raw_cls", "raw_det", "dp_s_noansc_cls"} <= set(names)
    assert REGISTRY["raw_cls"].isp is None
    assert REGISTRY["dp_s_noansc_cls"].isp.anscombe is False
    assert REGISTRY["dp_s_cls"].isp.widths == (8, 16, 32)
    assert REGISTRY["dpn_s_det"].isp.unit_range and not REGISTRY["dp_s_det"].isp.unit_range
    assert list_models("reconstruction") == sorted(n for n in names if n.endswith("_rec"))


def test_config_round_trip_and_overrides():
    config = get_config("dp_m_det", num_classes=3)
    assert config.num_classes == 3 and config.isp.widths == (16, 32, 64)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(get_config("raw_cls").to_dict()).isp is None
    # A config written before unit_range existed loads without it.
    old = get_config("dp_s_cls").to_dict()
    del old["isp"]["unit_range"]
    assert ModelConfig.from_dict(old) == get_config("dp_s_cls")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: get_config("nope"), "unknown model 'nope'"),
        (lambda: get_config("dp_s_cls", colour="red"), "bad override"),
        (lambda: ModelConfig(name="x", task="segmentation"), "task must be one of"),
        (lambda: ModelConfig(name="x", task="reconstruction", isp=None), "needs an ISP"),
        (lambda: ModelConfig(name="x", task="classification", num_classes=0), "num_classes"),
    ],
)
def test_bad_configs(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_detector_decode_finds_a_planted_peak():
    maps = {
        "heatmap": torch.full((1, 3, 8, 8), -10.0),
        "size": torch.zeros(1, 2, 8, 8),
        "offset": torch.zeros(1, 2, 8, 8),
    }
    maps["heatmap"][0, 2, 5, 3] = 5.0
    maps["size"][0, :, 5, 3] = torch.tensor([12.0, 20.0])
    maps["offset"][0, :, 5, 3] = torch.tensor([0.25, 0.5])
    out = CenterNetDetector.decode(maps, top_k=4)
    assert out["labels"][0, 0].item() == 2
    assert out["scores"][0, 0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())
    cx, cy = (3 + 0.25) * DETECTOR_STRIDE, (5 + 0.5) * DETECTOR_STRIDE
    torch.testing.assert_close(out["boxes"][0, 0], torch.tensor([cx - 6, cy - 10, cx + 6, cy + 10]))
    assert (out["scores"][0, 1:] < 1e-3).all()


def test_joint_image_is_the_isp_output():
    model = JointModel(get_config("dp_s_cls", pretrained_backbone=False, width_mult=0.35)).eval()
    packed, noise = torch.rand(1, 4, 16, 16), torch.tensor([[0.01, 0.01]])
    torch.testing.assert_close(model.image(packed, noise), model.isp(packed, noise))


def _size_head_grad(activation: str) -> float:
    """The gradient reaching the size head's last layer when its output is negative everywhere."""
    torch.manual_seed(0)
    det = CenterNetDetector(3, pretrained=False, width_mult=0.35, size_activation=activation)
    with torch.no_grad():
        det.size[-1].bias.fill_(-50.0)  # what a large early update can do to one unit
    out = det(torch.rand(2, 3, 64, 64))
    (out["size"] - 16.0).abs().mean().backward()  # the L1 pull toward a 16 px box
    return float(det.size[-1].weight.grad.abs().sum())


def test_softplus_box_sizes_keep_learning_where_relu_dies():
    # Detection seed 2 lost its box heights to a ReLU unit that went negative everywhere:
    # all boxes 0 px tall, mAP 0, and nothing brought it back. Softplus still passes a gradient.
    assert _size_head_grad("relu") == 0.0
    assert _size_head_grad("softplus") > 0.0


def test_size_activation_in_the_config():
    assert get_config("dp_s_det").size_activation == "softplus"
    config = get_config("dp_s_det", num_classes=3, pretrained_backbone=False, width_mult=0.35)
    assert ModelConfig.from_dict(config.to_dict()) == config
    # A config written before the field existed is a ReLU model, and builds as one.
    legacy = {k: v for k, v in config.to_dict().items() if k != "size_activation"}
    old = ModelConfig.from_dict(legacy)
    assert old.size_activation == "relu"
    for cfg, expect_zero in ((old, True), (config, False)):
        head = JointModel(cfg).eval().head
        with torch.no_grad():
            head.size[-1].bias.fill_(-50.0)
            size = head(torch.rand(1, 3, 64, 64))["size"]
        assert bool((size == 0).all()) is expect_zero
    with pytest.raises(InvalidInputError, match="size_activation must be one of softplus, relu"):
        get_config("dp_s_det", size_activation="exp")
