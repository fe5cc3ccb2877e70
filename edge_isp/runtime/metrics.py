"""Live metrics of the pipeline: latency percentiles, counters, FPS.

Everything is thread-safe: the pipeline's stage threads record, and any other thread (the
HTTP output serving ``/metrics`` and the dashboard, a logger) reads a
:meth:`PipelineMetrics.snapshot`: a flat JSON-serializable dict in the schema
``edge_isp.runtime.outputs.prometheus`` renders (numbers, plus ``latency_ms`` per stage by
quantile key).

Percentiles are exact over a sliding window of the most recent samples (the live view
should follow what happens now, not the start-up); counts and sums are cumulative.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError

QUANTILES = (0.5, 0.9, 0.99)
_QUANTILE_KEYS = tuple(f"p{round(q * 100)}_ms" for q in QUANTILES)


class LatencyWindow:
    """Latency samples in ms: percentiles over the last ``window`` samples, cumulative count/sum."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise InvalidInputError(f"a latency window needs at least 1 sample, got {window}")
        self._ring = np.zeros(window, dtype=np.float64)
        self._filled = 0
        self._next = 0
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        """Record one sample in milliseconds (finite, >= 0)."""
        if not (math.isfinite(ms) and ms >= 0):
            raise InvalidInputError(f"a latency must be a finite number of ms >= 0, got {ms}")
        self._ring[self._next] = ms
        self._next = (self._next + 1) % self._ring.size
        self._filled = min(self._filled + 1, self._ring.size)
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def summary(self) -> dict[str, float]:
        """``count``/``sum_ms`` (cumulative), ``mean_ms``, ``p50_ms``/``p90_ms``/``p99_ms`` (window), ``max_ms``."""
        out = {"count": self.count, "sum_ms": self.total_ms, "max_ms": self.max_ms}
        if self._filled:
            window = self._ring[: self._filled]
            values = np.percentile(window, [q * 100 for q in QUANTILES])
            out["mean_ms"] = float(window.mean())
            out.update({_quantile_key(q): float(v) for q, v in zip(QUANTILES, values, strict=True)})
        else:
            out["mean_ms"] = 0.0
            out.update({_quantile_key(q): 0.0 for q in QUANTILES})
        return out


def _quantile_key(q: float) -> str:
    return f"p{round(q * 100)}_ms"


class RateMeter:
    """Events per second over the last ``window_s`` seconds (at least two events needed).

    The rate runs up to now, not to the last event: once the time since the last event
    exceeds the mean interval the rate falls, and it is 0 after ``window_s`` without one
    (a camera outage shows as 0 FPS, not as the last rate seen).
    """

    def __init__(self, window_s: float = 2.0, clock=time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()

    def tick(self) -> None:
        now = self._clock()
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        # Keep one event older than the window so the rate spans the whole window.
        while len(self._times) > 2 and now - self._times[1] > self._window_s:
            self._times.popleft()

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        now = self._clock()
        self._trim(now)
        first, last, intervals = self._times[0], self._times[-1], len(self._times) - 1
        if now - last > self._window_s:
            return 0.0
        span = last - first
        # The interval in progress counts once it is longer than the mean one.
        span += max(0.0, (now - last) - span / intervals)
        return intervals / span if span > 0 else 0.0


class PipelineMetrics:
    """Counters, per-stage latencies and the output rate of a running pipeline.

    Args:
        stages: the stage names whose latency is recorded (``end_to_end`` is always there).
        counters: the counter names, all starting at 0 (``frames``, the frames that reached
            the outputs, is always there).
        window: samples per latency window.
    """

    def __init__(self, stages: Iterable[str], counters: Iterable[str] = (), window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._latency = {name: LatencyWindow(window) for name in (*stages, "end_to_end")}
        self._counters = dict.fromkeys(("frames", *counters), 0)
        self._dropped: dict[str, int] = {}
        self._fps = RateMeter()
        self._started = time.monotonic()
        self._stopped: float | None = None

    def start_clock(self) -> None:
        """Start ``uptime_s`` now (when the pipeline starts, not when it was made)."""
        with self._lock:
            self._started, self._stopped = time.monotonic(), None

    def stop_clock(self) -> None:
        """Freeze ``uptime_s`` (the pipeline has stopped)."""
        with self._lock:
            self._stopped = time.monotonic()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            if name not in self._counters:
                raise InvalidInputError(f"unknown counter {name!r}; known: {sorted(self._counters)}")
            self._counters[name] += n

    def dropped(self, where: str, n: int = 1) -> None:
        """Count ``n`` frames dropped at ``where`` (the stage whose input queue was full)."""
        with self._lock:
            self._dropped[where] = self._dropped.get(where, 0) + n

    def frame_done(self, latency_ms: Mapping[str, float]) -> None:
        """Record one frame that reached the outputs, with its per-stage latencies."""
        with self._lock:
            for name, ms in latency_ms.items():
                if name in self._latency:
                    self._latency[name].add(ms)
            self._counters["frames"] += 1
            self._fps.tick()

    def fps(self) -> float:
        with self._lock:
            return self._fps.rate()

    def snapshot(self) -> dict[str, Any]:
        """A flat JSON-serializable copy, taken under the lock.

        Keys: ``frames`` (frames that reached the outputs), ``dropped`` (all drops),
        ``dropped_<stage>`` (drops in front of each stage that dropped any), ``fps``,
        ``uptime_s``, every other counter, and ``latency_ms``: per stage and ``end_to_end``,
        ``{"p50": ms, "p90": ms, "p99": ms}`` over the recent window.
        """
        with self._lock:
            snap: dict[str, Any] = {
                "frames": self._counters["frames"],
                "dropped": sum(self._dropped.values()),
                "fps": self._fps.rate(),
                "uptime_s": (self._stopped or time.monotonic()) - self._started,
            }
            snap.update((name, n) for name, n in self._counters.items() if name != "frames")
            snap.update((f"dropped_{where}", n) for where, n in sorted(self._dropped.items()))
            snap["latency_ms"] = {
                name: {key[:-3]: value for key, value in window.summary().items() if key in _QUANTILE_KEYS}
                for name, window in self._latency.items()
            }
            return snap

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """Per stage: :meth:`LatencyWindow.summary` (count, sum, mean, max and quantiles in ms)."""
        with self._lock:
            return {name: window.summary() for name, window in self._latency.items()}
