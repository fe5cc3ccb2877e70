"""TOML values written by hand read back through tomllib as the same values."""

from __future__ import annotations

import math

import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.tomlwrite import toml_value

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@pytest.mark.parametrize(
    "value",
    [True, False, 0, -7, 1e-05, 0.0003, 123456789.5, "plain", 'quote " and \\ backslash', "line\nbreak\ttab",
     "unicode é ✓", [1, 2.5, "x"], [[1, 2], [3]], (64, 64), []],
)  # fmt: skip
def test_round_trip_through_tomllib(value):
    read = tomllib.loads(f"key = {toml_value(value)}")["key"]
    assert read == (list(value) if isinstance(value, tuple) else value)
    assert type(read) is (list if isinstance(value, tuple) else type(value))


def test_non_finite_floats():
    assert math.isnan(tomllib.loads(f"k = {toml_value(float('nan'))}")["k"])
    assert tomllib.loads(f"k = {toml_value(float('-inf'))}")["k"] == float("-inf")


def test_other_types_are_refused_by_name():
    with pytest.raises(InvalidInputError, match=r"cannot write \{'a': 1\} \(dict\) as TOML"):
        toml_value({"a": 1})
    with pytest.raises(InvalidInputError, match="NoneType"):
        toml_value([1, None])
