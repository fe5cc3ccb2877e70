"""The conventional pipeline beside the learned one: a conventional ISP and an rgb-input model run
on the same frames (`run --conventional-model`): what it refuses, that it sees exactly what the
baseline stage trained it on, and that its answers land on the scene and in the results."""

from __future__ import annotations

import json
import re
import types

import numpy as np
import pytest

from edge_isp.cli import main
from edge_isp.contract.metadata import ModelMetadata, metadata_of_backend
from edge_isp.contract.model_input import Preprocessor
from edge_isp.errors import InvalidInputError
from edge_isp.isp.pipeline import IspConfig
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.conventional import (
    ConventionalModel,
    check_conventional_model,
    conventional_isp_of,
    rgb_input_size,
)
from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.runtime.sources import SimulatedSource
from edge_isp.sensor.profile import SensorProfile

from .onnx_models import brightness_classifier, rgb_spot_detector, spot_detector
from .test_pipeline_flow import FPS, HEIGHT, WIDTH, Collect, white_square_scene

SIZE = (WIDTH, HEIGHT)
LEARNED = ModelMetadata(task="detection", input_size=SIZE)
RGB = ModelMetadata(task="detection", input_size=SIZE, input_kind="rgb")


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("conventional")
    return types.SimpleNamespace(
        raw=spot_detector(root / "raw.onnx", WIDTH, HEIGHT),
        rgb=rgb_spot_detector(root / "rgb.onnx", WIDTH, HEIGHT, conventional_isp={"demosaic": "bilinear",
                                                                                  "denoise": "none"}),
        rgb_small=rgb_spot_detector(root / "rgb-small.onnx", WIDTH // 2, HEIGHT // 2),
        rgb_cls=rgb_spot_detector(root / "rgb-cls.onnx", WIDTH, HEIGHT, task="classification"),
        cls=brightness_classifier(root / "cls.onnx"),
    )  # fmt: skip


def test_check_refuses_a_raw_model_another_task_and_another_size():
    check_conventional_model(RGB, SIZE, LEARNED, SIZE)  # fine
    check_conventional_model(RGB, None, LEARNED, SIZE)  # a dynamic size runs at the learned one's
    with pytest.raises(InvalidInputError, match=r"takes raw input .* belongs in --model.*--input rgb"):
        check_conventional_model(LEARNED, SIZE, LEARNED, SIZE)
    with pytest.raises(InvalidInputError, match="is a classification model but the learned model is a detection"):
        check_conventional_model(RGB.replace(task="classification"), SIZE, LEARNED, SIZE)
    with pytest.raises(InvalidInputError, match="learned model here is a reconstruction model"):
        check_conventional_model(RGB.replace(task="reconstruction"), SIZE, LEARNED.replace(task="reconstruction"), SIZE)
    with pytest.raises(InvalidInputError, match=r"takes 64x48 pictures but the learned model sees 128x96.*128x96"):
        check_conventional_model(RGB, (64, 48), LEARNED, SIZE)


def test_the_isp_comes_from_the_metadata_and_an_unknown_one_is_refused():
    assert conventional_isp_of(RGB) == IspConfig()  # malvar, no denoising
    named = RGB.replace(conventional_isp={"demosaic": "bilinear", "denoise": "nlm"})
    assert (conventional_isp_of(named).demosaic, conventional_isp_of(named).denoise) == ("bilinear", "nlm")
    with pytest.raises(InvalidInputError, match=r"names an ISP this runtime lacks.*demosaic"):
        conventional_isp_of(RGB.replace(conventional_isp={"demosaic": "magic", "denoise": "none"}))


def test_the_picture_is_what_the_baseline_stage_trained_on(profile):
    """The runtime renders the learned model's input as the baseline stage renders simulated raw:
    equal, denoiser and its noise level included, to `conventional_isp_batch` of training."""
    torch = pytest.importorskip("torch")
    from edge_isp.train.batches import conventional_isp_batch

    source = SimulatedSource(profile, scene=white_square_scene(), paced=False, fps=FPS, lux=30.0)
    with source:
        frame = source.read(1.0)
    model_input = Preprocessor(profile, SIZE)(frame)
    stub = types.SimpleNamespace(input_specs=lambda: [])
    isp = IspConfig(demosaic="malvar", denoise="nlm")
    ours = ConventionalModel(stub, None, profile, isp).picture(model_input)
    sim = types.SimpleNamespace(
        packed=torch.from_numpy(model_input.raw),
        noise=torch.tensor([model_input.measured_noise], dtype=torch.float64),
        white_balance=torch.tensor([profile.white_balance], dtype=torch.float64),
        rgb_to_camera=torch.linalg.inv(torch.tensor([profile.color_matrix], dtype=torch.float64)),
    )
    training = conventional_isp_batch(sim, profile, "malvar", "nlm").numpy()
    assert ours.shape == (1, 3, HEIGHT, WIDTH) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, training, atol=2e-5)
    # And it is a picture of the scene: the square is the bright part.
    assert ours.mean(axis=1).max() > 0.8 and np.median(ours) < 0.4


def test_the_pipeline_runs_it_on_the_conventional_frames_and_its_boxes_land_on_the_square(profile, models):
    scene = white_square_scene()
    source = SimulatedSource(profile, scene=scene, paced=False, fps=FPS, lux=300.0)
    learned, rgb = make_backend(models.raw), make_backend(models.rgb)
    rgb_info = metadata_of_backend(rgb)
    assert rgb_info.input_kind == "rgb" and rgb_input_size(rgb, rgb_info) == SIZE
    conventional = ConventionalModel(rgb, Postprocessor(rgb_info), profile, conventional_isp_of(rgb_info))
    out = Collect()
    pipeline = Pipeline(
        source, learned, Preprocessor(profile, SIZE), Postprocessor(metadata_of_backend(learned)), [out],
        profile=profile, config=PipelineConfig(when_full="block", max_frames=8, conventional_every=2),
        conventional=conventional,
    )  # fmt: skip
    metrics = pipeline.run(handle_signals=False)

    assert [r.index for r in out.results] == list(range(8))
    for r in out.results:
        ran = r.index % 2 == 0
        assert ("conventional" in r.results) == ran == (r.conventional is not None)
        if not ran:
            continue
        (det,) = r.results["conventional"]["detections"]
        assert det["label"] == "spot" and det["score"] > 0.5
        (truth,) = scene.truth(r.index / FPS)["boxes"]
        cx, cy = (det["box"][0] + det["box"][2]) / 2, (det["box"][1] + det["box"][3]) / 2
        assert truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3], (r.index, det, truth)
        assert r.latency_ms["conventional_inference"] > 0 and r.latency_ms["conventional_isp"] > 0
    assert metrics["conventional_frames"] == 4 and metrics["frames"] == 8
    assert metrics["latency_ms"]["conventional_inference"]["p50"] > 0
    assert not rgb._is_open and not learned._is_open  # both closed with the pipeline


def test_the_pipeline_needs_conventional_frames_for_a_conventional_model(profile, models):
    rgb = make_backend(models.rgb)
    conventional = ConventionalModel(rgb, Postprocessor(metadata_of_backend(rgb)), profile)
    source = SimulatedSource(profile, scene=white_square_scene(), paced=False, fps=FPS)
    with pytest.raises(InvalidInputError, match="conventional_every >= 1"):
        Pipeline(source, make_backend(models.raw), Preprocessor(profile, SIZE), Postprocessor(LEARNED),
                 conventional=conventional)  # fmt: skip


@pytest.mark.parametrize(
    "which, model, says",
    [
        ("rgb", "raw", "takes raw input"),
        ("rgb", "rgb_cls", "is a classification model but the learned model is a detection model"),
        ("rgb", "rgb_small", "takes 64x48 pictures but the learned model sees 128x96"),
        ("main", "rgb", "no 'raw' input .* runs as --conventional-model"),
    ],
)
def test_run_refuses_with_one_clear_message(models, capsys, which, model, says):
    main_model = models.rgb if which == "main" else models.raw
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--source", "sim", "--model", str(main_model), "--conventional-model",
              str(getattr(models, model)), "--max-frames", "1"])  # fmt: skip
    assert exit_.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and re.search(says, err), err


def test_run_records_both_answers(models, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["run", "--source", "sim", "--lux", "300", "--model", str(models.raw), "--conventional-model",
                 str(models.rgb), "--max-frames", "4", "--process-all", "--record", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "conventional model" in printed and "(bilinear, denoise none), every 1 frame(s)" in printed
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    for line in lines:
        learned, conventional = line["results"]["detections"], line["results"]["conventional"]["detections"]
        assert [d["label"] for d in learned] == ["spot"] and [d["label"] for d in conventional] == ["spot"]
