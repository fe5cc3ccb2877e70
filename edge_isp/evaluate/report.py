"""The sweep's report: a Markdown table, the JSON of every number, a plot, a picture grid.

Files (all written atomically, so a crash never leaves half a report):

- ``NAME.md``: one table per metric, pipelines as rows and light levels as columns, each
  cell ``mean ± std`` over seeds (``n/a`` where a pipeline has no image), a dagger on levels
  outside the light range a pipeline was trained on, then the training conditions with the
  metric's mean inside and outside that range, and the notes (skipped pipelines).
- ``NAME.json``: :meth:`SweepResult.to_dict`.
- ``NAME.png``: each metric against light (log x axis), one line per pipeline, the seed
  spread as a band of +- one standard deviation.
- ``scene.png``: one scene through every pipeline (plus clean and the noisy raw).

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.evaluate.merge import paired_differences
from edge_isp.evaluate.scoring import METRIC_TEXT
from edge_isp.evaluate.sweep import SweepResult, out_of_range, range_means
from edge_isp.fileio import atomic_open, write_bytes, write_json

PERCENT_METRICS = ("top1", "top5", "top1_low", "top1_high", "map50", "map50_95")
OUTSIDE_MARK = "†"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def format_value(metric: str, mean: float | None, std: float | None) -> str:
    """A table cell: task metrics in percent (1 decimal), PSNR in dB (2), SSIM (3)."""
    if mean is None:
        return "n/a"
    scale, digits = (100.0, 1) if metric in PERCENT_METRICS else (1.0, 2 if metric == "psnr" else 3)
    text = f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def metric_title(metric: str) -> str:
    return METRIC_TEXT[metric] + (" (%)" if metric in PERCENT_METRICS else "")


def level_header(level: Mapping[str, Any]) -> str:
    """'3 lux (8.0 e-)' or '8 e-'."""
    e = f"{level['electrons']:.3g} e-"
    return f"{level['value']:g} lux ({e})" if level["unit"] == "lux" else e


def markdown(result: SweepResult, title: str | None = None, paired: Sequence[str] = ("e",)) -> str:
    """The report as Markdown (see the module docstring); for merged sweeps, each pipeline
    key of ``paired`` minus every other pipeline, paired within runs."""
    s = result.settings
    title = title or f"Light sweep: {s['task']} on {s['profile']}"
    lines = [
        f"# {title}",
        "",
        f"Held-out images: {result.images}; {_runs_text(s)}; "
        f"profile: `{s['profile']}`; blur: `{s['blur']}`"
        + ("." if s["task"] == "reconstruction" else f"; conventional ISP: {s['demosaic']} + {s['denoise']}."),
        f"{OUTSIDE_MARK}: a light level outside the range the pipeline's raw was trained on "
        "(compared in photo-electrons at white).",
        "",
    ]
    scale = int(s.get("raw_scale", 1))
    if scale > 1:
        lines[-1:-1] = [
            f"Raw at {scale}x the picture's sides for every pipeline; each is scored on the picture at the "
            f"evaluation size (full-resolution pipelines area-average their image by {scale}).",
        ]
    headers = [level_header(row) for row in result.levels]
    for metric in result.metrics:
        lines += [f"## {metric_title(metric)}", "", "| pipeline | " + " | ".join(headers) + " |"]
        lines.append("|---|" + "---:|" * len(headers))
        for p in result.pipelines:
            outside = out_of_range(result, p["key"]) or [False] * len(headers)
            cells = [
                format_value(metric, mean, std) + (OUTSIDE_MARK if out and mean is not None else "")
                for (mean, std), out in zip(result.summary(p["key"], metric), outside, strict=True)
            ]
            lines.append(f"| {p['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _training_section(result)
    for reference in paired:
        lines += _differences_section(result, reference)
    if result.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in result.notes], ""]
    return "\n".join(lines)


def _runs_text(settings: Mapping[str, Any]) -> str:
    seeds = ", ".join(str(v) for v in settings["seeds"])
    runs = settings.get("runs")
    if not runs:
        return f"noise seeds: {seeds} (cells: mean ± std over seeds)"
    return (
        f"{len(runs)} training runs ({', '.join(f'`{r}`' for r in runs)}) x noise seeds {seeds} "
        f"(cells: mean ± std over the {len(runs) * len(settings['seeds'])} runs)"
    )


def _differences_section(result: SweepResult, reference: str) -> list[str]:
    """Pipeline ``reference`` minus each other one, paired within runs (merged sweeps only)."""
    keys = [p["key"] for p in result.pipelines]
    rows = len(next(iter(result.values.values()))[result.metrics[0]]) if result.values else 0
    if reference not in keys or rows < 2:
        return []
    metric = result.metrics[0]
    headers = [level_header(row) for row in result.levels]
    lines = [
        f"## ({reference}) minus each pipeline, paired within runs: {metric_title(metric)}",
        "",
        "Every pipeline of a run saw the same frames and noise: mean ± std over runs of the difference.",
        "",
        f"| ({reference}) minus | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(headers),
    ]
    for p in result.pipelines:
        if p["key"] == reference:
            continue
        diffs = paired_differences(result, reference, p["key"], metric)
        if diffs is not None:
            cells = [format_value(metric, mean, std) for mean, std in diffs]
            lines.append(f"| {p['label']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _training_section(result: SweepResult) -> list[str]:
    metric = result.metrics[0]
    extras = {p["key"]: _simulation_extras(p.get("trained_on")) for p in result.pipelines}
    # The column only where some pipeline was trained with blur or a read-noise range.
    extra_head, extra_rule = (" also simulated |", "---|") if any(extras.values()) else ("", "")
    lines = [
        "## Training conditions",
        "",
        f"| pipeline | trained on | light range |{extra_head} {metric_title(metric)} in range | out of range |",
        f"|---|---|---|{extra_rule}---:|---:|",
    ]
    for p in result.pipelines:
        trained = p.get("trained_on")
        extra = f" {extras[p['key']] or '-'} |" if extra_head else ""
        if not trained:
            lines.append(f"| {p['label']} | {p.get('training', 'not learned')} | - |{extra} - | - |")
            continue
        low, high = trained["light_range"]
        unit = "lux" if trained["light_unit"] == "lux" else "e-"
        inside, outside = range_means(result, p["key"], metric)
        lines.append(
            f"| {p['label']} | `{trained['profile']}` | {low:g}-{high:g} {unit} |{extra} "
            f"{format_value(metric, inside, None)} | {format_value(metric, outside, None)} |"
        )
    return [*lines, ""]


def _simulation_extras(trained: dict[str, Any] | None) -> str:
    """What a pipeline's training simulated beyond profile and light: the lens blur and the
    read-noise factor range, where set ("" otherwise, and for sweeps written before these
    were recorded)."""
    if not trained:
        return ""
    parts = []
    if trained.get("blur", "none") != "none":
        parts.append(f"blur `{trained['blur']}`")
    low, high = trained.get("read_noise_range", (1.0, 1.0))
    if (low, high) != (1.0, 1.0):
        parts.append(f"read noise x{low:g}-{high:g}")
    return ", ".join(parts)


def x_values(result: SweepResult) -> tuple[np.ndarray, str]:
    """The x axis: lux when every level has one, else photo-electrons at white."""
    if all(row["lux"] is not None for row in result.levels):
        return np.array([row["lux"] for row in result.levels]), "scene illuminance (lux)"
    return np.array([row["electrons"] for row in result.levels]), "photo-electrons at white"


def sweep_figure(result: SweepResult):
    """The plot as a matplotlib Figure: one axes per metric, one line per pipeline with a
    value (pipelines without an image have no line in the PSNR/SSIM axes)."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    x, xlabel = x_values(result)
    order = np.argsort(x)
    n = len(result.metrics)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.0), squeeze=False)
    for ax, metric in zip(axes[0], result.metrics, strict=True):
        scale = 100.0 if metric in PERCENT_METRICS else 1.0
        for index, p in enumerate(result.pipelines):
            stats = result.summary(p["key"], metric)
            if any(mean is None for mean, _ in stats):
                continue
            mean = np.array([m for m, _ in stats])[order] * scale
            # One colour per pipeline in every axes, even where one has no line.
            colour = f"C{index % 10}"
            (line,) = ax.plot(x[order], mean, marker="o", markersize=3.5, label=p["label"], color=colour)
            std = np.array([0.0 if s is None else s for _, s in stats])[order] * scale
            if np.any(std > 0):
                ax.fill_between(x[order], mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        # Ticks at the measured levels, in plain numbers (log axes default to 3x10^0 labels).
        ax.set_xticks(x[order], [f"{v:.3g}" for v in x[order]])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_title(metric))
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, max(1, len(labels))), fontsize=8, frameon=False)
    s = result.settings
    blur = "" if s["blur"] in ("", "none") else f", blur {s['blur']}"
    runs = f"{len(s['runs'])} training runs x " if s.get("runs") else ""
    fig.suptitle(f"{s['task']} on {s['profile']}{blur}: {runs}{len(s['seeds'])} noise seed(s), {result.images} images")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(labels) - 1) // 3), 1, 0.95))
    return fig


def grid_figure(images: Mapping[str, np.ndarray | None], title: str):
    """The picture grid as a Figure: one panel per entry; None shows as 'no image'."""
    plt = _pyplot()
    n = len(images)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, image) in zip(axes.flat, images.items(), strict=False):
        if image is None:
            ax.text(0.5, 0.5, "no image\n(perception on raw)", ha="center", va="center", fontsize=9)
        else:
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
        ax.set_title(label, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(h_pad=2.0)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    """Render ``fig`` to PNG in memory, then write it atomically, and close it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    write_bytes(path, buffer.getvalue())


def write_report(
    result: SweepResult,
    out: str | Path,
    *,
    name: str = "sweep",
    scene: Mapping[str, np.ndarray | None] | None = None,
    scene_title: str = "",
    title: str | None = None,
    paired: Sequence[str] = ("e",),
) -> dict[str, Path]:
    """Write ``NAME.md``, ``NAME.json``, ``NAME.png`` (and ``scene.png``) into ``out``;
    ``paired`` as in :func:`markdown`."""
    out = Path(out)
    paths = {"markdown": out / f"{name}.md", "json": out / f"{name}.json", "plot": out / f"{name}.png"}
    with atomic_open(paths["markdown"], "w", encoding="utf-8") as handle:
        handle.write(markdown(result, title, paired))
    write_json(paths["json"], result.to_dict())
    save_figure(sweep_figure(result), paths["plot"])
    if scene is not None:
        paths["scene"] = out / ("scene.png" if name == "sweep" else f"{name}-scene.png")
        save_figure(grid_figure(scene, scene_title), paths["scene"])
    return paths
