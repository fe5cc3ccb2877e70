"""A thin V4L2 capture layer: ioctl + mmap on ``/dev/videoN``, no compiled dependency.

Why not OpenCV: its V4L2 backend negotiates formats from a fixed list (BGR24, YUYV,
MJPEG, 8-bit Bayer, Y10/Y16, GREY...) and fails to open a node that offers only 10/12-bit
Bayer, which is exactly what a Jetson's CSI camera node (Tegra VI, ``RG10``) offers; where
it opens with ``CAP_PROP_CONVERT_RGB`` off it hands back a byte row without the line
stride and without the driver's frame sequence number. The raw path NVIDIA documents for
Jetson is the plain V4L2 streaming I/O that ``v4l2-ctl --stream-mmap`` uses; this module
is that, in ctypes: set the format, request and map buffers, queue, stream, dequeue with a
timeout, read and write controls.

Structures follow include/uapi/linux/videodev2.h for 64-bit Linux (aarch64 and x86_64
share the layout: LP64, 8-byte aligned pointers and ``struct timeval``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import select
from typing import NamedTuple

# -- ioctl numbers (asm-generic/ioctl.h) ------------------------------------------------------
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | number


class Capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16), ("card", ctypes.c_char * 32), ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32), ("capabilities", ctypes.c_uint32), ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]  # fmt: skip


class PixFormat(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_uint32), ("height", ctypes.c_uint32), ("pixelformat", ctypes.c_uint32),
        ("field", ctypes.c_uint32), ("bytesperline", ctypes.c_uint32), ("sizeimage", ctypes.c_uint32),
        ("colorspace", ctypes.c_uint32), ("priv", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("ycbcr_enc", ctypes.c_uint32), ("quantization", ctypes.c_uint32), ("xfer_func", ctypes.c_uint32),
    ]  # fmt: skip


class _FormatUnion(ctypes.Union):
    # The kernel union holds struct v4l2_window, which has pointers: 8-byte alignment.
    _fields_ = [("pix", PixFormat), ("raw_data", ctypes.c_uint8 * 200), ("_align", ctypes.c_void_p)]


class Format(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fmt", _FormatUnion)]


class RequestBuffers(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_uint32), ("type", ctypes.c_uint32), ("memory", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32), ("flags", ctypes.c_uint8), ("reserved", ctypes.c_uint8 * 3),
    ]  # fmt: skip


class TimeVal(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class TimeCode(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("frames", ctypes.c_uint8),
        ("seconds", ctypes.c_uint8), ("minutes", ctypes.c_uint8), ("hours", ctypes.c_uint8),
        ("userbits", ctypes.c_uint8 * 4),
    ]  # fmt: skip


class _BufferM(ctypes.Union):
    _fields_ = [("offset", ctypes.c_uint32), ("userptr", ctypes.c_ulong), ("planes", ctypes.c_void_p),
                ("fd", ctypes.c_int32)]  # fmt: skip


class Buffer(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32), ("type", ctypes.c_uint32), ("bytesused", ctypes.c_uint32),
        ("flags", ctypes.c_uint32), ("field", ctypes.c_uint32), ("timestamp", TimeVal), ("timecode", TimeCode),
        ("sequence", ctypes.c_uint32), ("memory", ctypes.c_uint32), ("m", _BufferM), ("length", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32), ("request_fd", ctypes.c_int32),
    ]  # fmt: skip


class QueryCtrl(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32), ("type", ctypes.c_uint32), ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int32), ("maximum", ctypes.c_int32), ("step", ctypes.c_int32),
        ("default_value", ctypes.c_int32), ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 2),
    ]  # fmt: skip


class _ExtValue(ctypes.Union):
    _fields_ = [("value", ctypes.c_int32), ("value64", ctypes.c_int64), ("ptr", ctypes.c_void_p)]


class ExtControl(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in videodev2.h
    _fields_ = [("id", ctypes.c_uint32), ("size", ctypes.c_uint32), ("reserved2", ctypes.c_uint32),
                ("u", _ExtValue)]  # fmt: skip


class ExtControls(ctypes.Structure):
    _fields_ = [
        ("which", ctypes.c_uint32), ("count", ctypes.c_uint32), ("error_idx", ctypes.c_uint32),
        ("request_fd", ctypes.c_int32), ("reserved", ctypes.c_uint32), ("controls", ctypes.POINTER(ExtControl)),
    ]  # fmt: skip


VIDIOC_QUERYCAP = _ioc(_IOC_READ, 0, ctypes.sizeof(Capability))
VIDIOC_G_FMT = _ioc(_IOC_READ | _IOC_WRITE, 4, ctypes.sizeof(Format))
VIDIOC_S_FMT = _ioc(_IOC_READ | _IOC_WRITE, 5, ctypes.sizeof(Format))
VIDIOC_REQBUFS = _ioc(_IOC_READ | _IOC_WRITE, 8, ctypes.sizeof(RequestBuffers))
VIDIOC_QUERYBUF = _ioc(_IOC_READ | _IOC_WRITE, 9, ctypes.sizeof(Buffer))
VIDIOC_QBUF = _ioc(_IOC_READ | _IOC_WRITE, 15, ctypes.sizeof(Buffer))
VIDIOC_DQBUF = _ioc(_IOC_READ | _IOC_WRITE, 17, ctypes.sizeof(Buffer))
VIDIOC_STREAMON = _ioc(_IOC_WRITE, 18, ctypes.sizeof(ctypes.c_int))
VIDIOC_STREAMOFF = _ioc(_IOC_WRITE, 19, ctypes.sizeof(ctypes.c_int))
VIDIOC_QUERYCTRL = _ioc(_IOC_READ | _IOC_WRITE, 36, ctypes.sizeof(QueryCtrl))
VIDIOC_G_EXT_CTRLS = _ioc(_IOC_READ | _IOC_WRITE, 71, ctypes.sizeof(ExtControls))
VIDIOC_S_EXT_CTRLS = _ioc(_IOC_READ | _IOC_WRITE, 72, ctypes.sizeof(ExtControls))

BUF_TYPE_VIDEO_CAPTURE = 1
MEMORY_MMAP = 1
FIELD_NONE = 1
CAP_VIDEO_CAPTURE = 0x00000001
CAP_STREAMING = 0x04000000
CAP_DEVICE_CAPS = 0x80000000
BUF_FLAG_ERROR = 0x00000040
CTRL_FLAG_DISABLED = 0x0001
CTRL_FLAG_NEXT_CTRL = 0x80000000
CTRL_TYPE_INTEGER, CTRL_TYPE_BOOLEAN, CTRL_TYPE_MENU, CTRL_TYPE_INTEGER64 = 1, 2, 3, 5
# Errors meaning the device is gone or broken, as opposed to a bad request.
DEVICE_LOST = {errno.ENODEV, errno.EIO, errno.ENXIO, errno.EBADF, errno.EPIPE}


def fourcc_code(text: str) -> int:
    """``"RG10"`` -> the little-endian 32-bit code V4L2 uses."""
    raw = text.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"a fourcc has 4 characters, got {text!r}")
    return int.from_bytes(raw, "little")


def fourcc_text(code: int) -> str:
    """Inverse of :func:`fourcc_code`."""
    return int(code).to_bytes(4, "little").decode("ascii", "replace")


class Control(NamedTuple):
    """A device control as listed by VIDIOC_QUERYCTRL (min/max clipped to 32 bits by it)."""

    id: int
    name: str
    type: int
    minimum: int
    maximum: int
    default: int


class Dequeued(NamedTuple):
    """One filled buffer: its bytes (a copy), the driver's frame sequence number, its
    timestamp in seconds (the driver's clock, normally CLOCK_MONOTONIC) and its error flag."""

    data: bytes
    sequence: int
    timestamp_s: float
    error: bool


class Device:
    """An open V4L2 capture node. Methods raise OSError with the errno of the failed ioctl."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._maps: list[mmap.mmap] = []
        self.streaming = False

    def _ioctl(self, request: int, arg: ctypes.Structure | ctypes.c_int) -> None:
        fcntl.ioctl(self.fd, request, arg)

    def capability(self) -> Capability:
        cap = Capability()
        self._ioctl(VIDIOC_QUERYCAP, cap)
        return cap

    def get_format(self) -> PixFormat:
        fmt = Format(type=BUF_TYPE_VIDEO_CAPTURE)
        self._ioctl(VIDIOC_G_FMT, fmt)
        return fmt.fmt.pix

    def set_format(self, width: int, height: int, fourcc: int) -> PixFormat:
        """Ask for a format; the driver may adjust it: check the returned one."""
        fmt = Format(type=BUF_TYPE_VIDEO_CAPTURE)
        pix = fmt.fmt.pix
        pix.width, pix.height, pix.pixelformat, pix.field = width, height, fourcc, FIELD_NONE
        self._ioctl(VIDIOC_S_FMT, fmt)
        return fmt.fmt.pix

    def start(self, count: int) -> None:
        """Request and map ``count`` buffers, queue them all, start streaming."""
        req = RequestBuffers(count=count, type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
        self._ioctl(VIDIOC_REQBUFS, req)
        if req.count < 1:
            raise OSError(errno.ENOMEM, f"{self.path}: the driver granted no capture buffers")
        for index in range(req.count):
            buf = Buffer(index=index, type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
            self._ioctl(VIDIOC_QUERYBUF, buf)
            self._maps.append(mmap.mmap(self.fd, buf.length, mmap.MAP_SHARED, mmap.PROT_READ, offset=buf.m.offset))
            self._ioctl(VIDIOC_QBUF, buf)
        self._ioctl(VIDIOC_STREAMON, ctypes.c_int(BUF_TYPE_VIDEO_CAPTURE))
        self.streaming = True

    def dequeue(self, timeout_s: float | None) -> Dequeued | None:
        """The next filled buffer (copied, then handed back to the driver), or None if none
        arrived within ``timeout_s``."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return None
        buf = Buffer(type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
        try:
            self._ioctl(VIDIOC_DQBUF, buf)
        except BlockingIOError:
            return None
        try:
            data = self._maps[buf.index][: buf.bytesused]
        finally:
            self._ioctl(VIDIOC_QBUF, buf)
        stamp = buf.timestamp.tv_sec + buf.timestamp.tv_usec * 1e-6
        return Dequeued(data, int(buf.sequence), stamp, bool(buf.flags & BUF_FLAG_ERROR))

    def controls(self) -> list[Control]:
        """Every enabled control the node exposes."""
        out, next_id = [], CTRL_FLAG_NEXT_CTRL
        while True:
            query = QueryCtrl(id=next_id)
            try:
                self._ioctl(VIDIOC_QUERYCTRL, query)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    return out
                raise
            next_id = query.id | CTRL_FLAG_NEXT_CTRL
            if not query.flags & CTRL_FLAG_DISABLED and query.type in (
                CTRL_TYPE_INTEGER, CTRL_TYPE_BOOLEAN, CTRL_TYPE_MENU, CTRL_TYPE_INTEGER64,
            ):  # fmt: skip
                name = query.name.decode("ascii", "replace")
                out.append(Control(query.id, name, query.type, query.minimum, query.maximum, query.default_value))

    def get_control(self, control: Control) -> int:
        ext = ExtControl(id=control.id)
        group = ExtControls(which=0, count=1, controls=ctypes.pointer(ext))
        self._ioctl(VIDIOC_G_EXT_CTRLS, group)
        return int(ext.u.value64 if control.type == CTRL_TYPE_INTEGER64 else ext.u.value)

    def set_control(self, control: Control, value: int) -> None:
        ext = ExtControl(id=control.id)
        if control.type == CTRL_TYPE_INTEGER64:
            ext.u.value64 = int(value)
        else:
            ext.u.value = int(value)
        group = ExtControls(which=0, count=1, controls=ctypes.pointer(ext))
        self._ioctl(VIDIOC_S_EXT_CTRLS, group)

    def close(self) -> None:
        """Stop streaming, unmap, close; safe on a device that has already gone."""
        if self.streaming:
            self.streaming = False
            with contextlib.suppress(OSError):  # a device that has gone cannot stop
                self._ioctl(VIDIOC_STREAMOFF, ctypes.c_int(BUF_TYPE_VIDEO_CAPTURE))
        for m in self._maps:
            m.close()
        self._maps.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
