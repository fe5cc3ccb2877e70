"""Values written as TOML (Python reads TOML with tomllib but has no writer).

Only what the project writes: booleans, numbers, strings and (nested) arrays of them.
Strings go out as JSON strings, which are valid TOML basic strings (the same escapes,
including \\n and \\uXXXX), so any text round-trips through ``tomllib``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edge_isp.errors import InvalidInputError


def toml_value(value: Any) -> str:
    """``value`` as a TOML value: ``true``, ``3``, ``0.001``, ``"text"``, ``[1, 2]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise InvalidInputError(f"cannot write {value!r} ({type(value).__name__}) as TOML: expected a bool, number, "
                            "string or list of them")  # fmt: skip
