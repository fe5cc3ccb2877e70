"""Accuracy per precision per light level, on models whose answers are known in advance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edge_isp.errors import InvalidInputError
from edge_isp.export.accuracy import (
    DRAW_SEED_STEP,
    AccuracyReport,
    MetricAccumulator,
    OnnxModel,
    accuracy_report,
    evaluate_models,
)
from edge_isp.export.evalset import (
    EvalImages,
    LightLevel,
    light_levels,
    load_images,
    open_dataset,
    simulate_inputs,
)
from edge_isp.export.precision import convert_fp16

from .conftest import ColourClassifier, export_module, make_coco, make_colour_folder

BOX = (16.0, 8.0, 48.0, 40.0)


class FixedDetector(nn.Module):
    """Always answers the same K=2 detections: ``first`` box with score 0.9 and a far-off box."""

    def __init__(self, first=BOX, label=0) -> None:
        super().__init__()
        self.register_buffer("boxes", torch.tensor([list(first), [0.0, 0.0, 4.0, 4.0]]))
        self.label = label

    def forward(self, raw, noise):
        b = raw.shape[0]
        zero = (raw.sum((1, 2, 3)) + noise.sum(1)).view(b, 1, 1) * 0
        boxes = self.boxes.unsqueeze(0).expand(b, 2, 4) + zero
        scores = torch.tensor([0.9, 0.1]).expand(b, 2) + zero[:, 0]
        labels = torch.tensor([self.label, 1], dtype=torch.int32).expand(b, 2)
        return boxes, scores, labels


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    root = tmp_path_factory.mktemp("acc")
    data = make_colour_folder(root / "data", per_class=4, size=32)
    model = export_module(ColourClassifier(), root / "c.fp32.onnx", packed_hw=(16, 16), task="classification",
                          class_names=["blue", "red"], outputs=["logits"], batch=4)  # fmt: skip
    return data, model


def test_onnx_model_pads_a_fixed_batch(colour):
    _, path = colour
    model = OnnxModel(path)
    assert model.batch == 4
    raw = np.random.default_rng(0).random((6, 4, 16, 16), dtype=np.float32)
    out = model.run(raw, np.zeros((6, 2), np.float32))["logits"]
    assert out.shape == (6, 2)
    np.testing.assert_allclose(out[:, 0], raw[:, 3].mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], raw[:, 0].mean((1, 2)), rtol=1e-5)


def test_report_on_a_right_a_converted_and_a_wrong_model(colour, profile, tmp_path):
    data, fp32 = colour
    dataset = open_dataset(data, "classification")
    assert dataset.class_names == ["blue", "red"]
    images = load_images(dataset, "classification", (32, 32))
    assert images.images.shape == (8, 3, 32, 32) and images.targets.tolist() == [0] * 4 + [1] * 4
    fp16 = convert_fp16(fp32, tmp_path / "c.fp16.onnx")
    wrong = export_module(ColourClassifier(swap=True), tmp_path / "w.onnx", packed_hw=(16, 16),
                          task="classification", class_names=["blue", "red"], outputs=["logits"])  # fmt: skip
    levels = light_levels(profile, [2000.0, 200.0], "electrons")
    report = accuracy_report({"fp32": fp32, "fp16": fp16, "int8": wrong}, images, profile, levels)
    assert report.results["fp32"] == {"2000 e-": 100.0, "200 e-": 100.0}
    assert report.results["fp16"] == report.results["fp32"]
    assert report.results["int8"] == {"2000 e-": 0.0, "200 e-": 0.0}
    assert report.within_tolerance("fp16") and not report.within_tolerance("int8")
    assert report.drop("int8") == {"2000 e-": 100.0, "200 e-": 100.0}
    table = report.table()
    assert "top-1 % on 8 images" in table and "0.0 (-100.0)" in table and "100.0 (+0.0)" in table
    assert "int8: NOT within 1 point(s)" in table and "fp16: within 1 point(s)" in table
    data_json = report.to_json()
    assert data_json["within_tolerance"] == {"fp16": True, "int8": False}
    assert data_json["levels"][0] == {"value": 2000.0, "unit": "electrons", "electrons": 2000.0, "label": "2000 e-"}


def test_same_seed_same_frames(profile):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 16, 16), dtype=np.uint8)
    a = simulate_inputs(images, profile, 8.0, seed=3, chunk=2)
    b = simulate_inputs(images, profile, 8.0, seed=3, chunk=2)
    c = simulate_inputs(images, profile, 8.0, seed=4, chunk=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (5, 4, 8, 8) and a[1].shape == (5, 2)


def test_detection_map_of_known_answers(tmp_path, profile):
    coco = make_coco(tmp_path / "coco", count=3)
    dataset = open_dataset(coco, "detection")
    images = load_images(dataset, "detection", (64, 64))
    np.testing.assert_allclose(images.targets[0][0], [BOX])
    hit = export_module(FixedDetector(), tmp_path / "hit.onnx", packed_hw=(32, 32), task="detection",
                        class_names=["square", "other"], outputs=["boxes", "scores", "labels"])  # fmt: skip
    miss = export_module(FixedDetector(label=1), tmp_path / "miss.onnx", packed_hw=(32, 32), task="detection",
                         class_names=["square", "other"], outputs=["boxes", "scores", "labels"])  # fmt: skip
    levels = [LightLevel(30.0, "lux", 80.0)]
    report = accuracy_report({"fp32": hit, "int8": miss}, images, profile, levels)
    assert report.metric == "mAP@0.5 % (all-point)"
    assert report.results["fp32"]["30 lux"] == pytest.approx(100.0)
    assert report.results["int8"]["30 lux"] == 0.0  # right box, wrong class


def test_metric_accumulator_counts():
    acc = MetricAccumulator("classification", 3)
    acc.add({"logits": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}, np.array([1, 2]))
    assert acc.value() == 50.0
    with pytest.raises(InvalidInputError, match=r"no images"):
        MetricAccumulator("detection", 2).value()
    with pytest.raises(InvalidInputError, match=r"only classification and detection"):
        MetricAccumulator("reconstruction", 2)


def test_report_needs_the_same_network_and_data(colour, profile, tmp_path):
    data, fp32 = colour
    images = load_images(open_dataset(data, "classification"), "classification", (32, 32))
    levels = [LightLevel(30.0, "lux", 80.0)]
    with pytest.raises(InvalidInputError, match=r"compares against fp32"):
        accuracy_report({"fp16": fp32}, images, profile, levels)
    other = export_module(ColourClassifier(), tmp_path / "o.onnx", packed_hw=(8, 8), task="classification",
                          class_names=["blue", "red"], outputs=["logits"])  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"not the same network"):
        accuracy_report({"fp32": fp32, "fp16": other}, images, profile, levels)
    renamed = EvalImages(images.images, images.targets, ["navy", "red"], "classification")
    with pytest.raises(InvalidInputError, match=r"differ from the model's"):
        accuracy_report({"fp32": fp32}, renamed, profile, levels)


def test_report_without_fp32_rows_cannot_compute_drops():
    report = AccuracyReport("classification", "top-1 %", 1, "p", [], {"fp16": {}})
    with pytest.raises(InvalidInputError, match=r"no fp32"):
        report.drop("fp16")


def test_noise_draws_are_more_paired_evaluations(colour, profile):
    # Two draws score each image on two noise draws: the mean of the one-draw reports at the
    # two draws' seeds (the second draw's seeds are the first's plus DRAW_SEED_STEP).
    data, fp32 = colour
    images = load_images(open_dataset(data, "classification"), "classification", (32, 32))
    levels = light_levels(profile, [1.0, 4.0], "electrons")
    models = {"fp32": OnnxModel(fp32)}
    both = evaluate_models(models, images, profile, levels, seed=5, draws=2)["fp32"]
    first = evaluate_models(models, images, profile, levels, seed=5)["fp32"]
    second = evaluate_models(models, images, profile, levels, seed=5 + DRAW_SEED_STEP)["fp32"]
    for label in both:
        assert both[label] == pytest.approx((first[label] + second[label]) / 2)
    report = accuracy_report({"fp32": fp32}, images, profile, levels, seed=5, draws=2)
    assert report.results["fp32"] == both and report.to_json()["noise_draws"] == 2
    assert "on 8 images x 2 noise draws per light level" in report.table()
    with pytest.raises(InvalidInputError, match="noise draws"):
        evaluate_models(models, images, profile, levels, draws=0)
