"""Teacher-student training on an unlabelled real set: the cache, the losses, the stages, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.teacher.cache import ensure_cache, load_answers
from edge_isp.train.checkpoint import load_checkpoint
from edge_isp.train.config import TeacherSection, load_config
from edge_isp.train.loop import Trainer, train
from edge_isp.train.losses import distillation_loss
from edge_isp.train.teacher_data import DistillDetection, RealSplit, crop_boxes
from tests.tiny_data import make_real_set


def real_config(root, out, *overrides):
    base = [
        f"data.root={root}",
        "data.size=[32, 32]",
        "data.batch_size=4",
        "data.num_workers=0",
        "model.pretrained_backbone=false",
        "model.width_mult=0.35",
        "run.epochs=2",
        "run.device=cpu",
        "run.progress=false",
        f"run.out={out}",
        "sensor.light_unit=lux",
        "sensor.light_range=[0.5, 20000.0]",
        "sensor.light_split=[10.0, 0.5]",
        "sensor.val_light=[3.0, 10000.0]",
        "teacher.model=mobilenet_v2_imagenet",
        "teacher.input_size=[64, 64]",
    ]
    return load_config(None, overrides=[*base, *overrides])


@pytest.fixture(scope="module")
def cls_real(tmp_path_factory):
    return make_real_set(tmp_path_factory.mktemp("real"), "classification", {"train": 8, "val": 4})


class TestDistillationLoss:
    def test_equals_the_kl_divergence_written_out(self):
        g = torch.Generator().manual_seed(0)
        student, teacher = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
        t = 3.0
        p = np.exp(teacher.numpy() / t) / np.exp(teacher.numpy() / t).sum(1, keepdims=True)
        q = np.exp(student.numpy() / t) / np.exp(student.numpy() / t).sum(1, keepdims=True)
        expected = (p * (np.log(p) - np.log(q))).sum(1).mean() * t * t
        assert float(distillation_loss(student, teacher, t)) == pytest.approx(expected, rel=1e-5)

    def test_zero_when_the_student_agrees_and_refuses_other_shapes(self):
        logits = torch.randn(3, 4)
        assert float(distillation_loss(logits, logits, 2.0)) == pytest.approx(0.0, abs=1e-6)
        with pytest.raises(InvalidInputError, match="differ in shape"):
            distillation_loss(logits, torch.randn(3, 5), 2.0)

    def test_gradient_points_to_the_teacher(self):
        student = torch.zeros(1, 3, requires_grad=True)
        distillation_loss(student, torch.tensor([[4.0, 0.0, 0.0]]), 1.0).backward()
        assert student.grad[0, 0] < 0 < student.grad[0, 1]
        assert torch.allclose(student.grad, F.softmax(student, 1).detach() - F.softmax(torch.tensor([[4.0, 0, 0]]), 1))

    def test_log_balance_is_the_mean_log_of_each_images_divergence(self):
        g = torch.Generator().manual_seed(1)
        student, teacher = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
        t = 2.0
        p = np.exp(teacher.numpy() / t) / np.exp(teacher.numpy() / t).sum(1, keepdims=True)
        q = np.exp(student.numpy() / t) / np.exp(student.numpy() / t).sum(1, keepdims=True)
        per_image = (p * (np.log(p) - np.log(q))).sum(1) * t * t
        expected = np.log(per_image + 0.01).mean()
        assert float(distillation_loss(student, teacher, t, "log")) == pytest.approx(expected, rel=1e-5)
        with pytest.raises(InvalidInputError, match="balance"):
            distillation_loss(student, teacher, t, "median")

    def test_log_balance_weighs_a_nearly_agreeing_image_up(self):
        # Two images: one far from its teacher (a dark frame), one nearly there (daylight). With
        # the mean, the far one's gradient dominates; with the log, each counts by its own size.
        teacher = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
        grads = {}
        for balance in ("mean", "log"):
            student = torch.tensor([[0.0, 3.0, 0.0], [2.5, 0.0, 0.0]], requires_grad=True)
            distillation_loss(student, teacher, 1.0, balance).backward()
            grads[balance] = student.grad.norm(dim=1)
        assert grads["mean"][0] > 5 * grads["mean"][1]
        assert grads["log"][1] > grads["log"][0]

    def test_log_eps_is_the_dial_between_the_log_and_the_mean(self):
        # Each image's gradient is its KL's times 1 / (KL + eps): a large eps brings back the
        # mean's balance (scaled by 1 / eps), the default 0.01 the log's; the value in
        # between sits between them.
        teacher = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
        ratios = {}
        for balance, eps in (("mean", 0.01), ("log", 0.01), ("log", 0.3), ("log", 1e4)):
            student = torch.tensor([[0.0, 3.0, 0.0], [2.5, 0.0, 0.0]], requires_grad=True)
            loss = distillation_loss(student, teacher, 1.0, balance, eps)
            loss.backward()
            grad = student.grad.norm(dim=1)
            ratios[(balance, eps)] = float(grad[0] / grad[1])
            if balance == "log":
                per_image = (
                    distillation_loss(student.detach()[:1], teacher[:1], 1.0),
                    distillation_loss(student.detach()[1:], teacher[1:], 1.0),
                )
                assert float(loss) == pytest.approx(float(np.mean([np.log(float(k) + eps) for k in per_image])))
        assert ratios[("log", 1e4)] == pytest.approx(ratios[("mean", 0.01)], rel=1e-3)
        assert ratios[("log", 0.01)] < ratios[("log", 0.3)] < ratios[("mean", 0.01)]


class TestClassificationStudent:
    def test_joint_run_builds_the_cache_once_and_learns_the_teachers_answers(self, cls_real, tmp_path):
        result = train("joint", real_config(cls_real, tmp_path / "a"))
        assert result.finished and result.metric_name == "top1"
        caches = list((cls_real / "real-classification" / "teacher").iterdir())
        assert len(caches) == 1
        info = json.loads((caches[0] / "teacher.json").read_text())
        assert info["task"] == "classification" and len(info["class_names"]) == 1000
        answers = load_answers(caches[0], "train")
        assert answers.logits.shape == (8, 2, 1000)
        # The mirror image's answer is the teacher's, not a copy of the image's.
        assert not np.allclose(answers.logits[:, 0], answers.logits[:, 1])
        state = load_checkpoint(tmp_path / "a" / "last.pt")
        assert len(state["class_names"]) == 1000 and state["model_config"]["num_classes"] == 1000
        assert set(state["history"][-1]["per_level"]) == {"3 lux", "10000 lux"}
        # A second run reuses the cache: its files are not written again.
        stamp = (caches[0] / "train.npz").stat().st_mtime_ns
        train("joint", real_config(cls_real, tmp_path / "b", "run.max_steps=1"))
        assert (caches[0] / "train.npz").stat().st_mtime_ns == stamp

    def test_validation_label_is_the_teachers_top1_on_the_clean_image(self, cls_real, tmp_path):
        trainer = Trainer("head", real_config(cls_real, tmp_path))
        cache = next((cls_real / "real-classification" / "teacher").iterdir())
        val = load_answers(cache, "val")
        labels = [trainer.val_loader.dataset[i][1] for i in range(4)]
        assert labels == val.logits[:, 0].argmax(1).tolist()

    def test_resume_after_a_stop_equals_an_uninterrupted_run(self, cls_real, tmp_path):
        whole = train("joint", real_config(cls_real, tmp_path / "whole"))
        stopped = train("joint", real_config(cls_real, tmp_path / "split", "run.max_steps=3"))
        assert not stopped.finished
        resumed = train("joint", real_config(cls_real, tmp_path / "split"), resume=True)
        assert resumed.finished and resumed.global_step == whole.global_step
        a = load_checkpoint(tmp_path / "whole" / "last.pt")["model"]
        b = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
        for key in a:
            assert torch.equal(a[key], b[key]), key

    def test_isp_stage_reads_the_images_without_a_teacher(self, cls_real, tmp_path):
        config = real_config(cls_real, tmp_path, "model.name=dp_s_rec", "teacher.model=none", "run.max_steps=1")
        assert train("isp", config).metric_name == "psnr"

    def test_a_real_set_needs_a_teacher_and_a_teacher_needs_a_real_set(self, cls_real, tmp_path):
        with pytest.raises(InvalidInputError, match=r"needs a \[teacher\] section"):
            Trainer("joint", real_config(cls_real, tmp_path, "teacher.model=none"))
        with pytest.raises(InvalidInputError, match="must hold one"):
            Trainer("joint", real_config(tmp_path, tmp_path / "x"))

    def test_a_teacher_that_is_not_a_classifier_is_refused_by_name(self, cls_real, tmp_path):
        with pytest.raises(InvalidInputError, match=r"teacher\.model = 'resnet'"):
            Trainer("joint", real_config(cls_real, tmp_path, "teacher.model=resnet", "teacher.cache=" + str(tmp_path)))
        with pytest.raises(MissingFileError, match="teacher checkpoint"):
            Trainer("joint", real_config(cls_real, tmp_path, f"teacher.model={tmp_path}/gone.pt",
                                         "teacher.cache=" + str(tmp_path)))  # fmt: skip


class _SquareTeacher:
    """Answers with one box per image where the coloured square is, as a detector would."""

    class_names = ("square", "unused")

    def detect(self, image):
        grey = np.abs(image.astype(np.float32) - 115).sum(2) > 120
        ys, xs = np.nonzero(grey)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return box, np.array([0.9], np.float32), np.array([0], np.int32)


class TestDetectionStudent:
    @pytest.fixture()
    def det_real(self, tmp_path):
        root = make_real_set(tmp_path / "data", "detection", {"train": 4, "val": 2}, size=(80, 60))
        folder = root / "real-detection"
        splits = {s: RealSplit(folder, s) for s in ("train", "val")}
        readers = {s: (split.image, len(split)) for s, split in splits.items()}
        cached = ensure_cache(tmp_path / "cache", "k", "detection", _SquareTeacher, readers, {}, show=False)
        return splits, cached

    def test_crop_boxes_by_hand(self):
        boxes = np.array([[10, 10, 20, 30], [0, 0, 4, 4], [35, 0, 45, 10]], np.float32)
        out, keep = crop_boxes(boxes, (8, 0, 40, 32), (64, 64))
        # box 0 fully inside: shifted by 8 in x, scaled by 2; box 1 outside; box 2 half inside (kept).
        assert keep.tolist() == [True, False, True]
        assert out[0].tolist() == [4.0, 20.0, 24.0, 60.0]
        assert out[1].tolist() == [54.0, 0.0, 64.0, 20.0]

    def test_random_crops_move_the_cached_boxes_with_the_pixels(self, det_real):
        splits, cached = det_real
        data = DistillDetection(splits["train"], load_answers(cached, "train"), (64, 48), 0.5, random_crops=True)
        for epoch in range(3):
            data.set_epoch(epoch)
            for i in range(len(data)):
                image, boxes, labels = data[i]
                for box in boxes.numpy():
                    x0, y0, x1, y1 = np.clip(np.round(box).astype(int), 0, [64, 48, 64, 48])
                    inside = image[:, y0:y1, x0:x1].float()
                    # The teacher's box still frames the square: its pixels are mostly colour.
                    assert inside.std(0).mean() > 20, (epoch, i)
                assert labels.tolist() == [0] * len(boxes)
        data.set_epoch(0)
        again = DistillDetection(splits["train"], load_answers(cached, "train"), (64, 48), 0.5, random_crops=True)
        assert torch.equal(data[1][1], again[1][1])

    def test_threshold_and_class_choice(self, det_real):
        splits, cached = det_real
        answers = load_answers(cached, "val")
        assert len(DistillDetection(splits["val"], answers, (64, 48), 0.95)[0][1]) == 0
        only = DistillDetection(splits["val"], answers, (64, 48), 0.5, classes=("unused", "square"))
        assert only.class_names == ["unused", "square"] and only[0][2].tolist() == [1]
        with pytest.raises(InvalidInputError, match="no class 'person'"):
            DistillDetection(splits["val"], answers, (64, 48), 0.5, classes=("person",))


def test_teacher_settings_are_checked():
    assert TeacherSection(kd_balance="log").kd_balance == "log"
    assert TeacherSection(kd_balance="log", kd_log_eps=1.0).kd_log_eps == 1.0
    bad_settings = ({"kd_balance": "median"}, {"temperature": 0.0}, {"score_threshold": 1.0}, {"kd_log_eps": 0.0})
    for bad in (*bad_settings, {"kd_log_eps": float("inf")}):
        with pytest.raises(InvalidInputError, match="teacher\\."):
            TeacherSection(**bad)
