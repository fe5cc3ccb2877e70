"""``WIDTHxHEIGHT`` sizes: one parser, even sides only, its errors naming the value."""

from __future__ import annotations

import argparse

import pytest

from edge_isp.contract.sizes import check_size, format_size, parse_size, size_argument
from edge_isp.errors import InvalidInputError


def test_parse_and_format_round_trip():
    assert parse_size("640x480") == (640, 480)
    assert parse_size(" 64X32 ") == (64, 32)
    assert format_size((640, 480)) == "640x480"
    assert parse_size(format_size((1920, 1080))) == (1920, 1080)


@pytest.mark.parametrize("text", ["640", "640*480", "ax b", "-2x4", "2.0x4", "", "640x480x3"])
def test_not_a_size(text):
    with pytest.raises(InvalidInputError, match=r"--size must be WIDTHxHEIGHT"):
        parse_size(text, "--size")


@pytest.mark.parametrize("text", ["641x480", "640x481", "0x0", "0x2"])
def test_odd_or_empty_sizes_are_refused(text):
    with pytest.raises(InvalidInputError, match=r"must be even and at least 2x2"):
        parse_size(text)


def test_not_a_string():
    with pytest.raises(InvalidInputError, match="WIDTHxHEIGHT"):
        parse_size(640)


def test_check_size_and_the_argparse_type():
    assert check_size([64.0, 32]) == (64, 32)
    with pytest.raises(InvalidInputError, match="input_size must be even"):
        check_size((3, 4), "input_size")
    assert size_argument("64x32") == (64, 32)
    with pytest.raises(argparse.ArgumentTypeError, match="must be even"):
        size_argument("63x32")
