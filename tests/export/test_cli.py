"""`edge-isp export ...` through its register(subparsers), as the lead wires it in."""

from __future__ import annotations

import argparse
import json

import pytest

import edge_isp.cli as cli
from edge_isp.cli import export_commands
from edge_isp.contract.metadata import read_metadata
from edge_isp.export.precision import output_layers, quantized_nodes
from edge_isp.export.workflow import ranking_size
from edge_isp.model.loading import load_model

from .conftest import make_colour_folder


@pytest.fixture
def run(monkeypatch):
    """main(argv) with the export commands registered."""
    if "edge_isp.cli.export_commands" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "edge_isp.cli.export_commands"))
    return cli.main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny classifier saved the way `edge-isp train` saves it, and colour data for it."""
    from edge_isp.model.registry import create_model
    from edge_isp.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("cli")
    model = create_model("raw_cls", num_classes=2, pretrained_backbone=False, width_mult=0.35)
    path = root / "best.pt"
    save_checkpoint(path, {
        "stage": "joint", "model_config": model.config.to_dict(), "model": model.state_dict(),
        "class_names": ["blue", "red"],
        "train_config": {"sensor": {"profile": "nexus6p-rear", "val_light": [3.0, 30.0], "light_unit": "lux"},
                         "data": {"size": [64, 64]}},
    })  # fmt: skip
    return path, make_colour_folder(root / "data", per_class=3, size=64)


def test_register_adds_the_export_actions():
    parser = argparse.ArgumentParser()
    export_commands.register(parser.add_subparsers())
    args = parser.parse_args(["export", "engine", "m.onnx", "--target", "orin-nx", "--print-trtexec"])
    assert args.print_trtexec and args.func is export_commands._engine
    args = parser.parse_args(["export", "all", "best.pt", "--target", "orin-nano", "--light", "3,30"])
    assert args.light == (3.0, 30.0) and args.precisions == "fp16,int8"


def test_targets_lists_the_boards(run, capsys):
    assert run(["export", "targets"]) == 0
    out = capsys.readouterr().out
    for name in ("orin-nano", "orin-nx", "agx-orin", "xavier-nx", "x86-gpu"):
        assert name in out
    assert "DLA 0 +GPU fallback" in out


def test_loading_a_checkpoint_takes_its_training_settings(checkpoint):
    path, _ = checkpoint
    loaded = load_model(path)
    assert loaded.trained and loaded.class_names == ["blue", "red"]
    assert loaded.profile == "nexus6p-rear" and loaded.light_levels == (3.0, 30.0) and loaded.input_size == (64, 64)
    assert not loaded.model.training


def test_onnx_then_print_trtexec(run, checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    out = tmp_path / "m.fp32.onnx"
    assert run(["export", "onnx", str(path), "-o", str(out), "--input-size", "64x64"]) == 0
    text = capsys.readouterr().out
    assert "logits" in text and out.is_file()
    target = tmp_path / "t.toml"
    target.write_text('name = "t"\nprecision = "fp32"\ninput_size = [64, 64]\nmemory_pool_mb = 512\n')
    code = run(["export", "engine", str(out), "--target", str(target), "--print-trtexec", "--tensorrt-version", "11.3"])
    assert code == 0
    text = capsys.readouterr().out
    assert "strong-11" in text and f"--onnx={out}" in text and "--memPoolSize=workspace:512" in text


def test_user_mistakes_exit_1_with_a_message(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run(["export", "engine", str(tmp_path / "m.onnx"), "--target", "no-such-board"])
    assert info.value.code == 1
    assert "not found" in capsys.readouterr().err


def test_export_all_end_to_end(run, checkpoint, tmp_path, capsys):
    path, data = checkpoint
    target = tmp_path / "t.toml"
    target.write_text('name = "t"\nprecision = "int8"\ninput_size = [64, 64]\nmemory_pool_mb = 512\n'
                      'tensorrt_version = "10.3"\n')  # fmt: skip
    out = tmp_path / "out"
    code = run(["export", "all", str(path), "--target", str(target), "--data", str(data), "--out", str(out),
                "--eval-images", "6", "--calib-images", "2", "--search-images", "4", "--no-search",
                "--precisions", "fp16,int8,int8-cpu"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    for name in ("raw_cls.fp32.onnx", "raw_cls.fp16.onnx", "raw_cls.int8.onnx", "raw_cls.int8-cpu.onnx",
                 "accuracy.json", "export.json"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = json.loads((out / "export.json").read_text())
    assert set(summary["accuracy"]["results"]) == {"fp32", "fp16", "int8", "int8-cpu"}
    notes = summary["accuracy"]["notes"]
    assert "of the multiply-accumulates in int8" in notes["int8"] and "in int8" in notes["int8-cpu"]
    assert read_metadata(out / "raw_cls.int8-cpu.onnx").precision == "int8-cpu"
    assert [lv["label"] for lv in summary["accuracy"]["levels"]] == ["3 lux", "30 lux"]  # from the checkpoint
    assert summary["engine"]["status"] == "not built"  # no TensorRT on this machine
    assert "--int8" in summary["engine"]["trtexec"]
    assert "top-1 %" in text and "trtexec" in text


def test_ranking_size():
    assert ranking_size((640, 480)) == (160, 128)
    assert ranking_size((64, 64)) == (64, 64)


@pytest.mark.slow
def test_export_all_forced_search_ranks_on_the_small_dense_graph(run, checkpoint, tmp_path, capsys):
    """A negative tolerance can never be met: the search must rank every layer group (on the
    ranking graph), try keeping more and more of them, and say it did not get there."""
    path, data = checkpoint
    target = tmp_path / "t.toml"
    target.write_text('name = "t"\nprecision = "int8"\ninput_size = [64, 64]\nmemory_pool_mb = 512\n')
    out = tmp_path / "out"
    code = run(["export", "all", str(path), "--target", str(target), "--data", str(data), "--out", str(out),
                "--precisions", "int8", "--eval-images", "2", "--calib-images", "2", "--search-images", "2",
                "--tolerance", "-1", "--no-engine"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    search = json.loads((out / "accuracy.json").read_text())["search"]["int8"]
    assert not search["met"] and len(search["ranking"]) > 10
    assert "ranking layer groups on the same network" in text and "alone in int8" in text
    assert "NOT within -1 point(s)" in text
    assert not list(out.glob(".*"))  # the ranking graph and the search's work files are gone


def test_the_exported_model_records_the_noise_range_it_was_trained_on(run, checkpoint, tmp_path):
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.train.batches import RawBatcher
    from edge_isp.train.config import load_config

    path, _ = checkpoint
    out = tmp_path / "m.fp32.onnx"
    assert run(["export", "onnx", str(path), "-o", str(out), "--input-size", "64x64"]) == 0
    recorded = read_metadata(out).noise_range
    # The checkpoint's sensor section leaves light_range at the default, 2 to 200 lux.
    expected = RawBatcher.from_config(load_config(None).sensor).noise_range()
    assert recorded.a == pytest.approx(tuple(expected["a"])) and recorded.sigma == pytest.approx(
        tuple(expected["sigma"])
    )
    # The Nexus 6P's (a, sigma) scale as 1 / light: 200 lux is 100x less noise than 2 lux.
    assert recorded.a[1] / recorded.a[0] == pytest.approx(100.0, rel=1e-3)


def test_export_all_without_a_target_takes_the_trained_size_and_says_nothing_of_tensorrt(
    run, checkpoint, tmp_path, capsys
):
    path, data = checkpoint
    argv = ["export", "all", str(path), "--data", str(data), "--out", str(tmp_path / "out"), "--eval-images", "4",
            "--calib-images", "2", "--precisions", "fp16", "--no-search"]  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        run(argv)
    assert refused.value.code == 1 and "needs --target" in capsys.readouterr().err
    assert run([*argv, "--no-engine"]) == 0
    text = capsys.readouterr().out
    assert "input size 64x64 (the size the checkpoint was trained at" in text
    assert "accuracy report: 2/2 batches (100%)" in text  # one batch of 4 images per light level
    assert "TensorRT" not in text and "engine: none planned (no --target)" in text
    summary = json.loads((tmp_path / "out" / "export.json").read_text())
    assert summary["input_size"] == [64, 64] and summary["target"] is None


def test_export_all_builds_for_the_target_at_the_trained_size_unless_told(run, checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    target = tmp_path / "t.toml"
    target.write_text('name = "t"\nprecision = "fp32"\ninput_size = [640, 480]\nmemory_pool_mb = 512\n')
    assert run(["export", "all", str(path), "--target", str(target), "--out", str(tmp_path / "a"), "--no-engine"]) == 0
    text = capsys.readouterr().out
    assert "input size 64x64 (the size the checkpoint was trained at" in text
    assert "engine: not built (--no-engine)" in text and "TensorRT is not installed" not in text
    summary = json.loads((tmp_path / "a" / "export.json").read_text())
    assert summary["target"]["input_size"] == [64, 64] and summary["engine"]["reason"] == "--no-engine"
    argv = ["export", "all", str(path), "--target", str(target), "--out", str(tmp_path / "b"), "--no-engine"]
    assert run([*argv, "--input-size", "96x64"]) == 0
    assert "input size 96x64 (--input-size)" in capsys.readouterr().out


def test_report_progress_says_how_far_at_most_every_so_often():
    from edge_isp.export.workflow import report_progress

    said = []
    progress = report_progress(said.append, every_s=3600)
    for done in range(1, 11):
        progress(done, 10)
    assert len(said) == 1 and said[0].startswith("  accuracy report: 10/10 batches (100%), about 0 s left")
    every = report_progress(said.append, every_s=0)
    every(1, 4)
    assert said[-1].startswith("  accuracy report: 1/4 batches (25%)")


def test_out_and_its_alias_output(run, checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    for flag, name in (("--out", "a.onnx"), ("--output", "b.onnx"), ("-o", "c.onnx")):
        assert run(["export", "onnx", str(path), flag, str(tmp_path / name), "--input-size", "64x64"]) == 0
        assert (tmp_path / name).is_file()


def test_targets_says_when_the_install_ships_none(run, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("edge_isp.contract.targets.shipped_names", lambda kind, suffix: [])
    with pytest.raises(SystemExit) as refused:
        run(["export", "targets"])
    assert refused.value.code == 1 and "ships no build targets" in capsys.readouterr().err


@pytest.fixture(scope="module")
def baseline_checkpoint(tmp_path_factory):
    """A tiny detector saved as the baseline stage saves it: its head trained on the conventional ISP."""
    from edge_isp.model.registry import create_model
    from edge_isp.train.checkpoint import save_checkpoint

    model = create_model("dp_s_det", num_classes=2, pretrained_backbone=False, width_mult=0.35)
    path = tmp_path_factory.mktemp("baseline") / "best.pt"
    save_checkpoint(path, {
        "stage": "baseline", "model_config": model.config.to_dict(), "model": model.state_dict(),
        "class_names": ["person", "car"],
        "train_config": {"sensor": {"profile": "nexus6p-rear", "val_light": [3.0], "light_unit": "lux"},
                         "data": {"size": [64, 32]}, "baseline": {"demosaic": "malvar", "denoise": "nlm"}},
    })  # fmt: skip
    return path


def test_a_baseline_checkpoint_exports_rgb_input_unless_told(run, baseline_checkpoint, checkpoint, tmp_path, capsys):
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.model.loading import default_input_kind

    loaded = load_model(baseline_checkpoint)
    assert loaded.stage == "baseline" and loaded.conventional_isp == {"demosaic": "malvar", "denoise": "nlm"}
    assert default_input_kind(loaded) == "rgb" and default_input_kind(load_model(checkpoint[0])) == "raw"
    assert default_input_kind(loaded, "raw") == "raw"
    out = tmp_path / "conventional.onnx"
    assert run(["export", "onnx", str(baseline_checkpoint), "-o", str(out), "--input-size", "64x32"]) == 0
    assert "rgb input (trained behind the conventional ISP malvar + nlm)" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta.input_kind == "rgb" and meta.conventional_isp == {"demosaic": "malvar", "denoise": "nlm"}
    raw = tmp_path / "raw.onnx"
    assert (
        run(["export", "onnx", str(baseline_checkpoint), "-o", str(raw), "--input-size", "64x32", "--input", "raw"])
        == 0
    )
    assert read_metadata(raw).input_kind == "raw" and read_metadata(raw).conventional_isp is None
    # The raw-feeding steps refuse the rgb model by name rather than fail inside ONNX Runtime.
    with pytest.raises(SystemExit):
        run(["export", "precision", str(out), "--precision", "int8", "--data", "x"])
    assert "takes an rgb picture, not raw" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit):
        run(["export", "all", str(baseline_checkpoint), "--no-engine", "--out", str(tmp_path / "all")])
    assert "baseline-stage checkpoint" in " ".join(capsys.readouterr().err.split())


def test_int8_outputs_puts_the_last_layer_in_int8_too(run, checkpoint, tmp_path, capsys):
    path, data = checkpoint
    fp32 = tmp_path / "m.onnx"
    assert run(["export", "onnx", str(path), "-o", str(fp32), "--input-size", "64x64"]) == 0
    last = output_layers(fp32)
    assert last  # the classifier's Gemm
    common = ["--data", str(data), "--light", "3,30", "--calib-images", "2", "--no-search"]
    for precision in ("int8", "int8-cpu"):
        kept = tmp_path / f"kept.{precision}.onnx"
        both = tmp_path / f"all.{precision}.onnx"
        assert run(["export", "precision", str(fp32), "--precision", precision, "-o", str(kept), *common]) == 0
        argv = ["export", "precision", str(fp32), "--precision", precision, "-o", str(both), "--int8-outputs"]
        assert run([*argv, *common]) == 0
        # The last layer's weights go from float32 to int8: the file shrinks by 3 bytes a weight.
        assert kept.stat().st_size - both.stat().st_size > 1_000
        if precision == "int8":
            assert last[0] in quantized_nodes(both) and last[0] not in quantized_nodes(kept)
    with pytest.raises(SystemExit):
        run(["export", "precision", str(fp32), "--precision", "int8", "--int8-outputs", "--data", str(data),
             "--light", "3"])  # fmt: skip
    assert "--int8-outputs goes with --no-search" in capsys.readouterr().err


def test_the_int8_mac_budget_option():
    parser = argparse.ArgumentParser()
    actions = parser.add_subparsers(dest="command")
    export_commands.register(actions)
    for action in ("precision", "all"):
        first = ["export", action, "m.onnx" if action == "precision" else "best.pt"]
        extra = ["--precision", "int8"] if action == "precision" else []
        assert parser.parse_args([*first, *extra]).min_int8_macs == 0.9
        assert parser.parse_args([*first, *extra, "--min-int8-macs", "none"]).min_int8_macs is None
        assert parser.parse_args([*first, *extra, "--min-int8-macs", "0.75"]).min_int8_macs == 0.75
        for bad in ("1.5", "-0.1", "most"):
            with pytest.raises(SystemExit):
                parser.parse_args([*first, *extra, "--min-int8-macs", bad])
