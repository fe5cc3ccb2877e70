"""The bounded queue between two stages of the live pipeline (:mod:`edge_isp.runtime.pipeline`):
drop-oldest for a live camera, blocking for a file that must be processed whole."""

from __future__ import annotations

import collections
import threading
from typing import Any

from edge_isp.errors import InvalidInputError

WHEN_FULL = ("drop_oldest", "block")


class QueueClosed(Exception):
    """No more items: the producer finished (and the queue is drained) or the pipeline stopped."""


class FrameQueue:
    """A bounded FIFO between two stages.

    ``put`` on a full queue drops the oldest item and returns it (``"drop_oldest"``) or waits
    for room (``"block"``). :meth:`close` ends the stream after the queued items;
    :meth:`abort` discards them and wakes every waiter.
    """

    def __init__(self, maxsize: int, when_full: str = "drop_oldest") -> None:
        if maxsize < 1:
            raise InvalidInputError(f"a queue holds at least 1 item, got maxsize {maxsize}")
        if when_full not in WHEN_FULL:
            raise InvalidInputError(f"when_full must be one of {', '.join(WHEN_FULL)}, got {when_full!r}")
        self.maxsize, self.when_full = maxsize, when_full
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = self._aborted = False

    def put(self, item: Any) -> Any | None:
        """Add ``item``; return the item dropped to make room, or None."""
        with self._cond:
            if self.when_full == "block":
                while len(self._items) >= self.maxsize and not self._aborted:
                    self._cond.wait()
            if self._aborted or self._closed:
                return None
            dropped = self._items.popleft() if len(self._items) >= self.maxsize else None
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self) -> Any:
        """The oldest item; waits for one. Raises :class:`QueueClosed` at the end."""
        with self._cond:
            while not self._items and not self._closed and not self._aborted:
                self._cond.wait()
            if self._aborted or not self._items:
                raise QueueClosed
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
