"""Argument types the subcommands share."""

from __future__ import annotations

import argparse


def size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. ``640x480``) -> (width, height); argparse reports a bad value."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return w, h
