"""The live pipeline: capture -> preprocess -> inference -> postprocess + annotate -> outputs.

Four threads, one per stage, joined by bounded queues (:class:`FrameQueue`). When a stage
is slower than the one feeding it (inference slower than the camera, typically), the queue
in front of it drops its OLDEST frame for each new one and counts it: the outputs always
show the most recent frame the model could keep up with, and memory stays bounded. For
replaying a recording as fast as possible, ``when_full="block"`` makes the camera side wait
instead, so every frame is processed.

The learned view is the model's ``image`` output when it has one, else the conventional
ISP's rendering of the region the model saw; the conventional view for the dashboard can be
rendered every Nth frame. Given a conventional model (:class:`~edge_isp.runtime.conventional.
ConventionalModel`: a conventional ISP and a network trained on its pictures), a fifth stage runs
it on those same frames, between the inference and the outputs, and its results go under
``results["conventional"]``. Metrics (per-stage latency, end-to-end p50/p99, FPS, drops) are
live through :meth:`Pipeline.metrics`.

Shutdown (Ctrl-C, SIGTERM, :meth:`Pipeline.stop`, or a finite source running out): the
threads finish the frame in hand and are joined, then the camera is released, the outputs
closed (they finish their files) and the backend closed, each even if another fails. A
camera error (:class:`SourceError`) is reported and counted and the pipeline carries on:
reconnecting is the source's retry wrapper's job. An error anywhere else stops the pipeline
and is raised again from :meth:`Pipeline.close` (and so from :meth:`Pipeline.run`).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge_isp.contract.model_input import Geometry, ModelInput, Preprocessor
from edge_isp.errors import InvalidInputError
from edge_isp.isp.pipeline import IspConfig, render, to_uint8
from edge_isp.runtime.annotate import ViewMap, annotate, to_bgr8
from edge_isp.runtime.conventional import ConventionalModel
from edge_isp.runtime.frame_queue import WHEN_FULL, FrameQueue, QueueClosed
from edge_isp.runtime.interfaces import (
    CameraSource,
    FrameResult,
    InferenceBackend,
    Output,
    SourceEnded,
    SourceError,
)
from edge_isp.runtime.metrics import PipelineMetrics
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

log = logging.getLogger(__name__)

STAGES = (
    "preprocess", "inference", "postprocess", "render", "annotate", "conventional", "conventional_isp",
    "conventional_inference", "output",
)  # fmt: skip
COUNTERS = ("frames_captured", "source_errors", "output_errors", "noise_clamped", "conventional_frames")
# Bilinear demosaicking: the cheapest, and the live view is small on screen.
_BILINEAR = IspConfig(demosaic="bilinear")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline runs.

    Attributes:
        queue_size: frames each queue holds before it drops (or blocks). One keeps the
            latency lowest: a frame waits for at most one inference ahead of it.
        when_full: ``"drop_oldest"`` (live cameras) or ``"block"`` (process every frame).
        conventional_every: render the conventional ISP view for the dashboard every Nth
            processed frame; 0 never.
        conventional_isp: how that view is rendered.
        view_isp: how the learned view is rendered when the model has no ``image`` output.
        read_timeout_s: the longest a camera read blocks, so a stop is noticed.
        source_error_pause_s: the wait before reading again after a second camera error in a
            row (a lone bad frame costs no pause: only a camera that keeps failing is waited for).
        join_timeout_s: the longest shutdown waits for each stage thread.
        max_frames: stop after capturing this many frames (None: no limit).
    """

    queue_size: int = 1
    when_full: str = "drop_oldest"
    conventional_every: int = 0
    conventional_isp: IspConfig = _BILINEAR
    view_isp: IspConfig = _BILINEAR
    read_timeout_s: float = 0.5
    source_error_pause_s: float = 0.2
    join_timeout_s: float = 10.0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.when_full not in WHEN_FULL:
            raise InvalidInputError(f"when_full must be one of {', '.join(WHEN_FULL)}, got {self.when_full!r}")
        if self.queue_size < 1 or self.conventional_every < 0:
            raise InvalidInputError(
                f"queue_size must be >= 1 and conventional_every >= 0, got {self.queue_size}, {self.conventional_every}"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidInputError(f"max_frames must be >= 1 or None, got {self.max_frames}")


@dataclasses.dataclass
class _Item:
    index: int
    frame: RawFrame
    captured: float  # perf_counter() when the frame arrived
    timestamp_s: float
    latency: dict[str, float] = dataclasses.field(default_factory=dict)
    queued: float = 0.0  # perf_counter() when it entered its current queue
    model_input: ModelInput | None = None
    outputs: dict[str, np.ndarray] | None = None
    truth: dict[str, Any] | None = None  # the simulator's, read with the frame
    with_conventional: bool | None = None  # decided by the conventional model's stage, when there is one
    conventional_results: dict[str, Any] | None = None


def crop_frame(frame: RawFrame, crop: tuple[int, int, int, int], digital_gain: float) -> RawFrame:
    """The region ``crop`` (x0, y0, x1, y1; even) of ``frame`` with ``digital_gain``."""
    x0, y0, x1, y1 = crop
    return dataclasses.replace(frame, data=frame.data[y0:y1, x0:x1], digital_gain=digital_gain)


def status_line(metrics: dict[str, Any]) -> str:
    """One line for a log: FPS, frames, drops, end-to-end and inference latency."""
    e2e, inference = metrics["latency_ms"]["end_to_end"], metrics["latency_ms"]["inference"]
    return (
        f"{metrics['fps']:.1f} FPS, {metrics['frames']} frames, {metrics['dropped']} dropped, "
        f"end-to-end p50 {e2e['p50']:.0f} ms p99 {e2e['p99']:.0f} ms, inference p50 {inference['p50']:.0f} ms"
    )


class Pipeline:
    """Runs a camera through a model to outputs; see the module docstring.

    The pipeline owns what it is given: :meth:`start` opens the backend, the outputs and
    then the camera; :meth:`close` closes them all.

    Args:
        source: the camera (wrap real cameras in the sources' retry wrapper).
        backend: the model's inference backend.
        preprocessor: RawFrame -> model inputs, for this model and sensor.
        postprocessor: outputs -> results, for this model.
        outputs: where each :class:`FrameResult` goes.
        profile: colours for the conventional ISP views (None: grey-world, no colour matrix).
        config: see :class:`PipelineConfig`.
        conventional: a conventional ISP + rgb model run on the frames whose conventional view
            is rendered (needs ``config.conventional_every`` >= 1); its backend is opened and
            closed with the rest.
    """

    def __init__(
        self,
        source: CameraSource,
        backend: InferenceBackend,
        preprocessor: Preprocessor,
        postprocessor: Postprocessor,
        outputs: Sequence[Output] = (),
        *,
        profile: SensorProfile | None = None,
        config: PipelineConfig | None = None,
        conventional: ConventionalModel | None = None,
    ) -> None:
        self.source, self.backend = source, backend
        self.preprocessor, self.postprocessor = preprocessor, postprocessor
        self.outputs = list(outputs)
        self.profile = profile
        self.config = config = config or PipelineConfig()
        if conventional is not None and config.conventional_every < 1:
            raise InvalidInputError(
                "a conventional model runs on the frames whose conventional view is rendered: set "
                f"conventional_every >= 1 (got {config.conventional_every})"
            )
        self.conventional = conventional
        self._conventional_seen = 0
        self._dtypes = {spec.name: spec.dtype for spec in backend.input_specs()}
        self._has_image = any(spec.name == "image" for spec in backend.output_specs())
        self._metrics = PipelineMetrics(STAGES, COUNTERS)
        size, mode = config.queue_size, config.when_full
        queues = ("preprocess", "inference", *(("conventional",) if conventional else ()), "finish")
        self._queues = {name: FrameQueue(size, mode) for name in queues}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._opened: list[Any] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._started = self._closed = False
        self._last_source_report = -float("inf")
        self._errors_in_a_row = 0
        self._processed = 0
        self._clamped_now = self._warned_clamp = False

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Open everything and start the stage threads."""
        if self._started:
            return self
        self._started = True
        try:
            # The camera opens last, so it is not held while a large model loads.
            backends = (self.backend,) if self.conventional is None else (self.backend, self.conventional.backend)
            for part in (*backends, *self.outputs, self.source):
                part.open()
                self._opened.append(part)
        except BaseException:
            self._close_parts()
            raise
        stages: list[tuple[str, Callable[[], None]]] = [
            ("capture", self._capture),
            ("preprocess", self._preprocess),
            ("inference", self._inference),
            *((("conventional", self._conventional),) if self.conventional else ()),
            ("finish", self._finish),
        ]
        self._metrics.start_clock()
        for name, body in stages:
            thread = threading.Thread(target=self._guard, args=(body,), name=f"edge-isp-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Ask every stage to stop now (safe from a signal handler); frames in the queues are discarded."""
        self._stop.set()
        for queue in self._queues.values():
            queue.abort()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every stage has finished (a finite source ran out, or a stop); True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def close(self) -> None:
        """Stop, join the threads, close the camera, outputs and backend; raise a stage's error."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        capture = self._threads[0] if self._threads else None
        if capture is not None:
            capture.join(self.config.read_timeout_s + 0.5)
            if capture.is_alive():
                # Still in a read: a retrying source waits out its back-off until closed.
                self._close_source()
        for thread in self._threads:
            thread.join(self.config.join_timeout_s)
            if thread.is_alive():
                log.error("pipeline stage %s did not stop within %.0f s", thread.name, self.config.join_timeout_s)
        self._metrics.stop_clock()
        self._close_parts()
        if self._error is not None:
            raise self._error

    def _close_source(self) -> None:
        if self.source in self._opened:
            self._opened.remove(self.source)
            try:
                self.source.close()
            except Exception:
                log.exception("closing camera %s failed", getattr(self.source, "name", "?"))

    def _close_parts(self) -> None:
        # The camera first: it is the scarce resource another process may be waiting for.
        self._close_source()
        for part in self._opened:
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", getattr(part, "name", part))
        self._opened.clear()

    def run(
        self, duration_s: float | None = None, handle_signals: bool = True, report_every_s: float | None = None
    ) -> dict[str, Any]:
        """Start, run until the source ends, :meth:`stop`, Ctrl-C/SIGTERM or ``duration_s``,
        then :meth:`close`. Logs a status line every ``report_every_s`` seconds when given.
        Returns the final :meth:`metrics`."""
        restore = self._install_signals() if handle_signals else {}
        try:
            self.start()
            now = time.monotonic()
            deadline = None if duration_s is None else now + duration_s
            next_report = None if report_every_s is None else now + report_every_s
            while self.running and not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if next_report is not None and now >= next_report:
                    next_report = now + report_every_s
                    log.info("%s", status_line(self.metrics()))
                self._stop.wait(0.1)
            if self._stop.is_set():
                log.info("stopping the pipeline")
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            self.close()
        return self.metrics()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: Any) -> None:
            # Only set the flag: the handler interrupts the main thread anywhere, and the run
            # loop it wakes does the stopping.
            self._stop.set()

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        return previous

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- live information ------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """A snapshot (see :meth:`PipelineMetrics.snapshot`) plus current queue depths."""
        snap = self._metrics.snapshot()
        snap["queue_depth"] = sum(len(q) for q in self._queues.values())
        return snap

    def latency_summary(self) -> dict[str, dict[str, float]]:
        return self._metrics.latency_summary()

    def controls(self) -> dict[str, Any]:
        """The camera's live controls (e.g. ``lux`` for the simulated source)."""
        return self.source.controls()

    def set_control(self, name: str, value: Any) -> None:
        self.source.set_control(name, value)

    # -- stages ------------------------------------------------------------------------
    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            log.error("pipeline stopped by an error in %s: %s", threading.current_thread().name, exc)
            self.stop()

    def _put(self, stage: str, item: _Item) -> None:
        item.queued = time.perf_counter()
        if self._queues[stage].put(item) is not None:
            self._metrics.dropped(stage)

    def _take(self, stage: str) -> _Item:
        item = self._queues[stage].get()
        item.latency["queued"] = item.latency.get("queued", 0.0) + (time.perf_counter() - item.queued) * 1000
        return item

    def _capture(self) -> None:
        captured = 0
        try:
            while not self._stop.is_set():
                if self.config.max_frames is not None and captured >= self.config.max_frames:
                    break
                try:
                    frame = self.source.read(self.config.read_timeout_s)
                except SourceEnded:
                    break
                except SourceError as exc:
                    self._source_error(exc)
                    continue
                self._errors_in_a_row = 0
                now = time.perf_counter()
                stamp = frame.timestamp_s if frame.timestamp_s is not None else time.time()
                item = _Item(index=captured, frame=frame, captured=now, timestamp_s=stamp)
                item.truth = getattr(self.source, "last_truth", None)
                captured += 1
                self._metrics.count("frames_captured")
                self._put("preprocess", item)
        finally:
            self._queues["preprocess"].close()

    def _source_error(self, exc: SourceError) -> None:
        self._metrics.count("source_errors")
        now = time.monotonic()
        if now - self._last_source_report > 10.0:  # one line per 10 s while a camera is down
            self._last_source_report = now
            log.warning("camera %s: %s (carrying on)", getattr(self.source, "name", "?"), exc)
        self._errors_in_a_row += 1
        if self._errors_in_a_row > 1:
            self._stop.wait(self.config.source_error_pause_s)

    def _preprocess(self) -> None:
        try:
            while True:
                item = self._take("preprocess")
                start = time.perf_counter()
                model_input = self.preprocessor(item.frame)
                if model_input.clamped:
                    self._noise_clamped(model_input)
                self._clamped_now = model_input.clamped
                item.model_input = model_input
                item.latency["preprocess"] = (time.perf_counter() - start) * 1000
                self._put("inference", item)
        except QueueClosed:
            pass
        finally:
            self._queues["inference"].close()

    def _inference(self) -> None:
        after = "conventional" if self.conventional else "finish"
        try:
            while True:
                item = self._take("inference")
                feed = self._feed(item.model_input)
                start = time.perf_counter()
                item.outputs = self.backend.infer(feed)
                item.latency["inference"] = (time.perf_counter() - start) * 1000
                self._put(after, item)
        except QueueClosed:
            pass
        finally:
            self._queues[after].close()

    def _conventional(self) -> None:
        try:
            while True:
                item = self._take("conventional")
                item.with_conventional = self._conventional_seen % self.config.conventional_every == 0
                self._conventional_seen += 1
                if item.with_conventional:
                    item.conventional_results, latency = self.conventional(item.model_input)
                    item.latency.update(latency)
                    self._metrics.count("conventional_frames")
                self._put("finish", item)
        except QueueClosed:
            pass
        finally:
            self._queues["finish"].close()

    def _feed(self, model_input: ModelInput) -> dict[str, np.ndarray]:
        # A model exported with float16 inputs gets them cast here; float32 passes untouched.
        return {k: v.astype(self._dtypes.get(k, v.dtype), copy=False) for k, v in model_input.feed().items()}

    def _finish(self) -> None:
        try:
            while True:
                self._publish(self._take("finish"))
        except QueueClosed:
            pass

    def _publish(self, item: _Item) -> None:
        lat, geometry = item.latency, item.model_input.geometry
        start = time.perf_counter()
        results = {"frame": item.index, "timestamp_s": item.timestamp_s}
        results.update(self.postprocessor(item.outputs, geometry))
        if item.conventional_results is not None:
            results["conventional"] = item.conventional_results
        lap = time.perf_counter()
        lat["postprocess"] = (lap - start) * 1000
        cropped = crop_frame(item.frame, geometry.crop, item.model_input.digital_gain)
        conventional = None
        if self._has_image:
            view = to_bgr8(item.outputs["image"])
            view_map = ViewMap(geometry.crop[:2], image_scale(geometry, view.shape[1], view.shape[0]))
        else:
            view, view_map = self._render(cropped, self.config.view_isp), ViewMap(geometry.crop[:2])
        lat["render"] = (time.perf_counter() - lap) * 1000
        lap = time.perf_counter()
        every = self.config.conventional_every
        wanted = item.with_conventional if item.with_conventional is not None else self._processed % max(every, 1) == 0
        if every and wanted:
            same = not self._has_image and self.config.conventional_isp == self.config.view_isp
            conventional = view.copy() if same else self._render(cropped, self.config.conventional_isp)
        lat["conventional"] = (time.perf_counter() - lap) * 1000
        lap = time.perf_counter()
        clean = view.copy()
        annotate(view, results, view_map, fps=self._metrics.fps(), status=self._status())
        lat["annotate"] = (time.perf_counter() - lap) * 1000
        lap = time.perf_counter()
        lat["end_to_end"] = (lap - item.captured) * 1000
        conventional_map = None if conventional is None else ViewMap(geometry.crop[:2])
        result = FrameResult(
            item.index, item.timestamp_s, view, conventional, results, dict(lat),
            view=clean, view_map=view_map, conventional_map=conventional_map, raw=item.frame, truth=item.truth,
        )  # fmt: skip
        for output in self.outputs:
            try:
                output.publish(result)
            except Exception:
                self._metrics.count("output_errors")
                log.exception("output %s failed to take frame %d", getattr(output, "name", output), item.index)
        lat["output"] = (time.perf_counter() - lap) * 1000
        self._processed += 1
        self._metrics.frame_done(lat)

    def _render(self, frame: RawFrame, config: IspConfig) -> np.ndarray:
        rgb8 = to_uint8(render(frame, config, self.profile))
        return np.ascontiguousarray(rgb8[..., ::-1])

    def _noise_clamped(self, model_input: ModelInput) -> None:
        self._metrics.count("noise_clamped")
        if not self._warned_clamp:
            self._warned_clamp = True
            trained = self.preprocessor.noise_range
            a, sigma = model_input.measured_noise
            log.warning(
                "the frames' noise level (a %.3g, sigma %.3g) lies outside the levels the model was trained on "
                "(a %.3g to %.3g, sigma %.3g to %.3g): fed the nearest trained level instead; the picture may be "
                "smoother than the frame needs (counted in /metrics as noise_clamped)",
                a, sigma, *trained.a, *trained.sigma,
            )  # fmt: skip

    def _status(self) -> str | None:
        parts = []
        lux = self.source.controls().get("lux")
        if isinstance(lux, (int, float)):
            parts.append(f"{lux:.3g} lux")
        if self._clamped_now:
            parts.append("noise outside the trained range: clamped")
        return ", ".join(parts) or None


def image_scale(geometry: Geometry, width: int, height: int) -> tuple[float, float]:
    """Frame pixels per pixel of a model's ``image`` output of ``width`` x ``height``: the input's
    scale times how much smaller than the input the image is (2 for a half-resolution ISP,
    whose picture is half its raw input's sides; its boxes are in input pixels as any model's)."""
    sx, sy = geometry.scale
    return sx * geometry.input_size[0] / width, sy * geometry.input_size[1] / height
