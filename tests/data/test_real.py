"""The real data sets: the photo list, the video's time-block split, crops, determinism, bad input."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_isp.cli import main
from edge_isp.data import real_build, real_sources
from edge_isp.data.real_build import RealBuildConfig, build_real, crop_boxes
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import sha256_file

TINY = RealBuildConfig(seed=5, crop_px=24, crops_per_photo=(4, 2, 3), scales=(0.3, 0.9), photo_max_px=64,
                       block_frames=10, gap_frames=2, frame_stride=2)  # fmt: skip


def _photo(path: Path, seed: int, size=(80, 60)) -> None:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), size, interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(path), image)


def _video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for f in range(frames):
        frame = np.full((32, 48, 3), 20, np.uint8)
        frame[:, f % 48] = 255
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real-in")
    (root / "photos" / "sub").mkdir(parents=True)
    for i in range(7):
        _photo(root / "photos" / ("sub" if i % 2 else "") / f"p{i}.png", i, (80 + 8 * i, 60))
    _video(root / "clip.avi", 45)
    return root / "photos", root / "clip.avi"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_photo_list_is_curated_and_split_by_scene():
    listing = json.loads(real_sources.PHOTO_LIST.read_text())
    photos = listing["photos"]
    assert len({p["id"] for p in photos}) == len(photos)
    split_of_group = defaultdict(set)
    for p in photos:
        split_of_group[p["group"]].add(p["split"])
        assert len(p["sha256"]) == 64 and p["size_bytes"] > 0 and min(p["width"], p["height"]) >= 160
    assert all(len(s) == 1 for s in split_of_group.values()), "a scene straddles splits"
    groups = {g: s.pop() for g, s in split_of_group.items()}
    assert len(groups) >= 60
    assert sum(s == "test" for s in groups.values()) >= 20 and sum(s == "val" for s in groups.values()) >= 3
    assert not any(p["path"].endswith(".svg") or p["package"] == "gnome-backgrounds" for p in photos)


def test_installed_photos_match_the_list():
    listing = json.loads(real_sources.PHOTO_LIST.read_text())
    if not Path(listing["photos"][0]["path"]).is_file():
        pytest.skip("plasma-workspace-wallpapers is not installed")
    found, skipped = real_sources.builtin_photos()
    assert not skipped, skipped
    assert len(found) == len(listing["photos"])
    image = cv2.imread(str(found[0].path))
    assert image.shape[1::-1] == (listing["photos"][0]["width"], listing["photos"][0]["height"])


@pytest.mark.parametrize("n_frames", [795, 45, 7])
def test_video_blocks_are_disjoint_with_a_gap(n_frames):
    kept = real_sources.video_splits(n_frames, block_frames=50 if n_frames == 795 else 10, gap_frames=10 if
                                     n_frames == 795 else 4, stride=3)  # fmt: skip
    gap = 10 if n_frames == 795 else 4
    frames = sorted(kept)
    assert all(0 <= f < n_frames for f in frames)
    for a in frames:
        for b in frames:
            if kept[a] != kept[b]:
                assert abs(a - b) > gap
    if n_frames == 795:
        assert {s: sum(v == s for v in kept.values()) for s in ("train", "val", "test")} == {
            "train": 148, "val": 42, "test": 42}  # fmt: skip
        assert [f for f in frames if kept[f] == "test"][:3] == [105, 108, 111]


def test_crop_boxes_stay_inside_and_never_upsample_needlessly():
    rng = np.random.default_rng(0)
    config = RealBuildConfig(crop_px=160, scales=(0.05, 0.5, 1.0))
    for width, height in ((2560, 1600), (256, 256), (380, 150)):
        for box, scale in crop_boxes(width, height, 200, config, rng):
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0
            assert x1 - x0 == min(min(width, height), max(160, round(scale * min(width, height))))


def test_build_is_deterministic_split_by_photo_and_matches_its_manifest(inputs, tmp_path):
    photos_dir, video = inputs
    photos = real_sources.folder_photos(photos_dir, seed=1)
    a = build_real(tmp_path / "a", photos, video, TINY)
    build_real(tmp_path / "b", photos, video, TINY)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    cls = a["classification"]
    split_of = {p.id: p.split for p in photos}
    assert cls["counts"] == {
        s: n * sum(p.split == s for p in photos) for s, n in zip(("train", "val", "test"), (4, 2, 3), strict=True)
    }
    for item in cls["items"]:
        assert item["split"] == split_of[item["photo_id"]] and item["file"].startswith(item["split"] + "/")
    item = cls["items"][5]
    x0, y0, x1, y1 = item["box"]
    source = cv2.imread(item["source"])[y0:y1, x0:x1]
    stored = cv2.imread(str(tmp_path / "a" / real_build.CLASSIFICATION_DIR / item["file"]))
    expected = cv2.resize(source, (24, 24), interpolation=cv2.INTER_AREA if x1 - x0 > 24 else cv2.INTER_LINEAR)
    assert np.array_equal(stored, expected)
    det = a["detection"]
    frames = [i for i in det["items"] if "frame" in i]
    kept = real_sources.video_splits(45, 10, 2, 2)
    assert {i["frame"]: i["split"] for i in frames} == kept
    on_disk = json.loads((tmp_path / "a" / real_build.DETECTION_DIR / "manifest.json").read_text())
    assert on_disk["counts"] == det["counts"] and len(on_disk["items"]) == len(kept) + len(photos)


def test_a_different_seed_draws_other_crops_but_keeps_the_photo_split(inputs, tmp_path):
    photos = real_sources.folder_photos(inputs[0], seed=1)
    a = build_real(tmp_path / "a", photos, None, TINY)
    b = build_real(tmp_path / "b", photos, None, RealBuildConfig(**{**TINY.__dict__, "seed": 6}))
    assert [i["box"] for i in a["classification"]["items"]] != [i["box"] for i in b["classification"]["items"]]
    assert [i["split"] for i in a["classification"]["items"]] == [i["split"] for i in b["classification"]["items"]]
    assert "detection" in a and all("frame" not in i for i in a["detection"]["items"])


def test_existing_output_is_kept_without_force_and_a_failed_build_leaves_it(inputs, tmp_path, monkeypatch):
    photos = real_sources.folder_photos(inputs[0], seed=1)
    build_real(tmp_path / "out", photos, None, TINY)
    before = _files(tmp_path / "out")
    with pytest.raises(InvalidInputError, match="already exists"):
        build_real(tmp_path / "out", photos, None, TINY)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(real_build, "_write_jpeg", crash)
    with pytest.raises(OSError, match="disk full"):
        build_real(tmp_path / "out", photos, inputs[1], TINY, force=True)
    assert _files(tmp_path / "out") == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_cli_builds_from_a_folder_and_a_video(inputs, tmp_path, capsys):
    photos_dir, video = inputs
    out = tmp_path / "r"
    assert main(["data", "build", "--images", str(photos_dir), "--video", str(video), "--out", str(out),
                 "--crop-size", "32", "--crops-per-photo", "3,1,1", "--no-progress"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert f"in {out / 'real-classification'}" in text and f"in {out / 'real-detection'}" in text
    manifest = json.loads((out / "real-classification" / "manifest.json").read_text())
    assert manifest["config"]["crop_px"] == 32 and sum(manifest["counts"].values()) == len(manifest["items"])
    assert all((out / "real-classification" / i["file"]).is_file() for i in manifest["items"])
    assert cv2.imread(str(out / "real-classification" / manifest["items"][0]["file"])).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "case, words",
    [
        ("empty", "holds 0 image file(s)"),
        ("unreadable", "bad.jpg: not an image OpenCV can read"),
        ("missing", "does-not-exist does not exist"),
        ("video", "junk.avi: OpenCV reads no frame"),
        ("novideo", "nothing.avi does not exist"),
    ],
)
def test_bad_input_is_one_paragraph_naming_the_file(case, words, inputs, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    args = ["data", "build", "--out", str(tmp_path / "o"), "--no-progress"]
    if case == "empty":
        args += ["--images", str(folder)]
    elif case == "unreadable":
        for i in range(3):
            _photo(folder / f"ok{i}.png", i)
        (folder / "bad.jpg").write_bytes(b"not a jpeg at all")
        args += ["--images", str(folder)]
    elif case == "missing":
        args += ["--images", str(tmp_path / "does-not-exist")]
    elif case == "video":
        (tmp_path / "junk.avi").write_bytes(b"RIFF0000AVI junk" * 10)
        args += ["--video", str(tmp_path / "junk.avi")]
    else:
        args += ["--video", str(tmp_path / "nothing.avi")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert words in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_folder_needs_three_photographs(tmp_path):
    for i in range(2):
        _photo(tmp_path / f"p{i}.jpg", i)
    with pytest.raises(InvalidInputError, match="at least 3"):
        real_sources.folder_photos(tmp_path)
    with pytest.raises(MissingFileError):
        real_sources.video_frame_count(tmp_path / "none.avi")


def test_store_size_keeps_the_crop_windows_and_stores_more_pixels(inputs, tmp_path):
    photos = real_sources.folder_photos(inputs[0], seed=1)
    a = build_real(tmp_path / "a", photos, None, TINY)["classification"]
    b = build_real(tmp_path / "b", photos, None, RealBuildConfig(**{**TINY.__dict__, "store_px": 48}))["classification"]
    assert [i["box"] for i in a["items"]] == [i["box"] for i in b["items"]]
    assert "store_px" not in a["config"] and b["config"]["store_px"] == 48
    item = b["items"][3]
    x0, y0, x1, y1 = item["box"]
    stored = cv2.imread(str(tmp_path / "b" / real_build.CLASSIFICATION_DIR / item["file"]))
    source = cv2.imread(item["source"])[y0:y1, x0:x1]
    expected = cv2.resize(source, (48, 48), interpolation=cv2.INTER_AREA if x1 - x0 > 48 else cv2.INTER_LINEAR)
    assert stored.shape == (48, 48, 3) and np.array_equal(stored, expected)


def _listing(root: Path, tmp_path: Path) -> Path:
    """A photo list of three photographs (one per split) installed under ``root`` as a copy of
    the sources would be: two Debian paths and one scikit-image file."""
    entries = []
    for i, (split, listed) in enumerate(
        [("train", "/usr/share/wallpapers/A/a.png"), ("val", "/usr/share/doc/b.png"), ("test", "skimage/data/c.png")]
    ):
        path = root / listed.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        _photo(path, 10 + i)
        sha = sha256_file(path)
        package = "scikit-image" if listed.startswith("skimage") else "debian"
        entries.append({"id": f"p{i}", "package": package, "path": listed, "sha256": sha, "group": f"p{i}",
                        "split": split, "note": ""})  # fmt: skip
    listing = tmp_path / "photos.json"
    listing.write_text(json.dumps({"photos": entries}))
    return listing


def test_source_root_reads_the_listed_files_under_another_folder(tmp_path, monkeypatch, capsys):
    root = tmp_path / "sources"
    monkeypatch.setattr(real_sources, "PHOTO_LIST", _listing(root, tmp_path))
    assert real_sources.source_path("/usr/share/x.jpg", root) == root / "usr/share/x.jpg"
    assert real_sources.source_path("/usr/share/x.jpg", None) == Path("/usr/share/x.jpg")
    assert real_sources.vtest_video(root) == root / real_sources.VTEST_VIDEO.as_posix().lstrip("/")
    found, skipped = real_sources.builtin_photos(source_root=root)
    assert not skipped and [p.path for p in found] == [
        root / "usr/share/wallpapers/A/a.png",
        root / "usr/share/doc/b.png",
        root / "skimage/data/c.png",
    ]
    # a copy whose bytes differ from the list is skipped, naming the file; an empty split is refused
    (root / "usr/share/doc/b.png").write_bytes(b"changed")
    with pytest.raises(MissingFileError, match=r"split\(s\) val"):
        real_sources.builtin_photos(source_root=root)
    _, skipped = real_sources.builtin_photos(check_sha256=False, source_root=root)
    assert skipped == []
    with pytest.raises(MissingFileError, match="is not a folder"):
        real_sources.builtin_photos(source_root=tmp_path / "nowhere")


def test_cli_builds_the_real_sets_from_a_source_root(tmp_path, monkeypatch, capsys):
    root = tmp_path / "sources"
    monkeypatch.setattr(real_sources, "PHOTO_LIST", _listing(root, tmp_path))
    real_sources.vtest_video(root).parent.mkdir(parents=True)
    _video(real_sources.vtest_video(root), 45)
    out = tmp_path / "real"
    common = ["data", "build", "--no-progress", "--crop-size", "24", "--crops-per-photo", "2,1,1"]
    assert main([*common, "--real", "--source-root", str(root), "--out", str(out)]) == 0
    manifest = json.loads((out / real_build.DETECTION_DIR / real_build.MANIFEST).read_text())
    assert manifest["video"] == str(real_sources.vtest_video(root)) and manifest["counts"]["train"] == 15 + 1
    assert {i["source"] for i in manifest["items"]} >= {str(root / "skimage/data/c.png")}
    with pytest.raises(SystemExit) as exc:
        main([*common, "--images", str(root), "--source-root", str(root), "--out", str(tmp_path / "o")])
    assert exc.value.code == 1 and "--source-root goes with --real" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crops_per_photo": (4, -1, 3)}, "crops per photo"),
        ({"scales": (0.3, 1.5)}, "crop scales"),
        ({"scales": ()}, "crop scales"),
        ({"seed": -1}, "seed must be"),
        ({"photo_max_px": 32}, "photo_max_px"),
        ({"store_px": 8}, "stored crop size"),
    ],
)
def test_a_bad_build_config_is_refused(change, message):
    with pytest.raises(InvalidInputError, match=message):
        RealBuildConfig(**{**TINY.__dict__, **change})
