"""Frame and model sizes as text: ``"WIDTHxHEIGHT"`` (``"640x480"``), even on both sides.

Every size edge-isp reads from a user, a file or a model's metadata goes through
:func:`parse_size`: a Bayer tile is 2x2, so a frame or model input of odd width or height
cannot exist, and a size that says so is refused where it is read.
"""

from __future__ import annotations

import argparse
import re

from edge_isp.errors import InvalidInputError

_PATTERN = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``: both positive and even (a Bayer tile is 2x2).

    ``what`` names the value in the error (``"metadata 'edge_isp.input_size'"``).
    """
    match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InvalidInputError(f"{what} must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    check_size((width, height), what)
    return width, height


def check_size(size: tuple[int, int], what: str = "size") -> tuple[int, int]:
    """``size`` as two ints, refused unless both are even and at least 2."""
    width, height = (int(v) for v in size)
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise InvalidInputError(f"{what} must be even and at least 2x2 (a Bayer tile is 2x2), got {width}x{height}")
    return width, height


def format_size(size: tuple[int, int]) -> str:
    """``(640, 480)`` -> ``"640x480"``, the form :func:`parse_size` reads."""
    return f"{int(size[0])}x{int(size[1])}"


def size_argument(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type=``: a bad value is argparse's usage error."""
    try:
        return parse_size(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
