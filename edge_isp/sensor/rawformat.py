"""Raw sensor bytes <-> Bayer mosaics: MIPI CSI-2 packed, 16-bit LSB/MSB aligned, 8-bit.

Pure numpy, vectorized, no torch (the runtime on a board uses it). A format is a
:class:`RawFormat` (CFA, bit depth, :class:`Packing`); :func:`parse_format` builds one from
the names devices report: V4L2 fourccs (``RG10``, ``pRAA``...) and libcamera names
(``SRGGB10_CSI2P``...).

Layouts (sources: the Linux V4L2 pixel-format documentation, pixfmt-srggb10.rst,
pixfmt-srggb10p.rst, pixfmt-srggb12p.rst, pixfmt-srggb14p.rst and the fourcc defines in
include/uapi/linux/videodev2.h):

- ``CSI2P``: k pixels in k*n/8 bytes. The first k bytes hold each pixel's 8 high bits; the
  remaining bytes, read as one little-endian integer, hold the (n-8) low bits of pixel 0,
  then pixel 1... from bit 0 up. RAW10: 4 px / 5 bytes, RAW12: 2 px / 3 bytes, RAW14:
  4 px / 7 bytes.
- ``UNPACKED_LSB``: one 16-bit little-endian word per pixel, the value in the low bits and
  the high bits zero (V4L2 ``RG10``, ``RG12``...; also Raspberry Pi 4 "unpacked" raw).
- ``UNPACKED_MSB``: one 16-bit little-endian word per pixel, the value ``n`` bits wide
  starting at bit ``msb_shift``; bits below it are discarded (zero padding on a Raspberry
  Pi 5, replicated high bits on some Jetson VI units). Known cases:

  * Raspberry Pi 5 (PiSP front end) unpacked raw: zero padding at the least significant
    end, the value fills the top bits (Raspberry Pi camera documentation, "Unpacked format
    details"), so ``msb_shift = 16 - n``, the default. libcamera reports such a buffer as
    a 16-bit format (e.g. ``SRGGB16``); parsing that name gives the same ordering scaled
    by ``2**(16-n)``.
  * Jetson VI: the NVIDIA forum thread "Questions regarding VI's raw data pixel
    formatting" (forums.developer.nvidia.com/t/223616, 2022) reports RAW10 on Xavier NX
    (VI5) arriving MSB-aligned with bit 15 in use and high bits replicated into the low
    ones (consistent with bits [15:6]), whereas the Xavier TRM describes bit 15 as 0; and
    RAW10 on a Nano (VI2) arriving LSB-aligned, whereas the TX1 TRM describes bits [13:4].
    Documentation and observations disagree, so no per-SoC table is shipped: measure the
    board (a bright capture shows which bits vary) and pass ``msb_shift``.

- ``RAW8``: one byte per pixel.

Not supported, refused with a clear message: the Raspberry Pi 5 compressed formats
(``RGGB_PISP_COMP1``, fourcc ``PC1R``...) and the DPCM/A-law compressed V4L2 formats; they
are lossy, so request an unpacked format instead.
"""

from __future__ import annotations

import dataclasses
import enum
import re

import numpy as np

from edge_isp.errors import RawFormatError
from edge_isp.sensor.cfa import CFA


class Packing(enum.Enum):
    """How the samples of one line are laid out in bytes (see the module docstring)."""

    RAW8 = "raw8"
    CSI2P = "csi2p"
    UNPACKED_LSB = "unpacked_lsb"
    UNPACKED_MSB = "unpacked_msb"


# Pixels per packed group for MIPI CSI-2 RAW10/12/14.
_CSI2_GROUP = {10: 4, 12: 2, 14: 4}


@dataclasses.dataclass(frozen=True)
class RawFormat:
    """A raw pixel format: Bayer pattern, bits per sample and byte packing.

    Attributes:
        cfa: the Bayer pattern of the frame as delivered.
        bit_depth: significant bits per sample (8 to 16); decoded values lie in
            ``[0, 2**bit_depth)``.
        packing: the byte layout.
    """

    cfa: CFA
    bit_depth: int
    packing: Packing

    def __post_init__(self) -> None:
        object.__setattr__(self, "cfa", CFA.parse(self.cfa))
        try:
            object.__setattr__(self, "packing", Packing(self.packing))
        except ValueError:
            choices = ", ".join(p.value for p in Packing)
            raise RawFormatError(f"unknown packing {self.packing!r}; expected one of {choices}") from None
        bits, packing = self.bit_depth, self.packing
        if packing is Packing.RAW8 and bits != 8:
            raise RawFormatError(f"RAW8 packing holds 8-bit samples, got bit_depth={bits}")
        if packing is Packing.CSI2P and bits not in _CSI2_GROUP:
            raise RawFormatError(f"CSI-2 packing exists for 10, 12 and 14 bits, got bit_depth={bits}")
        if packing in (Packing.UNPACKED_LSB, Packing.UNPACKED_MSB) and not 8 <= bits <= 16:
            raise RawFormatError(f"16-bit word packing holds 8 to 16 bits per sample, got bit_depth={bits}")

    @property
    def pixels_per_group(self) -> int:
        """The line width must be a multiple of this (4 for RAW10/RAW14, 2 for RAW12, else 1)."""
        return _CSI2_GROUP[self.bit_depth] if self.packing is Packing.CSI2P else 1

    @property
    def bytes_per_group(self) -> int:
        """Bytes holding one group of :attr:`pixels_per_group` pixels."""
        if self.packing is Packing.CSI2P:
            return self.pixels_per_group * self.bit_depth // 8
        return 1 if self.packing is Packing.RAW8 else 2

    def line_bytes(self, width: int) -> int:
        """Minimal bytes per line for ``width`` pixels (``ceil(width * bits / 8)`` for CSI-2)."""
        width = _positive_int(width, "width")
        group = self.pixels_per_group
        if width % group:
            raise RawFormatError(
                f"{self}: width must be a multiple of {group} (a packed group is {group} pixels in "
                f"{self.bytes_per_group} bytes), got width={width}"
            )
        return width // group * self.bytes_per_group

    def frame_bytes(self, width: int, height: int, stride: int | None = None) -> int:
        """Bytes of a whole frame: ``stride * height``, stride defaulting to :meth:`line_bytes`."""
        return _resolve_stride(self, width, stride) * _positive_int(height, "height")

    def __str__(self) -> str:
        layout = {
            Packing.RAW8: "in bytes",
            Packing.CSI2P: "CSI-2 packed",
            Packing.UNPACKED_LSB: "in 16-bit words, LSB aligned",
            Packing.UNPACKED_MSB: "in 16-bit words, MSB aligned",
        }[self.packing]
        return f"{self.cfa.value} {self.bit_depth}-bit {layout}"


# V4L2 fourccs, case-sensitive ('pgAA' is GRBG, 'pGAA' is GBRG), from videodev2.h.
_FOURCC_CFA = {"B": CFA.BGGR, "G": CFA.GBRG, "g": CFA.GRBG, "R": CFA.RGGB}
_FOURCCS: dict[str, tuple[CFA, int, Packing]] = {
    "BA81": (CFA.BGGR, 8, Packing.RAW8),
    "GBRG": (CFA.GBRG, 8, Packing.RAW8),
    "GRBG": (CFA.GRBG, 8, Packing.RAW8),
    "RGGB": (CFA.RGGB, 8, Packing.RAW8),
    "BYR2": (CFA.BGGR, 16, Packing.UNPACKED_LSB),
    "GB16": (CFA.GBRG, 16, Packing.UNPACKED_LSB),
    "GR16": (CFA.GRBG, 16, Packing.UNPACKED_LSB),
    "RG16": (CFA.RGGB, 16, Packing.UNPACKED_LSB),
}
for _bits, _grbg in ((10, "BA10"), (12, "BA12"), (14, "GR14")):
    for _code, _cfa in (
        (f"BG{_bits}", CFA.BGGR),
        (f"GB{_bits}", CFA.GBRG),
        (_grbg, CFA.GRBG),
        (f"RG{_bits}", CFA.RGGB),
    ):
        _FOURCCS[_code] = (_cfa, _bits, Packing.UNPACKED_LSB)
for _bits, _tag in ((10, "AA"), (12, "CC"), (14, "EE")):
    for _letter, _cfa in _FOURCC_CFA.items():
        _FOURCCS[f"p{_letter}{_tag}"] = (_cfa, _bits, Packing.CSI2P)

# Lossy compressed formats: PiSP (Pi 5) and the V4L2 DPCM / A-law 10-to-8-bit ones.
_COMPRESSED_FOURCCS = {
    *(f"PC{m}{c}" for m in "12" for c in "RGgBM"),
    "bBA8", "bGA8", "BD10", "bRA8", "aBA8", "aGA8", "agA8", "aRA8",
}  # fmt: skip

# libcamera names (formats.yaml) and V4L2 macro names, matched case-insensitively.
_CFA_NAMES = "RGGB|BGGR|GRBG|GBRG"
_LIBCAMERA = re.compile(rf"^S({_CFA_NAMES})(8|10|12|14|16)(_CSI2P)?$")
_V4L2_MACRO = re.compile(rf"^(?:V4L2_PIX_FMT_)?S({_CFA_NAMES})(8|10|12|14|16)(P?)$")
_PISP = re.compile(rf"^(?:{_CFA_NAMES}|MONO)(?:16)?_PISP_COMP\d$")

EXAMPLE_NAMES = (
    "SRGGB10_CSI2P", "SBGGR12", "SGRBG16", "RG10", "BA10", "pRAA", "pgCC", "BA81", "RGGB",
)  # fmt: skip


def parse_format(name: str | RawFormat) -> RawFormat:
    """A :class:`RawFormat` from a V4L2 fourcc or a libcamera / V4L2 format name.

    Accepted: fourccs (case-sensitive where case matters: ``RG10``, ``BA10``, ``pRAA``,
    ``pgAA``, ``pRCC``, ``BA81``, ``RGGB``, ``RG16``...), libcamera names (``SRGGB10``,
    ``SBGGR12_CSI2P``, ``SGBRG8``, ``SRGGB16``...) and V4L2 macro names
    (``V4L2_PIX_FMT_SRGGB10P``). A 16-bit name gives 16-bit values, e.g. a Raspberry Pi 5
    unpacked frame; build ``RawFormat(cfa, n, Packing.UNPACKED_MSB)`` to get n-bit values.

    Raises:
        RawFormatError: an unknown name (the message lists valid examples) or a lossy
            compressed format (PiSP ``*_PISP_COMP1``, DPCM, A-law).
    """
    if isinstance(name, RawFormat):
        return name
    text = str(name).strip()
    if text in _FOURCCS:
        return RawFormat(*_FOURCCS[text])
    if text in _COMPRESSED_FOURCCS or _PISP.match(text.upper()) or "DPCM" in text.upper() or "ALAW" in text.upper():
        raise RawFormatError(
            f"raw format {text!r} is a compressed, lossy raw format, which edge-isp does not decode; "
            "configure the camera for an unpacked or CSI-2 packed format instead (e.g. on a Raspberry Pi 5 "
            "ask picamera2/libcamera for 'SRGGB16'-style unpacked raw rather than '*_PISP_COMP1')"
        )
    upper = text.upper()
    match = _LIBCAMERA.match(upper)
    packed = bool(match and match.group(3))
    if not match:
        match = _V4L2_MACRO.match(upper)
        packed = bool(match and match.group(3))
    if match:
        cfa, bits = CFA(match.group(1)), int(match.group(2))
        if packed:
            return RawFormat(cfa, bits, Packing.CSI2P)
        return RawFormat(cfa, bits, Packing.RAW8 if bits == 8 else Packing.UNPACKED_LSB)
    # A fourcc typed in the wrong case: accept only when the case does not matter.
    folded = [code for code in _FOURCCS if code.upper() == upper]
    if len(folded) == 1:
        return RawFormat(*_FOURCCS[folded[0]])
    hint = f" (ambiguous: fourccs are case-sensitive, did you mean {' or '.join(folded)}?)" if folded else ""
    raise RawFormatError(
        f"unknown raw format {text!r}{hint}; expected a V4L2 fourcc or libcamera name such as "
        f"{', '.join(EXAMPLE_NAMES)}"
    )


def decode(
    buffer: bytes | bytearray | memoryview | np.ndarray,
    width: int,
    height: int,
    fmt: RawFormat | str,
    stride: int | None = None,
    msb_shift: int | None = None,
    *,
    allow_trailing: bool = False,
) -> np.ndarray:
    """Decode raw bytes to a Bayer mosaic.

    Args:
        buffer: the frame's bytes (an ndarray is read as its bytes in memory order).
        width, height: frame size in pixels.
        fmt: a :class:`RawFormat` or a name for :func:`parse_format`.
        stride: bytes per line including padding; default :meth:`RawFormat.line_bytes`.
        msb_shift: for ``UNPACKED_MSB``, the bit where the value starts (default
            ``16 - bit_depth``); the bits below are discarded. Not allowed for other packings.
        allow_trailing: accept a buffer longer than ``stride * height`` (extra bytes ignored).

    Returns:
        ``(height, width)`` uint16 array with values in ``[0, 2**bit_depth)``; always a new
        array, so the source buffer can be handed back to the driver.

    Raises:
        RawFormatError: wrong buffer size (with expected vs got and the formula), a width the
            packing cannot hold, a stride shorter than a line, or sample bits outside the
            declared range (e.g. MSB-aligned data declared LSB-aligned).
    """
    fmt = parse_format(fmt)
    width, height = _positive_int(width, "width"), _positive_int(height, "height")
    line = fmt.line_bytes(width)
    stride = _resolve_stride(fmt, width, stride)
    shift = _resolve_shift(fmt, msb_shift)
    data = _as_bytes(buffer)
    expected = stride * height
    if data.size < expected or (data.size > expected and not allow_trailing):
        raise RawFormatError(_size_message(fmt, width, height, stride, line, data.size, allow_trailing))
    rows = data[:expected].reshape(height, stride)[:, :line]
    if fmt.packing is Packing.RAW8:
        return rows.astype(np.uint16)
    if fmt.packing is Packing.CSI2P:
        return _unpack_csi2(rows, width, fmt.bit_depth)
    words = np.ascontiguousarray(rows).view("<u2").astype(np.uint16)
    return _unalign(words, fmt, shift)


def encode(image: np.ndarray, fmt: RawFormat | str, stride: int | None = None, msb_shift: int | None = None) -> bytes:
    """Inverse of :func:`decode`: a ``(H, W)`` integer mosaic to raw bytes.

    Padding bytes (beyond the line length, up to ``stride``) and, for ``UNPACKED_MSB``, the
    bits below ``msb_shift`` are written as zeros.

    Raises:
        RawFormatError: a non-2-D or non-integer image, values outside
            ``[0, 2**bit_depth)``, or a width/stride the format cannot hold.
    """
    fmt = parse_format(fmt)
    image = np.asarray(image)
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
        raise RawFormatError(f"encode needs a 2-D integer mosaic, got shape {image.shape} dtype {image.dtype}")
    height, width = image.shape
    line = fmt.line_bytes(width)
    stride = _resolve_stride(fmt, width, stride)
    shift = _resolve_shift(fmt, msb_shift)
    if image.size and (image.min() < 0 or image.max() >= 2**fmt.bit_depth):
        raise RawFormatError(
            f"{fmt}: values must lie in [0, {2**fmt.bit_depth - 1}], got [{image.min()}, {image.max()}]"
        )
    values = image.astype(np.uint32)
    if fmt.packing is Packing.RAW8:
        packed = values.astype(np.uint8)
    elif fmt.packing is Packing.CSI2P:
        packed = _pack_csi2(values, fmt.bit_depth)
    else:
        words = values << shift if fmt.packing is Packing.UNPACKED_MSB else values
        packed = words.astype("<u2").view(np.uint8).reshape(height, line)
    out = np.zeros((height, stride), dtype=np.uint8)
    out[:, :line] = packed
    return out.tobytes()


def _unpack_csi2(rows: np.ndarray, width: int, bits: int) -> np.ndarray:
    group = _CSI2_GROUP[bits]
    low_bits = bits - 8
    g = rows.reshape(rows.shape[0], width // group, group * bits // 8)
    out = g[..., :group].astype(np.uint16) << low_bits
    low = np.zeros(g.shape[:2], dtype=np.uint32)
    for j in range(g.shape[2] - group):
        low |= g[..., group + j].astype(np.uint32) << (8 * j)
    shifts = np.arange(group, dtype=np.uint32) * low_bits
    out |= ((low[..., None] >> shifts) & ((1 << low_bits) - 1)).astype(np.uint16)
    return out.reshape(rows.shape[0], width)


def _pack_csi2(values: np.ndarray, bits: int) -> np.ndarray:
    group = _CSI2_GROUP[bits]
    low_bits = bits - 8
    height, width = values.shape
    v = values.reshape(height, width // group, group)
    high = (v >> low_bits).astype(np.uint8)
    shifts = np.arange(group, dtype=np.uint32) * low_bits
    low = np.bitwise_or.reduce((v & ((1 << low_bits) - 1)) << shifts, axis=-1)
    n_low = group * bits // 8 - group
    low_bytes = np.stack([((low >> (8 * j)) & 0xFF).astype(np.uint8) for j in range(n_low)], axis=-1)
    return np.concatenate([high, low_bytes], axis=-1).reshape(height, -1)


def _unalign(words: np.ndarray, fmt: RawFormat, shift: int) -> np.ndarray:
    bits = fmt.bit_depth
    top = shift + bits
    if top < 16:
        overflow = words >> top
        if overflow.any():
            highest = int(words.max()).bit_length()
            suggestion = f"the data reaches bit {highest - 1}: " + (
                "declare it UNPACKED_MSB (e.g. Jetson RG10 or a Raspberry Pi 5 16-bit buffer)"
                if fmt.packing is Packing.UNPACKED_LSB
                else f"try msb_shift={highest - bits}"
            )
            raise RawFormatError(
                f"{fmt}: samples have bits set above bit {top - 1} (the value is {bits} bits from bit {shift}); "
                f"{suggestion}"
            )
    if shift:
        words = (words >> shift) & ((1 << bits) - 1)
    return words


def _as_bytes(buffer) -> np.ndarray:
    if isinstance(buffer, np.ndarray):
        return np.ascontiguousarray(buffer).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(buffer, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise RawFormatError(
            f"raw buffer must be bytes, a contiguous memoryview or an ndarray, got {type(buffer).__name__}: {exc}"
        ) from None


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise RawFormatError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _resolve_stride(fmt: RawFormat, width: int, stride: int | None) -> int:
    line = fmt.line_bytes(width)
    if stride is None:
        return line
    stride = _positive_int(stride, "stride")
    if stride < line:
        raise RawFormatError(f"{fmt}: stride {stride} bytes is shorter than one line of {width} pixels ({line} bytes)")
    return stride


def _resolve_shift(fmt: RawFormat, msb_shift: int | None) -> int:
    if fmt.packing is not Packing.UNPACKED_MSB:
        if msb_shift not in (None, 0):
            raise RawFormatError(f"msb_shift applies to UNPACKED_MSB formats only, got msb_shift={msb_shift} for {fmt}")
        return 0
    limit = 16 - fmt.bit_depth
    if msb_shift is None:
        return limit
    if isinstance(msb_shift, bool) or not isinstance(msb_shift, (int, np.integer)) or not 0 <= msb_shift <= limit:
        raise RawFormatError(
            f"msb_shift for {fmt.bit_depth}-bit samples in 16-bit words must be 0..{limit}, got {msb_shift!r}"
        )
    return int(msb_shift)


def _size_message(
    fmt: RawFormat, width: int, height: int, stride: int, line: int, got: int, allow_trailing: bool
) -> str:
    if fmt.packing is Packing.CSI2P:
        formula = f"line = ceil({width} * {fmt.bit_depth} / 8) = {line}"
    else:
        formula = f"line = {width} * {fmt.bytes_per_group} = {line}"
    message = (
        f"{fmt}: a {width}x{height} frame needs stride * height = {stride} * {height} = {stride * height} bytes "
        f"({formula}, stride {stride}), got {got} bytes"
    )
    hints = []
    if got % height == 0 and got // height > line and got // height != stride:
        hints.append(f"the size fits stride={got // height} (padding at the end of each line)")
    for other in (Packing.CSI2P, Packing.UNPACKED_LSB):
        if other is fmt.packing or (other is Packing.CSI2P and fmt.bit_depth not in _CSI2_GROUP):
            continue
        alt = RawFormat(fmt.cfa, fmt.bit_depth, other)
        if width % alt.pixels_per_group == 0 and alt.line_bytes(width) * height == got:
            hints.append(f"the size matches {alt} with no padding")
    if got > stride * height and not allow_trailing:
        hints.append("pass allow_trailing=True if the buffer carries extra bytes after the frame")
    return message + ("; " + "; ".join(hints) if hints else "")
