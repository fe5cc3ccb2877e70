"""What the dashboard shows of a frame, drawn by the HTTP output rather than the pipeline, so the
viewer's display settings apply: a score threshold, one box per object (class-agnostic
suppression), the simulator's ground truth. Also the snapshot (PNG and the raw frame).

The learned view (the model's ``image``, at the model's input size) is resized up to at least
:data:`MIN_DISPLAY_WIDTH` or the conventional view's width before drawing, so boxes and labels
are drawn sharp at the size they are seen; the conventional view is the camera's pixels (the
region the model saw) at the camera's resolution, with the conventional model's answers
(``results["conventional"]``) when the pipeline runs one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import jsonable
from edge_isp.runtime.annotate import ViewMap, annotate, display_detections, draw_detections, draw_truth
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs.dashboard import ONE_PER_OBJECT_IOU

MIN_DISPLAY_WIDTH = 640


@dataclasses.dataclass(frozen=True)
class DisplaySettings:
    """One viewer's settings (from the stream's query string, so each viewer has their own).

    Attributes:
        score_threshold: the lowest score shown (the model's own threshold applies first).
        one_box_per_object: suppress overlapping boxes across classes.
        ground_truth: draw the simulator's ground truth where frames have it.
    """

    score_threshold: float = 0.3
    one_box_per_object: bool = True
    ground_truth: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score_threshold) and 0 <= self.score_threshold <= 1):
            raise InvalidInputError(f"the score threshold must be in [0, 1], got {self.score_threshold}")

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]], default: DisplaySettings | None = None) -> DisplaySettings:
        """From ``?score=0.5&one=1&truth=0`` (each optional; ``default`` fills the rest)."""
        base = default or cls()

        def flag(key: str, fallback: bool) -> bool:
            if key not in query:
                return fallback
            text = query[key][0].lower()
            if text not in ("0", "1", "true", "false"):
                raise InvalidInputError(f"{key} takes 0 or 1, got {query[key][0]!r}")
            return text in ("1", "true")

        score = base.score_threshold
        if "score" in query:
            try:
                score = float(query["score"][0])
            except ValueError:
                raise InvalidInputError(f"score takes a number in [0, 1], got {query['score'][0]!r}") from None
        return cls(score, flag("one", base.one_box_per_object), flag("truth", base.ground_truth))


def display_scale(view_size: tuple[int, int], other_width: int | None = None) -> float:
    """The factor that brings a ``(width, height)`` view to at least :data:`MIN_DISPLAY_WIDTH`
    or ``other_width`` wide: a whole number when upscaling (every model pixel the same size)."""
    width = view_size[0]
    wanted = max(MIN_DISPLAY_WIDTH, other_width or 0)
    return float(max(1, math.ceil(wanted / width))) if width < wanted else 1.0


def shown_detections(
    result: FrameResult, settings: DisplaySettings, conventional: bool = False
) -> list[Mapping[str, Any]]:
    """The detections drawn for this viewer: the learned model's, or with ``conventional`` the
    conventional model's (none when the frame has no conventional results)."""
    iou = ONE_PER_OBJECT_IOU if settings.one_box_per_object else None
    results = (result.results.get("conventional") or {}) if conventional else result.results
    return display_detections(results.get("detections", ()), settings.score_threshold, iou)


def learned_view(result: FrameResult, settings: DisplaySettings, class_names: Sequence[str] = ()) -> np.ndarray:
    """The learned view as the dashboard shows it (BGR uint8), or the pipeline's annotated view
    when the result carries no clean one."""
    if result.view is None or result.view_map is None:
        return result.annotated
    height, width = result.view.shape[:2]
    other = None if result.conventional is None else result.conventional.shape[1]
    factor = display_scale((width, height), other)
    image = result.view
    if factor != 1.0:
        image = cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_LINEAR)
    else:
        image = image.copy()
    view_map: ViewMap = result.view_map.resized((factor, factor))
    if settings.ground_truth and result.truth is not None:
        draw_truth(image, result.truth, view_map, class_names)
    draw_detections(image, shown_detections(result, settings), view_map)
    annotate(image, {"labels": result.results.get("labels", ())})  # a classifier's top labels
    return image


def conventional_view(
    result: FrameResult, settings: DisplaySettings, class_names: Sequence[str] = ()
) -> np.ndarray | None:
    """The conventional ISP's view with the ground truth drawn when asked and the conventional
    model's detections (or top labels) when it ran on this frame; None without a view."""
    if result.conventional is None:
        return None
    image = result.conventional
    answers = result.results.get("conventional")
    if result.conventional_map is None or not (answers or (settings.ground_truth and result.truth is not None)):
        return image
    image = image.copy()
    if settings.ground_truth and result.truth is not None:
        draw_truth(image, result.truth, result.conventional_map, class_names)
    if answers:
        draw_detections(image, shown_detections(result, settings, conventional=True), result.conventional_map)
        annotate(image, {"labels": answers.get("labels", ())})
    return image


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise InvalidInputError(f"could not encode a {image.shape} image as PNG")
    return data.tobytes()


def snapshot_zip(result: FrameResult, settings: DisplaySettings, class_names: Sequence[str] = ()) -> bytes:
    """A zip of one frame: ``learned.png`` (as shown), ``conventional.png`` (when rendered),
    ``results.json``, and the raw frame as ``frame-N.npy`` + ``frame-N.json`` (the pair
    :meth:`RawFrame.load <edge_isp.sensor.frame.RawFrame.load>` and replay sources read)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("learned.png", png(learned_view(result, settings, class_names)))
        conventional = conventional_view(result, settings, class_names)
        if conventional is not None:
            archive.writestr("conventional.png", png(conventional))
        shown = {
            **result.results,
            "detections_shown": shown_detections(result, settings),
            **(
                {"conventional_detections_shown": shown_detections(result, settings, conventional=True)}
                if "conventional" in result.results
                else {}
            ),
            "display": dataclasses.asdict(settings),
        }
        archive.writestr("results.json", json.dumps(shown, indent=2, default=jsonable))
        if result.raw is not None:
            name = f"frame-{result.index:06d}"
            pixels = io.BytesIO()
            np.save(pixels, result.raw.data)
            archive.writestr(f"{name}.npy", pixels.getvalue())
            archive.writestr(f"{name}.json", json.dumps(result.raw.metadata(), indent=2))
    return buffer.getvalue()
