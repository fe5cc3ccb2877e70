"""Keep a camera going: reopen it with capped exponential back-off when it fails.

:class:`RetryingSource` wraps any :class:`CameraSource`. When the inner source raises
:class:`SourceError` (a cable pulled, a driver reset, a stalled stream), it closes it,
waits, and reopens it, again and again, with the wait doubling up to a cap. Each attempt
is logged and reported to a callback and counters (:attr:`RetryingSource.stats`), so a
dashboard can say "camera lost, retrying"; :meth:`read` itself only returns frames. The
pipeline never sees the failure, except as a gap in time.

Errors that retrying cannot fix pass through: a user's mistake (``InvalidInputError``, a
missing dependency) and :class:`SourceEnded`. A failure of the very first open also passes
through, unless ``retry_first_open`` says otherwise, so a mistyped device fails fast.
:meth:`close` from another thread ends a wait at once; the blocked :meth:`read` then
raises :class:`SourceEnded`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import CameraSource, SourceEnded, SourceError
from edge_isp.runtime.sources.clock import Clock, SystemClock
from edge_isp.sensor.frame import RawFrame

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts: ``initial_delay_s * multiplier**n``, capped at
    ``max_delay_s``; ``max_attempts`` reopen attempts per outage (None: forever)."""

    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_delay_s) and self.initial_delay_s >= 0):
            raise InvalidInputError(f"initial_delay_s must be a number >= 0, got {self.initial_delay_s}")
        if not (math.isfinite(self.max_delay_s) and self.max_delay_s >= self.initial_delay_s):
            raise InvalidInputError(
                f"max_delay_s must be >= initial_delay_s ({self.initial_delay_s}), got {self.max_delay_s}"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise InvalidInputError(f"multiplier must be a number >= 1, got {self.multiplier}")
        if self.max_attempts is not None and not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise InvalidInputError(f"max_attempts must be a positive integer or None, got {self.max_attempts!r}")

    def delay(self, attempt: int) -> float:
        """The wait before reopen attempt ``attempt`` (1 = the first), seconds."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))


@dataclasses.dataclass(frozen=True)
class RetryEvent:
    """One failure or reopen attempt, as handed to the callback.

    Attributes:
        kind: ``"lost"`` (the source failed while streaming), ``"retry"`` (a reopen
            attempt failed) or ``"recovered"`` (a reopen succeeded).
        attempt: reopen attempt number in this outage (0 for ``"lost"``).
        delay_s: the wait before the next attempt (0 for ``"recovered"``).
        error: the error's message ("" for ``"recovered"``).
    """

    kind: str
    attempt: int
    delay_s: float
    error: str


@dataclasses.dataclass
class RetryStats:
    """Counters since the wrapper was made: ``failures`` (times the stream was lost),
    ``attempts`` (reopen attempts), ``recoveries``, ``reconnecting`` (in an outage now),
    ``last_error``."""

    failures: int = 0
    attempts: int = 0
    recoveries: int = 0
    reconnecting: bool = False
    last_error: str = ""


class RetryingSource(CameraSource):
    """``source`` with automatic reopening (see the module docstring).

    Args:
        source: the camera to keep alive; opened and closed by this wrapper.
        policy: the back-off (default :class:`RetryPolicy`).
        on_event: called with each :class:`RetryEvent`, from the reading thread.
        retry_first_open: also retry when the first :meth:`open` fails.
        clock: time source for the waits.
    """

    def __init__(
        self,
        source: CameraSource,
        policy: RetryPolicy | None = None,
        *,
        on_event: Callable[[RetryEvent], None] | None = None,
        retry_first_open: bool = False,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.name = f"retry({source.name})"
        self.policy = policy or RetryPolicy()
        self.on_event = on_event
        self.retry_first_open = bool(retry_first_open)
        self.clock = clock or SystemClock()
        self.stats = RetryStats()
        self._closing = threading.Event()

    @property
    def sequence(self) -> int:
        return int(getattr(self.source, "sequence", -1))

    @property
    def last_truth(self) -> Any:
        return getattr(self.source, "last_truth", None)

    @property
    def class_names(self) -> list[str] | None:
        return getattr(self.source, "class_names", None)

    def _open(self) -> None:
        self._closing.clear()
        try:
            self.source.open()
        except SourceError as exc:
            if not self.retry_first_open:
                raise
            self._lost(exc)
            self._reopen()

    def _close(self) -> None:
        self._closing.set()
        self.source.close()

    def _read(self, timeout_s: float | None) -> RawFrame:
        while True:
            if self._closing.is_set():
                raise SourceEnded(f"{self.name} was closed")
            try:
                return self.source.read(timeout_s)
            except SourceError as exc:
                if self._closing.is_set():
                    raise SourceEnded(f"{self.name} was closed") from exc
                self._lost(exc)
                self._reopen()

    def _lost(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.reconnecting = True
        self.stats.last_error = str(exc)
        log.warning("camera %s failed: %s; reopening", self.source.name, exc)
        self._emit(RetryEvent("lost", 0, self.policy.delay(1), str(exc)))
        with contextlib.suppress(Exception):  # a dead device may fail to close; it is reopened anyway
            self.source.close()

    def _reopen(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            if self.clock.wait(self._closing, self.policy.delay(attempt)):
                raise SourceEnded(f"{self.name} was closed while reconnecting")
            self.stats.attempts += 1
            try:
                self.source.open()
            except SourceError as exc:
                self.stats.last_error = str(exc)
                last = self.policy.max_attempts is not None and attempt >= self.policy.max_attempts
                next_delay = 0.0 if last else self.policy.delay(attempt + 1)
                log.warning(
                    "reopening camera %s failed (attempt %d): %s; %s",
                    self.source.name, attempt, exc, "giving up" if last else f"next try in {next_delay:.1f} s",
                )  # fmt: skip
                self._emit(RetryEvent("retry", attempt, next_delay, str(exc)))
                if last:
                    self.stats.reconnecting = False
                    raise
                continue
            if self._closing.is_set():  # close() ran while the device was opening
                self.source.close()
                raise SourceEnded(f"{self.name} was closed while reconnecting")
            self.stats.recoveries += 1
            self.stats.reconnecting = False
            log.info("camera %s reopened after %d attempt(s)", self.source.name, attempt)
            self._emit(RetryEvent("recovered", attempt, 0.0, ""))
            return

    def _emit(self, event: RetryEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken status callback must not take the camera down with it
            log.exception("retry callback failed on %s", event)

    def controls(self) -> dict[str, Any]:
        return self.source.controls()

    def set_control(self, name: str, value: Any) -> None:
        self.source.set_control(name, value)
