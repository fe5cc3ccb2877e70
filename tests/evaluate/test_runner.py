"""evaluate_task on a data set built by `edge-isp data build` (its held-out test split)."""

from __future__ import annotations

import pytest

from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.evaluate.runner import evaluate_task, open_eval_data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from edge_isp.data import BuildConfig, TaskConfig, build_dataset

    try:
        config = BuildConfig(tasks={"classification": TaskConfig((32, 32), (1, 1, 10))})
        return build_dataset(tmp_path_factory.mktemp("data") / "demo", config)
    except EdgeIspError as exc:
        pytest.skip(f"the demo data set's sources are not installed: {exc}")


def test_evaluates_the_test_split_of_a_built_data_set(built, tmp_path, checkpoint_factory):
    names = built.manifest["class_names"]
    joint = checkpoint_factory(tmp_path / "joint.pt", "joint", "classification", class_names=names)
    outcome = evaluate_task("classification", built.root, tmp_path / "out", checkpoints={"joint": joint},
                            settings={"levels": (6.0,)})  # fmt: skip
    assert outcome.result.images == 10  # the 10 test images, not train or val
    assert outcome.paths["scene"].is_file()
    # Checkpoints trained on other classes are refused, naming both lists.
    other = checkpoint_factory(tmp_path / "other.pt", "joint", "classification")
    with pytest.raises(InvalidInputError, match=r"\['red', 'blue'\].*tshirt_top"):
        evaluate_task("classification", built.root, tmp_path / "x", checkpoints={"joint": other})


def test_open_eval_data_names_what_it_wants(tmp_path):
    with pytest.raises(FileNotFoundError, match="edge-isp data build"):
        open_eval_data(tmp_path / "missing", "classification")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="COCO JSON file"):
        open_eval_data(tmp_path / "file.txt", "detection")
