"""The built-in data set builder: determinism, disjoint splits, tight boxes, atomic writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from edge_isp.data import builtin, compose, scenes, sources
from edge_isp.data.builtin import BuildConfig, TaskConfig, build_dataset, builtin_dataset
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.isp.colour import to_uint8

HAVE_FASHION = (sources.fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file()
needs_fashion = pytest.mark.skipif(
    not HAVE_FASHION, reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)

SMALL = BuildConfig(
    seed=3,
    tasks={"classification": TaskConfig((32, 32), (20, 10, 10)), "detection": TaskConfig((64, 48), (10, 6, 6))},
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    if not HAVE_FASHION:
        pytest.skip("Fashion-MNIST not installed")
    return build_dataset(tmp_path_factory.mktemp("a") / "ds", SMALL).root


@pytest.fixture(scope="module")
def fashion() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {part: sources.load_fashion_mnist(part) for part in ("train", "test")}


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / "detection" / f"{split}.json").read_text())


def _provenance(root: Path, split: str) -> dict:
    return json.loads((root / "classification" / f"{split}.json").read_text())


@needs_fashion
class TestBuild:
    def test_same_seed_gives_identical_files(self, built, tmp_path):
        again = build_dataset(tmp_path / "b", SMALL).root
        first, second = _files(built), _files(again)
        assert sorted(first) == sorted(second)
        assert len(first) == 20 + 10 + 10 + 10 + 6 + 6 + 6 + 1  # images, json files, manifest
        assert all(first[k] == second[k] for k in first)

    def test_different_seed_differs(self, built, tmp_path):
        other = build_dataset(tmp_path / "c", BuildConfig(seed=4, tasks=SMALL.tasks)).root
        first, second = _files(built), _files(other)
        pngs = [k for k in first if k.endswith(".png") and k in second]
        differing = sum(first[k] != second[k] for k in pngs)
        assert differing >= 0.9 * len(pngs) > 0

    def test_layout_counts_and_manifest(self, built):
        manifest = builtin.read_manifest(built)
        assert manifest["config"] == SMALL.to_json()
        assert manifest["class_names"] == list(sources.CLASS_NAMES)
        assert "MIT" in manifest["sources"]["fashion_mnist"]["licence"]
        for split, n in zip(sources.SPLITS, (20, 10, 10), strict=True):
            counts = [len(list((built / "classification" / split / c).glob("*.png"))) for c in sources.CLASS_NAMES]
            assert sum(counts) == n and max(counts) - min(counts) <= 1  # classes balanced
        coco = _coco(built, "train")
        assert [c["id"] for c in coco["categories"]] == list(range(1, 11))
        assert len(coco["images"]) == 10 and all((im["width"], im["height"]) == (64, 48) for im in coco["images"])
        per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=11)[1:]
        assert per_image.min() >= 1 and per_image.max() <= SMALL.max_garments
        assert all(a["iscrowd"] == 0 and a["area"] > 0 for a in coco["annotations"])

    def test_garments_disjoint_across_splits(self, built):
        used: dict[str, set] = {}
        for split in sources.SPLITS:
            cls = {(r["garment"]["part"], r["garment"]["index"]) for r in _provenance(built, split)["images"]}
            det = {(a["garment"]["part"], a["garment"]["index"]) for a in _coco(built, split)["annotations"]}
            used[split] = cls | det
            part, first, stop = builtin.GARMENT_RANGES[split]
            assert all(p == part and first <= i < stop for p, i in used[split])
        assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]

    def test_backgrounds_disjoint_across_splits(self, built):
        photos = {}
        for split in sources.SPLITS:
            ids = {r["background"]["photo"] for r in _provenance(built, split)["images"]}
            ids |= {im["background"]["photo"] for im in _coco(built, split)["images"]}
            listed = {p["id"] for p in builtin.read_manifest(built)["sources"]["photos"][split]}
            assert ids <= listed
            photos[split] = ids
        assert not photos["train"] & photos["val"] and not photos["train"] & photos["test"]
        assert not photos["val"] & photos["test"]

    def test_detection_boxes_tight_and_match_pasted_garments(self, built, fashion):
        checked = 0
        for split in sources.SPLITS:
            coco = _coco(built, split)
            for image in coco["images"]:
                pixels = builtin_dataset(built, "detection", split)[image["id"] - 1][0]
                anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
                layers, rgbs = [], []
                for ann in anns:
                    g = compose.Garment.from_json(ann["garment"])
                    images, labels = fashion[g.part]
                    assert ann["category_id"] == int(labels[g.index]) + 1 == g.label + 1
                    rgb, alpha = compose.render_garment(images[g.index], g)
                    canvas = np.zeros((image["height"], image["width"], 3), np.float32)
                    layers.append(compose.paste(canvas, rgb, alpha, g.x, g.y))
                    rgbs.append(canvas)
                for i, (ann, rgb) in enumerate(zip(anns, rgbs, strict=True)):
                    visible = np.prod([1 - above for above in layers[i + 1 :]], axis=0) * layers[i]
                    rows, cols = (
                        np.nonzero((visible >= 0.5).any(axis=1))[0],
                        np.nonzero((visible >= 0.5).any(axis=0))[0],
                    )
                    tight = [cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]]
                    assert tight == ann["bbox"]
                    x, y, w, h = ann["bbox"]
                    assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]
                    assert ann["area"] == np.count_nonzero(visible >= 0.5)
                    assert ann["visible_fraction"] >= SMALL.min_visible_fraction
                    solid = visible == 1.0
                    assert solid.sum() > 0
                    diff = np.abs(pixels[solid].astype(int) - to_uint8(rgb)[solid].astype(int))
                    assert diff.max() <= 1
                    checked += 1
        assert checked > 20

    def test_classification_pixels_match_label(self, built, fashion):
        ds = builtin_dataset(built, "classification", "val")
        records = {r["file"]: r for r in _provenance(built, "val")["images"]}
        assert len(ds) == len(records) == 10
        for (path, label), i in zip(ds.samples, range(len(ds)), strict=True):
            record = records[f"{path.parent.name}/{path.name}"]
            g = compose.Garment.from_json(record["garment"])
            images, labels = fashion[g.part]
            assert label == record["label"] == int(labels[g.index])  # builtin_dataset keeps Fashion-MNIST order
            assert ds.class_names[label] == path.parent.name
            rgb, alpha = compose.render_garment(images[g.index], g)
            image, _ = ds[i]
            assert image.shape == (32, 32, 3)
            patch = image[g.y : g.y + g.size, g.x : g.x + g.size]
            solid = alpha == 1.0
            assert np.abs(patch[solid].astype(int) - to_uint8(rgb)[solid].astype(int)).max() <= 1

    def test_loaders_read_back_coco(self, built):
        ds = builtin_dataset(built, "detection", "test")
        coco = _coco(built, "test")
        assert len(ds) == 6 and ds.class_names == list(sources.CLASS_NAMES)
        image, boxes, labels = ds[0]
        anns = [a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"]]
        expected = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32)
        np.testing.assert_array_equal(boxes, expected)
        np.testing.assert_array_equal(labels, [a["category_id"] - 1 for a in anns])
        assert image.shape == (48, 64, 3) and labels.dtype == np.int64 and boxes.dtype == np.float32

    def test_same_config_is_reused_other_config_refused(self, built):
        before = {p: p.stat().st_mtime_ns for p in built.rglob("*.png")}
        result = build_dataset(built, SMALL)
        assert result.reused and {p: p.stat().st_mtime_ns for p in built.rglob("*.png")} == before
        with pytest.raises(InvalidInputError, match="--force"):
            build_dataset(built, BuildConfig(seed=99, tasks=SMALL.tasks))

    def test_force_replaces_and_only_requested_task(self, tmp_path):
        out = tmp_path / "ds"
        build_dataset(out, SMALL)
        config = BuildConfig(seed=1, tasks={"detection": TaskConfig((40, 40), (2, 1, 1))})
        result = build_dataset(out, config, force=True)
        assert not result.reused and not (out / "classification").exists()
        assert len(list((out / "detection" / "train" / "images").glob("*.png"))) == 2
        assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folders left behind
        with pytest.raises(InvalidInputError, match="without the classification task"):
            builtin_dataset(out, "classification", "train")

    def test_crash_leaves_nothing_and_keeps_the_old_set(self, tmp_path, monkeypatch):
        def boom(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(scenes, "write_detection", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            build_dataset(tmp_path / "ds", SMALL)
        assert list(tmp_path.iterdir()) == []
        old = tmp_path / "old"
        old.mkdir()
        (old / "keep.txt").write_text("previous")
        with pytest.raises(RuntimeError):
            build_dataset(old, SMALL, force=True)
        assert (old / "keep.txt").read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["old"]

    def test_not_a_dataset_folder_refused(self, tmp_path):
        (tmp_path / "x").mkdir()
        with pytest.raises(InvalidInputError, match="already exists"):
            build_dataset(tmp_path / "x", SMALL)
        with pytest.raises(MissingFileError, match="edge-isp data build"):
            builtin_dataset(tmp_path / "x", "detection", "train")


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(MissingFileError, match="apt-get install dataset-fashion-mnist"):
        build_dataset(tmp_path / "ds", SMALL, fashion_mnist_dir=tmp_path)
    assert not (tmp_path / "ds").exists()


def test_no_photographs_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "skimage_data_dir", lambda: None)
    with pytest.raises(MissingFileError, match=r"opencv-doc.*scikit-image"):
        build_dataset(tmp_path / "ds", SMALL, opencv_dir=tmp_path)


def test_read_idx_refuses_bad_files(tmp_path):
    good = tmp_path / "ok-idx1-ubyte.gz"
    good.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])))
    np.testing.assert_array_equal(sources.read_idx(good), [7, 8, 9])
    cases = {
        "magic": bytes([1, 2, 8, 1, 0, 0, 0, 1, 5]),
        "type": bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 5]),
        "length": bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.idx"
        path.write_bytes(content)
        with pytest.raises(InvalidInputError, match=str(path.name)):
            sources.read_idx(path)
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    with pytest.raises(InvalidInputError, match="cannot be read"):
        sources.read_idx(tmp_path / "broken.gz")
    with pytest.raises(InvalidInputError, match="'train' or 'test'"):
        sources.load_fashion_mnist("val")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tasks": {}}, "tasks"),
        ({"tasks": {"segmentation": TaskConfig((32, 32), (1, 1, 1))}}, "tasks"),
        ({"max_garments": 0}, "max_garments"),
        ({"min_visible_fraction": 0.0}, "min_visible_fraction"),
        ({"pattern_probability": 1.5}, "pattern_probability"),
        ({"seed": -1}, "seed"),
        ({"classes": "colours"}, "classes must be one of garments, textures"),
        ({"classes": "textures"}, "classification task only"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        BuildConfig(**kwargs)


def test_task_config_validation():
    with pytest.raises(InvalidInputError, match=r"16\.\.4096"):
        TaskConfig((8, 64), (1, 1, 1))
    with pytest.raises(InvalidInputError, match="at least 1 image"):
        TaskConfig((64, 64), (10, 0, 1))


def test_photo_catalogue_groups_stay_in_one_split():
    split_of_group: dict[str, set] = {}
    for photo in sources.PHOTOS:
        split_of_group.setdefault(photo.group, set()).add(photo.split)
    assert all(len(s) == 1 for s in split_of_group.values())
    assert len({p.id for p in sources.PHOTOS}) == len(sources.PHOTOS)
    assert {p.split for p in sources.PHOTOS} == set(sources.SPLITS)


@pytest.mark.skipif(not sources.OPENCV_SAMPLES_DIR.is_dir(), reason="opencv-doc not installed")
def test_every_curated_photo_is_installed_and_in_colour():
    for photo in sources.PHOTOS:
        rgb = sources.load_photo(photo)
        assert rgb.ndim == 3 and min(rgb.shape[:2]) >= 190, photo.id
        chroma = (
            np.abs(rgb[..., 0].astype(int) - rgb[..., 1]).mean() + np.abs(rgb[..., 2].astype(int) - rgb[..., 1]).mean()
        )
        assert chroma > 5, f"{photo.id} looks grey"


def test_skimage_photo_by_name():
    assert sources.skimage_photo("astronaut").shape == (512, 512, 3)
    with pytest.raises(InvalidInputError, match="chelsea"):  # the message lists the choices
        sources.skimage_photo("lena")


def test_render_garment_fills_enclosed_dark_print_and_keeps_black_transparent():
    grey = np.zeros((28, 28), np.uint8)
    grey[6:22, 6:22] = 200
    grey[11:17, 11:17] = 0  # a black print inside the garment: not a hole
    g = compose.Garment("train", 0, 0, 0, 0, size=28, flip=False, colour=(1.0, 0.0, 0.0))
    rgb, alpha = compose.render_garment(grey, g)
    assert alpha[14, 14] == 1.0 and alpha[0, 0] == 0.0 and alpha[8, 8] == 1.0
    assert rgb[8, 8, 0] == pytest.approx(1.0) and rgb[8, 8, 1] == 0.0 and rgb[14, 14, 0] == pytest.approx(0.25)
    striped = compose.render_garment(
        grey, compose.Garment(**{**g.to_json(), "pattern": "stripes", "pattern_colour": (0, 0, 1)})
    )
    inside = striped[0][6:22, 6:22]
    assert inside[..., 0].max() > 0.9 and inside[..., 2].max() > 0.9  # both colours appear
    with pytest.raises(InvalidInputError, match="pattern"):
        compose.render_garment(grey, compose.Garment(**{**g.to_json(), "pattern": "dots"}))


@needs_fashion
def test_cli_build(tmp_path, monkeypatch, capsys):
    import edge_isp.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("edge_isp.cli.data_commands",))
    out = tmp_path / "ds"
    argv = ["data", "build", "--out", str(out), "--task", "detection", "--size", "48x40", "--seed", "7"]
    assert cli.main([*argv, "--train", "3", "--val", "2", "--test", "2"]) == 0
    printed = capsys.readouterr().out
    assert "detection      train      3 images 48x40" in printed and "backgrounds test" in printed
    coco = _coco(out, "val")
    assert len(coco["images"]) == 2 and coco["images"][0]["width"] == 48
    assert not (out / "classification").exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "build", "--out", str(out), "--size", "48by40"])
    assert exit_info.value.code == 1 and "WIDTHxHEIGHT" in capsys.readouterr().err


@needs_fashion
def test_texture_classes_label_the_fill_not_the_garment(tmp_path):
    config = BuildConfig(seed=5, tasks={"classification": TaskConfig((48, 48), (30, 10, 10))}, classes="textures")
    root = build_dataset(tmp_path / "tex", config).root
    manifest = builtin.read_manifest(root)
    assert manifest["class_names"] == list(compose.TEXTURE_NAMES) and manifest["config"]["classes"] == "textures"
    ds = builtin_dataset(root, "classification", "train")
    assert ds.class_names == list(compose.TEXTURE_NAMES)
    garment_classes = set()
    for record in _provenance(root, "train")["images"]:
        g = compose.Garment.from_json(record["garment"])
        pattern, angle, period = compose.TEXTURES[compose.TEXTURE_NAMES[record["label"]]]
        assert record["file"].startswith(compose.TEXTURE_NAMES[record["label"]] + "/")
        assert g.pattern == pattern and abs(g.pattern_period / period - 1) <= 0.1 + 1e-3
        assert min(abs(g.pattern_angle_deg - angle) % 180, 180 - abs(g.pattern_angle_deg - angle) % 180) <= 7 + 1e-3
        garment_classes.add(g.label)
    # The garment under the texture is any class: its shape does not tell the label.
    assert len(garment_classes) >= 6
    # The default build's config is written as before the option existed (old sets stay reusable).
    assert "classes" not in BuildConfig().to_json()
