"""A latest-value slot: the writer never waits for readers, and slow readers skip values.

Every output thread that serves clients (an MJPEG viewer, an event stream, the RTSP feeder)
keeps the sequence number of the last value it took and waits for a newer one. A writer
replaces the value in O(1) under a lock held only for that assignment, so the pipeline that
publishes is never held up by a consumer, however slow.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds the newest value with a sequence number (0 = nothing yet)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._value: T | None = None
        self._closed = False

    def put(self, value: T) -> int:
        """Replace the value and wake every waiting reader; returns the new sequence number."""
        with self._cond:
            self._seq += 1
            self._value = value
            self._cond.notify_all()
            return self._seq

    def wait_newer(self, seen: int, timeout_s: float | None = None) -> tuple[int, T] | None:
        """The newest ``(seq, value)`` with ``seq > seen``.

        Returns None when ``timeout_s`` passes first or the slot is closed (check
        :attr:`closed` to tell the two apart).
        """
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > seen, timeout_s)
            if self._closed or self._seq <= seen:
                return None
            return self._seq, self._value  # type: ignore[return-value]

    def latest(self) -> tuple[int, T | None]:
        """The current ``(seq, value)`` without waiting."""
        with self._cond:
            return self._seq, self._value

    def close(self) -> None:
        """Wake every reader for good; later waits return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
