"""Raw byte decoding: hand-built buffers, strides, sizes, MSB alignment, names, round trips."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError, RawFormatError
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.rawformat import Packing, RawFormat, decode, encode, parse_format

RAW10 = RawFormat(CFA.RGGB, 10, Packing.CSI2P)
RAW12 = RawFormat(CFA.RGGB, 12, Packing.CSI2P)
RAW14 = RawFormat(CFA.RGGB, 14, Packing.CSI2P)
MSB10 = RawFormat(CFA.RGGB, 10, Packing.UNPACKED_MSB)


class TestHandBuiltBytes:
    """Bytes written out by hand from the V4L2 layout tables, independent of encode()."""

    def test_raw10_extremes(self):
        # p0=1023 (hi FF, lo 11) p1=0 p2=0x155 (hi 55, lo 01) p3=0x2AA (hi AA, lo 10);
        # fifth byte = lo3<<6 | lo2<<4 | lo1<<2 | lo0 = 10 01 00 11 = 0x93.
        out = decode(bytes([0xFF, 0x00, 0x55, 0xAA, 0x93]), 4, 1, RAW10)
        assert out.dtype == np.uint16
        assert out.tolist() == [[1023, 0, 341, 682]]

    def test_raw10_low_bits_belong_to_pixel_zero_first(self):
        # Pixel 0 owns bits 1-0 of the fifth byte (a reversed order is a classic bug):
        # p0=1, p1=2 only in the low bits, p2=4 (hi 01), p3=1020 (hi FF); fifth = 0b00_00_10_01.
        out = decode(bytes([0x00, 0x00, 0x01, 0xFF, 0x09]), 4, 1, "pRAA")
        assert out.tolist() == [[1, 2, 4, 1020]]

    def test_raw10_two_lines(self):
        line0 = [0x10, 0x20, 0x30, 0x40, 0b11100100]  # lows 0,1,2,3
        line1 = [0x80, 0x00, 0x00, 0x01, 0x00]
        out = decode(bytes(line0 + line1), 4, 2, "SRGGB10_CSI2P")
        assert out.tolist() == [[0x40, 0x81, 0xC2, 0x103], [0x200, 0, 0, 4]]

    def test_raw12(self):
        # p0=0xABC, p1=0x123: AB 12, then p1.low<<4 | p0.low = 0x3C.
        out = decode(bytes([0xAB, 0x12, 0x3C, 0xFF, 0x00, 0x0F]), 4, 1, RAW12)
        assert out.tolist() == [[0xABC, 0x123, 0xFFF, 0x000]]

    def test_raw14(self):
        # Low 6-bit fields 0x3F, 0x01, 0x20, 0x2A packed from bit 0 of bytes 4-6: 7F 00 AA.
        out = decode(bytes([0x12, 0x34, 0x56, 0xFF, 0x7F, 0x00, 0xAA]), 4, 1, RAW14)
        expected = [(0x12 << 6) | 0x3F, (0x34 << 6) | 0x01, (0x56 << 6) | 0x20, (0xFF << 6) | 0x2A]
        assert out.tolist() == [expected]

    def test_unpacked_lsb_is_little_endian(self):
        out = decode(bytes([0xFF, 0x03, 0x01, 0x02, 0x00, 0x00, 0x34, 0x01]), 4, 1, "RG10")
        assert out.tolist() == [[1023, 0x201, 0, 0x134]]

    def test_raw8(self):
        assert decode(bytes([0, 7, 128, 255]), 2, 2, "BA81").tolist() == [[0, 7], [128, 255]]

    def test_accepts_memoryview_and_ndarray(self):
        raw = bytes([0xFF, 0x00, 0x55, 0xAA, 0x93])
        assert decode(memoryview(raw), 4, 1, RAW10).tolist() == [[1023, 0, 341, 682]]
        words = np.array([[1023, 5, 0, 77]], dtype=np.uint16)
        assert decode(words, 4, 1, "RG10").tolist() == words.tolist()

    def test_result_is_a_copy_of_the_buffer(self):
        buf = bytearray([1, 0, 2, 0])
        out = decode(buf, 2, 1, "RG16")
        buf[0] = 9
        assert out.tolist() == [[1, 2]]


class TestStride:
    def test_padding_bytes_are_ignored(self):
        pad = [0xEE, 0xEE, 0xEE]
        buf = bytes([0xFF, 0x00, 0x55, 0xAA, 0x93, *pad, 0x00, 0x00, 0x01, 0xFF, 0x09, *pad])
        out = decode(buf, 4, 2, RAW10, stride=8)
        assert out.tolist() == [[1023, 0, 341, 682], [1, 2, 4, 1020]]

    def test_padded_unpacked(self):
        buf = bytes([1, 0, 2, 0, 0xAB, 0xCD, 3, 0, 4, 0, 0xAB, 0xCD])
        assert decode(buf, 2, 2, "RG10", stride=6).tolist() == [[1, 2], [3, 4]]

    def test_stride_shorter_than_a_line_raises(self):
        with pytest.raises(RawFormatError, match="shorter than one line"):
            decode(bytes(8), 4, 2, RAW10, stride=4)

    def test_encode_writes_the_stride(self):
        img = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.uint16)
        raw = encode(img, RAW10, stride=64)
        assert len(raw) == 128
        assert raw[5:64] == bytes(59)
        assert decode(raw, 4, 2, RAW10, stride=64).tolist() == img.tolist()


class TestSizeChecks:
    def test_short_buffer_names_expected_got_and_formula(self):
        with pytest.raises(RawFormatError) as err:
            decode(bytes(19), 4, 4, RAW10)
        message = str(err.value)
        assert "20 bytes" in message and "got 19" in message and "stride * height" in message
        assert "ceil(4 * 10 / 8)" in message

    def test_long_buffer_refused_unless_allowed(self):
        raw = bytes([0xFF, 0x00, 0x55, 0xAA, 0x93]) + b"\x01\x02"
        with pytest.raises(RawFormatError, match="allow_trailing"):
            decode(raw, 4, 1, RAW10)
        assert decode(raw, 4, 1, RAW10, allow_trailing=True).tolist() == [[1023, 0, 341, 682]]

    def test_hint_for_a_padded_stride_and_for_another_packing(self):
        with pytest.raises(RawFormatError, match="stride=8"):
            decode(bytes(32), 4, 4, RAW10)
        with pytest.raises(RawFormatError, match="in 16-bit words"):
            decode(bytes(32), 4, 4, RAW10)

    @pytest.mark.parametrize(("fmt", "width", "group"), [(RAW10, 6, 4), (RAW12, 5, 2), (RAW14, 10, 4)])
    def test_width_must_fill_packed_groups(self, fmt, width, group):
        with pytest.raises(RawFormatError, match=f"multiple of {group}"):
            decode(bytes(100), width, 1, fmt)

    @pytest.mark.parametrize("bad", [0, -4, 2.0, True])
    def test_bad_sizes(self, bad):
        with pytest.raises(RawFormatError, match="positive integer"):
            decode(bytes(10), bad, 1, "RG10")

    def test_errors_are_value_errors(self):
        with pytest.raises(ValueError):
            decode(bytes(3), 4, 1, RAW10)


class TestMsbAligned:
    def test_jetson_style_replicated_low_bits_are_discarded(self):
        # value v at bits [15:6], low 6 bits = v's top bits: 1023 -> FFFF, 512 -> 8020, 1 -> 0040.
        raw = bytes([0xFF, 0xFF, 0x20, 0x80, 0x40, 0x00, 0x00, 0x00])
        assert decode(raw, 4, 1, MSB10).tolist() == [[1023, 512, 1, 0]]

    def test_explicit_shift(self):
        # 10 bits at [13:4] with garbage in the low nibble: 1023 -> 3FFF, 0x155 -> 155A.
        raw = bytes([0xFF, 0x3F, 0x5A, 0x15])
        assert decode(raw, 2, 1, MSB10, msb_shift=4).tolist() == [[1023, 0x155]]

    def test_bits_above_the_declared_field_raise_with_a_suggestion(self):
        with pytest.raises(RawFormatError, match="msb_shift=6"):
            decode(bytes([0xFF, 0xFF, 0, 0]), 2, 1, MSB10, msb_shift=4)

    def test_msb_data_declared_lsb_raises(self):
        with pytest.raises(RawFormatError, match="UNPACKED_MSB"):
            decode(np.array([[0xFFC0, 0]], dtype=np.uint16), 2, 1, "RG10")

    def test_pi5_16_bit_buffer_as_12_bit(self):
        values = np.array([[4095, 0, 1, 2048]], dtype=np.uint16)
        raw = (values << 4).astype("<u2").tobytes()
        assert decode(raw, 4, 1, RawFormat("RGGB", 12, Packing.UNPACKED_MSB)).tolist() == values.tolist()
        assert decode(raw, 4, 1, "SRGGB16").tolist() == (values << 4).tolist()

    @pytest.mark.parametrize("shift", [-1, 7, 1.5])
    def test_shift_out_of_range(self, shift):
        with pytest.raises(RawFormatError, match=r"0\.\.6"):
            decode(bytes(4), 2, 1, MSB10, msb_shift=shift)

    def test_shift_refused_for_other_packings(self):
        with pytest.raises(RawFormatError, match="UNPACKED_MSB formats only"):
            decode(bytes(4), 2, 1, "RG10", msb_shift=6)


class TestParseFormat:
    @pytest.mark.parametrize(
        ("name", "cfa", "bits", "packing"),
        [
            ("SRGGB10", CFA.RGGB, 10, Packing.UNPACKED_LSB),
            ("SBGGR12_CSI2P", CFA.BGGR, 12, Packing.CSI2P),
            ("SGRBG10_CSI2P", CFA.GRBG, 10, Packing.CSI2P),
            ("SGBRG14_CSI2P", CFA.GBRG, 14, Packing.CSI2P),
            ("SRGGB16", CFA.RGGB, 16, Packing.UNPACKED_LSB),
            ("SGBRG8", CFA.GBRG, 8, Packing.RAW8),
            ("srggb10_csi2p", CFA.RGGB, 10, Packing.CSI2P),
            ("V4L2_PIX_FMT_SBGGR10P", CFA.BGGR, 10, Packing.CSI2P),
            ("RG10", CFA.RGGB, 10, Packing.UNPACKED_LSB),
            ("BG10", CFA.BGGR, 10, Packing.UNPACKED_LSB),
            ("GB10", CFA.GBRG, 10, Packing.UNPACKED_LSB),
            ("BA10", CFA.GRBG, 10, Packing.UNPACKED_LSB),
            ("RG12", CFA.RGGB, 12, Packing.UNPACKED_LSB),
            ("BA12", CFA.GRBG, 12, Packing.UNPACKED_LSB),
            ("GR14", CFA.GRBG, 14, Packing.UNPACKED_LSB),
            ("BYR2", CFA.BGGR, 16, Packing.UNPACKED_LSB),
            ("RGGB", CFA.RGGB, 8, Packing.RAW8),
            ("BA81", CFA.BGGR, 8, Packing.RAW8),
            ("GBRG", CFA.GBRG, 8, Packing.RAW8),
            ("GRBG", CFA.GRBG, 8, Packing.RAW8),
            ("pRAA", CFA.RGGB, 10, Packing.CSI2P),
            ("pBAA", CFA.BGGR, 10, Packing.CSI2P),
            ("pgAA", CFA.GRBG, 10, Packing.CSI2P),
            ("pGAA", CFA.GBRG, 10, Packing.CSI2P),
            ("pRCC", CFA.RGGB, 12, Packing.CSI2P),
            ("pBCC", CFA.BGGR, 12, Packing.CSI2P),
            ("pgCC", CFA.GRBG, 12, Packing.CSI2P),
            ("pGCC", CFA.GBRG, 12, Packing.CSI2P),
            ("pREE", CFA.RGGB, 14, Packing.CSI2P),
            ("rg10", CFA.RGGB, 10, Packing.UNPACKED_LSB),
        ],
    )
    def test_names(self, name, cfa, bits, packing):
        assert parse_format(name) == RawFormat(cfa, bits, packing)

    @pytest.mark.parametrize("name", ["RGGB_PISP_COMP1", "BGGR_PISP_COMP1", "MONO_PISP_COMP1", "PC1R", "bBA8"])
    def test_compressed_formats_are_refused(self, name):
        with pytest.raises(RawFormatError, match="lossy") as err:
            parse_format(name)
        assert "unpacked" in str(err.value)

    def test_unknown_name_lists_examples(self):
        with pytest.raises(RawFormatError, match="SRGGB10_CSI2P") as err:
            parse_format("YUYV")
        assert "pRAA" in str(err.value)

    def test_case_matters_for_packed_fourccs(self):
        with pytest.raises(RawFormatError, match="case-sensitive"):
            parse_format("pgaa")

    @pytest.mark.parametrize(
        ("bits", "packing"), [(8, Packing.CSI2P), (16, Packing.CSI2P), (10, Packing.RAW8), (17, Packing.UNPACKED_LSB)]
    )
    def test_impossible_formats(self, bits, packing):
        with pytest.raises(RawFormatError):
            RawFormat(CFA.RGGB, bits, packing)

    def test_bad_cfa_is_an_input_error(self):
        with pytest.raises(InvalidInputError, match="RGGB"):
            RawFormat("RGBW", 10, Packing.CSI2P)

    def test_line_and_frame_bytes(self):
        assert RAW10.line_bytes(4056) == 5070
        assert RAW12.line_bytes(4056) == 6084
        assert RAW14.line_bytes(8) == 14
        assert parse_format("RG10").frame_bytes(8, 2, stride=32) == 64


ALL_FORMATS = [
    RawFormat(cfa, bits, packing)
    for cfa in CFA
    for bits, packing in [
        (8, Packing.RAW8),
        (10, Packing.CSI2P),
        (12, Packing.CSI2P),
        (14, Packing.CSI2P),
        (10, Packing.UNPACKED_LSB),
        (16, Packing.UNPACKED_LSB),
        (10, Packing.UNPACKED_MSB),
        (12, Packing.UNPACKED_MSB),
    ]
]


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
    @pytest.mark.parametrize("pad", [0, 13])
    def test_decode_inverts_encode(self, fmt, pad):
        rng = np.random.default_rng(fmt.bit_depth + pad)
        img = rng.integers(0, 2**fmt.bit_depth, size=(6, 16), dtype=np.uint16)
        img[0, :4] = [0, 2**fmt.bit_depth - 1, 1, 2 ** (fmt.bit_depth - 1)]
        stride = fmt.line_bytes(16) + pad
        raw = encode(img, fmt, stride=stride)
        assert len(raw) == stride * 6
        out = decode(raw, 16, 6, fmt, stride=stride)
        assert out.dtype == np.uint16 and out.shape == (6, 16)
        np.testing.assert_array_equal(out, img)

    def test_encode_matches_the_hand_built_raw10(self):
        assert encode(np.array([[1023, 0, 341, 682]]), RAW10) == bytes([0xFF, 0x00, 0x55, 0xAA, 0x93])

    def test_encode_refuses_out_of_range_values(self):
        with pytest.raises(RawFormatError, match=r"\[0, 1023\]"):
            encode(np.array([[1024, 0, 0, 0]]), RAW10)
        with pytest.raises(RawFormatError, match="2-D integer"):
            encode(np.zeros((2, 4), dtype=np.float32), RAW10)


def test_12_mp_raw10_decodes_in_well_under_a_second():
    width, height = 4056, 3040
    img = np.random.default_rng(0).integers(0, 1024, size=(height, width), dtype=np.uint16)
    raw = encode(img, RAW10)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        out = decode(raw, width, height, RAW10)
        best = min(best, time.perf_counter() - start)
    np.testing.assert_array_equal(out, img)
    assert best < 0.5, f"decoding a 12 MP RAW10 frame took {best:.3f} s"
