"""Evaluating a half-resolution model (raw_scale 2): every pipeline gets the same raw at twice
the picture's sides, and everything is scored on the picture at the evaluation size."""

from __future__ import annotations

import json

import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.pipelines import EvalBatch, build_pipelines, to_picture
from edge_isp.evaluate.runner import evaluate_recon, evaluate_task, open_real_eval_data
from edge_isp.model.registry import create_model
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.simulate import simulate
from edge_isp.train.stages import seeded_generator
from tests.tiny_data import make_real_set


@pytest.fixture(scope="module")
def half_cls(tmp_path_factory, checkpoint_factory):
    runs = tmp_path_factory.mktemp("half")
    return {
        "head": checkpoint_factory(runs / "head.pt", "head", "classification"),
        "baseline": checkpoint_factory(runs / "baseline.pt", "baseline", "classification"),
        "raw": checkpoint_factory(runs / "raw.pt", "raw", "classification"),
        "isp": checkpoint_factory(runs / "isp.pt", "isp", "classification"),
        "joint": checkpoint_factory(runs / "joint.pt", "joint", "classification", isp="dpnh_s"),
        "joint:full": checkpoint_factory(runs / "full.pt", "joint", "classification"),
        "raw:half": checkpoint_factory(runs / "rawh.pt", "raw", "classification", isp="rawh"),
    }


def _batch(raw_scale: int, side: int = 64) -> EvalBatch:
    profile = SensorProfile.load("nexus6p-rear")
    clean = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    sim = simulate(clean, profile, 50.0, generator=seeded_generator("cpu", 0))
    return EvalBatch(sim, profile, "malvar", "none", raw_scale=raw_scale)


def test_every_pipeline_gives_the_picture_of_a_2x_raw(half_cls):
    made = build_pipelines("classification", half_cls)
    assert made.raw_scale == 2
    batch = _batch(2)
    assert batch.sim.packed.shape == (2, 4, 32, 32)  # the 64x64 raw of a 32x32 picture
    keys = set()
    for pipeline in made.pipelines:
        out = pipeline(batch)
        keys.add(pipeline.key)
        assert out.prediction.shape == (2, len(made.class_names))
        if out.image is not None:
            assert out.image.shape == (2, 3, 32, 32), pipeline.key
    assert keys == {"a", "b", "c", "d", "d:half", "e", "e:full"}
    # (a) and (b) see the conventional ISP's rendering of the whole raw, area-averaged.
    full = _batch(1)
    assert full.conventional.shape == (2, 3, 64, 64)
    assert torch.allclose(batch.conventional, torch.nn.functional.avg_pool2d(full.conventional, 2), atol=1e-6)


def test_the_half_resolution_raw_stem_is_pipeline_d_at_the_pictures_size(half_cls):
    # rawh_cls alone asks for the 2x raw, and its image is the packed planes' size, the picture;
    # the full-resolution raw stem's image of the same raw is area-averaged to it.
    made = build_pipelines("classification", {"raw": half_cls["raw:half"], "raw:full": half_cls["raw"]})
    assert made.raw_scale == 2
    batch = _batch(2)
    for pipeline in made.pipelines:
        assert pipeline(batch).prediction.shape == (2, len(made.class_names))
    for name in ("rawh_cls", "raw_cls"):
        stem = create_model(name, pretrained_backbone=False).isp
        image = to_picture(stem(batch.sim.packed, batch.sim.noise), stem, batch)
        assert image.shape == (2, 3, 32, 32), name
    with pytest.raises(InvalidInputError, match="--raw-scale 2"):
        next(p for p in made.pipelines if p.key == "d")(_batch(1))


def test_a_half_resolution_model_is_refused_a_raw_at_the_pictures_size(half_cls, cls_folder, tmp_path):
    made = build_pipelines("classification", {"joint": half_cls["joint"]})
    with pytest.raises(InvalidInputError, match="--raw-scale 2"):
        made.pipelines[0](_batch(1))
    with pytest.raises(InvalidInputError, match="raw_scale 1 is too small"):
        evaluate_task("classification", cls_folder, tmp_path, checkpoints={"joint": half_cls["joint"]}, raw_scale=1)


def test_a_sweep_with_a_half_resolution_checkpoint_simulates_2x_for_all(half_cls, cls_folder, tmp_path):
    checkpoints = {k: half_cls[k] for k in ("head", "joint", "joint:full")}
    settings = {"levels": (3.0, 100.0), "denoise": "none"}
    result = evaluate_task("classification", cls_folder, tmp_path, checkpoints=checkpoints, settings=settings).result
    assert result.settings["raw_scale"] == 2 and result.images == 6
    for key in ("a", "e", "e:full"):
        assert all(0.0 <= v <= 1.0 for v in result.values[key]["top1"][0])
        assert all(v > 0 for v in result.values[key]["psnr"][0])
    # Full-resolution checkpoints alone can be evaluated on the 2x raw too, when asked.
    asked = evaluate_task(
        "classification", cls_folder, tmp_path / "asked", checkpoints={"head": half_cls["head"]},
        settings=settings, raw_scale=2,
    ).result  # fmt: skip
    assert asked.settings["raw_scale"] == 2
    assert asked.values["a"]["psnr"] == result.values["a"]["psnr"]  # the same frames and noise draws


def test_a_half_resolution_detector_is_scored_in_the_pictures_pixels(det_json, tmp_path, checkpoint_factory):
    joint = checkpoint_factory(tmp_path / "joint.pt", "joint", "detection", isp="dpnh_s")
    made = build_pipelines("detection", {"joint": joint})
    out = made.pipelines[0](_batch(2, side=128))
    assert out.det_stride == 2 and out.image.shape == (2, 3, 64, 64) and out.prediction["heatmap"].shape[-1] == 32
    result = evaluate_task(
        "detection", det_json, tmp_path / "r", checkpoints={"joint": joint}, settings={"levels": (30.0,)}
    ).result  # fmt: skip
    assert result.settings["raw_scale"] == 2 and 0.0 <= result.values["e"]["map50"][0][0] <= 1.0


def test_recon_of_a_half_resolution_isp_against_the_conventional_isp_on_the_same_raw(cls_folder, tmp_path,
                                                                                     checkpoint_factory):  # fmt: skip
    isp = checkpoint_factory(tmp_path / "isp.pt", "isp", "classification", isp="dpnh_s")
    result = evaluate_recon(
        cls_folder, tmp_path / "r", checkpoints={"isp": isp}, settings={"levels": (100.0,)},
        denoisers=("nlm",), demosaicnet=False,
    ).result  # fmt: skip
    assert result.settings["raw_scale"] == 2
    assert result.values["isp"]["psnr"][0][0] > 5 and result.values["conv-nlm"]["psnr"][0][0] > 5


def test_real_set_labels_come_from_the_teachers_answers_on_the_half_resolution_picture(tmp_path):
    root = make_real_set(tmp_path, "classification", {"test": 3})
    teacher = {"model": "mobilenet_v2_imagenet", "input_size": [32, 32]}
    data = open_real_eval_data(root, "classification", "test", teacher, (32, 32), raw_scale=2)
    (cache,) = (root / "real-classification" / "teacher").iterdir()
    assert json.loads((cache / "teacher.json").read_text())["teacher"]["via_size"] == [64, 64]
    assert len(data) == 3
