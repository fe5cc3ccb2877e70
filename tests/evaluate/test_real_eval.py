"""Evaluation on a real set: labels are the teacher's answers on the clean test images."""

from __future__ import annotations

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.runner import evaluate_task, open_real_eval_data
from edge_isp.model.imagenet_classes import imagenet_class_names
from edge_isp.teacher.cache import load_answers
from tests.evaluate.conftest import make_checkpoint
from tests.tiny_data import make_real_set

TEACHER = ("teacher.model=mobilenet_v2_imagenet", "teacher.input_size=[64, 64]")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = make_real_set(tmp_path_factory.mktemp("real"), "classification", {"train": 2, "val": 2, "test": 5})
    names = list(imagenet_class_names())
    runs = tmp_path_factory.mktemp("runs")
    paths = {
        role: make_checkpoint(runs / role / "best.pt", role, "classification", class_names=names, overrides=TEACHER)
        for role in ("head", "joint")
    }
    return root, paths


def test_scores_agreement_with_the_teachers_top1_and_top5(real, tmp_path):
    root, paths = real
    outcome = evaluate_task(
        "classification", root, tmp_path / "report", checkpoints=paths, settings={"levels": (3.0, 10000.0)}
    )
    result = outcome.result
    assert result.metrics[:4] == ["top1", "top5", "top1_low", "top1_high"] and result.images == 5
    for key in ("a", "e"):
        top1, top5 = result.values[key]["top1"][0], result.values[key]["top5"][0]
        assert all(0.0 <= a <= b <= 1.0 for a, b in zip(top1, top5, strict=True))
        low, high = result.values[key]["top1_low"][0], result.values[key]["top1_high"][0]
        assert all(lo <= t <= hi for lo, t, hi in zip(low, top1, high, strict=True))
    assert "top-5 accuracy" in outcome.paths["markdown"].read_text()
    cache = next((root / "real-classification" / "teacher").iterdir())
    labels = load_answers(cache, "test").labels
    data = open_real_eval_data(root, "classification", "test", {"model": "mobilenet_v2_imagenet",
                                                                "input_size": [64, 64]}, (32, 32))  # fmt: skip
    assert [data[i][1] for i in range(5)] == labels.tolist()
    assert data[0][0].shape == (40, 48, 3) and data[0][0].dtype == np.uint8


def test_a_real_set_needs_checkpoints_that_learnt_from_a_teacher(real, tmp_path):
    root, _ = real
    plain = make_checkpoint(tmp_path / "head.pt", "head", "classification", class_names=list(imagenet_class_names()))
    with pytest.raises(InvalidInputError, match="real set without labels"):
        evaluate_task("classification", root, tmp_path / "report", checkpoints={"head": plain})
