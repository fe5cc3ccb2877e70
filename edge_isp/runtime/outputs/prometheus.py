"""The pipeline's live metrics in the Prometheus text exposition format (version 0.0.4).

The pipeline hands the HTTP output a ``metrics()`` callable that returns a snapshot:

    {
        "frames": 1200,         # frames processed since start (counter)
        "dropped": 14,          # frames dropped since start (counter)
        "fps": 29.7,            # recent output rate, frames per second (gauge)
        "latency_ms": {         # recent latency per stage in milliseconds, by quantile
            "preprocess": {"p50": 1.9, "p99": 3.2},
            "inference": {"p50": 21.0, "p99": 30.5},
            "end_to_end": {"p50": 33.0, "p99": 47.1},
        },
        "dropped_inference": 9, # frames dropped in front of one stage (counter, label stage)
        "source_errors_total": 2,  # a key ending in _total: a counter edge_isp_<key>
        "uptime_s": 60.5,       # a key ending in _s: a gauge edge_isp_<key>econds (edge_isp_uptime_seconds)
        "queue_depth": 1,       # any other number: a gauge edge_isp_<key>
    }

Every key is optional. Latency is exposed in seconds, Prometheus' base unit, as the gauge
``edge_isp_stage_latency_seconds{stage="...",quantile="0.5"}``: the pipeline reports
windowed quantiles without the running sum and count a ``summary`` would need.

Format rules followed (prometheus.io, "Exposition formats"): UTF-8 lines ending in ``\\n``,
including the last; ``# HELP`` then ``# TYPE`` once per metric name, before its samples, all
samples of a name in one group; names match ``[a-zA-Z_:][a-zA-Z0-9_:]*`` and label names
``[a-zA-Z_][a-zA-Z0-9_]*`` (``__`` reserved); label values escape backslash, double quote and
line feed, HELP text escapes backslash and line feed; values are Go-parseable floats, with
``NaN``, ``+Inf`` and ``-Inf``; counters end in ``_total``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from edge_isp.errors import InvalidInputError

PREFIX = "edge_isp_"
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
QUANTILE_KEY = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
KINDS = ("counter", "gauge", "summary", "histogram", "untyped")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One line: ``value`` with its labels; ``suffix`` is appended to the family name."""

    value: float
    labels: tuple[tuple[str, str], ...] = ()
    suffix: str = ""


@dataclasses.dataclass(frozen=True)
class MetricFamily:
    """A metric name with its type, help text and samples."""

    name: str
    kind: str
    help: str
    samples: tuple[Sample, ...]

    def __post_init__(self) -> None:
        if not METRIC_NAME.match(self.name):
            raise InvalidInputError(f"metric name must match {METRIC_NAME.pattern}, got {self.name!r}")
        if self.kind not in KINDS:
            raise InvalidInputError(f"metric type must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise InvalidInputError(f"counter names end in _total, got {self.name!r}")
        for sample in self.samples:
            for label, _ in sample.labels:
                if not LABEL_NAME.match(label) or label.startswith("__"):
                    raise InvalidInputError(
                        f"label name must match {LABEL_NAME.pattern} without a leading '__', got {label!r}"
                    )


def format_value(value: float) -> str:
    """A sample value as the Go float parser reads it (``NaN``, ``+Inf``, ``-Inf``)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render(families: list[MetricFamily]) -> str:
    """The exposition text of ``families`` (names must be distinct)."""
    seen: set[str] = set()
    lines: list[str] = []
    for family in families:
        if family.name in seen:
            raise InvalidInputError(f"metric {family.name!r} appears twice; each name is one group")
        seen.add(family.name)
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sample.labels)
            labels = "{" + labels + "}" if labels else ""
            lines.append(f"{family.name}{sample.suffix}{labels} {format_value(sample.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise InvalidInputError(f"metric {key!r} must be a number, got {type(value).__name__} {value!r}")
    return value if isinstance(value, int) else float(value)


def _quantile(key: str) -> str:
    match = QUANTILE_KEY.match(key)
    if not match:
        raise InvalidInputError(f"latency quantile keys are 'p50', 'p99', 'p99.9'..., got {key!r}")
    return format_value(float(match.group(1)) / 100.0)


def pipeline_families(snapshot: Mapping[str, Any]) -> list[MetricFamily]:
    """Metric families from a pipeline ``metrics()`` snapshot (schema in the module docstring)."""
    families = []
    if "frames" in snapshot:
        families.append(
            MetricFamily(
                PREFIX + "frames_total",
                "counter",
                "Frames processed by the pipeline since it started.",
                (Sample(_number("frames", snapshot["frames"])),),
            )
        )
    if "dropped" in snapshot:
        families.append(
            MetricFamily(
                PREFIX + "frames_dropped_total",
                "counter",
                "Frames dropped because a stage was busy, since the pipeline started.",
                (Sample(_number("dropped", snapshot["dropped"])),),
            )
        )
    if "fps" in snapshot:
        families.append(
            MetricFamily(
                PREFIX + "fps",
                "gauge",
                "Recent output rate in frames per second.",
                (Sample(_number("fps", snapshot["fps"])),),
            )
        )
    latency = snapshot.get("latency_ms")
    if latency:
        samples = []
        for stage, quantiles in latency.items():
            if not isinstance(quantiles, Mapping):
                raise InvalidInputError(
                    f"latency_ms[{stage!r}] must map quantile keys to milliseconds, got {quantiles!r}"
                )
            for key, ms in quantiles.items():
                seconds = _number(f"latency_ms[{stage!r}][{key!r}]", ms) / 1000.0
                samples.append(Sample(seconds, (("stage", str(stage)), ("quantile", _quantile(key)))))
        families.append(
            MetricFamily(
                PREFIX + "stage_latency_seconds",
                "gauge",
                "Recent latency per pipeline stage in seconds, at the labelled quantile.",
                tuple(samples),
            )
        )
    by_stage = []
    for key, value in snapshot.items():
        if key in ("frames", "dropped", "fps", "latency_ms"):
            continue
        sample = Sample(_number(key, value))
        if key.startswith("dropped_"):
            by_stage.append(dataclasses.replace(sample, labels=(("stage", key[len("dropped_") :]),)))
        elif key.endswith("_total"):
            families.append(MetricFamily(PREFIX + key, "counter", f"Pipeline counter '{key}'.", (sample,)))
        elif key.endswith("_s"):
            families.append(MetricFamily(PREFIX + key + "econds", "gauge", f"Pipeline metric '{key}'.", (sample,)))
        else:
            families.append(MetricFamily(PREFIX + key, "gauge", f"Pipeline metric '{key}'.", (sample,)))
    if by_stage:
        families.append(
            MetricFamily(
                PREFIX + "stage_frames_dropped_total",
                "counter",
                "Frames dropped in front of each pipeline stage, since the pipeline started.",
                tuple(by_stage),
            )
        )
    return families
