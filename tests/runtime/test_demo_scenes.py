"""`edge-isp demo`: which scene and model each choice runs, the held-out footage it replays
(never a training frame), the real classifier's top-5 ImageNet names, and the error when the
footage is not installed."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_isp.cli import demo_commands, main
from edge_isp.contract.metadata import metadata_of_backend
from edge_isp.contract.model_input import live_preprocessor
from edge_isp.data import real_sources
from edge_isp.data.real_build import RealBuildConfig
from edge_isp.errors import MissingFileError
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.interfaces import SourceEnded
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.runtime.sources import FootageSource, heldout, open_source, parse_source_spec
from edge_isp.sensor.profile import SensorProfile
from edge_isp.shipped import default_model, model_or_shipped

MODELS = Path(__file__).resolve().parents[2] / "models"
VTEST = real_sources.vtest_video()
VTEST_FRAMES = 795  # OpenCV's vtest.avi, counted by decoding it


def _demo_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-isp")
    demo_commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["demo", *argv])


@pytest.fixture
def started(monkeypatch):
    """Run the demo's option handling; record what it would start instead of starting it."""
    calls = []
    monkeypatch.setattr(demo_commands, "live", lambda args, **kw: calls.append((args, kw)) or 0)

    def start(*argv: str) -> tuple[argparse.Namespace, dict]:
        args = _demo_args(list(argv))
        assert args.func(args) == 0
        return calls[-1]

    return start


def test_the_demo_runs_the_real_detector_on_held_out_footage_by_default(started):
    args, how = started()
    assert how["model"] == default_model("det") and how["model"].parent.name == "real-det"
    assert how["source_spec"] == "heldout:video" and (how["backend"], how["device"]) == ("onnxruntime", "cpu")
    assert args.lux == demo_commands.DEFAULT_LUX == 3.0 and args.size == (640, 480) and args.fps == 15.0
    assert args.conventional_every == demo_commands.CONVENTIONAL_EVERY
    assert args.top_k == 5 and args.http == "127.0.0.1:8080"


def test_classification_runs_the_real_classifier_and_garments_the_garment_models(started):
    _, how = started("--task", "classification")
    assert how["model"].parent.name == "real-cls" and how["source_spec"] == "heldout:photos"
    args, how = started("--scene", "garments")
    assert how["model"].parent.name == "garment-det" and how["source_spec"] == "sim" and args.lux is None
    _, how = started("--scene", "garments", "--task", "classification")
    assert how["model"].parent.name == "garment-cls"
    _, how = started("--model", "garment-det")  # a shipped model by its name
    assert how["model"].resolve() == (MODELS / "garment-det" / "model.onnx").resolve()
    with pytest.raises(MissingFileError, match=r"not a file, nor a shipped model.*garment-cls.*garment-det"):
        model_or_shipped("no-such-model")


def test_held_out_frames_are_the_builds_test_blocks_and_never_near_a_training_frame():
    config = RealBuildConfig()
    held = heldout.held_out_frames(VTEST_FRAMES, config)
    built = real_sources.video_splits(VTEST_FRAMES, config.block_frames, config.gap_frames, config.frame_stride)
    assert {f for f, split in built.items() if split == "test"} <= set(held)  # the build's test frames, all
    assert all(built.get(f, "test") == "test" for f in held)
    trained = np.array([f for f, split in built.items() if split == "train"])
    distance = np.abs(np.array(held)[:, None] - trained[None, :]).min()
    assert distance > config.gap_frames // 2
    assert len(held) >= 100 and held == sorted(held)  # 10 s and more of footage at its 10 FPS


def test_a_frame_subset_plays_in_its_order_holding_repeats(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(12):
        image = np.full((64, 96, 3), 10, np.uint8)
        image[24:40, 8 + 4 * i : 24 + 4 * i] = 255  # a white square whose column tells the frame
        writer.write(image)
    writer.release()
    profile = SensorProfile.load("nexus6p-rear")
    with FootageSource(path, profile, frames=[5, 2, 2, 9], lux=3000, paced=False) as source:
        frames = [source.read() for _ in range(4)]
        with pytest.raises(SourceEnded):
            source.read()
    black = float(np.mean(profile.black_level))
    for frame, index in zip(frames, [5, 2, 2, 9], strict=True):
        columns = frame.data[24:40].astype(np.float32).mean(axis=0) - black
        bright = np.flatnonzero(columns > 0.5 * columns.max())
        assert abs(int(bright.min()) - (8 + 4 * index)) <= 1, (index, bright)


@pytest.mark.skipif(not VTEST.is_file(), reason="opencv-doc's vtest.avi is not installed")
def test_the_held_out_video_source_delivers_the_held_out_frames_at_the_demos_size():
    assert parse_source_spec("heldout:video") == ("heldout", "video")
    source = open_source("heldout:video", size=(640, 480), lux=3, paced=False)
    assert isinstance(source, FootageSource) and source.frames == heldout.held_out_frames(VTEST_FRAMES)
    assert source.loop and source.frame_size == (640, 480)


@pytest.mark.skipif(not (MODELS / "real-cls" / "model.onnx").is_file(), reason="models/real-cls is not here")
def test_the_real_classifier_names_five_imagenet_classes_on_a_held_out_photograph():
    profile = SensorProfile.load("nexus6p-rear")
    with make_backend(MODELS / "real-cls" / "model.onnx", "onnxruntime", threads=1) as backend:
        info = metadata_of_backend(backend)
        assert info.task == "classification" and len(info.class_names) == 1000
        assert info.class_names[0].startswith("tench")  # ImageNet's class 0
        pre = live_preprocessor(profile, info.input_size, auto_exposure=False, noise_range=info.noise_range)
        with open_source("heldout:photos", profile=profile, lux=30, paced=False) as source:
            frame = source.read()
            model_input = pre(frame)
        labels = Postprocessor(info, top_k=5)(backend.infer(model_input.feed()), model_input.geometry)["labels"]
    assert [item["label"] for item in labels] == [info.class_names[item["class_id"]] for item in labels]
    assert len(labels) == 5 and labels[0]["score"] >= labels[-1]["score"] and frame.data.shape == (512, 512)


def test_missing_footage_is_one_paragraph_naming_the_file_and_the_bootstrap(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "usr" / "vtest.avi"
    monkeypatch.setattr(real_sources, "VTEST_VIDEO", missing)
    with pytest.raises(MissingFileError) as refused:
        heldout.held_out_video()
    assert str(missing) in str(refused.value) and "scripts/bootstrap.sh" in str(refused.value)
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--max-frames", "1", "--http", "127.0.0.1:0"])
    err = capsys.readouterr().err.replace("\n  ", "")  # the message is wrapped at 100 columns
    assert exited.value.code == 1 and str(missing) in err and "scripts/bootstrap.sh" in err
