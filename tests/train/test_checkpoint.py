"""Checkpoints: atomic writes, generator states, loading parts into another model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.model.registry import create_model
from edge_isp.train import checkpoint as ckpt


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"global_step": 1, "weights": torch.ones(3)})
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"global_step": 2, "weights": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["global_step"] == 1


def test_rng_state_round_trip_through_a_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.save_checkpoint(tmp_path / "c.pt", {"rng": [ckpt.rng_state()]})
    first = (random.random(), np.random.rand(), torch.rand(2))
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"][0])
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="not a readable edge-isp checkpoint"):
        ckpt.load_checkpoint(tmp_path / "x.pt")
    torch.save({"state": 1}, tmp_path / "y.pt")
    with pytest.raises(InvalidInputError, match="not an edge-isp checkpoint"):
        ckpt.load_checkpoint(tmp_path / "y.pt")
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "z.pt")


def _save_model(path, model):
    ckpt.save_checkpoint(path, {"stage": "joint", "model_config": model.config.to_dict(), "model": model.state_dict()})


def test_load_submodule_and_mismatches(tmp_path):
    torch.manual_seed(0)
    rec = create_model("dp_s_rec")
    _save_model(tmp_path / "isp.pt", rec)
    joint = create_model("dp_s_cls", num_classes=3, pretrained_backbone=False, width_mult=0.35)
    ckpt.load_submodule(joint, tmp_path / "isp.pt", "isp")
    for (name, a), b in zip(joint.isp.state_dict().items(), rec.isp.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(InvalidInputError, match="holds no 'head' weights"):
        ckpt.load_submodule(joint, tmp_path / "isp.pt", "head")
    bigger = create_model("dp_m_cls", num_classes=3, pretrained_backbone=False, width_mult=0.35)
    with pytest.raises(InvalidInputError, match="does not fit model 'dp_m_cls'"):
        ckpt.load_submodule(bigger, tmp_path / "isp.pt", "isp")


def test_model_from_checkpoint(tmp_path):
    model = create_model("dp_s_cls", num_classes=4, pretrained_backbone=False, width_mult=0.35).eval()
    _save_model(tmp_path / "m.pt", model)
    again = ckpt.model_from_checkpoint(tmp_path / "m.pt")
    packed, noise = torch.rand(1, 4, 16, 16), torch.tensor([[0.01, 0.002]])
    with torch.no_grad():
        assert torch.equal(again(packed, noise), model(packed, noise))


def test_a_relu_detection_head_does_not_load_into_a_softplus_model(tmp_path):
    small = {"num_classes": 3, "pretrained_backbone": False, "width_mult": 0.35}
    old = create_model("dp_s_det", size_activation="relu", **small)
    _save_model(tmp_path / "head.pt", old)
    new = create_model("dp_s_det", **small)
    with pytest.raises(InvalidInputError, match="sizes its boxes through relu, model 'dp_s_det' through softplus"):
        ckpt.load_submodule(new, tmp_path / "head.pt", "head")
    same = create_model("dp_s_det", size_activation="relu", **small)
    ckpt.load_submodule(same, tmp_path / "head.pt", "head")  # the same kind loads
    assert torch.equal(same.head.size[-1].weight, old.head.size[-1].weight)
