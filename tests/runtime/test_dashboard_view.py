"""The dashboard's drawing and routes without a browser: display filter, per-viewer settings,
the views' sizes, snapshots (a loadable raw frame), /info and /board, and that the pipeline hands
outputs the clean view, the raw frame and the simulator's truth."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.annotate import ViewMap, class_colour, display_detections
from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.boardstats import BoardStats
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import dashboard_view
from edge_isp.runtime.outputs.dashboard_view import DisplaySettings
from edge_isp.sensor.frame import RawFrame

from .test_http_output import get, open_stream, read_parts, serve  # noqa: F401 - the fixture
from .test_pipeline_flow import (  # noqa: F401 - fixtures
    FPS,
    HEIGHT,
    WIDTH,
    Collect,
    make_pipeline,
    profile,
    sim_source,
    spot_model,
    white_square_scene,
)

H, W, SCALE = 32, 40, 4
BOX = [40.0, 40.0, 100.0, 100.0]
DETECTIONS = [
    {"box": BOX, "label": "shirt", "class_id": 0, "score": 0.9},
    {"box": [44.0, 42.0, 104.0, 100.0], "label": "pullover", "class_id": 2, "score": 0.6},
    {"box": [0.0, 0.0, 20.0, 20.0], "label": "bag", "class_id": 8, "score": 0.2},
]


def result(i: int = 7, conventional: bool = True) -> FrameResult:
    view = np.full((H, W, 3), 60, np.uint8)
    conv = np.full((H * SCALE, W * SCALE, 3), 90, np.uint8) if conventional else None
    raw = RawFrame(np.full((H * SCALE, W * SCALE), 300, np.uint16), "GRBG", 10, 64, 1023, exposure_time_s=0.02)
    truth = {"boxes": np.array([[30, 30, 110, 110]], np.float32), "labels": np.array([2])}
    return FrameResult(
        i, 1.0, view.copy(), conv, {"detections": DETECTIONS}, {"end_to_end": 5.0},
        view=view, view_map=ViewMap(scale=(SCALE, SCALE)), conventional_map=ViewMap(), raw=raw, truth=truth,
    )  # fmt: skip


def test_display_filter():
    assert [d["label"] for d in display_detections(DETECTIONS)] == ["shirt", "pullover", "bag"]
    assert [d["label"] for d in display_detections(DETECTIONS, 0.5)] == ["shirt", "pullover"]
    assert [d["label"] for d in display_detections(DETECTIONS, 0.0, 0.5)] == ["shirt", "bag"]  # one per object


def test_settings_from_query():
    default = DisplaySettings(0.4, True, True)
    assert DisplaySettings.from_query({}, default) == default
    assert DisplaySettings.from_query({"score": ["0.7"], "one": ["0"], "truth": ["false"]}) == DisplaySettings(
        0.7, False, False
    )
    for bad, message in (
        ({"score": ["x"]}, "score takes"),
        ({"score": ["2"]}, r"\[0, 1\]"),
        ({"one": ["yes"]}, "0 or 1"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            DisplaySettings.from_query(bad)


def test_learned_view_is_drawn_at_the_conventional_width_and_follows_the_settings():
    image = dashboard_view.learned_view(result(), DisplaySettings(0.3, True, True))
    assert image.shape == (H * 16, W * 16, 3)  # 40 px wide -> at least 640: 16x, a whole number
    assert dashboard_view.display_scale((W, H), 1920) == 48.0 and dashboard_view.display_scale((800, 600)) == 1.0
    shirt = np.all(image == class_colour(0), axis=2).sum()
    pullover = np.all(image == class_colour(2), axis=2).sum()
    assert shirt > 200 and pullover == 0
    both = dashboard_view.learned_view(result(), DisplaySettings(0.3, False, False))
    assert np.all(both == class_colour(2), axis=2).sum() > 200
    assert np.all(both == (255, 255, 255), axis=2).sum() < np.all(image == (255, 255, 255), axis=2).sum()
    plain = FrameResult(1, 1.0, np.zeros((H, W, 3), np.uint8), None, {}, {})
    assert dashboard_view.learned_view(plain, DisplaySettings()) is plain.annotated  # nothing to redraw


def test_snapshot_zip_holds_a_loadable_raw_frame(tmp_path):
    data = dashboard_view.snapshot_zip(result(), DisplaySettings(0.5, True, True), ("shirt",))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert set(archive.namelist()) == {"learned.png", "conventional.png", "results.json", "frame-000007.npy",
                                       "frame-000007.json"}  # fmt: skip
    archive.extractall(tmp_path)
    frame = RawFrame.load(tmp_path / "frame-000007.npy")
    assert frame.cfa.value == "GRBG" and frame.exposure_time_s == 0.02 and int(frame.data[0, 0]) == 300
    shown = json.loads(archive.read("results.json"))
    assert [d["label"] for d in shown["detections_shown"]] == ["shirt"] and shown["display"]["score_threshold"] == 0.5
    png = cv2.imdecode(np.frombuffer(archive.read("conventional.png"), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (H * SCALE, W * SCALE, 3)


def test_the_conventional_models_boxes_are_drawn_on_the_conventional_view():
    plain = result()
    assert dashboard_view.conventional_view(plain, DisplaySettings(0.3, True, False)) is plain.conventional
    strong = {"box": [60.0, 20.0, 140.0, 90.0], "label": "car", "class_id": 1, "score": 0.8}
    weak = {"box": [0.0, 60.0, 30.0, 120.0], "label": "car", "class_id": 1, "score": 0.35}
    answers = {"detections": [strong, weak]}
    both = FrameResult(**{**vars(plain), "results": {**plain.results, "conventional": answers}})
    car = class_colour(1)
    drawn = dashboard_view.conventional_view(both, DisplaySettings(0.3, True, False))
    assert drawn is not both.conventional and both.conventional.max() == 90  # drawn on a copy
    assert np.all(drawn[18:92, 58:62] == car, axis=2).sum() > 40  # the strong box's left edge
    assert np.all(drawn[58:122, :3] == car, axis=2).sum() > 30  # the weak one
    # The viewer's threshold applies to the conventional model's boxes too.
    strict = dashboard_view.conventional_view(both, DisplaySettings(0.5, True, False))
    assert np.all(strict[58:122, :3] == car, axis=2).sum() == 0 and np.all(strict == car, axis=2).sum() > 200
    # The learned view keeps the learned model's boxes only.
    learned = dashboard_view.learned_view(both, DisplaySettings(0.3, True, False))
    assert np.all(learned == car, axis=2).sum() == 0
    shown = json.loads(zipfile.ZipFile(io.BytesIO(dashboard_view.snapshot_zip(both, DisplaySettings(0.5))))
                       .read("results.json"))  # fmt: skip
    assert [d["score"] for d in shown["conventional_detections_shown"]] == [0.8]
    assert shown["conventional"] == answers


class FakeBoard:
    def latest(self):
        return BoardStats(cpu_load=0.25, temperatures_c={"cpu": 51.0})

    def start(self):
        return self

    def stop(self):
        pass


def test_routes(serve):  # noqa: F811
    out = serve(info={"model": "m.onnx", "backend": "onnxruntime"}, board=FakeBoard())
    status, _, body = get(out, "/info")
    assert status == 200 and json.loads(body)["model"] == "m.onnx"
    assert json.loads(body)["display"] == {"score_threshold": 0.3, "one_box_per_object": True, "ground_truth": True}
    assert json.loads(get(out, "/board")[2]) == {
        "cpu_load": 0.25, "gpu_load": None, "temperatures_c": {"cpu": 51.0}, "ram_used_mb": None,
        "ram_total_mb": None, "power_mw": None, "source": "sysfs",
    }  # fmt: skip
    assert get(out, "/snapshot.png")[0] == 503  # no frame yet
    assert get(out, "/conventional-view.mjpg")[0] == 404
    out.publish(result(3))
    status, headers, body = get(out, "/snapshot.png?score=0.1&one=0")
    assert (
        status == 200
        and headers["Content-Type"] == "image/png"
        and "frame-000003.png" in headers["Content-Disposition"]
    )
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (H * SCALE * 4, W * SCALE * 4, 3)
    status, _, body = get(out, "/view.mjpg?score=high")
    assert status == 400 and "score takes" in json.loads(body)["error"]
    stream = open_stream(out, "/view.mjpg?truth=0")
    assert read_parts(stream, 1)[0].shape == (H * 16, W * 16, 3)  # the newest frame at once
    assert out.clients()["dashboard"] == 1
    stream.close()


def test_pipeline_hands_outputs_the_clean_view_raw_frame_and_truth(profile, spot_model):  # noqa: F811
    scene = white_square_scene()
    source, backend, out = sim_source(profile, scene), make_backend(spot_model), Collect()
    pipeline = make_pipeline(source, backend, profile, [out], when_full="block", max_frames=4, conventional_every=2)
    pipeline.run(handle_signals=False)
    for r in out.results:
        assert r.raw is not None and r.raw.data.shape == (HEIGHT, WIDTH)
        assert np.array_equal(r.truth["boxes"], scene.truth(r.index / FPS)["boxes"])  # this frame's, not a later one
        assert r.view.shape == r.annotated.shape and not np.array_equal(r.view, r.annotated)  # nothing drawn on it
        assert (r.conventional_map is None) == (r.conventional is None)
        (det,) = r.results["detections"]
        x0, y0, x1, y1 = r.view_map.apply(det["box"])
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
