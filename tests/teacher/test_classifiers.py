"""Classification teachers: the ImageNet MobileNetV2, a checkpoint's head, a logits model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.teacher.classifiers import open_classifier_teacher
from edge_isp.teacher.detectors import TeacherLoadError


def colour_model(path: Path, size: int = 8) -> Path:
    """An ONNX classifier whose logits are the mean of each colour channel: (1, 3)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["images", "axes"], ["logits"], keepdims=0)
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph(
        [node], "colours", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], initializer=[axes],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)
    path.with_suffix(".labels.txt").write_text("red\ngreen\nblue\n")
    return path


def test_a_logits_model_file_answers_per_image(tmp_path):
    teacher = open_classifier_teacher(str(colour_model(tmp_path / "c.onnx")))
    assert teacher.class_names == ("red", "green", "blue") and teacher.input_size == (8, 8)
    red, blue = np.zeros((20, 30, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 255
    logits = teacher.logits([red, blue])
    assert logits.argmax(1).tolist() == [0, 2]
    np.testing.assert_allclose(logits[0], [200 / 255, 0, 0], atol=1e-6)
    # MODEL.preprocess.json maps pixel values linearly: [-1, 1] puts black at -1.
    (tmp_path / "c.preprocess.json").write_text('{"range": [-1, 1]}')
    shifted = open_classifier_teacher(str(tmp_path / "c.onnx")).logits([red])
    np.testing.assert_allclose(shifted[0], [2 * 200 / 255 - 1, -1, -1], atol=1e-6)


def test_a_file_whose_outputs_do_not_match_its_labels_is_named(tmp_path):
    path = colour_model(tmp_path / "c.onnx")
    path.with_suffix(".labels.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(TeacherLoadError, match=r"c\.onnx does not match decode = 'logits'.*4 logits"):
        open_classifier_teacher(str(path)).logits([np.zeros((8, 8, 3), np.uint8)])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00not onnx")
    broken.with_suffix(".labels.txt").write_text("a\n")
    with pytest.raises(TeacherLoadError, match=r"broken\.onnx does not load"):
        open_classifier_teacher(str(broken))
    with pytest.raises(InvalidInputError, match=r"teacher\.model = 'model\.h5'"):
        open_classifier_teacher("model.h5")


def test_the_train_command_names_a_broken_teacher_file_and_exits_1(tmp_path, capsys):
    from edge_isp import cli
    from tests.tiny_data import make_real_set

    root = make_real_set(tmp_path / "data", "classification", {"train": 2, "val": 2})
    broken = tmp_path / "teacher.onnx"
    broken.write_bytes(b"garbage")
    broken.with_suffix(".labels.txt").write_text("a\n")
    sets = [f"data.root={root}", "data.size=[32, 32]", f"teacher.model={broken}", "run.device=cpu",
            "model.pretrained_backbone=false", f"run.out={tmp_path / 'run'}"]  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text('[model]\nname = "dp_s_cls"\n')
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "head", "--config", str(config), *[a for s in sets for a in ("--set", s)]])
    assert info.value.code == 1
    err = " ".join(capsys.readouterr().err.split())  # the message is wrapped to the terminal
    assert "teacher.onnx does not load" in err and "Traceback" not in err
