"""A user's classification model file read as plain logits (decode = "logits")."""

from __future__ import annotations

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.teacher.file_classifier import open_logits_teacher
from edge_isp.teacher.model_file import TeacherLoadError
from tests.teacher.tiny_models import constant_model


def test_logits_of_each_image_with_named_classes(tmp_path):
    model = constant_model(tmp_path / "cls.onnx", np.float32([[2.0, -1.0, 0.5]]), size=40)
    model.with_suffix(".labels.txt").write_text("cat\ndog\nbird\n")
    teacher = open_logits_teacher(model)
    assert teacher.class_names == ("cat", "dog", "bird") and teacher.input_size == (40, 40)
    images = [np.zeros((30, 50, 3), np.uint8), np.full((100, 80, 3), 255, np.uint8)]
    np.testing.assert_allclose(teacher.logits(images), [[2.0, -1.0, 0.5]] * 2)


def test_unnamed_classes_and_preprocessing_options(tmp_path):
    model = constant_model(tmp_path / "plain.onnx", np.float32([1, 2, 3, 4]), size=16)
    model.with_suffix(".preprocess.json").write_text('{"range": [-1, 1], "mean": [0, 0, 0], "std": [1, 1, 1]}')
    teacher = open_logits_teacher(model)
    assert teacher.class_names == ("class_0", "class_1", "class_2", "class_3") and teacher.value_range == (-1.0, 1.0)
    model.with_suffix(".preprocess.json").write_text('{"std": [0, 1, 1]}')
    with pytest.raises(InvalidInputError, match=r"plain\.preprocess\.json"):
        open_logits_teacher(model)


def test_outputs_that_are_not_logits_are_named(tmp_path):
    boxes = constant_model(tmp_path / "boxes.onnx", np.zeros((1, 5, 6), np.float32))
    with pytest.raises(TeacherLoadError, match=r"boxes\.onnx does not match decode = 'logits'.*\(1, 5, 6\)"):
        open_logits_teacher(boxes)
    wrong = constant_model(tmp_path / "three.onnx", np.zeros((1, 3), np.float32))
    wrong.with_suffix(".labels.txt").write_text("a\nb\n")
    with pytest.raises(TeacherLoadError, match=r"three\.onnx .*one output of 2 logits"):
        open_logits_teacher(wrong)
