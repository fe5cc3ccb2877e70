"""How many threads measure frame groups at once, and the executor of the one-thread case."""

from __future__ import annotations

import os

# Threads measuring frame groups at once, at most (memory: a few maps of the frame's size each).
MAX_WORKERS = 4


def group_workers() -> int:
    """Threads for the frame groups: the idle cores (CPUs less the 1-minute load), 1 to MAX_WORKERS.

    numpy releases the GIL in the heavy parts, so groups measured at once overlap on cores that
    nobody else uses; on a busy machine a second thread only adds CPU time and wall time (cache
    and GIL contention: +7 % CPU and +10 % wall measured at load 4 on 2 cores). The results do
    not depend on it: the groups are independent and taken in order.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(MAX_WORKERS, int(cpus - busy)))


class Later:
    """A call made when its result is first asked for (a future of the one-worker case)."""

    def __init__(self, fn, args: tuple, kwargs: dict) -> None:
        self._call = (fn, args, kwargs)
        self._done = False
        self._value = None

    def result(self):
        if not self._done:
            fn, args, kwargs = self._call
            self._value, self._done = fn(*args, **kwargs), True
        return self._value


class InOrder:
    """The executor of one worker: each task runs in the caller's thread when its result is
    asked for (no thread to hand the maps to and back; progress bars still advance)."""

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, fn, /, *args, **kwargs) -> Later:
        return Later(fn, args, kwargs)
