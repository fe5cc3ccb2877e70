"""Evaluation: the light sweep of the study's pipelines, the reconstruction comparison,
and their reports (Markdown table, JSON, plot, picture grid). Needs torch and matplotlib.

Example:
    >>> from edge_isp.evaluate import evaluate_task
    >>> evaluate_task("classification", "data/demo", "results/cls", runs="runs")  # doctest: +SKIP
"""

from edge_isp.evaluate.pipelines import ROLES, Pipeline, PipelineOutput, build_pipelines, discover_checkpoints
from edge_isp.evaluate.recon import build_recon_pipelines
from edge_isp.evaluate.report import markdown, write_report
from edge_isp.evaluate.runner import evaluate_recon, evaluate_task
from edge_isp.evaluate.sweep import DEFAULT_LUX, SweepResult, SweepSettings, run_sweep, scene_images

__all__ = [
    "DEFAULT_LUX",
    "ROLES",
    "Pipeline",
    "PipelineOutput",
    "SweepResult",
    "SweepSettings",
    "build_pipelines",
    "build_recon_pipelines",
    "discover_checkpoints",
    "evaluate_recon",
    "evaluate_task",
    "markdown",
    "run_sweep",
    "scene_images",
    "write_report",
]
