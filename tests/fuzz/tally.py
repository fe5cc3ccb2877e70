"""Every bad input a fuzz test feeds a parser is recorded here by its bytes; the fuzz suite's
conftest prints the count of distinct ones per parser at the end of the run."""

from __future__ import annotations

import hashlib
from collections import defaultdict

TRIED: dict[str, set[str]] = defaultdict(set)


def record(parser: str, data: object) -> None:
    """Count ``data`` (bytes, or anything with a stable repr) as one input tried on ``parser``."""
    raw = data if isinstance(data, bytes) else repr(data).encode()
    TRIED[parser].add(hashlib.sha256(raw).hexdigest())
