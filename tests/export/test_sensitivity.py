"""The measured search for layers to keep in FP32: the pure search, and the whole thing on a
model with exactly one layer that cannot be quantized."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from edge_isp.contract.metadata import read_metadata
from edge_isp.errors import InvalidInputError
from edge_isp.export.calibration import CalibrationFeed
from edge_isp.export.evalset import EvalImages, LightLevel
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.precision import layer_name, node_names, quantized_nodes
from edge_isp.export.precision_search import FrameSet, reduce_precision
from edge_isp.export.sensitivity import (
    GRAPH_LEVEL,
    GroupScore,
    group_nodes,
    keep_counts,
    layer_group,
    output_divergence,
    relative_error,
    search,
    within_budget,
)

from .conftest import SensitiveClassifier, export_module, sensitive_inputs


def test_keep_counts_grow_about_twice_per_doubling():
    assert keep_counts(1) == [1]
    assert keep_counts(5) == [1, 2, 3, 4, 5]
    assert keep_counts(80) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 80]


def test_layer_groups():
    assert layer_group("/head/features.3/conv/conv.1/conv.1.0/Conv", 3) == "head/features.3/conv.1"
    assert layer_group("/head/backbone/features/features.3/conv/conv.1/conv.1.0/Conv", 2) == "head/features.3"
    assert layer_group("/isp/priors.0/enc0/enc0.0/Conv", 3) == "isp/priors.0/enc0.0"
    assert layer_group("/isp/inverse/Pow_2", 2) == "isp/inverse"
    assert layer_group("/TopK", 2) == GRAPH_LEVEL
    assert layer_group("Identity_12", 2) is None
    groups = group_nodes(["/isp/anscombe/Sqrt", "Constant_3", "/isp/anscombe/Mul", "/head/heatmap/heatmap.0/Conv"], 2)
    assert groups == {"isp/anscombe": ["/isp/anscombe/Sqrt", "/isp/anscombe/Mul"], "head/heatmap.0": [
        "/head/heatmap/heatmap.0/Conv"]}  # fmt: skip
    with pytest.raises(InvalidInputError):
        layer_group("/a/b", 0)


def test_output_divergence_is_kl_of_the_answers():
    logits = {"logits": np.array([[2.0, 0.0], [0.0, 1.0]])}
    assert output_divergence(logits, logits) == 0.0
    swapped = {"logits": logits["logits"][:, ::-1]}
    p = np.exp(logits["logits"]) / np.exp(logits["logits"]).sum(1, keepdims=True)
    expected = np.mean(np.sum(p * (np.log(p) - np.log(p[:, ::-1])), 1))
    assert output_divergence(swapped, logits) == pytest.approx(expected)
    heat = {"heatmap": np.zeros((1, 2, 2, 2)), "size": np.ones((1, 2, 2, 2))}
    moved = {"heatmap": np.full((1, 2, 2, 2), np.log(3.0)), "size": np.full((1, 2, 2, 2), 9.0)}
    # Bernoulli(1/2) vs Bernoulli(3/4): 0.5 log(2/3) + 0.5 log(2), per class, 2 classes.
    assert output_divergence(moved, heat) == pytest.approx(2 * (0.5 * np.log(2 / 3) + 0.5 * np.log(2)))
    assert output_divergence({"heatmap": np.full((1, 2, 2, 2), np.nan)}, heat) == float("inf")
    assert output_divergence({"scores": np.array([2.0])}, {"scores": np.array([1.0])}) == pytest.approx(1.0)


def test_relative_error():
    ref = {"scores": np.array([1.0, 2.0]), "boxes": np.array([1.0]), "labels": np.array([1])}
    assert relative_error(ref, ref) == 0.0
    got = {"scores": np.array([1.0, 2.0 + np.sqrt(5.0)]), "boxes": np.array([99.0]), "labels": np.array([0])}
    assert relative_error(got, ref) == pytest.approx(1.0)  # boxes/labels are not graded
    overflow = {"scores": np.array([np.inf, 2.0])}
    assert relative_error(overflow, {"scores": ref["scores"]}) > 0.5
    with pytest.raises(InvalidInputError, match=r"no graded outputs"):
        relative_error({"labels": np.array([1])}, {"labels": np.array([1])})


class TestSearch:
    GROUPS: ClassVar[dict[str, list[str]]] = {"a": ["a1"], "b": ["b1", "b2"], "c": ["c1"], "d": ["d1"]}

    def test_nothing_kept_when_all_reduced_is_within_tolerance(self):
        calls = []
        result = search("int8", self.GROUPS, lambda keep: {"3 lux": 0.4}, lambda n: calls.append(n) or 0.0)
        assert result.met and result.kept == [] and calls == []  # no ranking needed

    def test_keeps_the_worst_groups_until_within_tolerance(self):
        # b and d break it (5 points each); the ranking errors point at them.
        errors = {"a1": 0.01, "b1": 0.5, "c1": 0.02, "d1": 0.3}

        def drop(keep):
            lost = {"b": "b1" not in keep, "d": "d1" not in keep}
            return {"3 lux": 5.0 * sum(lost.values()), "30 lux": 1.0}

        result = search("int8", self.GROUPS, drop, lambda nodes: errors[nodes[0]], tolerance=1.0)
        assert result.met
        assert result.kept == ["b", "d"] and result.kept_nodes == ["b1", "b2", "d1"]
        assert [g.group for g in result.ranking] == ["b", "d", "c", "a"]
        assert [s.kept for s in result.steps] == [(), ("b",), ("b", "d")]
        assert "keeping 2 group(s)" in result.summary() and result.to_json()["met"]

    def test_reports_when_nothing_gets_within_tolerance(self):
        result = search("fp16", self.GROUPS, lambda keep: {"3 lux": 3.0 - 0.1 * len(keep)}, lambda n: 1.0)
        assert not result.met
        assert result.steps[-1].kept == ("a", "b", "c", "d")
        assert "NOT within" in result.summary()

    def test_a_mac_budget_passes_over_the_big_groups(self):
        # b ranks first but holds 30% of the MACs: with 15% allowed in FP32 it is passed over,
        # d (10%) is kept, then c (5%) still fits, a (1%) no longer does.
        errors = {"a1": 0.01, "b1": 0.5, "c1": 0.02, "d1": 0.3}
        macs = {"a": 0.01, "b": 0.30, "c": 0.05, "d": 0.10}
        said = []

        def drop(keep):
            return {"3 lux": 0.5 if "d1" in keep and "c1" in keep else 2.0}

        result = search("int8", self.GROUPS, drop, lambda nodes: errors[nodes[0]], progress=said.append,
                        macs=macs, max_float_macs=0.15)  # fmt: skip
        assert result.met and result.kept == ["d", "c"]
        assert [s.kept for s in result.steps] == [(), ("d",), ("d", "c")]
        assert any("2 of 4 group(s) passed over" in line and "15.0% of the MACs" in line for line in said)
        # Without a budget the same ranking keeps b first.
        free = search("int8", self.GROUPS, drop, lambda nodes: errors[nodes[0]])
        assert free.steps[1].kept == ("b",)

    def test_a_budget_nothing_fits_is_reported_unmet(self):
        result = search("int8", self.GROUPS, lambda keep: {"3 lux": 2.0}, lambda n: 1.0,
                        macs=dict.fromkeys(self.GROUPS, 0.2), max_float_macs=0.1)  # fmt: skip
        assert not result.met and result.kept == [] and len(result.steps) == 1

    def test_budget_needs_every_groups_share(self):
        with pytest.raises(InvalidInputError, match=r"no MAC share for group\(s\) c, d"):
            within_budget([GroupScore(g, (g,), 1.0) for g in "abcd"], {"a": 0.1, "b": 0.1}, 0.5)
        with pytest.raises(InvalidInputError, match=r"needs each group's share"):
            within_budget([GroupScore("a", ("a",), 1.0)], None, 0.5)
        with pytest.raises(InvalidInputError, match=r"must be in \[0, 1\]"):
            within_budget([], {}, 1.5)
        assert within_budget([GroupScore("a", ("a",), 1.0)], None, None)[0].group == "a"


def test_search_finds_the_one_sensitive_layer(tmp_path):
    """End to end through ONNX Runtime: FP32 is always right, all-INT8 guesses, and the search
    keeps exactly the first layer, which brings INT8 back to FP32's accuracy."""
    path = export_module(SensitiveClassifier(), tmp_path / "s.fp32.onnx", packed_hw=(8, 8), task="classification",
                         class_names=["pos", "neg"], outputs=["logits"], batch="batch")  # fmt: skip
    raw, noise, labels = sensitive_inputs(16, seed=1)
    images = EvalImages(np.zeros((16, 3, 16, 16), np.uint8), labels, ["pos", "neg"], "classification")
    levels = [LightLevel(3.0, "lux", 8.0), LightLevel(30.0, "lux", 80.0)]
    frames = FrameSet(levels, {lv.label: (raw, noise) for lv in levels})
    calib_raw, calib_noise, _ = sensitive_inputs(16, seed=2)
    feed = CalibrationFeed([{"raw": calib_raw[i : i + 4], "noise": calib_noise[i : i + 4]} for i in range(0, 16, 4)])
    lines = []
    result = reduce_precision("int8", path, tmp_path / "s.int8.onnx", images=images, frames=frames, feed=feed,
                              tolerance=1.0, progress=lines.append, min_int8_macs=None)  # fmt: skip
    assert result.steps[0].worst_drop >= 40  # all layers in INT8: about chance
    assert result.met and result.kept == ["stem"]
    assert result.ranking[0].group == "stem" and result.ranking[0].error > 10 * result.ranking[1].error
    out = tmp_path / "s.int8.onnx"
    assert sorted(layer_name(n) for n in quantized_nodes(out)) == ["body"]  # head: the output layer, float
    assert read_metadata(out).higher_precision == ("head", "stem")
    assert any("stem alone in int8" in line for line in lines)
    assert not list(tmp_path.glob(".search.*"))  # the work folder is removed


def test_the_mac_budget_holds_the_search_to_an_int8_model(tmp_path):
    """The same model under the contract's budget: its one sensitive layer holds more than the
    10% of the MACs the budget leaves to FP32, so the search passes it over and says it missed,
    rather than returning a float model called INT8."""
    path = export_module(SensitiveClassifier(), tmp_path / "s.fp32.onnx", packed_hw=(8, 8), task="classification",
                         class_names=["pos", "neg"], outputs=["logits"], batch="batch")  # fmt: skip
    stem_share = graph_stats(path).mac_fraction([n for n in node_names(path) if layer_name(n) == "stem"])
    assert stem_share > 0.1
    raw, noise, labels = sensitive_inputs(16, seed=1)
    images = EvalImages(np.zeros((16, 3, 16, 16), np.uint8), labels, ["pos", "neg"], "classification")
    levels = [LightLevel(3.0, "lux", 8.0)]
    frames = FrameSet(levels, {lv.label: (raw, noise) for lv in levels})
    calib_raw, calib_noise, _ = sensitive_inputs(16, seed=2)
    feed = CalibrationFeed([{"raw": calib_raw[i : i + 4], "noise": calib_noise[i : i + 4]} for i in range(0, 16, 4)])
    lines = []
    result = reduce_precision("int8", path, tmp_path / "s.int8.onnx", images=images, frames=frames, feed=feed,
                              tolerance=1.0, progress=lines.append, min_int8_macs=0.9)  # fmt: skip
    assert not result.met and "stem" not in result.kept
    assert any("passed over" in line for line in lines)
