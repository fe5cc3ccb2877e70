"""Calibration plots (PNG, matplotlib's Agg backend): photon transfer, noise against gain,
and the single-image level sets."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate.gain_fit import GainFit
from edge_isp.calibrate.ptc import PtcGainResult
from edge_isp.calibrate.single_image import SingleImageResult, clipped_moments
from edge_isp.errors import require
from edge_isp.fileio import atomic_open
from edge_isp.sensor.cfa import PLANE_ORDER

MARKERS = ("o", "s", "D", "^")


def _figure(figsize: tuple[float, float], **options):
    """A matplotlib figure drawn by the Agg canvas, without pyplot (whose figure manager a file
    does not need)."""
    require("matplotlib", "train", "calibration plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, **options)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)


def plot_ptc(results: Sequence[PtcGainResult], path: str | os.PathLike) -> None:
    """Photon transfer (temporal variance against signal) and SNR against signal, per gain."""
    # Fixed margins: constrained layout measures every label's extent and cost as much as the
    # whole photon-transfer analysis of a 1024x768 sweep. The titles sit at the top of their axes
    # (y=1, where matplotlib would put them above axes with no labels on top) without a
    # measurement of the axes' tick labels to place them (a quarter of the drawing).
    fig = _figure((13, 5.2))
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    ax, ax_snr = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.1, top=0.93, wspace=0.17)
    colours = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(results), 1)))
    for res, colour in zip(results, colours, strict=True):
        label_done = False
        for c in range(4):
            fit = res.channels[c]
            s = np.array([lv.signal_dn[c] for lv in res.levels])
            v = np.array([lv.variance_dn2[c] for lv in res.levels])
            total = np.array([lv.total_variance_dn2[c] for lv in res.levels])
            used = np.zeros(s.size, dtype=bool)
            used[list(fit.used)] = True
            ok = (s > 0) & (v > 0)
            label = f"gain {res.analogue_gain:g}: K = {res.gain_dn_per_e:.4g} DN/e-" if not label_done else None
            label_done = True
            ax.scatter(s[ok & used], v[ok & used], color=colour, marker=MARKERS[c], s=18, label=label)
            ax.scatter(s[ok & ~used], v[ok & ~used], facecolors="none", edgecolors=colour, marker=MARKERS[c], s=18)
            # EMVA's SNR curve stops at saturation: past it the clipped noise means nothing.
            below = np.array([lv.all_signal_dn[c] <= fit.saturation_dn * (1 + 1e-9) for lv in res.levels])
            snr_ok = (s > 0) & (total > 0) & below
            ax_snr.scatter(s[snr_ok], s[snr_ok] / np.sqrt(total[snr_ok]), color=colour, marker=MARKERS[c], s=12)
        top = max(c.saturation_dn for c in res.channels)
        grid = np.geomspace(max(top * 1e-3, 0.1), top, 200)
        ax.plot(grid, res.gain_dn_per_e * grid, color=colour, lw=1)
        saturation = float(np.mean([c.saturation_dn for c in res.channels]))
        ax.axvline(0.7 * saturation, color=colour, ls=":", lw=1)
        ax.axvline(saturation, color=colour, ls="--", lw=1)
        ax.annotate(
            f"saturation {saturation:.0f} DN", (saturation, 1), xycoords=("data", "axes fraction"),
            xytext=(-4, -4), textcoords="offset points", rotation=90, ha="right", va="top", fontsize=8, color=colour,
        )  # fmt: skip
        ax_snr.plot(grid, res.snr_model(grid), color=colour, lw=1, label=f"gain {res.analogue_gain:g} model")
    ax.set(xscale="log", yscale="log", xlabel="signal above dark (DN)", ylabel="temporal variance above dark (DN²)")
    ax.set_title(
        "Photon transfer (filled: in the fit; dotted: 70 % of saturation; dashed: saturation)", fontsize=10, y=1
    )
    ax.legend(fontsize=8)
    ax_snr.set(xscale="log", yscale="log", xlabel="signal above dark (DN)", ylabel="SNR")
    ax_snr.set_title("SNR up to saturation: measured (points) and model", fontsize=10, y=1)
    ax_snr.legend(fontsize=8)
    handles = [Line2D([], [], color="grey", marker=m, ls="") for m in MARKERS]
    ax_snr.add_artist(ax_snr.legend(handles, PLANE_ORDER, loc="lower right", fontsize=8, title="channel"))
    ax_snr.legend(fontsize=8, loc="upper left")
    _save(fig, path)


def plot_gain(fit: GainFit, path: str | os.PathLike) -> None:
    """K against analogue gain and read noise against K, with the fits."""
    fig = _figure((12, 4.8), layout="constrained")
    ax_k, ax_r = fig.subplots(1, 2)
    g = np.array([p.analogue_gain for p in fit.points])
    k = np.array([p.gain_dn_per_e for p in fit.points])
    r = np.array([p.read_noise_dn for p in fit.points])
    ax_k.errorbar(g, k, yerr=[p.gain_se for p in fit.points], fmt="o", capsize=3, label="measured")
    if fit.k_fit is not None:
        grid = np.linspace(0, g.max() * 1.1, 100)
        ax_k.plot(grid, fit.k_fit.slope * grid + fit.k_fit.intercept, label="linear fit")
        for gi, ki, res in zip(g, k, fit.k_residuals_pct(), strict=True):
            ax_k.annotate(f"{res:+.2f} %", (gi, ki), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax_k.set(xlabel="analogue gain", ylabel="K (DN/e-)", title="System gain against analogue gain")
    ax_k.legend(fontsize=8)
    ax_r.errorbar(k, r, yerr=[p.read_noise_se for p in fit.points], fmt="o", capsize=3, label="measured")
    if fit.read_fit is not None:
        grid = np.geomspace(k.min() / 1.5, k.max() * 1.5, 100)
        ax_r.plot(grid, [fit.read_at(x) for x in grid], label="log-linear fit (ELD)")
        for ki, ri, res in zip(k, r, fit.read_residuals_pct(), strict=True):
            ax_r.annotate(f"{res:+.2f} %", (ki, ri), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax_r.set(xscale="log", yscale="log", xlabel="K (DN/e-)", ylabel="read noise (DN)")
    ax_r.set_title("Read noise against system gain")
    ax_r.legend(fontsize=8)
    _save(fig, path)


def plot_level_sets(results: Sequence[SingleImageResult], path: str | os.PathLike) -> None:
    """Single-image level sets (noise std against level) with the fitted clipped model."""
    fig = _figure((6 * len(results), 4.8), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for image_sets in res.level_sets:
            for c, sets in enumerate(image_sets):
                ax.scatter(sets.y_hat, sets.s_hat, s=8, marker=MARKERS[c], alpha=0.6)
        sets = res.level_sets[0][1]
        grid = np.linspace(0.0, sets.high * 1.2, 300)
        sigma = np.sqrt(np.maximum(res.joint.a * grid + res.joint.b, 1e-18))
        mean, std = clipped_moments(grid, sigma, sets.low, sets.high)
        ax.plot(mean, std, color="k", lw=1, label=f"a = {res.joint.a:.3g}, b = {res.joint.b:.3g}")
        ax.set(xlabel="level (normalized)", ylabel="noise std (normalized)")
        ax.set_title(f"Single image, gain {res.analogue_gain:g}")
        ax.legend(fontsize=8)
    _save(fig, path)
