"""Native-library load order that keeps C++ exceptions working when GStreamer is loaded."""

from __future__ import annotations

import contextlib
import ctypes
import sys


def prefer_libgcc_unwinder() -> None:
    """Make libgcc's stack unwinder the process-wide one, before anything loads GStreamer.

    GStreamer links libunwind, whose ``_Unwind_*`` functions then win the symbol lookup of
    libraries loaded later; ONNX Runtime (and TensorRT) throw C++ exceptions internally for
    ordinary errors (a bad model file, a wrong input), and unwinding them through libunwind
    aborts the process. Loading libgcc_s globally first keeps its unwinder in front. Both the
    inference backends and the RTSP output call this before loading their libraries.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
