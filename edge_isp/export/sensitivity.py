"""Which layers lose accuracy in FP16 or INT8: measured, one group at a time.

The search, for a precision P (fp16 or int8):

1. Reduce every layer to P and measure the task metric at each deployment light level. If
   no level drops more than ``tolerance`` points below FP32, keep nothing in FP32. Done.
2. Otherwise rank the layer groups: for each group, reduce *only that group* to P and measure
   how far the model's answers move from FP32's (:func:`output_divergence`: the KL divergence
   of the classifier's softmax or the detector's heatmap, averaged over the frames and light
   levels; relative L2 error for other outputs). A continuous divergence over every frame ranks
   reliably where a metric (a count of right answers on a hundred images) is mostly ties and
   noise.
3. Keep the highest-ranked groups in FP32, in growing numbers (1, 2, 3, 4, 6, 8, 12, ...),
   re-measuring the task metric each time, until every level is within ``tolerance``; or
   report that even keeping all of them did not get there.

With a MAC budget (``macs`` and ``max_float_macs``: the share of the model's multiply-accumulates
that may stay in FP32), a group whose MACs would take the kept share past the budget is passed
over and the next one in the ranking is taken instead: an INT8 model that keeps its biggest
convolutions in FP32 is within tolerance but is not an INT8 model (the detector's stride-1 stem
ranks first and holds a third of its MACs). Without a budget every group is eligible.

Groups are module scopes from the exported node names (:func:`layer_group`): at depth 3 each
convolution of the ISP's U-Net and of MobileNetV2's blocks is its own group (the unit INT8 is
decided at); at depth 2 a whole block, the U-Net, the Anscombe transform or its inverse (the
unit for FP16, whose failures are overflow and underflow in element-wise arithmetic).

The measuring itself is passed in as functions, so the search is independent of how variants
are made (:mod:`edge_isp.export.precision`) and run (ONNX Runtime).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.export.precision import layer_name

# Outputs that are indices or positions picked by TopK: they jump, not drift, under small
# numerical changes, so they carry no graded error.
_DISCRETE_OUTPUTS = ("boxes", "labels")


# Module levels that hold layers without grouping them: MobileNetV2's own module, which the
# classifier's node names include and the detector's (through forward_features) do not.
_TRANSPARENT = frozenset({"backbone"})
GRAPH_LEVEL = "(graph)"


def layer_group(node_name: str, depth: int) -> str | None:
    """The group of an exported node: its :func:`layer_name` without transparent levels, cut
    to ``depth`` levels. Nodes at the top of the graph (the detection decoding) form the group
    ``"(graph)"``; nodes the exporter named without a scope (``Identity_12``, ``Constant_3``:
    weight plumbing, not layers) belong to no group (None)."""
    if depth < 1:
        raise InvalidInputError(f"group depth must be >= 1, got {depth}")
    if not node_name.startswith("/"):
        return None
    if node_name.count("/") == 1:
        return GRAPH_LEVEL
    parts = [p for p in layer_name(node_name).split("/") if p not in _TRANSPARENT]
    return "/".join(parts[:depth])


def group_nodes(nodes: Sequence[str], depth: int) -> dict[str, list[str]]:
    """``{group: [node names]}`` in first-appearance order; ungrouped nodes are left out."""
    groups: dict[str, list[str]] = {}
    for node in nodes:
        group = layer_group(node, depth)
        if group is not None:
            groups.setdefault(group, []).append(node)
    return groups


def relative_error(got: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """Mean over the graded outputs of ``||got - ref|| / ||ref||`` (non-finite values count as
    an error of 1 per element, so an overflow to inf ranks its group first)."""
    errors = []
    for name, ref in reference.items():
        if name in _DISCRETE_OUTPUTS:
            continue
        g = np.asarray(got[name], np.float64)
        r = np.asarray(ref, np.float64)
        bad = ~np.isfinite(g)
        diff = np.where(bad, np.abs(r) + 1.0, g - r)
        errors.append(float(np.linalg.norm(diff) / max(np.linalg.norm(r), 1e-12)))
    if not errors:
        raise InvalidInputError(f"no graded outputs among {sorted(reference)} to measure an error on")
    return float(np.mean(errors))


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def output_divergence(got: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """How far the variant's answer distribution is from FP32's, in nats: the mean KL divergence
    KL(FP32 || variant) of the softmax over a classifier's ``logits`` (per image) and of the
    per-pixel, per-class Bernoulli of a detector's ``heatmap`` logits (per image, summed over
    classes, averaged over positions), added. A graph with neither output falls back to
    :func:`relative_error`. Non-finite values rank first (infinite divergence)."""
    total, graded = 0.0, False
    for name, ref in reference.items():
        if name not in ("logits", "heatmap"):
            continue
        graded = True
        g = np.asarray(got[name], np.float64)
        r = np.asarray(ref, np.float64)
        if not np.all(np.isfinite(g)):
            return float("inf")
        if name == "logits":
            log_p, log_q = _log_softmax(r, -1), _log_softmax(g, -1)
            total += float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))
            continue
        # Bernoulli(p) vs Bernoulli(q) from logits: log sigmoid(x) = -log(1 + e^-x).
        log_p, log_q = -np.logaddexp(0.0, -r), -np.logaddexp(0.0, -g)
        log_1p, log_1q = -np.logaddexp(0.0, r), -np.logaddexp(0.0, g)
        kl = np.exp(log_p) * (log_p - log_q) + np.exp(log_1p) * (log_1p - log_1q)
        total += float(np.mean(kl.sum(axis=1)))
    return total if graded else relative_error(got, reference)


@dataclasses.dataclass(frozen=True)
class GroupScore:
    """How far the outputs move when only ``group`` (its ``nodes``) is reduced to the precision."""

    group: str
    nodes: tuple[str, ...]
    error: float


@dataclasses.dataclass(frozen=True)
class SearchStep:
    """One measured variant: the groups kept in FP32 and the metric drop at each light level."""

    kept: tuple[str, ...]
    drop: dict[str, float]

    @property
    def worst_drop(self) -> float:
        return max(self.drop.values())


@dataclasses.dataclass
class SearchResult:
    """The outcome: ``kept`` groups (and their ``kept_nodes``) to leave in FP32; ``met`` tells
    whether that brought every light level within ``tolerance`` of FP32."""

    precision: str
    tolerance: float
    steps: list[SearchStep]
    ranking: list[GroupScore]
    kept: list[str]
    kept_nodes: list[str]
    met: bool

    def summary(self) -> str:
        first = self.steps[0]
        text = f"{self.precision}: all layers reduced, worst drop {first.worst_drop:.2f} point(s)"
        if not self.kept:
            if self.met:
                return text + f": within {self.tolerance:g} point(s), nothing kept in fp32"
            return text + f": NOT within {self.tolerance:g} point(s), and keeping layers in fp32 did not help"
        last = self.steps[-1]
        verdict = "within" if self.met else "still NOT within"
        return (
            f"{text}; keeping {len(self.kept)} group(s) in fp32 ({', '.join(self.kept)}): worst drop "
            f"{last.worst_drop:.2f}, {verdict} {self.tolerance:g} point(s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "tolerance_points": self.tolerance,
            "met": self.met,
            "kept": self.kept,
            "kept_nodes": self.kept_nodes,
            "steps": [{"kept": list(s.kept), "drop": s.drop} for s in self.steps],
            "ranking": [{"group": g.group, "error": g.error, "nodes": len(g.nodes)} for g in self.ranking],
        }


def keep_counts(total: int) -> list[int]:
    """How many top-ranked groups to try keeping: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... up to
    ``total`` (about two tries per doubling, so a long ranking costs few measurements)."""
    counts, n = [], 1
    while n < total:
        counts.append(n)
        n = n + 1 if n < 4 else (n * 3 // 2 if (n & (n - 1)) == 0 else n * 4 // 3)
    counts.append(total)
    return sorted(set(c for c in counts if c >= 1))


def within_budget(
    ranking: Sequence[GroupScore], macs: Mapping[str, float] | None, max_float_macs: float | None
) -> list[GroupScore]:
    """The groups of ``ranking`` (in its order) that can be kept together within the budget:
    each taken if its MAC share fits what the groups taken before it left, else passed over."""
    if max_float_macs is None:
        return list(ranking)
    if macs is None:
        raise InvalidInputError("a MAC budget needs each group's share of the MACs")
    if not 0.0 <= max_float_macs <= 1.0:
        raise InvalidInputError(f"the share of MACs kept in float must be in [0, 1], got {max_float_macs}")
    missing = [s.group for s in ranking if s.group not in macs]
    if missing:
        raise InvalidInputError(f"no MAC share for group(s) {', '.join(missing)}")
    taken, used = [], 0.0
    for score in ranking:
        share = float(macs[score.group])
        if used + share <= max_float_macs + 1e-12:
            taken.append(score)
            used += share
    return taken


def search(
    precision: str,
    groups: Mapping[str, Sequence[str]],
    measure_drop: Callable[[Sequence[str]], dict[str, float]],
    measure_error_only: Callable[[Sequence[str]], float],
    *,
    tolerance: float = 1.0,
    progress: Callable[[str], None] | None = None,
    macs: Mapping[str, float] | None = None,
    max_float_macs: float | None = None,
) -> SearchResult:
    """Run the search described in the module docstring.

    Args:
        precision: "fp16" or "int8" (for the report).
        groups: ``{group: node names}`` that may be kept in FP32.
        measure_drop: kept node names -> ``{light level: FP32 metric - variant metric}``.
        measure_error_only: node names reduced alone -> output error against FP32.
        tolerance: the largest acceptable drop, in points.
        progress: optional callable receiving a line of text per measurement.
        macs: ``{group: share of the model's MACs}`` (0 to 1), for ``max_float_macs``.
        max_float_macs: the largest share of the MACs the kept groups may hold together, or
            None for no budget.
    """
    if not groups:
        raise InvalidInputError(f"no layer groups to search for {precision}")
    say = progress or (lambda _text: None)
    first = SearchStep((), dict(measure_drop(())))
    steps = [first]
    say(f"{precision}, every layer reduced: worst drop {first.worst_drop:.2f} point(s)")
    if first.worst_drop <= tolerance:
        return SearchResult(precision, tolerance, steps, [], [], [], True)
    ranking = []
    for i, (group, nodes) in enumerate(groups.items()):
        score = GroupScore(group, tuple(nodes), float(measure_error_only(nodes)))
        ranking.append(score)
        say(f"[{i + 1}/{len(groups)}] {group} alone in {precision}: output error {score.error:.3g}")
    ranking.sort(key=lambda s: -s.error)
    eligible = within_budget(ranking, macs, max_float_macs)
    if len(eligible) < len(ranking):
        say(
            f"{len(ranking) - len(eligible)} of {len(ranking)} group(s) passed over: keeping them would take "
            f"more than {max_float_macs:.1%} of the MACs out of {precision}"
        )
    if not eligible:
        return SearchResult(precision, tolerance, steps, ranking, [], [], False)
    for count in keep_counts(len(eligible)):
        kept = [s.group for s in eligible[:count]]
        nodes = [n for s in eligible[:count] for n in s.nodes]
        step = SearchStep(tuple(kept), dict(measure_drop(nodes)))
        steps.append(step)
        say(f"keeping {count} group(s) in fp32: worst drop {step.worst_drop:.2f} point(s)")
        if step.worst_drop <= tolerance:
            return SearchResult(precision, tolerance, steps, ranking, kept, nodes, True)
    best = min(steps, key=lambda s: (s.worst_drop, len(s.kept)))
    kept = list(best.kept)
    nodes = [n for s in ranking if s.group in kept for n in s.nodes]
    return SearchResult(precision, tolerance, steps, ranking, kept, nodes, False)
