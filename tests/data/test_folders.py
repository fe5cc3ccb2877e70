"""Loaders on hand-made user folders: image folders, COCO JSON, raw captures, and their errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset, RawCaptureDataset, load_raw_capture
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor import RawFrame


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


class TestImageFolder:
    @pytest.fixture
    def folder(self, tmp_path) -> Path:
        _write_rgb(tmp_path / "dog" / "b.png", _solid(5, 7, (10, 20, 30)))
        _write_rgb(tmp_path / "dog" / "nested" / "a.png", _solid(5, 7, (1, 2, 3)))
        _write_rgb(tmp_path / "cat" / "x.png", _solid(4, 4, (200, 0, 0)))
        assert cv2.imwrite(str(tmp_path / "cat" / "grey.png"), np.full((3, 3), 77, np.uint8))
        (tmp_path / "cat" / "notes.txt").write_text("not an image")
        (tmp_path / ".hidden").mkdir()
        return tmp_path

    def test_reads_classes_sorted_and_images_rgb(self, folder):
        ds = ImageFolderDataset(folder)
        assert ds.class_names == ["cat", "dog"] and len(ds) == 4
        assert [(p.relative_to(folder).as_posix(), c) for p, c in ds.samples] == [
            ("cat/grey.png", 0),
            ("cat/x.png", 0),
            ("dog/b.png", 1),
            ("dog/nested/a.png", 1),
        ]
        grey, label = ds[0]
        assert grey.shape == (3, 3, 3) and grey.dtype == np.uint8 and (grey == 77).all() and label == 0
        red, _ = ds[1]
        assert tuple(red[0, 0]) == (200, 0, 0)  # RGB order, not OpenCV's BGR

    def test_class_names_fix_the_order(self, folder):
        ds = ImageFolderDataset(folder, class_names=["dog", "bird", "cat"])
        assert ds[0][1] == 2 and ds[3][1] == 0
        with pytest.raises(InvalidInputError, match="dog are not in class_names"):
            ImageFolderDataset(folder, class_names=["cat"])
        with pytest.raises(InvalidInputError, match="duplicates"):
            ImageFolderDataset(folder, class_names=["cat", "dog", "cat"])

    def test_errors(self, tmp_path):
        with pytest.raises(MissingFileError, match="does not exist"):
            ImageFolderDataset(tmp_path / "nope")
        (tmp_path / "file.png").write_bytes(b"")
        with pytest.raises(InvalidInputError, match="not a folder"):
            ImageFolderDataset(tmp_path / "file.png")
        with pytest.raises(InvalidInputError, match="no class folders"):
            ImageFolderDataset(tmp_path)
        (tmp_path / "empty").mkdir()
        _write_rgb(tmp_path / "full" / "a.png", _solid(2, 2, (0, 0, 0)))
        with pytest.raises(InvalidInputError, match="empty hold no images"):
            ImageFolderDataset(tmp_path)
        (tmp_path / "empty" / "bad.png").write_bytes(b"not a png")
        ds = ImageFolderDataset(tmp_path)
        with pytest.raises(InvalidInputError, match=r"bad.png: not an image"):
            ds[0]


def _coco(**over) -> dict:
    data = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 8, "height": 6},
            {"id": 20, "file_name": "sub/b.png", "width": 8, "height": 6},
        ],
        "categories": [{"id": 7, "name": "shoe"}, {"id": 3, "name": "bag"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 3, 4], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 8, 6]},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 2, 2], "iscrowd": 1},
            {"id": 4, "image_id": 20, "category_id": 3, "bbox": [-0.5, 0.5, 8.7, 5.0]},
        ],
    }
    data.update(over)
    return data


@pytest.fixture
def coco_dir(tmp_path) -> Path:
    _write_rgb(tmp_path / "imgs" / "a.png", _solid(6, 8, (5, 6, 7)))
    _write_rgb(tmp_path / "imgs" / "sub" / "b.png", _solid(6, 8, (9, 9, 9)))
    return tmp_path


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


class TestCoco:
    def test_reads_boxes_labels_and_maps_categories(self, coco_dir):
        ds = CocoDetectionDataset(_write_json(coco_dir / "ann.json", _coco()), coco_dir / "imgs")
        assert ds.class_names == ["bag", "shoe"] and ds.index.category_ids == [3, 7] and len(ds) == 2
        image, boxes, labels = ds[0]
        assert image.shape == (6, 8, 3) and tuple(image[0, 0]) == (5, 6, 7)
        np.testing.assert_array_equal(boxes, [[1, 2, 4, 6], [0, 0, 8, 6]])  # the crowd box is left out
        np.testing.assert_array_equal(labels, [1, 0])
        assert boxes.dtype == np.float32 and labels.dtype == np.int64
        _, boxes, _ = ds[1]
        np.testing.assert_allclose(boxes, [[0, 0.5, 8, 5.5]])  # within 1 px of the edge: clipped
        crowd = CocoDetectionDataset(coco_dir / "ann.json", coco_dir / "imgs", include_crowd=True)
        assert len(crowd[0][1]) == 3

    def test_images_without_annotations_and_default_images_dir(self, tmp_path):
        _write_rgb(tmp_path / "val" / "images" / "a.png", _solid(6, 8, (0, 0, 0)))
        data = _coco(images=[{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], annotations=[])
        ds = CocoDetectionDataset(_write_json(tmp_path / "val.json", data))
        assert ds.images_dir == tmp_path / "val" / "images"
        _, boxes, labels = ds[0]
        assert boxes.shape == (0, 4) and labels.shape == (0,)
        _write_json(tmp_path / "other.json", {**data, "images": [{**data["images"][0], "file_name": "zz.png"}]})
        with pytest.raises(MissingFileError, match="pass images_dir"):
            CocoDetectionDataset(tmp_path / "other.json")

    @pytest.mark.parametrize(
        "change, match",
        [
            ({"categories": []}, "'categories' is empty"),
            ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "category id 1 appears twice"),
            ({"categories": [{"id": 1}]}, "needs a non-empty 'name'"),
            ({"images": "a.png"}, "'images' must be a list"),
            ({"images": [{"id": 10, "file_name": "a.png", "width": 8, "height": 6}] * 2}, "image id 10 appears twice"),
            ({"images": [{"id": 10, "file_name": "a.png", "width": 0, "height": 6}]}, "'width' >= 1"),
            ({"annotations": [{"id": 5, "image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}]}, "image id 99"),
            ({"annotations": [{"id": 5, "image_id": 10, "category_id": 4, "bbox": [0, 0, 1, 1]}]}, "category_id 4"),
            (
                {"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [0, 0, 9.5, 1]}]},
                "outside its image",
            ),
            ({"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [7, 5, 2, 3]}]}, "outside its image"),
            ({"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [1, 1, 0, 2]}]}, "empty bbox"),
            ({"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [1, 1, 2]}]}, "4 finite numbers"),
            ({"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [-0.9, 1, 0.5, 2]}]}, "no area"),
        ],
    )
    def test_bad_json_content(self, coco_dir, change, match):
        path = _write_json(coco_dir / "ann.json", _coco(**change))
        with pytest.raises(InvalidInputError, match=match):
            CocoDetectionDataset(path, coco_dir / "imgs")

    def test_file_errors(self, coco_dir):
        with pytest.raises(MissingFileError, match="does not exist"):
            CocoDetectionDataset(coco_dir / "missing.json", coco_dir / "imgs")
        (coco_dir / "bad.json").write_text("{not json")
        with pytest.raises(InvalidInputError, match=r"bad.json is not valid JSON"):
            CocoDetectionDataset(coco_dir / "bad.json", coco_dir / "imgs")
        _write_json(coco_dir / "list.json", [1, 2])
        with pytest.raises(InvalidInputError, match="object at the top level"):
            CocoDetectionDataset(coco_dir / "list.json", coco_dir / "imgs")
        _write_json(coco_dir / "nocat.json", {"images": []})
        with pytest.raises(InvalidInputError, match="missing the top-level 'categories'"):
            CocoDetectionDataset(coco_dir / "nocat.json", coco_dir / "imgs")
        (coco_dir / "imgs" / "sub" / "b.png").unlink()
        with pytest.raises(MissingFileError, match=r"1 image\(s\) named in .* missing: .*b.png"):
            CocoDetectionDataset(_write_json(coco_dir / "ann.json", _coco()), coco_dir / "imgs")
        with pytest.raises(MissingFileError, match="images folder"):
            CocoDetectionDataset(coco_dir / "ann.json", coco_dir / "nope")

    def test_image_size_must_match_json(self, coco_dir):
        data = _coco(images=[{"id": 10, "file_name": "a.png", "width": 8, "height": 7}], annotations=[])
        ds = CocoDetectionDataset(_write_json(coco_dir / "ann.json", data), coco_dir / "imgs")
        with pytest.raises(InvalidInputError, match=r"is 8x6 pixels but .* says 8x7"):
            ds[0]


def _frame(value: int, h: int = 8, w: int = 10) -> RawFrame:
    return RawFrame(np.full((h, w), value, np.uint16), "RGGB", 10, (64, 64, 64, 64), 1023.0)


class TestRawCaptures:
    @pytest.fixture
    def captures(self, tmp_path) -> Path:
        _frame(100).save(tmp_path / "night1")
        _frame(200).save(tmp_path / "night2")
        _frame(300, 12, 10).save(tmp_path / "day")
        return tmp_path

    def test_csv_classification(self, captures):
        (captures / "labels.csv").write_text("file,label\nnight2.npy,bag\n\nnight1.json,shoe\nday.npy,bag\n")
        ds = RawCaptureDataset(captures)
        assert ds.task == "classification" and ds.class_names == ["bag", "shoe"] and len(ds) == 3
        frame, label = ds[0]
        assert isinstance(frame, RawFrame) and int(frame.data[0, 0]) == 200 and label == 0
        assert ds[1][1] == 1 and int(ds[1][0].data[0, 0]) == 100
        fixed = RawCaptureDataset(captures, class_names=["shoe", "bag", "coat"])
        assert [fixed[i][1] for i in range(3)] == [1, 0, 1]
        with pytest.raises(InvalidInputError, match="shoe are not in class_names"):
            RawCaptureDataset(captures, class_names=["bag"])

    def test_json_mapping_classification(self, captures):
        _write_json(captures / "labels.json", {"night1.npy": "shoe", "day.npy": "coat"})
        ds = RawCaptureDataset(captures)
        assert ds.class_names == ["coat", "shoe"] and [ds[i][1] for i in range(2)] == [0, 1]
        assert ds[0][0].height == 12

    def test_coco_detection(self, captures):
        data = {
            "images": [{"id": 1, "file_name": "night1.npy", "width": 10, "height": 8}],
            "categories": [{"id": 1, "name": "bag"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 4, 4]}],
        }
        _write_json(captures / "labels.json", data)
        ds = RawCaptureDataset(captures)
        frame, boxes, labels = ds[0]
        assert ds.task == "detection" and frame.width == 10
        np.testing.assert_array_equal(boxes, [[2, 2, 6, 6]])
        np.testing.assert_array_equal(labels, [0])
        data["images"][0]["height"] = 12
        _write_json(captures / "labels.json", data)
        with pytest.raises(InvalidInputError, match=r"mosaic is 10x8 but .* says 10x12"):
            RawCaptureDataset(captures)[0]
        with pytest.raises(InvalidInputError, match="differ from class_names"):
            RawCaptureDataset(captures, class_names=["shoe"])

    def test_label_file_errors(self, captures):
        with pytest.raises(InvalidInputError, match="found neither"):
            RawCaptureDataset(captures)
        (captures / "labels.csv").write_text("name,class\nday.npy,bag\n")
        with pytest.raises(InvalidInputError, match="header 'file,label'"):
            RawCaptureDataset(captures)
        (captures / "labels.csv").write_text("file,label\nday.npy\n")
        with pytest.raises(InvalidInputError, match="line 2"):
            RawCaptureDataset(captures)
        (captures / "labels.csv").write_text("file,label\nday.npy,bag\nday.npy,coat\n")
        with pytest.raises(InvalidInputError, match=r"more than once: day.npy"):
            RawCaptureDataset(captures)
        (captures / "labels.csv").write_text("file,label\ngone.npy,bag\n")
        with pytest.raises(MissingFileError, match=r"gone.npy"):
            RawCaptureDataset(captures)
        _write_json(captures / "labels.json", {"day.npy": 3})
        with pytest.raises(InvalidInputError, match="found both"):
            RawCaptureDataset(captures)
        with pytest.raises(InvalidInputError, match="string class names"):
            RawCaptureDataset(captures, labels=captures / "labels.json")
        _write_json(captures / "labels.json", {})
        with pytest.raises(InvalidInputError, match="lists no files"):
            RawCaptureDataset(captures, labels=captures / "labels.json")
        with pytest.raises(MissingFileError, match="raw capture folder"):
            RawCaptureDataset(captures / "nope")

    def test_camera_raw_files_go_through_load_raw(self, captures, monkeypatch):
        (captures / "shot.dng").write_bytes(b"dng")
        (captures / "labels.csv").write_text("file,label\nshot.dng,bag\n")
        seen = []
        fake = types.ModuleType("edge_isp.sensor.rawfile")
        fake.load_raw = lambda path: seen.append(Path(path).name) or _frame(5)
        monkeypatch.setitem(sys.modules, "edge_isp.sensor.rawfile", fake)
        frame, label = RawCaptureDataset(captures)[0]
        assert seen == ["shot.dng"] and int(frame.data[0, 0]) == 5 and label == 0
        monkeypatch.setitem(sys.modules, "edge_isp.sensor.rawfile", None)  # not installed: import fails
        with pytest.raises(InvalidInputError, match=r"needs edge_isp.sensor.rawfile"):
            load_raw_capture(captures / "shot.dng")
