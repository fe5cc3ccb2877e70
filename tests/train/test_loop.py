"""The trainer end to end on a few tiny images: it learns, resumes bitwise, runs every stage."""

from __future__ import annotations

import socket

import pytest
import torch

from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.train import Trainer, train
from edge_isp.train.checkpoint import load_checkpoint


def _params(path):
    return load_checkpoint(path)["model"]


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_joint_training_lowers_the_loss(cls_data, tmp_path, tiny_config):
    # One fixed batch of 8 images (4 per class), 8 steps end to end through simulated raw.
    # The ImageNet backbone: from scratch, MobileNetV2 needs far more steps to see colour.
    try:
        from edge_isp.model.weights import mobilenet_v2_weights_path

        mobilenet_v2_weights_path()
    except EdgeIspError as exc:
        pytest.skip(f"no ImageNet weights here: {exc}")
    config = tiny_config(cls_data, tmp_path, "run.epochs=8", "data.batch_size=8", "data.train_limit=8",
                         "data.val_limit=2", "optim.schedule=constant", "model.pretrained_backbone=true",
                         "model.width_mult=1.0")  # fmt: skip
    result = train("joint", config)
    losses = [h["train_loss"] for h in result.history]
    assert result.finished and result.global_step == 8
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses
    assert 0.0 <= result.best_metric <= 1.0
    saved = (tmp_path / "config.toml").read_text()
    assert 'name = "dp_s_cls"' in saved and "epochs = 8" in saved
    assert {"last.pt", "best.pt", "config.toml", "history.json"} <= {p.name for p in tmp_path.iterdir()}


def test_resume_after_a_stop_equals_an_uninterrupted_run(cls_data, tmp_path, tiny_config):
    # 4 steps per epoch; stopped after step 5, inside the second epoch.
    whole = train("joint", tiny_config(cls_data, tmp_path / "whole"))
    stopped = train("joint", tiny_config(cls_data, tmp_path / "split", "run.max_steps=5"))
    assert not stopped.finished and stopped.global_step == 5
    state = load_checkpoint(tmp_path / "split" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 5)
    resumed = train("joint", tiny_config(cls_data, tmp_path / "split"), resume=True)
    assert resumed.finished and resumed.global_step == whole.global_step == 8
    _assert_equal_states(_params(tmp_path / "whole" / "last.pt"), _params(tmp_path / "split" / "last.pt"))
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["scheduler"] == b["scheduler"]
    _assert_equal_states(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    drop_time = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
    assert drop_time == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]]


def test_resume_after_a_kill_from_a_mid_epoch_checkpoint(cls_data, tmp_path, monkeypatch, tiny_config):
    whole = train("joint", tiny_config(cls_data, tmp_path / "whole"))
    killed = Trainer("joint", tiny_config(cls_data, tmp_path / "killed", "run.checkpoint_every=2"))
    real_step = killed._train_step

    def step_then_die(batch):
        if killed.global_step == 6:  # the seventh step: the last checkpoint is at step 6
            raise KeyboardInterrupt
        return real_step(batch)

    monkeypatch.setattr(killed, "_train_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["global_step"] == 6
    resumed = train("joint", tiny_config(cls_data, tmp_path / "killed", "run.checkpoint_every=2"), resume=True)
    assert resumed.global_step == whole.global_step == 8
    _assert_equal_states(_params(tmp_path / "whole" / "last.pt"), _params(tmp_path / "killed" / "last.pt"))


def test_ddp_code_path_with_world_size_one_matches_single_process(cls_data, tmp_path, monkeypatch, tiny_config):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    single = train("joint", tiny_config(cls_data, tmp_path / "single", "run.max_steps=3"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    trainer = Trainer("joint", tiny_config(cls_data, tmp_path / "ddp", "run.max_steps=3"))
    assert trainer.dist.enabled and type(trainer.train_module).__name__ == "DistributedDataParallel"
    result = trainer.fit()
    assert not torch.distributed.is_initialized()  # the group is torn down
    assert result.global_step == single.global_step == 3
    _assert_equal_states(_params(tmp_path / "single" / "last.pt"), _params(tmp_path / "ddp" / "last.pt"))


def test_detection_joint_stage(det_data, tmp_path, tiny_config):
    result = train("joint", tiny_config(det_data, tmp_path, "model.name=dp_s_det", "run.epochs=1"))
    assert result.metric_name == "map50" and 0.0 <= result.best_metric <= 1.0
    entry = result.history[0]
    assert entry["train_loss"] > 0 and list(entry["per_level"]) == ["50 e-"]
    assert load_checkpoint(tmp_path / "best.pt")["class_names"] == ["red", "blue"]


def test_isp_then_head_then_joint_initialized_from_both(cls_data, tmp_path, tiny_config):
    isp = train("isp", tiny_config(cls_data, tmp_path / "isp", "model.name=dp_s_rec", "run.epochs=1",
                                   "loss.rec_ssim=0.5"))  # fmt: skip
    assert isp.metric_name == "psnr" and 5.0 < isp.best_metric < 60.0
    head = Trainer("head", tiny_config(cls_data, tmp_path / "head", "run.epochs=1"))
    isp_before = {k: v.clone() for k, v in head.model.isp.state_dict().items()}
    head.fit()
    _assert_equal_states(isp_before, head.model.isp.state_dict())  # the head stage leaves the ISP alone
    joint = Trainer("joint", tiny_config(cls_data, tmp_path / "joint", f"init.isp={tmp_path / 'isp' / 'best.pt'}",
                                         f"init.head={tmp_path / 'head' / 'best.pt'}"))  # fmt: skip
    isp_saved, head_saved = _params(tmp_path / "isp" / "best.pt"), _params(tmp_path / "head" / "best.pt")
    for key, value in joint.model.state_dict().items():
        source = isp_saved if key.startswith("isp.") else head_saved
        assert torch.equal(value, source[key]), key


def test_baseline_stage_trains_the_head_on_the_conventional_isp(cls_data, tmp_path, tiny_config):
    pytest.importorskip("edge_isp.isp.pipeline")
    trainer = Trainer("baseline", tiny_config(cls_data, tmp_path, "run.epochs=1", "baseline.demosaic=bilinear"))
    head_before = {k: v.clone() for k, v in trainer.model.head.state_dict().items()}
    result = trainer.fit()
    assert result.finished and result.metric_name == "top1"
    changed = [k for k, v in trainer.model.head.state_dict().items() if not torch.equal(v, head_before[k])]
    assert changed
    with pytest.raises(InvalidInputError, match="demosaic"):
        Trainer("baseline", tiny_config(cls_data, tmp_path / "bad", "baseline.demosaic=magic"))


class TestErrors:
    def test_missing_data_says_how_to_get_it(self, tmp_path, tiny_config):
        config = tiny_config({"train": tmp_path / "nothing", "val": tmp_path / "nothing"}, tmp_path)
        with pytest.raises(FileNotFoundError, match="edge-isp data build"):
            Trainer("joint", config)
        from edge_isp.train.config import load_config

        root = load_config(None, overrides=[f"data.root={tmp_path / 'demo'}", "run.device=cpu"])
        with pytest.raises(FileNotFoundError, match="edge-isp data build"):
            Trainer("joint", root)
        with pytest.raises(InvalidInputError, match=r"data\.root"):
            Trainer("joint", load_config(None))

    def test_model_must_fit_the_stage(self, cls_data, tmp_path, tiny_config):
        with pytest.raises(InvalidInputError, match=r"stage 'isp' trains a reconstruction model.*dp_s_rec"):
            Trainer("isp", tiny_config(cls_data, tmp_path))
        with pytest.raises(InvalidInputError, match="unknown model"):
            Trainer("joint", tiny_config(cls_data, tmp_path, "model.name=resnet"))

    def test_resume_needs_a_matching_checkpoint(self, cls_data, tmp_path, tiny_config):
        with pytest.raises(FileNotFoundError, match="nothing to resume"):
            Trainer("joint", tiny_config(cls_data, tmp_path), resume=True)
        train("joint", tiny_config(cls_data, tmp_path, "run.max_steps=1"))
        with pytest.raises(InvalidInputError, match="cannot resume"):
            Trainer("joint", tiny_config(cls_data, tmp_path, "model.name=raw_cls"), resume=True)

    def test_detector_needs_sides_in_multiples_of_32(self, det_data, tmp_path, tiny_config):
        with pytest.raises(InvalidInputError, match=r"multiples of 32 pixels, got 48x48; set data\.size"):
            Trainer("joint", tiny_config(det_data, tmp_path, "model.name=dp_s_det", "data.size=[48, 48]"))

    def test_too_few_classes(self, cls_data, tmp_path, tiny_config):
        with pytest.raises(InvalidInputError, match=r"model\.num_classes"):
            Trainer("joint", tiny_config(cls_data, tmp_path, "model.num_classes=1"))
