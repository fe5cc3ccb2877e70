"""Merging the sweeps of repeated training runs: rows concatenated, spread over runs, paired
differences of the joint pipeline, refusals when the sweeps measured different things."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from edge_isp.cli import eval_commands
from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.merge import load_sweep, merge_results, paired_differences
from edge_isp.evaluate.report import markdown, write_report
from edge_isp.evaluate.sweep import SweepResult, SweepSettings, level_table
from edge_isp.sensor.profile import SensorProfile


def _run_result(joint: list[float], conventional: list[float], checkpoint: str) -> SweepResult:
    """One training run's sweep at 3 and 30 lux, one noise seed, pipelines (a) and (e)."""
    profile = SensorProfile.load("nexus6p-rear")
    settings = SweepSettings(task="classification", levels=(3.0, 30.0))
    pipelines = [
        {"key": "a", "label": "(a) conventional", "has_image": True, "checkpoints": {"head": f"{checkpoint}/h.pt"},
         "trained_on": None, "training": "clean images (no raw)"},
        {"key": "e", "label": "(e) joint", "has_image": True, "checkpoints": {"joint": f"{checkpoint}/j.pt"},
         "trained_on": None, "training": "simulated raw"},
    ]  # fmt: skip
    values = {
        "a": {"top1": [conventional], "psnr": [[20.0, 25.0]], "ssim": [[0.5, 0.6]]},
        "e": {"top1": [joint], "psnr": [[18.0, 22.0]], "ssim": [[0.4, 0.5]]},
    }
    return SweepResult(
        settings.to_dict(), level_table(profile, settings.levels, "lux"), pipelines, ["top1", "psnr", "ssim"],
        values, images=10,
    )  # fmt: skip


def _three_runs() -> list[SweepResult]:
    return [
        _run_result([0.40, 0.70], [0.10, 0.60], "seed0"),
        _run_result([0.50, 0.72], [0.30, 0.66], "seed1"),
        _run_result([0.45, 0.74], [0.20, 0.60], "seed2"),
    ]


def test_rows_concatenate_and_the_spread_is_over_runs():
    merged = merge_results(_three_runs(), ["seed0", "seed1", "seed2"])
    assert merged.values["e"]["top1"] == [[0.40, 0.70], [0.50, 0.72], [0.45, 0.74]]
    (mean3, std3), (mean30, std30) = merged.summary("e", "top1")
    assert mean3 == pytest.approx(0.45) and std3 == pytest.approx(0.05)  # sample std of 0.40, 0.50, 0.45
    assert mean30 == pytest.approx(0.72) and std30 == pytest.approx(0.02)
    assert merged.settings["runs"] == ["seed0", "seed1", "seed2"]
    assert merged.pipelines[1]["checkpoints"] == [{"joint": f"seed{i}/j.pt"} for i in range(3)]


def test_paired_differences_by_hand():
    merged = merge_results(_three_runs(), ["s0", "s1", "s2"])
    (d3, s3), (d30, s30) = paired_differences(merged, "e", "a", "top1")
    # e - a per run at 3 lux: 0.30, 0.20, 0.25; at 30 lux: 0.10, 0.06, 0.14.
    assert d3 == pytest.approx(0.25) and s3 == pytest.approx(0.05)
    assert d30 == pytest.approx(0.10) and s30 == pytest.approx(0.04)


def test_markdown_names_the_runs_and_has_the_paired_table():
    text = markdown(merge_results(_three_runs(), ["s0", "s1", "s2"]))
    assert "3 training runs (`s0`, `s1`, `s2`) x noise seeds 0 (cells: mean ± std over the 3 runs)" in text
    assert "| (e) joint | 45.0 ± 5.0 | 72.0 ± 2.0 |" in text
    assert "## (e) minus each pipeline, paired within runs: top-1 accuracy (%)" in text
    assert "| (a) conventional | 25.0 ± 5.0 | 10.0 ± 4.0 |" in text


def test_one_run_has_no_paired_table():
    assert "paired within runs" not in markdown(_three_runs()[0])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: dataclasses.replace(r, images=11), "images"),
        (lambda r: dataclasses.replace(r, settings={**r.settings, "profile": "other"}), "profile"),
        (lambda r: dataclasses.replace(r, settings={**r.settings, "blur": "gaussian:1.5"}), "blur"),
        (lambda r: dataclasses.replace(r, pipelines=r.pipelines[:1]), "pipelines"),
        (lambda r: dataclasses.replace(r, settings={**r.settings, "raw_scale": 2}), "raw_scale"),
    ],
)
def test_sweeps_of_different_evaluations_are_refused(change, named):
    runs = _three_runs()
    with pytest.raises(InvalidInputError, match=f"s1 did not measure what s0 did .*{named}"):
        merge_results([runs[0], change(runs[1])], ["s0", "s1"])


def test_a_sweep_written_before_raw_scale_merges_with_a_raw_scale_1_sweep():
    runs = _three_runs()
    old = dataclasses.replace(runs[1], settings={k: v for k, v in runs[1].settings.items() if k != "raw_scale"})
    assert "raw_scale" in runs[0].settings and "raw_scale" not in old.settings
    assert merge_results([runs[0], old], ["s0", "s1"]).images == 10


def test_one_sweep_is_not_a_merge():
    with pytest.raises(InvalidInputError, match="at least two sweeps, got 1"):
        merge_results(_three_runs()[:1], ["s0"])


def test_load_sweep_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="no sweep at"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="not a sweep written by edge-isp eval"):
        load_sweep(tmp_path)


def test_cli_merges_folders_and_keeps_the_first_scene(tmp_path, capsys):
    folders = []
    for index, result in enumerate(_three_runs()):
        folder = tmp_path / f"seed{index}"
        write_report(result, folder)
        (folder / "scene.png").write_bytes(b"scene of run %d" % index)
        folders.append(str(folder))
    out = tmp_path / "merged"
    parser = argparse.ArgumentParser(prog="edge-isp")
    eval_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "merge", *folders, "--out", str(out)])
    assert args.func(args) == 0
    assert {p.name for p in out.iterdir()} == {"sweep.md", "sweep.json", "sweep.png", "scene.png"}
    assert (out / "scene.png").read_bytes() == b"scene of run 0"
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["values"]["e"]["top1"]) == 3
    assert data["summary"]["e"]["top1"][0]["std"] == pytest.approx(0.05)
    assert "Light sweep: classification on nexus6p-rear, 3 training runs" in capsys.readouterr().out


def test_cli_paired_tables_for_chosen_keys_and_an_unknown_key_is_refused(tmp_path):
    folders = []
    for index, result in enumerate(_three_runs()):
        write_report(result, tmp_path / f"seed{index}")
        folders.append(str(tmp_path / f"seed{index}"))
    parser = argparse.ArgumentParser(prog="edge-isp")
    eval_commands.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "merged"
    args = parser.parse_args(["eval", "merge", *folders, "--out", str(out), "--paired", "a", "--paired", "e"])
    assert args.func(args) == 0
    text = (out / "sweep.md").read_text()
    # (a) minus (e) is the negation of (e) minus (a), with the same spread.
    assert "## (a) minus each pipeline" in text and "| (e) joint | -25.0 ± 5.0 | -10.0 ± 4.0 |" in text
    assert "## (e) minus each pipeline" in text and "| (a) conventional | 25.0 ± 5.0 | 10.0 ± 4.0 |" in text
    args = parser.parse_args(["eval", "merge", *folders, "--out", str(out), "--paired", "e:last"])
    with pytest.raises(InvalidInputError, match=r"--paired e:last: no such pipeline; the sweeps have a, e"):
        args.func(args)


def _with_extra(result: SweepResult, key: str, label: str, top1: list[float]) -> SweepResult:
    """The run's sweep with one more pipeline, listed first (order must not matter)."""
    extra = {"key": key, "label": label, "has_image": False, "checkpoints": {}, "trained_on": None,
             "training": "simulated raw"}  # fmt: skip
    values = {**result.values, key: {"top1": [top1], "psnr": [[None, None]], "ssim": [[None, None]]}}
    return dataclasses.replace(result, pipelines=[extra, *result.pipelines], values=values)


def test_common_keeps_the_shared_pipelines_paired_by_key_and_notes_the_others():
    runs = _three_runs()
    runs[0] = _with_extra(runs[0], "x", "(x) only here", [0.9, 0.9])
    runs[2] = _with_extra(runs[2], "f", "(f) no Anscombe", [0.1, 0.2])
    runs[1] = _with_extra(runs[1], "f", "(f) no Anscombe", [0.3, 0.4])
    with pytest.raises(InvalidInputError, match=r"pipelines: .*\(--common merges the pipelines every sweep has\)"):
        merge_results(runs, ["s0", "s1", "s2"])
    merged = merge_results(runs, ["s0", "s1", "s2"], common=True)
    assert [p["key"] for p in merged.pipelines] == ["a", "e"]
    # Each run's rows come from its own pipeline of that key, wherever it was listed.
    assert merged.values["e"]["top1"] == [[0.40, 0.70], [0.50, 0.72], [0.45, 0.74]]
    assert merged.values["a"]["top1"] == [[0.10, 0.60], [0.30, 0.66], [0.20, 0.60]]
    assert merged.pipelines[1]["checkpoints"] == [{"joint": f"seed{i}/j.pt"} for i in range(3)]
    assert merged.notes == [
        "left out of the merge: (f) no Anscombe (only in s1, s2)",
        "left out of the merge: (x) only here (only in s0)",
    ]
    assert "- left out of the merge: (x) only here (only in s0)" in markdown(merged)


def test_common_still_refuses_other_differences_and_no_shared_pipeline():
    runs = _three_runs()
    changed = dataclasses.replace(runs[1], settings={**runs[1].settings, "profile": "other"})
    with pytest.raises(InvalidInputError, match=r"s1 did not measure what s0 did .*profile"):
        merge_results([runs[0], changed], ["s0", "s1"], common=True)
    renamed = dataclasses.replace(runs[1], pipelines=[{**p, "label": p["label"] + "!"} for p in runs[1].pipelines])
    with pytest.raises(InvalidInputError, match="no pipeline in common"):
        merge_results([runs[0], renamed], ["s0", "s1"], common=True)


def test_cli_common(tmp_path):
    runs = _three_runs()
    runs[0] = _with_extra(runs[0], "x", "(x) only here", [0.9, 0.9])
    folders = []
    for index, result in enumerate(runs):
        write_report(result, tmp_path / f"seed{index}")
        folders.append(str(tmp_path / f"seed{index}"))
    parser = argparse.ArgumentParser(prog="edge-isp")
    eval_commands.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "merged"
    args = parser.parse_args(["eval", "merge", *folders, "--out", str(out), "--common"])
    assert args.func(args) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert sorted(data["values"]) == ["a", "e"] and len(data["values"]["e"]["top1"]) == 3
    assert "(x) only here (only in" in (out / "sweep.md").read_text()
