"""load_raw: RawFrame pairs, bare dumps, PGM, DNG through rawpy (written here), describe()."""

from __future__ import annotations

import datetime
import struct

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError, MissingFileError, RawFormatError
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.rawfile import (
    SRGB_TO_XYZ,
    SUPPORTED_SUFFIXES,
    camera_to_srgb_matrix,
    describe,
    load_raw,
    load_raw_with_color,
)
from edge_isp.sensor.rawformat import Packing, RawFormat, encode

# ---------------------------------------------------------------- a minimal DNG writer
# TIFF field types: type code, struct format of one value.
_TYPES = {"B": (1, "B"), "A": (2, "s"), "H": (3, "H"), "I": (4, "I"), "R": (5, "II"), "SR": (10, "ii")}
DNG_CFA_CODES = {"R": 0, "G": 1, "B": 2}
# An XYZ -> camera matrix with some crosstalk, as a DNG ColorMatrix1 (scaled by 10000).
XYZ_TO_CAMERA = np.array([[1.1, -0.2, 0.05], [-0.3, 1.3, 0.1], [0.05, -0.15, 0.9]])


def _ifd(entries: list[tuple[int, str, object]], start: int) -> bytes:
    """One little-endian IFD at file offset ``start``, its out-of-line values right after it."""
    entries = sorted(entries, key=lambda e: e[0])
    data_start = start + 2 + 12 * len(entries) + 4
    head, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, values in entries:
        code, fmt = _TYPES[kind]
        if kind == "A":
            payload = values.encode("ascii") + b"\0"
            count = len(payload)
        elif kind in ("R", "SR"):
            payload = b"".join(struct.pack("<" + fmt, *v) for v in values)
            count = len(values)
        else:
            payload = struct.pack(f"<{len(values)}{fmt}", *values)
            count = len(values)
        if len(payload) <= 4:
            head += struct.pack("<HHI", tag, code, count) + payload.ljust(4, b"\0")
        else:
            extra += b"\0" * (len(extra) % 2)
            head += struct.pack("<HHII", tag, code, count, data_start + len(extra))
            extra += payload
    return head + struct.pack("<I", 0) + extra


def write_dng(
    path,
    image: np.ndarray,
    *,
    pattern: str | list[int] = "RGGB",
    pattern_dim: tuple[int, int] = (2, 2),
    black: tuple[int, int, int, int] = (0, 0, 0, 0),
    white: int = 4000,
    iso: int = 400,
    extra: tuple = (),
) -> None:
    """A small uncompressed DNG: a CFA mosaic (H, W) or, for (H, W, 3), a LinearRaw image."""
    height, width = image.shape[:2]
    samples = 1 if image.ndim == 2 else image.shape[2]
    codes = [DNG_CFA_CODES[c] for c in pattern] if isinstance(pattern, str) else list(pattern)
    pixels = image.astype("<u2").tobytes()
    neutral = [(1, 2), (1, 1), (1, 3)]  # as-shot neutral 0.5, 1, 1/3 -> white balance 2, 1, 3
    matrix = [(round(v * 10000), 10000) for v in XYZ_TO_CAMERA.ravel()]

    def ifd0(exif_offset: int, strip_offset: int) -> list:
        entries = [
            (254, "I", [0]), (256, "I", [width]), (257, "I", [height]), (258, "H", [16] * samples),
            (259, "H", [1]), (262, "H", [32803 if samples == 1 else 34892]), (271, "A", "edge-isp"),
            (272, "A", "test"), (273, "I", [strip_offset]), (274, "H", [1]), (277, "H", [samples]),
            (278, "I", [height]), (279, "I", [len(pixels)]), (284, "H", [1]), (306, "A", "2024:05:06 07:08:09"),
            (34665, "I", [exif_offset]), (50706, "B", [1, 4, 0, 0]), (50707, "B", [1, 1, 0, 0]),
            (50708, "A", "edge-isp test"), (50713, "H", [2, 2]), (50714, "I", list(black)),
            (50717, "I", [white]), (50721, "SR", matrix), (50728, "R", neutral), (50778, "H", [21]),
            *extra,
        ]  # fmt: skip
        if samples == 1:
            entries += [(33421, "H", list(pattern_dim)), (33422, "B", codes)]
        return entries

    exif = [(33434, "R", [(1, 100)]), (34855, "H", [iso])]
    size0 = len(_ifd(ifd0(0, 0), 8))
    exif_offset = 8 + size0 + size0 % 2
    exif_block = _ifd(exif, exif_offset)
    strip_offset = exif_offset + len(exif_block) + len(exif_block) % 2
    out = b"II*\0" + struct.pack("<I", 8) + _ifd(ifd0(exif_offset, strip_offset), 8)
    out = out.ljust(exif_offset, b"\0") + exif_block
    path.write_bytes(out.ljust(strip_offset, b"\0") + pixels)


def mosaic(seed: int = 0, shape=(24, 32), high: int = 4000) -> np.ndarray:
    # LibRaw refuses images under 22 pixels on a side.
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.uint16)


# ---------------------------------------------------------------- RawFrame pairs


def make_frame(**kw) -> RawFrame:
    args = dict(
        data=mosaic(1, (4, 6), 1024), cfa="GRBG", bit_depth=10, black_level=(64, 65, 66, 67), white_level=1023,
        analogue_gain=2.5, exposure_time_s=0.02, timestamp_s=12.5, sensor="imx219",
    )  # fmt: skip
    args.update(kw)
    return RawFrame(**args)


class TestFramePair:
    @pytest.mark.parametrize("suffix", [".npy", ".json"])
    def test_save_then_load_raw(self, tmp_path, suffix):
        frame = make_frame()
        frame.save(tmp_path / "shot")
        back = load_raw(tmp_path / f"shot{suffix}")
        np.testing.assert_array_equal(back.data, frame.data)
        assert back.metadata() == frame.metadata()

    def test_keywords_override_the_sidecar(self, tmp_path):
        make_frame().save(tmp_path / "shot")
        back = load_raw(tmp_path / "shot.npy", sensor="imx477", black_level=60)
        assert back.sensor == "imx477" and back.black_level == (60.0,) * 4 and back.cfa is CFA.GRBG

    def test_decoding_keywords_are_refused(self, tmp_path):
        make_frame().save(tmp_path / "shot")
        with pytest.raises(InvalidInputError, match="width, fmt only apply to bare"):
            load_raw(tmp_path / "shot.npy", width=4, fmt="RG10")


# ---------------------------------------------------------------- bare dumps


class TestDump:
    def test_padded_raw10_dump(self, tmp_path):
        img = mosaic(2, (6, 8), 1024)
        (tmp_path / "cap.raw").write_bytes(encode(img, "pBAA", stride=16))
        frame = load_raw(tmp_path / "cap.raw", width=8, height=6, fmt="pBAA", stride=16, black_level=64)
        np.testing.assert_array_equal(frame.data, img)
        assert frame.cfa is CFA.BGGR and frame.bit_depth == 10
        assert frame.black_level == (64.0,) * 4 and frame.white_level == 1023

    def test_jetson_msb_dump(self, tmp_path):
        img = mosaic(3, (4, 4), 1024)
        words = (img.astype(np.uint32) << 6) | (img >> 4)  # top bits replicated below the value
        (tmp_path / "cap.bin").write_bytes(words.astype("<u2").tobytes())
        fmt = RawFormat(CFA.RGGB, 10, Packing.UNPACKED_MSB)
        frame = load_raw(tmp_path / "cap.bin", width=4, height=4, fmt=fmt, msb_shift=6, black_level=(64, 64, 64, 64))
        np.testing.assert_array_equal(frame.data, img)

    def test_missing_arguments_are_named(self, tmp_path):
        (tmp_path / "cap.raw").write_bytes(bytes(40))
        with pytest.raises(InvalidInputError, match="missing: fmt, black_level"):
            load_raw(tmp_path / "cap.raw", width=4, height=4)

    def test_wrong_size_reaches_the_caller(self, tmp_path):
        (tmp_path / "cap.raw").write_bytes(bytes(41))
        with pytest.raises(RawFormatError, match="got 41 bytes"):
            load_raw(tmp_path / "cap.raw", width=4, height=4, fmt="pRAA", black_level=0)


# ---------------------------------------------------------------- PGM


def pgm(width: int, height: int, maxval: int, values: list[int], comment: bool = True) -> bytes:
    header = f"P5\n{'# written by hand' + chr(10) if comment else ''}{width} {height}\n{maxval}\n".encode()
    fmt = ">" + ("B" if maxval < 256 else "H") * len(values)  # PGM: most significant byte first
    return header + struct.pack(fmt, *values)


class TestPgm:
    def test_16_bit_big_endian(self, tmp_path):
        values = [0x0102, 0, 1023, 7, 512, 64, 1000, 3]
        (tmp_path / "f.pgm").write_bytes(pgm(4, 2, 1023, values))
        frame = load_raw(tmp_path / "f.pgm", cfa="GBRG", black_level=64)
        assert frame.data.tolist() == [values[:4], values[4:]]
        assert frame.data[0, 0] == 258  # read little-endian it would be 513
        assert frame.bit_depth == 10 and frame.white_level == 1023 and frame.cfa is CFA.GBRG

    def test_8_bit_and_explicit_white(self, tmp_path):
        (tmp_path / "f.pgm").write_bytes(pgm(2, 2, 255, [1, 2, 3, 250], comment=False))
        frame = load_raw(tmp_path / "f.pgm", cfa="RGGB", black_level=16, white_level=240)
        assert frame.data.tolist() == [[1, 2], [3, 250]] and frame.bit_depth == 8 and frame.white_level == 240

    def test_missing_cfa_is_named(self, tmp_path):
        (tmp_path / "f.pgm").write_bytes(pgm(2, 2, 1023, [1, 2, 3, 4]))
        with pytest.raises(InvalidInputError, match="missing: cfa"):
            load_raw(tmp_path / "f.pgm", black_level=0)

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"P2\n2 2\n255\n1 2 3 4", "P5"),
            (b"P5\n2 x\n255\n" + bytes(4), "malformed"),
            (b"P5\n2 2\n1023\n" + bytes(5), "needs 8 bytes"),
            (b"P5\n2 2\n100\n" + bytes([0, 0, 0, 101]), "exceeds the header's maxval"),
        ],
    )
    def test_malformed(self, tmp_path, content, message):
        (tmp_path / "f.pgm").write_bytes(content)
        with pytest.raises(InvalidInputError, match=message):
            load_raw(tmp_path / "f.pgm", cfa="RGGB", black_level=0)


# ---------------------------------------------------------------- paths and suffixes


def test_missing_path(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        load_raw(tmp_path / "nope.dng")
    with pytest.raises(FileNotFoundError):
        load_raw(tmp_path / "nope.raw", width=4, height=4, fmt="RG10", black_level=0)


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(InvalidInputError, match=r"\.dng") as err:
        load_raw(tmp_path / "x.jpg")
    assert all(s in str(err.value) for s in (".npy", ".raw", ".pgm", ".nef"))
    assert ".dng" in SUPPORTED_SUFFIXES


# ---------------------------------------------------------------- DNG through rawpy


BLACK_BY_POSITION = {(0, 0): 100, (0, 1): 101, (1, 0): 102, (1, 1): 103}


class TestDng:
    @pytest.fixture(autouse=True)
    def _rawpy(self):
        self.rawpy = pytest.importorskip("rawpy")

    @pytest.mark.parametrize("cfa", list(CFA), ids=lambda c: c.value)
    def test_pixels_cfa_and_levels(self, tmp_path, cfa):
        img = mosaic(4)
        write_dng(tmp_path / "a.dng", img, pattern=cfa.value, black=(100, 101, 102, 103), white=4000)
        frame = load_raw(tmp_path / "a.dng")
        np.testing.assert_array_equal(frame.data, img)
        assert frame.cfa is cfa
        # Each plane gets the black level written at its CFA position, whatever LibRaw's colour indices.
        assert frame.black_level == tuple(float(BLACK_BY_POSITION[o]) for o in cfa.plane_offsets())
        assert frame.white_level == 4000 and frame.bit_depth == 12

    def test_exposure_timestamp_and_iso(self, tmp_path):
        write_dng(tmp_path / "a.dng", mosaic(5), iso=400)
        frame, color = load_raw_with_color(tmp_path / "a.dng")
        assert frame.exposure_time_s == pytest.approx(0.01)
        assert datetime.datetime.fromtimestamp(frame.timestamp_s) == datetime.datetime(2024, 5, 6, 7, 8, 9)
        assert color["iso"] == 400
        assert frame.analogue_gain == 1.0  # the ISO alone does not give the gain
        assert load_raw(tmp_path / "a.dng", base_iso=100).analogue_gain == pytest.approx(4.0)

    def test_colour(self, tmp_path):
        write_dng(tmp_path / "a.dng", mosaic(6))
        _, color = load_raw_with_color(tmp_path / "a.dng")
        assert color["white_balance"] == pytest.approx((2.0, 1.0, 3.0))
        matrix = np.array(color["color_matrix"])
        np.testing.assert_allclose(matrix, camera_to_srgb_matrix(XYZ_TO_CAMERA), atol=2e-4)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)

    def test_active_area_shifts_the_pattern_and_odd_sizes_are_cropped(self, tmp_path):
        img = mosaic(7)
        # ActiveArea top, left, bottom, right = 1, 1, 23, 31: the CFA pattern starts at (1, 1).
        write_dng(tmp_path / "a.dng", img, pattern="RGGB", black=(50,) * 4, extra=[(50829, "I", [1, 1, 23, 31])])
        frame = load_raw(tmp_path / "a.dng")
        with self.rawpy.imread(str(tmp_path / "a.dng")) as raw:
            top, left = raw.sizes.top_margin, raw.sizes.left_margin
            visible_shape = raw.raw_image_visible.shape
        assert frame.data.shape == (visible_shape[0] // 2 * 2, visible_shape[1] // 2 * 2)
        assert frame.data.shape[0] % 2 == 0 and frame.data.shape[1] % 2 == 0
        np.testing.assert_array_equal(frame.data, img[top : top + frame.height, left : left + frame.width])
        expected = CFA.RGGB.flipped(horizontal=(left - 1) % 2 == 1, vertical=(top - 1) % 2 == 1)
        assert frame.cfa is expected

    def test_xtrans_is_refused(self, tmp_path):
        xtrans = [1, 1, 0, 1, 1, 2, 1, 1, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1,
                  1, 1, 2, 1, 1, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1, 2, 0, 1]  # fmt: skip
        write_dng(tmp_path / "x.dng", mosaic(8), pattern=xtrans, pattern_dim=(6, 6))
        with pytest.raises(InvalidInputError, match="X-Trans"):
            load_raw(tmp_path / "x.dng")

    def test_cygm_is_refused(self, tmp_path):
        write_dng(tmp_path / "c.dng", mosaic(9), pattern=[3, 5, 1, 4], extra=[(50710, "B", [3, 5, 1, 4])])
        with pytest.raises(InvalidInputError, match="not an RGB Bayer pattern"):
            load_raw(tmp_path / "c.dng")

    def test_linear_dng_is_refused(self, tmp_path):
        write_dng(tmp_path / "l.dng", mosaic(10, (24, 32, 3)))
        with pytest.raises(InvalidInputError, match="not a mosaic"):
            load_raw(tmp_path / "l.dng")

    def test_kind_reads_a_camera_raw_named_raw(self, tmp_path):
        img = mosaic(11)
        write_dng(tmp_path / "panasonic.RAW", img)  # Panasonic/Leica use .raw for camera files
        with pytest.raises(InvalidInputError, match="missing: width, height, fmt, black_level"):
            load_raw(tmp_path / "panasonic.RAW")
        np.testing.assert_array_equal(load_raw(tmp_path / "panasonic.RAW", kind="camera_raw").data, img)
        with pytest.raises(InvalidInputError, match="frame, camera_raw, dump, pgm"):
            load_raw(tmp_path / "panasonic.RAW", kind="tiff")

    def test_not_a_raw_file(self, tmp_path):
        (tmp_path / "bad.nef").write_bytes(b"not a raw file" * 10)
        with pytest.raises(InvalidInputError, match="cannot read it as a camera raw file"):
            load_raw(tmp_path / "bad.nef")


def test_camera_to_srgb_of_an_srgb_camera_is_identity():
    np.testing.assert_allclose(camera_to_srgb_matrix(np.linalg.inv(SRGB_TO_XYZ)), np.eye(3), atol=1e-9)
    with pytest.raises(InvalidInputError, match="3x3"):
        camera_to_srgb_matrix(np.eye(4))


# ---------------------------------------------------------------- describe


def test_describe_reports_metadata_and_plane_statistics():
    data = np.array([[10, 20, 10, 1023], [30, 40, 30, 40]], dtype=np.uint16)  # GRBG: G R / B G
    text = describe(make_frame(data=data))
    assert "4 x 2 (W x H)" in text and "GRBG" in text and "imx219" in text
    assert "20 ms" in text and "R 64  Gr 65" in text and "white level     1023 DN" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()}
    assert rows["R"][1:4] == ["20", "1023", "521.50"] and rows["R"][4] == "50.000%"
    assert rows["Gr"][1:4] == ["10", "10", "10.00"] and rows["Gb"][1:4] == ["40", "40", "40.00"]
    assert rows["B"][1:4] == ["30", "30", "30.00"]
    assert "12.500%" in rows["clipped"][2]
