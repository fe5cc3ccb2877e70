"""RawFrame: validation, normalization, packing, and the .npy + .json files on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor.cfa import CFA, pack
from edge_isp.sensor.frame import RawFrame


def _frame(data=None, **kw) -> RawFrame:
    args = {
        "data": np.full((4, 6), 100, dtype=np.uint16) if data is None else data,
        "cfa": "RGGB",
        "bit_depth": 10,
        "black_level": 64,
        "white_level": 1023,
    }
    args.update(kw)
    return RawFrame(**args)


class TestValidation:
    def test_smoke(self):
        f = _frame(cfa="gbrg", black_level=(60, 61, 62, 63))
        assert f.cfa is CFA.GBRG
        assert f.black_level == (60.0, 61.0, 62.0, 63.0)
        assert (f.height, f.width) == (4, 6)

    def test_scalar_black_level_broadcast(self):
        assert _frame(black_level=64).black_level == (64.0,) * 4

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"data": np.zeros((4, 4), dtype=np.float32)}, "uint16, got float32"),
            ({"data": np.zeros((4, 4), dtype=np.uint8)}, "uint16, got uint8"),
            ({"data": np.zeros((2, 4, 4), dtype=np.uint16)}, "2-D numpy array"),
            ({"data": [[1, 2], [3, 4]]}, "2-D numpy array, got list"),
            ({"data": np.zeros((5, 4), dtype=np.uint16)}, r"even height and width, got \(5, 4\)"),
            ({"data": np.zeros((4, 3), dtype=np.uint16)}, "even height and width"),
            ({"white_level": 64}, "'white_level' .* must exceed every black level"),
            ({"black_level": (60, 60, 1100, 60)}, "'white_level' .* must exceed every black level"),
            ({"white_level": 70000}, r"fit in 10 bits \(<= 1023\)"),
            ({"white_level": 60000.0}, r"fit in 10 bits"),
            ({"black_level": -5}, r"'black_level' must be >= 0"),
            ({"bit_depth": 10.7}, "'bit_depth' must be an integer 8..16, got 10.7"),
            ({"timestamp_s": "yesterday"}, "timestamp_s must be a finite number"),
            ({"sensor": None}, "sensor must be a string"),
            ({"cfa": "RGBW"}, "unknown CFA pattern 'RGBW'"),
            ({"bit_depth": 7}, "'bit_depth' must be an integer 8..16, got 7"),
            ({"bit_depth": 17}, "'bit_depth' must be an integer 8..16"),
            ({"analogue_gain": -1.0}, "analogue_gain"),
            ({"exposure_time_s": float("nan")}, "exposure_time_s"),
        ],
    )
    def test_bad_input_raises(self, kwargs, match):
        with pytest.raises(InvalidInputError, match=match):
            _frame(**kwargs)

    def test_black_level_of_three_values(self):
        with pytest.raises(InvalidInputError, match="black_level"):
            _frame(black_level=(64, 64, 64))

    def test_fractional_bit_depth(self):
        with pytest.raises(InvalidInputError, match="bit_depth"):
            _frame(bit_depth=10.5)


class TestNormalized:
    def test_per_channel_black_hand_checked(self):
        # RGGB, white 1060, black R 60, Gr 160, Gb 260, B 560: ranges 1000, 900, 800, 500.
        data = np.array([[560, 610, 1060, 160], [660, 810, 260, 510]], dtype=np.uint16)
        out = _frame(data, black_level=(60, 160, 260, 560), white_level=1060, bit_depth=11).normalized()
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, [[0.5, 0.5, 1.0, 0.0], [0.5, 0.5, 0.0, -0.1]], atol=1e-7)

    def test_black_follows_the_pattern(self):
        # GBRG: (0,0) Gb, (0,1) B, (1,0) R, (1,1) Gr.
        data = np.array([[660, 810], [560, 610]], dtype=np.uint16)
        out = _frame(data, cfa="GBRG", black_level=(60, 160, 260, 560), white_level=1060, bit_depth=11).normalized()
        np.testing.assert_allclose(out, [[0.5, 0.5], [0.5, 0.5]], atol=1e-7)

    def test_packed_plane_order(self):
        data = np.array([[1064, 564], [314, 64]], dtype=np.uint16)  # GRBG: Gr, R / B, Gb
        planes = pack(_frame(data, cfa="GRBG", black_level=64, white_level=1064, bit_depth=11).normalized(), CFA.GRBG)
        assert planes.shape == (4, 1, 1)
        np.testing.assert_allclose(planes[:, 0, 0], [0.5, 1.0, 0.0, 0.25], atol=1e-7)


class TestFiles:
    def _full(self) -> RawFrame:
        data = np.random.default_rng(1).integers(0, 4096, (6, 8)).astype(np.uint16)
        return RawFrame(
            data=data,
            cfa=CFA.BGGR,
            bit_depth=12,
            black_level=(256.0, 255.5, 257.0, 256.25),
            white_level=4095.0,
            analogue_gain=3.5,
            exposure_time_s=0.0125,
            timestamp_s=1234.5678,
            sensor="imx477",
        )

    def test_round_trip_all_metadata(self, tmp_path):
        frame = self._full()
        npy = frame.save(tmp_path / "shot")
        assert npy == tmp_path / "shot.npy"
        for path in (npy, tmp_path / "shot.json"):
            back = RawFrame.load(path)
            np.testing.assert_array_equal(back.data, frame.data)
            assert back.data.dtype == np.uint16
            assert back.metadata() == frame.metadata()
            assert (back.cfa, back.sensor, back.timestamp_s) == (CFA.BGGR, "imx477", 1234.5678)

    def test_round_trip_without_timestamp(self, tmp_path):
        frame = _frame()
        frame.save(tmp_path / "a.npy")
        assert RawFrame.load(tmp_path / "a.npy").timestamp_s is None

    def test_failed_pixel_write_keeps_old_file(self, tmp_path, monkeypatch):
        old = self._full()
        old.save(tmp_path / "shot")

        def broken_save(handle, array, **kwargs):
            handle.write(b"\x93NUMPY partial")
            raise OSError("disk full")

        monkeypatch.setattr(np, "save", broken_save)
        with pytest.raises(OSError, match="disk full"):
            _frame().save(tmp_path / "shot")
        monkeypatch.undo()
        np.testing.assert_array_equal(RawFrame.load(tmp_path / "shot.npy").data, old.data)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.json", "shot.npy"]

    def _break_sidecar_write(self, monkeypatch):
        def broken_dump(data, handle, **kwargs):
            handle.write('{"version": 1, "cfa": ')
            raise OSError("disk full")

        monkeypatch.setattr(json, "dump", broken_dump)

    def test_failed_sidecar_write_keeps_old_sidecar(self, tmp_path, monkeypatch):
        old = self._full()
        old.save(tmp_path / "shot")
        before = (tmp_path / "shot.json").read_text()
        self._break_sidecar_write(monkeypatch)
        with pytest.raises(OSError, match="disk full"):
            _frame(analogue_gain=8.0).save(tmp_path / "shot")
        monkeypatch.undo()
        assert (tmp_path / "shot.json").read_text() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.json", "shot.npy"]

    def test_failed_sidecar_write_keeps_old_pair(self, tmp_path, monkeypatch):
        old = self._full()
        old.save(tmp_path / "shot")
        self._break_sidecar_write(monkeypatch)
        with pytest.raises(OSError):
            _frame().save(tmp_path / "shot")
        monkeypatch.undo()
        np.testing.assert_array_equal(RawFrame.load(tmp_path / "shot").data, old.data)

    def test_dotted_names_do_not_collide(self, tmp_path):
        _frame(np.full((4, 6), 1, np.uint16)).save(tmp_path / "burst.000.npy")
        _frame(np.full((4, 6), 2, np.uint16)).save(tmp_path / "burst.001.npy")
        assert RawFrame.load(tmp_path / "burst.000.npy").data[0, 0] == 1

    @pytest.mark.parametrize("missing", ["shot.npy", "shot.json"])
    def test_missing_file(self, tmp_path, missing):
        _frame().save(tmp_path / "shot")
        (tmp_path / missing).unlink()
        with pytest.raises(MissingFileError, match=missing.replace(".", r"\.")):
            RawFrame.load(tmp_path / "shot")

    @pytest.mark.parametrize(
        ("sidecar", "match"),
        [
            ("{corrupt", "not valid JSON"),
            ('{"version": 9}', "sidecar version 9 is not supported"),
            ('{"version": 1, "cfa": "RGGB"}', "missing field.*bit_depth, black_level, white_level"),
            (
                '{"version": 1, "cfa": "RGGB", "bit_depth": 10, "black_level": [64,64,64,64], "white_level": 1023, '
                '"height": 8, "width": 6}',
                r"says 8x6 but the array is \(4, 6\)",
            ),
            ('{"version": 1, "cfa": "XYZW", "bit_depth": 10, "black_level": 64, "white_level": 1023}', "CFA"),
        ],
    )
    def test_bad_sidecar(self, tmp_path, sidecar, match):
        _frame().save(tmp_path / "shot")
        (tmp_path / "shot.json").write_text(sidecar)
        with pytest.raises(InvalidInputError, match=match):
            RawFrame.load(tmp_path / "shot")

    def test_corrupt_pixels(self, tmp_path):
        _frame().save(tmp_path / "shot")
        (tmp_path / "shot.npy").write_bytes(b"not an npy file at all")
        with pytest.raises(InvalidInputError, match=r"not a readable \.npy"):
            RawFrame.load(tmp_path / "shot")

    def test_wrong_pixel_dtype_on_disk(self, tmp_path):
        _frame().save(tmp_path / "shot")
        np.save(tmp_path / "shot.npy", np.zeros((4, 6), dtype=np.int32))
        with pytest.raises(InvalidInputError, match="uint16"):
            RawFrame.load(tmp_path / "shot")

    def test_sidecar_not_an_object(self, tmp_path):
        _frame().save(tmp_path / "shot")
        (tmp_path / "shot.json").write_text("[1, 2, 3]")
        with pytest.raises(InvalidInputError):
            RawFrame.load(tmp_path / "shot")
