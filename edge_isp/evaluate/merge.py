"""Merge the sweeps of repeated training runs into one: the spread between training seeds.

``edge-isp eval --seeds N`` repeats the noise draws of one set of checkpoints; the spread it
shows is the evaluation's. Whether one pipeline beats another also depends on how its
training went, so the study trains every pipeline with several seeds, evaluates each seed's
checkpoints on the same frames and noise draws, and merges the sweeps here:

- every sweep must have measured the same thing (task, profile, light levels, blur,
  conventional ISP, noise seeds, number of images, pipelines); a difference is an error
  that names it. With ``common=True`` the pipelines may differ: the merge keeps those every
  sweep has (same key and label) and notes the ones it leaves out, so that a run evaluated
  with an extra checkpoint, or without one, still joins the others;
- the merged ``values`` hold one row per (run, noise seed), so the cells' mean ± std are
  over the runs;
- :func:`paired_differences` gives, per light level, the mean and spread over runs of one
  pipeline minus another *within each run*: all pipelines of a run saw the same frames and
  noise, so this is the sharper test of "(e) beats (b) by more than the seeds' spread".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.scoring import spread
from edge_isp.evaluate.sweep import SweepResult

# Settings that must agree for two sweeps to be merged (the rest, e.g. batch size or
# rendering threads, do not change a number).
SAME_SETTINGS = ("task", "profile", "levels", "light_unit", "blur", "seeds", "demosaic", "denoise", "unprocess")


def sweep_file(path: str | Path) -> Path:
    """``DIR/sweep.json`` for a report folder, else ``path`` itself; it must exist."""
    path = Path(path)
    file = path / "sweep.json" if path.is_dir() else path
    if not file.is_file():
        raise InvalidInputError(f"no sweep at {path}: expected a folder with sweep.json (from edge-isp eval) or one")
    return file


def load_sweep(path: str | Path) -> SweepResult:
    """A sweep from ``DIR/sweep.json`` or a JSON file's path."""
    file = sweep_file(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return SweepResult.from_dict(data)
    except (ValueError, TypeError, AttributeError) as error:
        raise InvalidInputError(f"{file} is not a sweep written by edge-isp eval: {error}") from None


def _signature(result: SweepResult, with_pipelines: bool = True) -> dict[str, Any]:
    s = result.settings
    signature = {
        **{key: s.get(key) for key in SAME_SETTINGS},
        # Sweeps written before raw_scale existed simulated the raw at the picture's size.
        "raw_scale": int(s.get("raw_scale", 1)),
        "metrics": list(result.metrics),
        "images": result.images,
    }
    if with_pipelines:
        signature["pipelines"] = _pipeline_names(result)
    return signature


def _pipeline_names(result: SweepResult) -> list[tuple[str, str]]:
    return [(p["key"], p["label"]) for p in result.pipelines]


def merge_results(results: Sequence[SweepResult], sources: Sequence[str], common: bool = False) -> SweepResult:
    """One sweep whose rows are every run's noise seeds, for the spread between runs.

    Args:
        results: two or more sweeps of the same evaluation, one per training seed.
        sources: a name for each (its folder), kept in ``settings["runs"]``.
        common: keep the pipelines every sweep has (in the first sweep's order) and note
            the others, instead of refusing sweeps whose pipelines differ.
    """
    if len(results) < 2:
        raise InvalidInputError(f"merging needs at least two sweeps, got {len(results)}")
    if len(sources) != len(results):
        raise InvalidInputError(f"one source name per sweep: {len(results)} sweeps, {len(sources)} names")
    first = _signature(results[0], with_pipelines=not common)
    for source, result in zip(sources[1:], results[1:], strict=True):
        other = _signature(result, with_pipelines=not common)
        differing = [key for key in first if first[key] != other[key]]
        if differing:
            details = "; ".join(f"{key}: {first[key]!r} vs {other[key]!r}" for key in differing)
            hint = " (--common merges the pipelines every sweep has)" if differing == ["pipelines"] else ""
            raise InvalidInputError(f"{source} did not measure what {sources[0]} did ({details}){hint}")
    names = [set(_pipeline_names(r)) for r in results]
    shared = set.intersection(*names)
    kept = [p for p in results[0].pipelines if (p["key"], p["label"]) in shared]
    if not kept:
        raise InvalidInputError(f"the sweeps {', '.join(sources)} have no pipeline in common (same key and label)")
    left_out = []
    for name in sorted(set.union(*names) - shared):
        holders = [source for source, have in zip(sources, names, strict=True) if name in have]
        left_out.append(f"left out of the merge: {name[1]} (only in {', '.join(holders)})")
    metrics = list(results[0].metrics)
    values = {
        p["key"]: {metric: [row for r in results for row in r.values[p["key"]][metric]] for metric in metrics}
        for p in kept
    }
    pipelines = []
    for p in kept:
        merged = {key: value for key, value in p.items() if key != "checkpoints"}
        merged["checkpoints"] = [r.pipeline(p["key"]).get("checkpoints", {}) for r in results]
        pipelines.append(merged)
    settings = {**results[0].settings, "runs": list(sources)}
    notes = sorted({note for r in results for note in r.notes}) + left_out
    return SweepResult(
        settings=settings,
        levels=results[0].levels,
        pipelines=pipelines,
        metrics=metrics,
        values=values,
        images=results[0].images,
        notes=notes,
    )


def paired_differences(
    result: SweepResult, key: str, other: str, metric: str
) -> list[tuple[float | None, float | None]] | None:
    """Per level, (mean, std over rows) of ``key`` minus ``other`` row by row.

    Rows pair up because every row of a merged sweep is one run and noise seed, in which
    both pipelines saw the same frames. None when either pipeline has no value.
    """
    a, b = result.values[key][metric], result.values[other][metric]
    if any(v is None for row in a + b for v in row):
        return None
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return [spread(list(diff[:, level])) for level in range(diff.shape[1])]
