"""Errors that mean "the user gave us something wrong".

The command line prints these as one paragraph and exits 1, without a traceback; any
other exception is a bug in edge-isp and keeps its traceback. Each class also subclasses
the built-in exception a Python caller would expect (``ValueError``, ``ImportError``...),
so library users can catch them the ordinary way.
"""

from __future__ import annotations


class EdgeIspError(Exception):
    """Base of every error caused by the user's input, files or environment."""


class InvalidInputError(EdgeIspError, ValueError):
    """An argument, array or file content that does not meet the documented contract."""


class ProfileError(InvalidInputError):
    """A sensor profile that fails validation. The message names the bad field."""


class RawFormatError(InvalidInputError):
    """Raw bytes that do not match the declared format, size or stride."""


class MissingFileError(EdgeIspError, FileNotFoundError):
    """A path the user named does not exist."""


class MissingDependencyError(EdgeIspError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def install_hint(extra: str) -> str:
    """How to install an extra, for an installed edge-isp and for a checkout of it."""
    return (
        f"pip install 'edge-isp[{extra}]' (in a checkout of edge-isp: pip install -e '.[{extra}]', "
        "or scripts/bootstrap.sh for everything the demo and training need)"
    )


def require(module: str, extra: str, purpose: str, how: str | None = None):
    """Import an optional dependency or raise a message that says how to get it: with
    :func:`install_hint` of ``extra``, or ``how`` where pip is not the way (an apt package).

    Example:
        >>> rawpy = require("rawpy", "raw", "reading DNG files")  # doctest: +SKIP
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}', which is not installed "
            f"({exc}). Install it with: {how or install_hint(extra)}"
        ) from exc
