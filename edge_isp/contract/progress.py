"""Build progress and Ctrl-C for long TensorRT builds, without TensorRT.

:class:`BuildProgress` holds what TensorRT's ``IProgressMonitor`` reports (nested phases,
each of N steps) and draws it as progress bars; its :meth:`BuildProgress.step_complete`
returns False once :meth:`BuildProgress.cancel` was called, which is how TensorRT is told to
stop. The TensorRT adapter forwards its monitor's three callbacks here.

:func:`run_cancellable` runs the build in a worker thread and waits in the main thread,
where Python delivers Ctrl-C: the build call itself is C++ and would not see the
KeyboardInterrupt until it returned. On Ctrl-C the progress is cancelled, the build winds
down at its next step, and :class:`BuildCancelled` is raised.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from edge_isp.errors import EdgeIspError

T = TypeVar("T")


class BuildCancelled(EdgeIspError):
    """The user pressed Ctrl-C during an engine build; nothing was written."""


class BuildProgress:
    """Thread-safe record of the build's phases, with optional bars (tqdm) on ``stream``.

    ``phases`` maps each running phase to ``[step, steps, parent]``; ``finished`` lists the
    phases that ended, in order.
    """

    def __init__(self, show: bool = True, stream: Any = None) -> None:
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self.phases: dict[str, list[Any]] = {}
        self.finished: list[str] = []
        self._show = show
        self._stream = stream if stream is not None else sys.stderr
        self._bars: dict[str, Any] = {}

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Ask the build to stop: the next :meth:`step_complete` returns False."""
        self._cancelled.set()

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self.phases[phase] = [0, int(steps), parent]
            if not self._show:
                return
            depth = 0
            up = parent
            while up is not None and up in self.phases:
                depth += 1
                up = self.phases[up][2]
            try:
                from tqdm import tqdm
            except ImportError:  # a board's base install may lack tqdm: plain lines instead of bars
                print(f"{'  ' * depth}{phase} ({steps} steps)", file=self._stream, flush=True)
                return
            self._bars[phase] = tqdm(
                total=int(steps), desc=("  " * depth) + phase, position=depth, leave=depth == 0,
                file=self._stream, dynamic_ncols=True,
            )  # fmt: skip

    def step_complete(self, phase: str, step: int) -> bool:
        """Record ``step`` of ``phase``; False asks TensorRT to cancel the build."""
        with self._lock:
            if phase in self.phases:
                self.phases[phase][0] = int(step) + 1
                bar = self._bars.get(phase)
                if bar is not None:
                    bar.n = int(step) + 1
                    bar.refresh()
        return not self._cancelled.is_set()

    def phase_finish(self, phase: str) -> None:
        with self._lock:
            self.phases.pop(phase, None)
            self.finished.append(phase)
            bar = self._bars.pop(phase, None)
            if bar is not None:
                bar.close()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def run_cancellable(work: Callable[[], T], progress: BuildProgress, poll_s: float = 0.1) -> T:
    """Run ``work()`` in a thread; Ctrl-C in the main thread cancels ``progress`` and waits for
    ``work`` to return (TensorRT stops at its next step), then raises :class:`BuildCancelled`.
    An exception in ``work`` is re-raised here."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            outcome["error"] = exc
        finally:
            done.set()

    # Waiting on an Event, not Thread.join: a KeyboardInterrupt inside join() can leave the
    # thread marked as finished while it still runs (CPython issue 21822).
    threading.Thread(target=target, name="tensorrt-build", daemon=True).start()
    interrupted = False
    while not done.is_set():
        try:
            done.wait(poll_s)
        except KeyboardInterrupt:
            interrupted = True
            progress.cancel()
            print("\ncancelling the build (it stops at TensorRT's next step)...", file=sys.stderr)
    progress.close()
    if interrupted or (progress.cancelled and "error" not in outcome):
        raise BuildCancelled("engine build cancelled (Ctrl-C); no engine was written")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
