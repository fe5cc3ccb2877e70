"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

A fake pipeline thread publishes what the real one does: a small learned view (the model's
input size, a moving grey block), a conventional view at the camera's resolution (4x), the
detections (in frame pixels) with a second, overlapping box of another class on the same
object and a low-scoring box elsewhere, the simulator's ground truth and the raw frame; the
light follows a ``lux`` control. The page is opened with an access token, so everything below
also shows that the page passes the token on. Checks, at two window sizes: the page fills the
width, the learned view is shown at least at its own size and drawn sharp at the conventional
view's width, the conventional view at the camera's resolution; one box per object; the score
threshold hides the weak box; ground truth is drawn; one FPS figure and the header's model
information; the light slider reaches the control; the snapshot is a loadable raw frame. A
conventional model answers on the frames of the conventional view: its boxes are on that view only
and its answers are listed in their own panel.
"""

from __future__ import annotations

import io
import threading
import time
import urllib.request
import zipfile

import cv2
import numpy as np
import pytest

from edge_isp.runtime.annotate import ViewMap, class_colour
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import HttpOutput
from edge_isp.runtime.outputs.dashboard_view import DisplaySettings
from edge_isp.sensor.frame import RawFrame

from .chromium import CHROMIUM, chromium_page, wait_for

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt-get install chromium)")
TOKEN = "dash-token"
H, W = 128, 160  # the model's input
SCALE = 4  # camera pixels per model pixel
INFO = {
    "model": "garment-det/model.onnx", "task": "detection", "backend": "onnxruntime", "device": "CPU",
    "profile": "nexus6p-rear", "input_size": f"{W}x{H}", "source": "sim", "frame_size": f"{SCALE * W}x{SCALE * H}",
    "conventional_model": "baseline/conventional.onnx",
}  # fmt: skip
CLASSES = ("shirt", "trouser", "pullover")


class LightControls:
    def __init__(self) -> None:
        self.lux = 3.0

    def controls(self) -> dict[str, float]:
        return {"lux": self.lux}

    def set_control(self, name: str, value: float) -> None:
        self.lux = float(value)


def frame_result(i: int, lux: float) -> FrameResult:
    level = int(np.clip(15 + 2 * lux, 0, 230))
    view = np.full((H, W, 3), level, np.uint8)
    x = 10 + (i * 3) % (W - 50)
    view[40:80, x : x + 30] = 128
    conventional = cv2.resize(view, (W * SCALE, H * SCALE), interpolation=cv2.INTER_NEAREST)
    conventional[..., 2] = np.minimum(conventional[..., 2].astype(int) + 40, 255)  # tinted: tell them apart
    box = [x * SCALE, 40 * SCALE, (x + 30) * SCALE, 80 * SCALE]
    detections = [
        {"box": box, "label": "shirt", "class_id": 0, "score": 0.93},
        {"box": [b + 6 for b in box], "label": "pullover", "class_id": 2, "score": 0.61},  # same object
        {"box": [20, 420, 120, 500], "label": "trouser", "class_id": 1, "score": 0.35},  # a weak one
    ]
    truth = {"boxes": np.array([[b - 12 for b in box]], np.float32), "labels": np.array([0])}  # a little off
    raw = RawFrame(np.full((H * SCALE, W * SCALE), 64 + i, np.uint16), "RGGB", 10, 64, 1023, analogue_gain=2.0)
    results = {"detections": detections}
    # The conventional model, on every frame of the conventional view: one box, a little lower, its own class.
    if conventional is not None:
        results["conventional"] = {"detections": [{"box": [b + 20 for b in box], "label": "car", "class_id": 3,
                                                   "score": 0.77}]}  # fmt: skip
    return FrameResult(
        i, time.time(), view.copy(), conventional, results, {"end_to_end": 12.0},
        view=view, view_map=ViewMap(scale=(SCALE, SCALE)), conventional_map=ViewMap(), raw=raw, truth=truth,
    )  # fmt: skip


@pytest.fixture(scope="module")
def live():
    controls = LightControls()
    out = HttpOutput(
        "127.0.0.1", 0, token=TOKEN, controls=controls, metrics=lambda: {"fps": 25.0, "frames": 1},
        info=INFO, class_names=CLASSES, display=DisplaySettings(score_threshold=0.3),
    )  # fmt: skip
    out.open()
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(0.04):
            out.publish(frame_result(i, controls.lux))
            i += 1

    thread = threading.Thread(target=run)
    thread.start()
    yield out, controls
    stop.set()
    thread.join()
    out.close()


def colour_pixels(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 40) -> int:
    return int(np.all(np.abs(image.astype(int) - np.array(bgr)) < tolerance, axis=2).sum())


def page_url(out: HttpOutput) -> str:
    return f"http://127.0.0.1:{out.port}/?token={TOKEN}"


@pytest.mark.parametrize("size", [(1400, 900), (800, 600)])
def test_layout_views_and_header(live, size):
    out, _ = live
    with chromium_page(page_url(out), size) as page:
        wait_for(lambda: page.evaluate("document.getElementById('conventional').naturalWidth") == W * SCALE, "2nd view")
        # The server draws the learned view at the conventional view's width, every model pixel 4x4.
        # (Each view is its own stream: under load the second one's first frame comes later.)
        wait_for(lambda: page.evaluate("document.getElementById('learned').naturalWidth") == W * SCALE, "1st view")
        wait_for(lambda: "25.0" in page.evaluate("document.getElementById('fps').textContent"), "the FPS")
        shot = page.screenshot()
        width = page.rect("views")[2]
        assert width >= size[0] - 40, "the views do not fill the width"
        for element, natural in (("learned", W), ("conventional", W * SCALE)):
            shown = page.rect(element)[2]
            assert shown >= min(natural, size[0] - 40), (element, shown)
        header = page.evaluate("document.querySelector('header').textContent")
        for needle in ("garment-det/model.onnx", "onnxruntime", "CPU", "nexus6p-rear", "160x128", "FPS"):
            assert needle in header
        wait_for(lambda: "gain 2.0" in page.evaluate("document.getElementById('exposure').textContent"), "gains")
        # One FPS figure on the page: the header's.
        assert page.evaluate("document.body.innerText.split('FPS').length - 1") == 1
        learned = page.crop(shot, "learned")
        assert learned.shape[1] >= W


def test_one_box_per_object_threshold_and_truth(live):
    out, _ = live
    with chromium_page(page_url(out), (1400, 900)) as page:
        wait_for(lambda: page.evaluate("document.getElementById('learned').naturalWidth") == W * SCALE, "the video")
        time.sleep(0.3)
        rows = lambda: page.evaluate("document.getElementById('results').innerText")  # noqa: E731
        wait_for(lambda: "shirt" in rows(), "the detections list")
        assert "pullover" not in rows() and "trouser" in rows()  # one label on the object; the weak box shown
        learned = page.crop(page.screenshot(), "learned")
        shirt, pullover = class_colour(0), class_colour(2)
        assert colour_pixels(learned, shirt) > 300 and colour_pixels(learned, pullover) < 50
        assert colour_pixels(learned, (255, 255, 255), 30) > 100  # the ground truth's dashed white box
        # Raise the threshold: the weak box goes from the list and, once the stream reconnects, the picture.
        before = colour_pixels(learned, class_colour(1))
        page.evaluate(
            "(() => { const s = document.getElementById('score'); s.value = 0.5;"
            " s.dispatchEvent(new Event('input')); })()"
        )
        wait_for(lambda: "trouser" not in rows(), "the list to follow the threshold")
        wait_for(lambda: "score=0.50" in page.evaluate("document.getElementById('learned').src"), "the new stream")
        time.sleep(0.5)
        after = colour_pixels(page.crop(page.screenshot(), "learned"), class_colour(1))
        assert before > 100 and after < before / 5, (before, after)
        # The white is the ground truth's: turned off, it goes.
        white = colour_pixels(page.crop(page.screenshot(), "learned"), (255, 255, 255), 30)
        page.evaluate("document.getElementById('truth').click()")
        wait_for(lambda: "truth=0" in page.evaluate("document.getElementById('learned').src"), "the new stream")
        time.sleep(0.5)
        assert colour_pixels(page.crop(page.screenshot(), "learned"), (255, 255, 255), 30) < white / 3
        # Without one box per object, both labels are back.
        page.evaluate("(() => { const c = document.getElementById('one'); c.click(); })()")
        wait_for(lambda: "pullover" in rows(), "both labels")


def test_light_slider_reaches_the_control_and_snapshot_holds_the_raw_frame(live, tmp_path):
    out, controls = live
    with chromium_page(page_url(out), (1400, 900)) as page:
        wait_for(lambda: page.evaluate("!document.getElementById('light').classList.contains('hidden')"), "slider")
        wait_for(lambda: page.evaluate("document.getElementById('learned').naturalWidth") == W * SCALE, "the video")
        dark = page.crop(page.screenshot(), "learned")
        page.evaluate(
            "(() => { const s = document.getElementById('lux'); s.value = luxToSlider(100);"
            " s.dispatchEvent(new Event('input')); })()"
        )
        wait_for(lambda: abs(controls.lux - 100) < 2, "the POST /control to arrive")
        # The brighter frames reach the page a few frames later; on a loaded machine later still.
        wait_for(
            lambda: page.crop(page.screenshot(), "learned").mean() > dark.mean() + 80,
            f"the picture to brighten (dark mean {dark.mean():.0f})",
        )
        href = page.evaluate("document.getElementById('snap-raw').href")
    assert "token=" in href and "score=" in href
    with urllib.request.urlopen(href, timeout=10) as reply:
        archive = zipfile.ZipFile(io.BytesIO(reply.read()))
    names = archive.namelist()
    assert {"learned.png", "conventional.png", "results.json"} <= set(names)
    npy = next(n for n in names if n.endswith(".npy"))
    archive.extractall(tmp_path)
    frame = RawFrame.load(tmp_path / npy)
    assert frame.data.shape == (H * SCALE, W * SCALE) and frame.analogue_gain == 2.0


def test_the_conventional_models_answers_are_on_its_view_and_in_its_panel(live):
    out, _ = live
    with chromium_page(page_url(out), (1400, 900)) as page:
        wait_for(lambda: page.evaluate("document.getElementById('conventional').naturalWidth") == W * SCALE, "2nd view")
        panel = lambda: page.evaluate("document.getElementById('conventional-section').innerText")  # noqa: E731
        wait_for(lambda: "car" in panel() and "0.77" in panel(), "the conventional model's detections")
        assert "conventional ISP + detector" in page.evaluate(
            "document.getElementById('conventional-title').textContent"
        )
        assert "baseline/conventional.onnx" in page.evaluate("document.querySelector('header').textContent")
        assert "car" not in page.evaluate("document.getElementById('results').innerText")
        car = class_colour(3)

        # The boxes arrive with the next frame of the conventional stream: wait for them, under load too.
        def boxed():
            shot = page.screenshot()
            return [shot] if colour_pixels(page.crop(shot, "conventional"), car) > 200 else None

        (shot,) = wait_for(boxed, "the conventional model's boxes on its view")
        assert colour_pixels(page.crop(shot, "learned"), car) < 20


def test_a_classifiers_top_classes_are_listed_by_name():
    info = {**INFO, "task": "classification", "conventional_model": None, "model": "real-cls/model.onnx"}
    names = ["tench, Tinca tinca", "goldfish, Carassius auratus", "lakeside, lakeshore", "dock", "boathouse"]
    labels = [{"label": n, "class_id": i, "score": round(0.5 - 0.1 * i, 2)} for i, n in enumerate(names)]
    view = np.full((H, W, 3), 90, np.uint8)
    out = HttpOutput("127.0.0.1", 0, token=TOKEN, info=info, class_names=names)
    out.open()
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(0.04):
            out.publish(FrameResult(i, time.time(), view.copy(), None, {"labels": labels}, {"end_to_end": 9.0},
                                    view=view))  # fmt: skip
            i += 1

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with chromium_page(page_url(out), (1400, 900)) as page:
            table = lambda: page.evaluate("document.getElementById('results').innerText")  # noqa: E731
            wait_for(lambda: "boathouse" in table(), "the classifier's labels")
            # ImageNet's synonym lists: the first name is shown, the whole list on hover.
            shown = [n.split(",")[0] for n in names]
            assert all(name in table() for name in shown) and "Tinca" not in table() and "lakeshore" not in table()
            titles = page.evaluate("[...document.querySelectorAll('#results td[title]')].map((td) => td.title)")
            assert titles == names
            assert page.evaluate("document.getElementById('learned-title').textContent") == "learned ISP + classifier"
            assert page.evaluate("document.getElementById('detections-title').textContent") == "top classes"
    finally:
        stop.set()
        thread.join()
        out.close()
