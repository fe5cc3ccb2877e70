"""Training a half-resolution model (raw_scale 2): the raw is simulated at twice data.size, the
picture (target, head input, the teacher's input) is its area average at data.size."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import CenterNetDetector
from edge_isp.teacher.cache import load_answers
from edge_isp.teacher.classifiers import imagenet_teacher
from edge_isp.train.batches import TaskDataset, apply_hflip, area_downsample, to_float
from edge_isp.train.checkpoint import load_checkpoint
from edge_isp.train.loop import Trainer, train
from edge_isp.train.losses import detection_targets
from edge_isp.train.stages import STAGE_SPECS, Stage, seeded_generator
from tests.tiny_data import make_real_set
from tests.train.test_distill import real_config


def test_area_downsample_is_cv2_inter_area_on_uint8_levels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    expected = cv2.resize(image, (24, 32), interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    levels = area_downsample(tensor, 2, to_uint8_levels=True) * 255.0
    assert torch.equal(levels.round(), levels)  # whole uint8 levels
    assert np.array_equal(levels[0].permute(1, 2, 0).numpy().astype(np.uint8), expected)
    plain = area_downsample(tensor, 2)
    assert torch.allclose(plain, torch.nn.functional.avg_pool2d(tensor, 2))
    assert area_downsample(tensor, 1) is tensor
    with pytest.raises(InvalidInputError, match="multiples"):
        area_downsample(tensor[..., :47], 2)


class _Boxes:
    class_names = ("a",)

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return np.zeros((40, 50, 3), np.uint8), np.array([[10, 20, 30, 40]], np.float32), np.array([0])


def test_task_dataset_gives_images_at_twice_the_size_and_boxes_in_the_pictures_pixels():
    full = TaskDataset(_Boxes(), "detection", (100, 80))
    half = TaskDataset(_Boxes(), "detection", (100, 80), raw_scale=2)
    assert tuple(full[0][0].shape) == (3, 80, 100) and tuple(half[0][0].shape) == (3, 160, 200)
    assert torch.equal(full[0][1], half[0][1])
    assert half[0][1].tolist() == [[20.0, 40.0, 60.0, 80.0]]
    native = TaskDataset(_Boxes(), "detection", None, raw_scale=2)
    assert tuple(native[0][0].shape) == (3, 40, 50) and native[0][1].tolist() == [[5.0, 10.0, 15.0, 20.0]]


def test_hflip_mirrors_boxes_in_the_picture_width():
    images = torch.zeros(1, 3, 8, 16)
    boxes = torch.tensor([[[1.0, 0.0, 3.0, 2.0]]])
    _, mirrored = apply_hflip(images, torch.tensor([True]), boxes, torch.tensor([[0]]), raw_scale=2)
    assert mirrored.tolist() == [[[5.0, 0.0, 7.0, 2.0]]]


@pytest.fixture(scope="module")
def cls_real(tmp_path_factory):
    return make_real_set(tmp_path_factory.mktemp("real"), "classification", {"train": 8, "val": 4})


def test_stage_inputs_raw_at_twice_the_picture_and_baseline_area_averaged(cls_real, tmp_path):
    config = real_config(cls_real, tmp_path, "model.name=dpnh_s_cls")
    clean = to_float(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), "cpu")
    joint = Stage(STAGE_SPECS["joint"], config, "classification", 1000, torch.device("cpu"), raw_scale=2)
    (packed, noise), target = joint.inputs(clean, seeded_generator("cpu", 0), 500.0)
    assert packed.shape == (2, 4, 32, 32) and noise.shape == (2, 2) and target.shape == (2, 3, 32, 32)
    assert torch.equal(target, area_downsample(clean, 2, to_uint8_levels=True))
    head = Stage(STAGE_SPECS["head"], config, "classification", 1000, torch.device("cpu"), raw_scale=2)
    (picture,), head_target = head.inputs(clean, None)
    assert torch.equal(picture, target) and torch.equal(head_target, target)
    base = Stage(STAGE_SPECS["baseline"], config, "classification", 1000, torch.device("cpu"), raw_scale=2)
    (rgb,), _ = base.inputs(clean, seeded_generator("cpu", 0), 500.0)
    assert rgb.shape == (2, 3, 32, 32)


def test_the_teacher_answers_on_the_students_picture_with_its_own_cache(cls_real, tmp_path):
    overrides = ("model.name=dpnh_s_cls", "teacher.input_size=[32, 32]", "run.max_steps=1")
    trainer = Trainer("head", real_config(cls_real, tmp_path / "half", *overrides))
    item = trainer.train_ds[3]
    assert tuple(item[0].shape) == (3, 64, 64)  # the image the raw is simulated from
    picture = area_downsample(to_float(item[0][None], "cpu"), 2, to_uint8_levels=True)
    uint8 = (picture[0] * 255).round().byte().permute(1, 2, 0).numpy()
    teacher = imagenet_teacher((32, 32))
    both = teacher.logits([uint8, np.ascontiguousarray(uint8[:, ::-1])])
    # The cached answers (float16) are the teacher's on exactly that picture and its mirror.
    assert np.allclose(item[2].numpy(), both, atol=2e-2, rtol=1e-2)
    full = Trainer("head", real_config(cls_real, tmp_path / "full", *overrides[1:]))
    caches = sorted(p.name for p in (cls_real / "real-classification" / "teacher").iterdir())
    assert len(caches) == 2  # the full-resolution model's answers are another cache
    assert tuple(full.train_ds[3][0].shape) == (3, 32, 32)


def test_isp_head_joint_and_baseline_stages_train_a_half_resolution_classifier(cls_real, tmp_path):
    common = ("run.epochs=1", "teacher.input_size=[32, 32]")
    isp = train("isp", real_config(cls_real, tmp_path / "isp", "model.name=dpnh_s_rec", "teacher.model=none", *common))
    assert isp.finished and np.isfinite(isp.best_metric)
    head = train("head", real_config(cls_real, tmp_path / "head", "model.name=dpnh_s_cls", *common))
    joint_cfg = real_config(
        cls_real, tmp_path / "joint", "model.name=dpnh_s_cls", f"init.isp={tmp_path}/isp/best.pt",
        f"init.head={tmp_path}/head/best.pt", *common,
    )  # fmt: skip
    joint = train("joint", joint_cfg)
    assert head.finished and joint.finished
    state = load_checkpoint(tmp_path / "joint" / "best.pt")
    assert state["model_config"]["isp"]["resolution"] == "half"
    assert set(state["history"][-1]["per_level"]) == {"3 lux", "10000 lux"}
    baseline = real_config(cls_real, tmp_path / "base", "model.name=dpnh_s_cls", "run.max_steps=1", *common)
    assert train("baseline", baseline).global_step == 1


def test_a_half_resolution_detector_trains_on_boxes_in_the_pictures_pixels(det_data, tiny_config, tmp_path):
    config = tiny_config(det_data, tmp_path, "model.name=dpnh_s_det", "data.size=[64, 64]", "run.epochs=1")
    trainer = Trainer("joint", config)
    assert trainer.stage.det_stride == 2 and tuple(trainer.train_ds[0][0].shape) == (3, 128, 128)
    result = trainer.fit()
    assert result.finished and np.isfinite(result.best_metric)
    with pytest.raises(InvalidInputError, match="multiples of 64"):
        Trainer("joint", tiny_config(det_data, tmp_path / "odd", "model.name=dpnh_s_det", "data.size=[48, 48]"))


def test_the_teacher_cache_records_the_step_through_twice_the_size(cls_real, tmp_path):
    """The cache key changes with the picture: teacher.json records the step through 2x."""
    Trainer("head", real_config(cls_real, tmp_path, "model.name=dpnh_s_cls", "teacher.input_size=[32, 32]"))
    folders = list((cls_real / "real-classification" / "teacher").iterdir())
    infos = [json.loads((p / "teacher.json").read_text()) for p in folders]
    assert any(info["teacher"].get("via_size") == [64, 64] for info in infos)
    assert all(load_answers(p, "val").logits.shape[0] == 4 for p in folders)


def test_stride_2_targets_decode_back_to_their_boxes():
    """A detector that predicted its stride-2 targets exactly decodes the boxes it was given
    (in the picture's pixels): the loss's targets and the decoding agree on the stride."""
    boxes = torch.tensor([[[10.0, 6.0, 30.0, 20.0], [40.0, 33.0, 57.0, 61.0]]])
    labels = torch.tensor([[0, 1]])
    targets = detection_targets(boxes, labels, 2, (32, 32), stride=2)
    size = torch.zeros(1, 2, 32 * 32)
    offset = torch.zeros(1, 2, 32 * 32)
    size[0, :, targets.index[0]] = targets.size[0].T
    offset[0, :, targets.index[0]] = targets.offset[0].T
    maps = {
        "heatmap": torch.where(targets.heatmap == 1, 10.0, -10.0),
        "size": size.view(1, 2, 32, 32),
        "offset": offset.view(1, 2, 32, 32),
    }
    decoded = CenterNetDetector.decode(maps, top_k=2, stride=2)
    order = decoded["labels"][0].argsort()
    assert torch.allclose(decoded["boxes"][0][order], boxes[0], atol=1e-4)
