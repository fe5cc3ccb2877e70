"""Checkpoint roles: finding them, building the pipelines, skipping what is missing,
refusing checkpoints that do not fit."""

from __future__ import annotations

import pytest

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.evaluate.pipelines import build_pipelines, discover_checkpoints, load_for_eval, parse_checkpoint_args


def test_parse_checkpoint_args():
    parsed = parse_checkpoint_args(["joint=a/best.pt", "joint:dark=b.pt", "head=c.pt"])
    assert {k: str(v) for k, v in parsed.items()} == {"joint": "a/best.pt", "joint:dark": "b.pt", "head": "c.pt"}
    for bad in ["joint", "jonit=a.pt", "joint:=a.pt", "joint="]:
        with pytest.raises(InvalidInputError, match="ROLE=PATH"):
            parse_checkpoint_args([bad])


def test_discover_finds_the_run_folders(cls_runs):
    found = discover_checkpoints(cls_runs, "classification")
    assert set(found) == {"head", "baseline", "isp", "raw", "joint"}
    assert found["raw"].parent.name == "joint-raw"
    # The task folder itself works too, and an empty folder finds nothing.
    assert discover_checkpoints(cls_runs / "classification", "classification") == found
    assert discover_checkpoints(cls_runs, "detection") == {}
    with pytest.raises(MissingFileError, match="does not exist"):
        discover_checkpoints(cls_runs / "nowhere", "classification")


def test_missing_checkpoints_skip_their_pipelines_with_a_note(cls_runs):
    found = discover_checkpoints(cls_runs, "classification")
    made = build_pipelines("classification", found)
    assert [p.key for p in made.pipelines] == ["a", "b", "c", "d", "e"]
    assert made.notes == ["(f) joint, no Anscombe: skipped, no checkpoint for noansc"]
    assert made.class_names == ["red", "blue"] and made.image_size == (32, 32)
    by_key = {p.key: p for p in made.pipelines}
    assert not by_key["d"].has_image and by_key["e"].has_image
    assert by_key["a"].trained_on is None and by_key["e"].trained_on.light_range == (2.0, 200.0)
    assert set(by_key["c"].checkpoints) == {"isp", "head"}
    # Without the clean head, (a) and (c) go too.
    fewer = build_pipelines("classification", {k: v for k, v in found.items() if k != "head"})
    assert [p.key for p in fewer.pipelines] == ["b", "d", "e"]
    assert any(n.startswith("(c)") and "head" in n for n in fewer.notes)


def test_labelled_variants_make_their_own_pipelines(cls_runs):
    joint = cls_runs / "classification" / "joint" / "best.pt"
    made = build_pipelines("classification", {"joint": joint, "joint:copy": joint})
    assert [(p.key, p.label) for p in made.pipelines] == [
        ("e", "(e) joint (Dirty Pixels)"),
        ("e:copy", "(e) joint (Dirty Pixels) [copy]"),
    ]


def test_checkpoints_that_do_not_fit_are_refused(cls_runs):
    runs = cls_runs / "classification"
    with pytest.raises(InvalidInputError, match="classification model"):
        build_pipelines("detection", {"joint": runs / "joint" / "best.pt"})
    with pytest.raises(InvalidInputError, match=r"raw_cls.*an ISP with Anscombe layers"):
        build_pipelines("classification", {"joint": runs / "joint-raw" / "best.pt"})
    with pytest.raises(InvalidInputError, match="without Anscombe"):
        build_pipelines("classification", {"noansc": runs / "joint" / "best.pt"})
    with pytest.raises(InvalidInputError, match=r"classes \['red', 'blue'\].*\['cat', 'dog'\]"):
        build_pipelines("classification", {"head": runs / "head" / "best.pt"}, class_names=["cat", "dog"])


def test_a_labelled_head_alone_does_not_make_pipeline_c(cls_runs):
    runs = cls_runs / "classification"
    made = build_pipelines("classification", {"head:x": runs / "head" / "best.pt", "isp": runs / "isp" / "best.pt"})
    assert [p.key for p in made.pipelines] == ["a:x"]
    assert "(c) reconstruction ISP + clean head: skipped, it takes the unlabelled head=PATH" in made.notes


def test_trained_on_records_the_training_blur_and_read_noise_range(tmp_path, checkpoint_factory):
    plain = load_for_eval(checkpoint_factory(tmp_path / "plain.pt", "joint", "classification"))
    assert plain.trained_on.blur == "none" and plain.trained_on.read_noise_range == (1.0, 1.0)
    made = checkpoint_factory(tmp_path / "blur.pt", "baseline", "classification",
                           overrides=('sensor.blur="gaussian:1.5"', "sensor.read_noise_range=[0.5, 2.0]"))  # fmt: skip
    trained = load_for_eval(made).trained_on
    assert trained.blur == "gaussian:1.5" and trained.read_noise_range == (0.5, 2.0)
    assert trained.to_dict()["blur"] == "gaussian:1.5" and trained.to_dict()["read_noise_range"] == [0.5, 2.0]
