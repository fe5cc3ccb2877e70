"""Property-based fuzzing of every parser of user input: whatever it is given, it returns a valid
object or raises the project's input error (:class:`~edge_isp.errors.EdgeIspError`); nothing
else escapes. Field values are drawn from all of JSON (wrong types, huge integers, NaN,
nesting), starting from a real, valid document so that one damaged field at a time is tried.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge_isp.contract.engine_sidecar import check_engine, read_sidecar
from edge_isp.contract.metadata import ModelMetadata
from edge_isp.deploy.run_config import parse_run_config
from edge_isp.errors import EdgeIspError
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile
from edge_isp.train.config import load_config
from tests.fuzz import files as F
from tests.fuzz.tally import record

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)  # fmt: skip


def mutations(document: dict, extra_keys: tuple[str, ...] = ("", "unknown")) -> st.SearchStrategy[dict]:
    """``document`` with one to three fields replaced by any JSON value, or removed."""
    keys = sorted(document) + list(extra_keys)

    def mutate(changes: list[tuple[str, object]]) -> dict:
        out = copy.deepcopy(document)
        for key, value in changes:
            if value is _REMOVE:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    change = st.tuples(st.sampled_from(keys), JSON | st.just(_REMOVE))
    return st.lists(change, min_size=1, max_size=3).map(mutate)


_REMOVE = object()


def expect_valid_or_input_error(parse, *args):
    """Call ``parse``; an :class:`EdgeIspError` is a refusal, anything else escaping is a bug."""
    try:
        return parse(*args)
    except EdgeIspError:
        return None


# -- RawFrame sidecars ----------------------------------------------------------------------------
MOSAIC = F.frame(8, 6).data
META = F.frame(8, 6).metadata()


@given(mutations(META))
def test_raw_frame_sidecar(meta):
    record("raw frame sidecar", meta)
    frame = expect_valid_or_input_error(RawFrame.from_metadata, MOSAIC, meta)
    if frame is not None:  # what it accepts, it accepts whole: the profile's level rules hold
        assert isinstance(frame.bit_depth, int) and 8 <= frame.bit_depth <= 16
        assert min(frame.black_level) >= 0 and max(frame.black_level) < frame.white_level <= 2**frame.bit_depth - 1
        assert all(math.isfinite(v) for v in (frame.analogue_gain, frame.exposure_time_s, frame.digital_gain))
        assert frame.timestamp_s is None or math.isfinite(frame.timestamp_s)


# -- sensor profiles --------------------------------------------------------------------------------
PROFILE = F.profile_dict()


@given(mutations(PROFILE))
def test_sensor_profile(data):
    record("sensor profile", data)
    profile = expect_valid_or_input_error(SensorProfile.from_dict, data)
    if profile is not None:
        assert isinstance(profile.description, str) and profile.white_level <= 2**profile.bit_depth - 1
        SensorProfile.from_dict(profile.to_dict())  # what it accepted, it writes back readable


@given(st.lists(st.sampled_from(sorted(PROFILE)), min_size=1, max_size=3), JSON)
def test_sensor_profile_noise_entries(keys, value):
    data = copy.deepcopy(PROFILE)
    entry = data["noise"][0]
    for key in keys:
        entry[key if key in entry else "read_noise_dn"] = value
    record("sensor profile", data)
    expect_valid_or_input_error(SensorProfile.from_dict, data)


# -- train configs ----------------------------------------------------------------------------------
TRAIN_KEYS = sorted(
    f"{section}.{key}" for section, table in load_config(None).to_dict().items() for key in table
)  # fmt: skip
TOML_VALUES = st.sampled_from(
    ['"x"', "-1", "0", "1e400", "nan", "inf", "true", "[]", "[1, 2]", "{a = 1}", '"../../etc"', "1" * 400, "[[]]"]
) | st.text(max_size=20)


@given(st.lists(st.tuples(st.sampled_from([*TRAIN_KEYS, "nope.key", "run"]), TOML_VALUES), min_size=1, max_size=3))
@example([("model.width_mult", "1" * 400)])  # found by the fuzzer: float() overflowed
def test_train_config_overrides(changes):
    overrides = [f"{key}={value}" for key, value in changes]
    record("train config", overrides)
    expect_valid_or_input_error(lambda: load_config(None, overrides=overrides))


# -- run configs ------------------------------------------------------------------------------------
RUN_CONFIG = {"source": "v4l2:/dev/video0", "model": "model/m.onnx", "token": "s3cret-token",
              "outputs": {"http": "0.0.0.0:8080", "record": "/var/lib/rec"}}  # fmt: skip
SOURCES = st.sampled_from(
    ["sim", "sim:1", "v4l2:", "v4l2:/dev/video0;reboot", "replay:$(id)", "picamera2:a", "replay:/x y", "webcam"]
) | st.text(max_size=30)


@given(data=mutations(RUN_CONFIG, ("size", "fps", "backend", "token_file", "profile")) | SOURCES.map(
    lambda s: {**RUN_CONFIG, "source": s}))  # fmt: skip
def test_run_config(data, tmp_path):
    record("run config", data)
    config = expect_valid_or_input_error(parse_run_config, data, tmp_path, "fuzz.toml", False)
    if config is not None:
        kind, _, arg = config.source.partition(":")
        assert kind in ("sim", "replay", "picamera2", "v4l2") and not set(arg) & set(" ;$`|&<>()\n'\"\\")


# -- model metadata ---------------------------------------------------------------------------------
METADATA = {
    "edge_isp.task": "detection", "edge_isp.class_names": '["a", "b"]', "edge_isp.input_size": "128x96",
    "edge_isp.profile": "nexus6p-rear", "edge_isp.version": "1", "edge_isp.model_config": '{"name": "m"}',
}  # fmt: skip
METADATA_VALUES = st.sampled_from(
    ["", "[", "[1, 2]", '"a"', "{}", "null", "127x95", "0x0", "1e9x1", "classification", "banana", "[" * 3000]
) | st.text(max_size=40)


@given(st.lists(st.tuples(st.sampled_from(sorted(METADATA)), METADATA_VALUES), min_size=1, max_size=3))
def test_model_metadata(changes):
    props = {**METADATA, **dict(changes)}
    record("model metadata", props)
    info = expect_valid_or_input_error(
        lambda: ModelMetadata.from_props(props, strict=False, output_names=["boxes"], origin="fuzz.onnx")
    )
    if info is not None:
        assert info.model_config is None or isinstance(info.model_config, dict)


# -- engine sidecars --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return F.engine_with_sidecar(tmp_path_factory.mktemp("engine") / "m.engine")


@given(data=st.data())
def test_engine_sidecar(engine, data):
    good = json.loads(engine.with_name("m.engine.json").read_text())
    sidecar = data.draw(mutations(good, ("format",)) | st.binary(max_size=64).map(lambda b: b))
    content = sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode()
    record("engine sidecar", content)
    engine.with_name("m.engine.json").write_bytes(content)
    try:
        expect_valid_or_input_error(read_sidecar, engine)
        metadata = expect_valid_or_input_error(check_engine, engine, "10.3.0", "Orin", "8.7")
        assert metadata is None or all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    finally:
        engine.with_name("m.engine.json").write_text(json.dumps(good))


def test_the_fuzzed_documents_start_valid(tmp_path):
    """The mutations start from documents each parser accepts: the refusals are the damage's."""
    assert RawFrame.from_metadata(MOSAIC, META).bit_depth == 10
    assert SensorProfile.from_dict(PROFILE).name == "nexus6p-rear"
    assert parse_run_config(RUN_CONFIG, tmp_path, read_token=False).source == "v4l2:/dev/video0"
    assert ModelMetadata.from_props(METADATA, strict=False).class_names == ("a", "b")
    engine = F.engine_with_sidecar(tmp_path / "m.engine")
    assert check_engine(engine, "10.3.0", "Orin", "8.7") == {"edge_isp.task": "detection"}
    assert np.array_equal(MOSAIC, F.frame(8, 6).data)
