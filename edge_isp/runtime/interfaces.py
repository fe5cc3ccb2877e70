"""The two interfaces the live runtime is built on: camera sources and inference backends.

Never imports torch: the runtime runs on a board with numpy, OpenCV and TensorRT only.

- A :class:`CameraSource` yields :class:`~edge_isp.sensor.frame.RawFrame` objects with their
  metadata (exposure, analogue gain, black level) taken from the same capture as the pixels.
- An :class:`InferenceBackend` (after Polygraphy's runners) takes and returns named numpy
  arrays; the public :meth:`InferenceBackend.infer` checks the inputs against the metadata,
  then calls the backend's own ``_infer``.

Both are context managers, so a camera or a GPU context cannot leak.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.sensor.frame import RawFrame


class SourceError(EdgeIspError, OSError):
    """The camera failed or disappeared; the pipeline retries with back-off."""


class SourceEnded(EdgeIspError, EOFError):
    """A finite source (a replay played once) has no more frames."""


class Resource(abc.ABC):
    """Something opened once and closed once (a camera, a GPU context), usable with ``with``.

    Subclasses put their work in :meth:`_open` and :meth:`_close`.
    """

    def __init__(self) -> None:
        self._is_open = False

    def open(self):
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    @property
    def is_open(self) -> bool:
        return self._is_open

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...


class CameraSource(Resource):
    """A camera, a recording or a simulation that produces RawFrames.

    Subclasses implement :meth:`_open`, :meth:`_read` and :meth:`_close`. ``read`` blocks
    until the next frame (or ``timeout_s``) and raises :class:`SourceError` when the device
    fails and :class:`SourceEnded` at the end of a finite source.
    """

    name: str = "source"

    def read(self, timeout_s: float | None = None) -> RawFrame:
        if not self._is_open:
            raise InvalidInputError(f"source {self.name!r} is not open; use it as a context manager")
        return self._read(timeout_s)

    def frames(self) -> Iterator[RawFrame]:
        """Frames until the source ends."""
        while True:
            try:
                yield self.read()
            except SourceEnded:
                return

    def controls(self) -> dict[str, Any]:
        """The live controls this source has and their current values (e.g. ``lux``)."""
        return {}

    def set_control(self, name: str, value: Any) -> None:
        """Change a live control; unknown names are refused with the valid ones."""
        raise InvalidInputError(
            f"source {self.name!r} has no control {name!r}; it has: {sorted(self.controls()) or 'none'}"
        )

    @abc.abstractmethod
    def _read(self, timeout_s: float | None) -> RawFrame: ...


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, numpy dtype and shape (None for a dynamic axis)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


class InferenceBackend(Resource):
    """Runs a model on named numpy arrays. Open it with ``with`` before calling :meth:`infer`."""

    name: str = "backend"
    # One line saying what runs the model (backend, device, precision); backends set it.
    description: str = "backend"

    def __init__(self) -> None:
        super().__init__()
        # Filled by each backend when it reads its model.
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        self._metadata: dict[str, str] = {}

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def metadata(self) -> dict[str, str]:
        """The model's metadata (ONNX ``metadata_props`` or an engine's sidecar); {} if none."""
        return dict(self._metadata)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``feed`` against :meth:`input_specs`, then run the model."""
        if not self._is_open:
            raise InvalidInputError(f"backend {self.name!r} is not open; use it as a context manager")
        specs = {s.name: s for s in self.input_specs()}
        missing, extra = set(specs) - set(feed), set(feed) - set(specs)
        if missing or extra:
            raise InvalidInputError(
                f"backend {self.name!r} expects inputs {sorted(specs)}, got {sorted(feed)}"
                + (f" (missing {sorted(missing)})" if missing else "")
                + (f" (unexpected {sorted(extra)})" if extra else "")
            )
        checked = {}
        for name, array in feed.items():
            spec = specs[name]
            array = np.asarray(array)
            if array.dtype != spec.dtype:
                raise InvalidInputError(f"input {name!r} must be {spec.dtype}, got {array.dtype}")
            if len(array.shape) != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, array.shape, strict=True)
            ):
                raise InvalidInputError(f"input {name!r} must have shape {spec.shape}, got {array.shape}")
            checked[name] = np.ascontiguousarray(array)
        return self._infer(checked)

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _open(self) -> None:  # most backends load their model in __init__
        pass

    def _close(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """What the pipeline hands every output for one processed frame.

    Attributes:
        index: the frame's sequence number from the source (gaps are dropped frames).
        timestamp_s: the frame's capture time.
        annotated: (H, W, 3) uint8 BGR, the learned view with boxes/labels/FPS drawn.
        conventional: (H, W, 3) uint8 BGR through the conventional ISP, when the pipeline
            renders it (the dashboard shows it beside the learned view), else None.
        results: JSON-serializable task output, e.g. ``{"detections": [{"box": [x0, y0, x1,
            y1], "label": "shirt", "score": 0.9}]}`` or ``{"labels": [{"label": ..., "score":
            ...}]}``, plus ``"frame"``/``"timestamp_s"``.
        latency_ms: per-stage latency of this frame, and ``"end_to_end"``.
        view: the learned view before anything was drawn on it, for outputs that draw their
            own (the dashboard); None if the pipeline does not provide it.
        view_map: where frame pixels land in ``view``
            (:class:`~edge_isp.runtime.annotate.ViewMap`), with ``view``.
        conventional_map: the same for ``conventional``.
        raw: the RawFrame the results came from (the dashboard's snapshot), or None.
        truth: the simulator's ground truth for this frame (``boxes`` xyxy frame pixels,
            ``labels``), when the source is simulated.
    """

    index: int
    timestamp_s: float
    annotated: np.ndarray
    conventional: np.ndarray | None
    results: dict[str, Any]
    latency_ms: dict[str, float]
    view: np.ndarray | None = None
    view_map: Any = None
    conventional_map: Any = None
    raw: RawFrame | None = None
    truth: Mapping[str, Any] | None = None


class Output(abc.ABC):
    """A consumer of :class:`FrameResult` (HTTP/MJPEG, RTSP, a recording).

    :meth:`publish` is called from the pipeline's output stage and must not block it: a slow
    client drops frames, it never stalls the camera.
    """

    name: str = "output"

    def open(self) -> Output:
        return self

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abc.abstractmethod
    def publish(self, result: FrameResult) -> None: ...

    def __enter__(self) -> Output:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
