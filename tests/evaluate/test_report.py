"""The report: Markdown table, JSON, the plot (one line per pipeline, a band for the seed
spread, log x axis) and the picture grid, from a result made by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_isp.evaluate.report import format_value, grid_figure, markdown, sweep_figure, write_report
from edge_isp.evaluate.sweep import SweepResult, SweepSettings, level_table
from edge_isp.sensor.profile import SensorProfile


def _result() -> SweepResult:
    profile = SensorProfile.load("nexus6p-rear")
    settings = SweepSettings(task="classification", levels=(3.0, 30.0, 300.0), seeds=(0, 1))
    trained = {"profile": "nexus6p-rear", "light_range": [2.0, 20.0], "light_unit": "lux"}
    pipelines = [
        {"key": "a", "label": "(a) conventional", "has_image": True, "checkpoints": {"head": "h.pt"},
         "trained_on": None, "training": "clean images (no raw)"},
        {"key": "d", "label": "(d) raw", "has_image": False, "checkpoints": {"raw": "r.pt"},
         "trained_on": trained, "training": "simulated raw"},
        {"key": "e", "label": "(e) joint", "has_image": True, "checkpoints": {"joint": "j.pt"},
         "trained_on": trained, "training": "simulated raw"},
    ]  # fmt: skip
    values = {
        "a": {"top1": [[0.5, 0.7, 0.9], [0.6, 0.7, 0.9]], "psnr": [[20, 25, 30], [21, 25, 30]],
              "ssim": [[0.5, 0.6, 0.7], [0.5, 0.6, 0.7]]},
        "d": {"top1": [[0.6, 0.8, 0.9], [0.6, 0.8, 0.9]], "psnr": [[None] * 3] * 2, "ssim": [[None] * 3] * 2},
        "e": {"top1": [[0.7, 0.8, 0.8], [0.7, 0.8, 0.8]], "psnr": [[18, 22, 24], [18, 22, 24]],
              "ssim": [[0.4, 0.5, 0.6], [0.4, 0.5, 0.6]]},
    }  # fmt: skip
    return SweepResult(settings.to_dict(), level_table(profile, settings.levels, "lux"), pipelines,
                       ["top1", "psnr", "ssim"], values, images=12, notes=["(f) no Anscombe: skipped"])  # fmt: skip


def test_cells_by_hand():
    assert format_value("top1", 0.55, 0.0707) == "55.0 ± 7.1"
    assert format_value("psnr", 24.123, None) == "24.12"
    assert format_value("ssim", 0.61234, 0.01) == "0.612 ± 0.010"
    assert format_value("psnr", None, None) == "n/a"


def test_markdown_table():
    text = markdown(_result())
    assert "| pipeline | 3 lux (8.01 e-) | 30 lux (80.1 e-) | 300 lux (801 e-) |" in text
    assert "| (a) conventional | 55.0 ± 7.1 | 70.0 ± 0.0 | 90.0 ± 0.0 |" in text
    # 30 and 300 lux lie outside the 2-20 lux the raw model was trained on.
    assert "| (d) raw | 60.0 ± 0.0 | 80.0 ± 0.0† | 90.0 ± 0.0† |" in text
    assert "| (d) raw | n/a | n/a | n/a |" in text  # no image: PSNR and SSIM do not apply
    assert "| (e) joint | `nexus6p-rear` | 2-20 lux | 70.0 | 80.0 |" in text  # in / out of range means
    assert "| (a) conventional | clean images (no raw) | - | - | - |" in text
    assert "- (f) no Anscombe: skipped" in text


def test_plot_has_one_line_per_pipeline_and_the_spread():
    fig = sweep_figure(_result())
    top1, psnr, _ = fig.axes[:3]
    assert [line.get_label() for line in top1.get_lines()] == ["(a) conventional", "(d) raw", "(e) joint"]
    assert [line.get_label() for line in psnr.get_lines()] == ["(a) conventional", "(e) joint"]  # (d) has no image
    assert psnr.get_lines()[1].get_color() == top1.get_lines()[2].get_color()  # (e) keeps its colour
    assert top1.get_xscale() == "log"
    np.testing.assert_allclose(top1.get_lines()[0].get_xdata(), [3.0, 30.0, 300.0])
    np.testing.assert_allclose(top1.get_lines()[0].get_ydata(), [55.0, 70.0, 90.0])
    assert len(top1.collections) == 1  # a band only where the seeds disagree: pipeline a
    assert len(psnr.collections) == 1


def test_write_report_files(tmp_path):
    scene = {"clean": np.zeros((8, 8, 3)), "noisy raw": np.ones((8, 8, 3)), "(d) raw": None}
    paths = write_report(_result(), tmp_path / "out", scene=scene, scene_title="3 lux")
    assert set(paths) == {"markdown", "json", "plot", "scene"}
    for key in ("plot", "scene"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["a"]["top1"][0] == {"mean": pytest.approx(0.55), "std": pytest.approx(0.0707, abs=1e-4)}
    again = SweepResult.from_dict(data)
    assert again.values == _result().values and markdown(again) == paths["markdown"].read_text()
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_grid_marks_a_pipeline_without_image():
    fig = grid_figure({"clean": np.zeros((8, 8, 3)), "(d) raw": None}, "t")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no image" in t for t in texts)
    assert len(fig.axes[0].images) == 1 and len(fig.axes[1].images) == 0


def test_training_conditions_show_blur_and_read_noise_only_where_trained_with_them():
    assert "also simulated" not in markdown(_result())  # none set, or a sweep from before they were recorded
    result = _result()
    result.pipelines[2]["trained_on"] = {**result.pipelines[2]["trained_on"], "blur": "gaussian:1.5",
                                         "read_noise_range": [0.33, 3.0]}  # fmt: skip
    text = markdown(result)
    assert "| pipeline | trained on | light range | also simulated | top-1 accuracy (%) in range |" in text
    assert "| (e) joint | `nexus6p-rear` | 2-20 lux | blur `gaussian:1.5`, read noise x0.33-3 | 70.0 | 80.0 |" in text
    assert "| (d) raw | `nexus6p-rear` | 2-20 lux | - |" in text
    assert "| (a) conventional | clean images (no raw) | - | - | - | - |" in text
