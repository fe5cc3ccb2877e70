"""Finding calibration frames: formats, manifest, kinds, grouping, and mixed sets refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edge_isp.calibrate import frames as frames_mod
from edge_isp.calibrate import synthetic
from edge_isp.calibrate.frames import assign_dark_flat, check_consistent, discover, group, save_frames
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.rawformat import encode


def _mosaic(level, shape=(16, 24), seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(level + rng.normal(0, 3, shape)), 0, 1023).astype(np.uint16)


def test_raw_dumps_and_pgm_with_a_manifest(tmp_path):
    for i, level in enumerate((64, 64, 500, 500)):
        (tmp_path / f"f{i}.raw").write_bytes(encode(_mosaic(level, seed=i), "SRGGB10_CSI2P"))
    data = _mosaic(300, seed=9)
    (tmp_path / "scene.pgm").write_bytes(b"P5\n24 16\n1023\n" + data.astype(">u2").tobytes())
    manifest = {
        "defaults": {"width": 24, "height": 16, "format": "SRGGB10_CSI2P", "black_level": 64, "analogue_gain": 2.0},
        "frames": [
            {"file": "f0.raw", "kind": "dark", "exposure_time_s": 0.01},
            {"file": "f1.raw", "kind": "dark", "exposure_time_s": 0.0101},  # within 2 %: same group
            {"file": "f2.raw", "exposure_time_s": 0.01},
            {"file": "f3.raw", "exposure_time_s": 0.01},
            {"file": "scene.pgm", "kind": "flat", "cfa": "RGGB", "exposure_time_s": 0.02, "white_level": 1023},
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    refs = assign_dark_flat(discover(tmp_path))
    by_name = {r.name: r for r in refs}
    assert set(by_name) == {"f0.raw", "f1.raw", "f2.raw", "f3.raw", "scene.pgm"}
    assert by_name["f2.raw"].kind == "flat"  # by level: 436 DN above black
    assert by_name["f0.raw"].kind == "dark" and by_name["f0.raw"].analogue_gain == 2.0
    assert np.array_equal(by_name["scene.pgm"].load().data, data)
    assert np.array_equal(by_name["f3.raw"].load().data, _mosaic(500, seed=3))
    groups = group(refs)[2.0]
    assert [(g.kind, round(g.exposure_time_s, 4), len(g.refs)) for g in groups] == [
        ("dark", 0.01, 2), ("flat", 0.01, 2), ("flat", 0.02, 1),
    ]  # fmt: skip


def test_kind_from_path_and_saved_sets_read_back(tmp_path, clean_sensor):
    rng = np.random.default_rng(0)
    items = [("dark", clean_sensor.frame(0.0, analogue_gain=g, rng=rng, exposure_time_s=0.001)) for g in (1, 2)]
    items.append(("flat", clean_sensor.frame(500.0, analogue_gain=2.0, rng=rng, exposure_time_s=0.002)))
    paths = save_frames(tmp_path / "set", items)
    assert [p.relative_to(tmp_path / "set").as_posix() for p in paths] == [
        "gain1/dark_00001000us_001.npy", "gain2/dark_00001000us_001.npy", "gain2/flat_00002000us_001.npy",
    ]  # fmt: skip
    (tmp_path / "set" / "manifest.json").unlink()  # the names alone say the kinds
    refs = discover(tmp_path / "set")
    assert sorted((r.kind, r.analogue_gain) for r in refs) == [("dark", 1.0), ("dark", 2.0), ("flat", 2.0)]


def test_camera_raw_iso_becomes_gain_relative_to_the_lowest(tmp_path, monkeypatch):
    base = RawFrame(data=np.full((8, 8), 100, np.uint16), cfa="RGGB", bit_depth=12, black_level=64, white_level=4095)
    iso_of = {"a.dng": 100.0, "b.dng": 400.0}

    def fake_load(path, **kwargs):
        return dataclasses.replace(base, iso=iso_of[path.name]), {"iso": iso_of[path.name]}

    monkeypatch.setattr(frames_mod, "load_raw_with_color", fake_load)
    for name in iso_of:
        (tmp_path / name).write_bytes(b"")
    refs = discover(tmp_path, kind="scene")
    assert {r.name: r.analogue_gain for r in refs} == {"a.dng": 1.0, "b.dng": 4.0}
    assert next(r for r in refs if r.name == "b.dng").load().analogue_gain == 4.0
    assert frames_mod.base_iso_of(refs) == 100.0  # the ISO labels stay the files'


def test_mistakes_are_refused_with_what_was_expected(tmp_path, clean_sensor):
    with pytest.raises(MissingFileError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no raw frames found"):
        discover(tmp_path / "empty")
    frame = clean_sensor.frame(0.0, analogue_gain=1.0, rng=np.random.default_rng(0))
    frame.save(tmp_path / "one" / "x")
    (tmp_path / "one" / "manifest.json").write_text(json.dumps({"frames": {"x.npy": {"gian": 2}}}))
    with pytest.raises(InvalidInputError, match=r"unknown key\(s\) \['gian'\]"):
        discover(tmp_path / "one")
    (tmp_path / "one" / "manifest.json").write_text(json.dumps({"frames": {"x.npy": {"kind": "bright"}}}))
    with pytest.raises(InvalidInputError, match="kind must be one of dark, flat, scene"):
        discover(tmp_path / "one")
    refs = [frames_mod.ref_from_frame(frame, "dark", "a"), frames_mod.ref_from_frame(
        dataclasses.replace(frame, white_level=1023.0, bit_depth=10), "dark", "b")]  # fmt: skip
    with pytest.raises(InvalidInputError, match="more than one bit depth"):
        check_consistent(refs)


def test_synthetic_write_frames_round_trip(tmp_path, clean_sensor):
    items = list(synthetic.ptc_sweep(clean_sensor, (1.0,), levels=5, dark_frames=2))
    paths = synthetic.write_frames(tmp_path, items)
    refs = discover(tmp_path)
    assert len(refs) == len(paths) == 12
    assert sum(r.kind == "dark" for r in refs) == 2


def test_discovery_maps_the_pixels_it_samples_and_methods_read_them(tmp_path):
    # discover() looks at a sample of each frame (its signal level) through a read-only map of
    # the file; a method's load reads the frame in full, writable, with the same pixels.
    frame = RawFrame(data=_mosaic(900), cfa="RGGB", bit_depth=12, black_level=64.0, white_level=4095.0)
    path = frame.save(tmp_path / "flat_001")
    mapped = RawFrame.load(path, mapped=True)
    assert np.array_equal(mapped.data, frame.data) and not mapped.data.flags.writeable
    (ref,) = discover([tmp_path])
    loaded = ref.load()
    assert np.array_equal(loaded.data, frame.data) and loaded.data.flags.writeable
    assert type(loaded.data) is np.ndarray
    assert ref.signal_fraction == frames_mod._signal_fraction(frame.data, frame.black_level, frame.white_level)
