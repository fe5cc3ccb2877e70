"""Time for the sources: a clock that tests can replace, and frame pacing without bursts.

Every source that waits (a paced simulation, a replay at the recorded rate, the retry
wrapper's back-off) takes a :class:`Clock`, so tests drive time by hand and never sleep.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

from edge_isp.errors import InvalidInputError


class Clock(Protocol):
    """Monotonic seconds and waiting. :class:`SystemClock` is the real one."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; True if it was set."""
        ...


class SystemClock:
    """The process's monotonic clock (``time.monotonic``), real sleeping."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to: ``sleep`` and ``wait`` advance it at once.

    For tests and for deterministic offline runs. ``slept`` lists every wait, in seconds.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += float(seconds)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept.append(float(seconds))
            self.now += float(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()


def check_fps(fps: float, name: str = "fps") -> float:
    """``fps`` as a float, refused unless finite and > 0."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number of frames per second > 0, got {fps!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{name} must be a finite number of frames per second > 0, got {fps!r}")
    return value


class Pacer:
    """Releases frames at most as often as their intervals ask, and never in a burst.

    :meth:`wait` blocks until ``interval_s`` after the previous frame's slot. The schedule
    is kept on the slots, not on the moments the consumer came, so small delays do not
    add up into a lower rate; a consumer late by more than a whole interval gets its frame
    at once and the schedule restarts from then: a slow pipeline sees a lower rate, not a
    backlog at full speed (a live camera drops frames the same way).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._slot: float | None = None

    def reset(self) -> None:
        self._slot = None

    def wait(self, interval_s: float) -> float:
        """Wait until ``interval_s`` after the previous slot; returns the release time."""
        now = self.clock.monotonic()
        if self._slot is None:
            self._slot = now
            return now
        due = self._slot + interval_s
        if now < due:
            self.clock.sleep(due - now)
            now = self.clock.monotonic()
        self._slot = due if now - due < interval_s else now
        return now
