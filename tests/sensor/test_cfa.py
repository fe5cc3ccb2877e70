"""CFA patterns: parse, pack/unpack, mosaic, flips, masks, per-channel maps (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA, PLANE_ORDER, colour_mask, mosaic, pack, per_channel_map, unpack

ALL_CFAS = list(CFA)
FLIPS = [(True, False), (False, True), (True, True)]


def _rgb(height=4, width=6, batch=()):
    """An image whose every value encodes (channel, row, col): 100*c + 10*y + x."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(height), np.arange(width), indexing="ij")
    return np.broadcast_to(100 * c + 10 * y + x, (*batch, 3, height, width)).astype(np.float64).copy()


class TestCFAEnum:
    @pytest.mark.parametrize("text", ["rggb", " RGGB ", "RgGb", CFA.RGGB])
    def test_parse(self, text):
        assert CFA.parse(text) is CFA.RGGB

    @pytest.mark.parametrize("bad", ["RGBW", "", None, 3])
    def test_parse_bad_lists_choices(self, bad):
        with pytest.raises(InvalidInputError, match="RGGB, BGGR, GRBG, GBRG"):
            CFA.parse(bad)

    @pytest.mark.parametrize(
        ("cfa", "offsets"),
        [
            # (row, col) of R, Gr, Gb, B inside the 2x2 tile.
            (CFA.RGGB, ((0, 0), (0, 1), (1, 0), (1, 1))),
            (CFA.BGGR, ((1, 1), (1, 0), (0, 1), (0, 0))),
            (CFA.GRBG, ((0, 1), (0, 0), (1, 1), (1, 0))),
            (CFA.GBRG, ((1, 0), (1, 1), (0, 0), (0, 1))),
        ],
    )
    def test_plane_offsets_hand_checked(self, cfa, offsets):
        assert cfa.plane_offsets() == offsets

    def test_tile(self):
        assert CFA.GBRG.tile == (("G", "B"), ("R", "G"))

    @pytest.mark.parametrize(
        ("cfa", "horizontal", "vertical", "expected"),
        [
            (CFA.RGGB, True, False, CFA.GRBG),
            (CFA.RGGB, False, True, CFA.GBRG),
            (CFA.RGGB, True, True, CFA.BGGR),
            (CFA.GBRG, True, False, CFA.BGGR),
            (CFA.BGGR, False, False, CFA.BGGR),
        ],
    )
    def test_flipped_hand_checked(self, cfa, horizontal, vertical, expected):
        assert cfa.flipped(horizontal=horizontal, vertical=vertical) is expected

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    @pytest.mark.parametrize(("h", "v"), FLIPS)
    def test_flipping_twice_is_identity(self, cfa, h, v):
        assert cfa.flipped(h, v).flipped(h, v) is cfa


class TestPack:
    def test_hand_checked_rggb_4x4(self):
        bayer = np.arange(16).reshape(4, 4)
        planes = pack(bayer, "RGGB")
        assert planes.shape == (4, 2, 2)
        np.testing.assert_array_equal(planes[0], [[0, 2], [8, 10]])  # R
        np.testing.assert_array_equal(planes[1], [[1, 3], [9, 11]])  # Gr
        np.testing.assert_array_equal(planes[2], [[4, 6], [12, 14]])  # Gb
        np.testing.assert_array_equal(planes[3], [[5, 7], [13, 15]])  # B

    def test_hand_checked_gbrg_4x4(self):
        planes = pack(np.arange(16).reshape(4, 4), CFA.GBRG)
        np.testing.assert_array_equal(planes[0], [[4, 6], [12, 14]])  # R sits at (1, 0)
        np.testing.assert_array_equal(planes[3], [[1, 3], [9, 11]])  # B sits at (0, 1)

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_round_trip_numpy(self, cfa):
        bayer = np.random.default_rng(0).integers(0, 1024, (2, 3, 6, 8)).astype(np.uint16)
        planes = pack(bayer, cfa)
        assert planes.shape == (2, 3, 4, 3, 4)
        assert planes.dtype == np.uint16
        np.testing.assert_array_equal(unpack(planes, cfa), bayer)

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_round_trip_torch_matches_numpy(self, cfa):
        bayer = torch.rand(2, 6, 8)
        planes = pack(bayer, cfa)
        assert isinstance(planes, torch.Tensor)
        torch.testing.assert_close(unpack(planes, cfa), bayer)
        np.testing.assert_array_equal(planes.numpy(), pack(bayer.numpy(), cfa))

    @pytest.mark.parametrize("shape", [(5, 4), (4, 5), (2, 3, 7)])
    def test_odd_sizes_refused(self, shape):
        with pytest.raises(InvalidInputError, match="even height and width"):
            pack(np.zeros(shape), "RGGB")

    def test_one_dimension_refused(self):
        with pytest.raises(InvalidInputError, match="at least 2 dimensions"):
            pack(np.zeros(8), "RGGB")

    @pytest.mark.parametrize("shape", [(3, 2, 2), (2, 2), (1, 5, 2, 2)])
    def test_unpack_bad_shape_refused(self, shape):
        with pytest.raises(InvalidInputError, match=r"\(\.\.\., 4, h, w\)"):
            unpack(np.zeros(shape), "RGGB")

    def test_plane_order_constant(self):
        assert PLANE_ORDER == ("R", "Gr", "Gb", "B")


class TestMosaic:
    def test_hand_checked_4x4(self):
        rgb = _rgb(4, 4)
        expected = np.array(
            [[0, 101, 2, 103], [110, 211, 112, 213], [20, 121, 22, 123], [130, 231, 132, 233]], dtype=np.float64
        )
        np.testing.assert_array_equal(mosaic(rgb, "RGGB"), expected)

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_samples_the_colour_the_tile_names(self, cfa):
        out = mosaic(_rgb(6, 8), cfa)
        index = {"R": 0, "G": 1, "B": 2}
        for y in range(6):
            for x in range(8):
                assert out[y, x] // 100 == index[cfa.tile[y % 2][x % 2]]
                assert out[y, x] % 100 == 10 * y + x

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_torch_matches_numpy_batched(self, cfa):
        rgb = _rgb(4, 6, batch=(2,))
        out = mosaic(torch.from_numpy(rgb), cfa)
        assert out.shape == (2, 4, 6)
        np.testing.assert_array_equal(out.numpy(), mosaic(rgb, cfa))

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    @pytest.mark.parametrize(("h", "v"), FLIPS)
    def test_flip_commutes_with_mosaic(self, cfa, h, v):
        rgb = _rgb(4, 6)
        axes = tuple(a for a, f in ((-1, h), (-2, v)) if f)
        flipped_mosaic = np.flip(mosaic(rgb, cfa), axis=axes)
        mosaic_of_flipped = mosaic(np.flip(rgb, axis=axes).copy(), cfa.flipped(horizontal=h, vertical=v))
        np.testing.assert_array_equal(flipped_mosaic, mosaic_of_flipped)

    @pytest.mark.parametrize("shape", [(3, 5, 4), (3, 4, 3)])
    def test_odd_refused(self, shape):
        with pytest.raises(InvalidInputError, match="even"):
            mosaic(np.zeros(shape), "RGGB")

    @pytest.mark.parametrize("shape", [(4, 4, 4), (4, 4)])
    def test_not_rgb_refused(self, shape):
        with pytest.raises(InvalidInputError, match=r"\(\.\.\., 3, H, W\)"):
            mosaic(np.zeros(shape), "RGGB")

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_gradcheck(self, cfa):
        rgb = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: mosaic(t, cfa), (rgb,))

    def test_gradient_reaches_only_sampled_values(self):
        rgb = torch.rand(3, 4, 4, requires_grad=True)
        mosaic(rgb, "BGGR").sum().backward()
        np.testing.assert_array_equal(rgb.grad.numpy().astype(bool), colour_mask("BGGR", 4, 4))


class TestColourMask:
    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_one_colour_per_pixel(self, cfa):
        mask = colour_mask(cfa, 4, 6)
        assert mask.shape == (3, 4, 6) and mask.dtype == bool
        np.testing.assert_array_equal(mask.sum(axis=0), 1)
        assert mask.sum(axis=(1, 2)).tolist() == [6, 12, 6]

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_masked_sum_is_mosaic(self, cfa):
        rgb = _rgb(4, 6)
        np.testing.assert_array_equal((rgb * colour_mask(cfa, 4, 6)).sum(axis=0), mosaic(rgb, cfa))

    def test_hand_checked(self):
        np.testing.assert_array_equal(colour_mask("GRBG", 2, 2)[0], [[False, True], [False, False]])

    def test_odd_refused(self):
        with pytest.raises(InvalidInputError, match="3x4"):
            colour_mask("RGGB", 3, 4)


class TestPerChannelMap:
    def test_hand_checked_rggb(self):
        out = per_channel_map([1, 2, 3, 4], "RGGB", 2, 4)
        np.testing.assert_array_equal(out, [[1, 2, 1, 2], [3, 4, 3, 4]])
        assert out.dtype == np.float64

    @pytest.mark.parametrize("cfa", ALL_CFAS)
    def test_pack_gives_constant_planes(self, cfa):
        planes = pack(per_channel_map([10, 20, 30, 40], cfa, 4, 6), cfa)
        for i, value in enumerate([10, 20, 30, 40]):
            np.testing.assert_array_equal(planes[i], value)

    @pytest.mark.parametrize("values", [[1, 2, 3], [[1, 2], [3, 4]], 5])
    def test_needs_four_values(self, values):
        with pytest.raises(InvalidInputError, match="4 per-channel values"):
            per_channel_map(values, "RGGB", 4, 4)

    def test_odd_refused(self):
        with pytest.raises(InvalidInputError, match="even"):
            per_channel_map([1, 2, 3, 4], "RGGB", 4, 5)
