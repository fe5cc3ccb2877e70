"""`edge-isp run`: the live pipeline from a camera to streams and files (`edge-isp demo` is
:mod:`edge_isp.cli.demo_commands`, on the same pipeline).

Thin: the options become a source (``edge_isp.runtime.sources``), a backend
(``edge_isp.runtime.backends``), the pre/post-processing for that model, outputs
(``edge_isp.runtime.outputs``) and a :class:`~edge_isp.runtime.pipeline.Pipeline`, which runs
until the source ends, Ctrl-C/SIGTERM, ``--duration`` or ``--max-frames``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from edge_isp.contract.sizes import format_size, size_argument
from edge_isp.errors import InvalidInputError
from edge_isp.shipped import model_or_shipped

log = logging.getLogger("edge_isp.run")

_CAMERAS = ("picamera2", "v4l2")
# The size multiple of a dynamic-size model whose metadata does not say (a detector's stride).
DEFAULT_SIZE_MULTIPLE = 32
_FINITE = ("replay", "file")  # files: every frame is processed, none dropped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a model live on a camera and stream or record the annotated video",
        description="Capture Bayer frames, run the fused ISP + perception model on them, and send the annotated "
        "video and results to the outputs asked for. Stops at the end of a finite source, on Ctrl-C/SIGTERM, "
        "or after --duration/--max-frames, closing the camera and finishing every file.",
    )
    p.add_argument(
        "--source",
        metavar="SPEC",
        help="sim | replay:DIR | file:VIDEO|DIR (or a path: footage to simulate raw from) | heldout:video|photos "
        "(the demo's real footage) | picamera2[:N] | v4l2:/dev/videoN (or /dev/videoN)",
    )
    p.add_argument(
        "--model",
        metavar="FILE|NAME",
        help="ONNX model, TensorRT engine, or (torch) checkpoint; or a shipped model's name (real-det, garment-det...)",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a run config (TOML, as `edge-isp deploy` writes) giving any of these options; the command line wins",
    )
    _add_common(p)
    p.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime", "torch"], help="default: auto")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (TensorRT: a CUDA device index)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "int8"],
        default="auto",
        help="which of the model's ONNX files runs: int8 is NAME.int8-cpu.onnx on ONNX Runtime's CPU and "
        "NAME.int8.onnx (Q/DQ) on TensorRT; auto runs the file given, or on ONNX Runtime's CPU the "
        "NAME.int8-cpu.onnx beside it when there is one (default %(default)s; docs/ARCHITECTURE.md)",
    )
    p.add_argument(
        "--rtsp", metavar="[HOST:]PORT[/PATH]", help="serve H.264 over RTSP (needs GStreamer); rtsp://@:8554/live too"
    )
    p.add_argument(
        "--record",
        metavar="DIR|FILE.mp4",
        help="record the annotated video (H.264 in fragmented MP4 with GStreamer, else mp4v) and results as "
        "JSON lines: into a folder of segments, or one file (out.mp4, file://out.mp4)",
    )
    p.add_argument("--size", type=size_argument, metavar="WxH", help="frame size of the camera or simulated source")
    p.add_argument("--fps", type=_positive_float, help="frame rate (sim, replay, file, picamera2)")
    p.add_argument("--loop", action="store_true", help="replay, file: start again after the last frame")
    p.add_argument(
        "--auto-exposure",
        default="auto",
        choices=["auto", "on", "off"],
        help="bring the scene to mid-grey (auto: on for cameras and replayed recordings): on a camera by "
        "exposure time, then analogue gain, then digital gain; on other sources by a digital gain for frames "
        "that carry none (digital gain 1: a camera's, a camera raw file's)",
    )
    p.add_argument(
        "--max-exposure-ms",
        type=_positive_float,
        default=1000 / 30,
        metavar="MS",
        help="camera auto-exposure: the longest exposure, the frame-time limit (default %(default).1f ms)",
    )
    p.add_argument(
        "--process-all",
        action="store_true",
        help="never drop frames: the source waits for the model (the default for replay and file sources; "
        "live cameras drop the oldest frame instead)",
    )
    p.set_defaults(func=_run)


def _add_common(p: argparse.ArgumentParser, http_default: str | None = None) -> None:
    p.add_argument("--profile", metavar="NAME|PATH", help="sensor profile (default: the one the model names)")
    p.add_argument(
        "--http",
        default=http_default,
        metavar="HOST:PORT",
        help="serve the dashboard, MJPEG, events and /metrics (binds 127.0.0.1 unless a host is given)"
        + (" (default %(default)s)" if http_default else ""),
    )
    p.add_argument("--token", help="access token the HTTP server requires (8+ printable characters, no spaces)")
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="a host name the HTTP server answers to besides localhost when bound to loopback (repeatable)",
    )
    p.add_argument("--lux", type=_positive_float, help="light level of the simulated source, lux (0.01 to 200000)")
    p.add_argument(
        "--input-size",
        type=size_argument,
        metavar="WxH",
        help="model input size, for a dynamic-size model (export --dynamic-size): a multiple of its "
        "edge_isp.size_multiple, no bigger than the frame (frames are cropped to its aspect and resized down, the "
        "noise level corrected); default: each frame's own size cut to the multiple. A fixed-size model runs at its "
        "own size, and a frame smaller than that is refused, never upscaled",
    )
    p.add_argument(
        "--score-threshold", type=float, default=0.3, help="keep detections above this (default %(default)s)"
    )
    p.add_argument("--top-k", type=int, default=5, help="labels a classifier reports (default %(default)s)")
    p.add_argument("--nms", type=float, metavar="IOU", help="class-wise NMS at this IoU (CenterNet needs none)")
    p.add_argument(
        "--nms-across-classes",
        action="store_true",
        help="with --nms, boxes of different classes suppress each other too (one box per object)",
    )
    p.add_argument(
        "--conventional-every", type=int, metavar="N", help="render the conventional ISP view every Nth frame"
    )
    p.add_argument(
        "--conventional-model",
        metavar="FILE",
        help="a perception network that runs on the conventional ISP's picture (an rgb-input model: `edge-isp "
        "export onnx BASELINE.pt --input rgb`), run on the same frames as the conventional view (every frame "
        "unless --conventional-every says otherwise); its answers go in the results under 'conventional' and "
        "its boxes on the conventional view",
    )
    p.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: one per core)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after capturing N frames")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    _logging()
    if args.config is not None:
        from edge_isp.deploy.run_config import apply_run_config, load_run_config

        apply_run_config(args, load_run_config(args.config))
    missing = [f"--{name}" for name in ("source", "model") if getattr(args, name) is None]
    if missing:
        raise InvalidInputError(f"edge-isp run needs {' and '.join(missing)} (or a --config FILE that gives them)")
    backend = args.backend or "auto"
    return live(args, source_spec=args.source, model=model_or_shipped(args.model), backend=backend, device=args.device)


def wants_auto_exposure(setting: str, kind: str) -> bool:
    """``--auto-exposure`` for a source kind: "auto" exposes cameras and replayed recordings
    (a camera's frames, or a camera raw file, exposed as the camera would be; frames that carry
    a gain, the simulator's, keep it: auto-exposure only acts on digital gain 1)."""
    return setting == "on" or (setting == "auto" and kind in (*_CAMERAS, "replay"))


def live(args: argparse.Namespace, *, source_spec: str, model: str | Path, backend: str, device: str) -> int:
    """Build and run the pipeline the options describe; print a summary. Returns the exit status."""
    from edge_isp.contract.metadata import metadata_of_backend
    from edge_isp.contract.model_input import live_preprocessor, model_input_size
    from edge_isp.runtime.backends import make_backend
    from edge_isp.runtime.exposure import ExposureController, ExposureLimits
    from edge_isp.runtime.outputs import make_outputs
    from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
    from edge_isp.runtime.postprocess import Postprocessor
    from edge_isp.runtime.sources import RetryingSource, load_profile, open_source, parse_source_spec

    kind, _ = parse_source_spec(source_spec)
    inference = make_backend(
        model, backend, device=device, threads=args.threads, engine_on_first_use=True,
        precision=getattr(args, "precision", None) or "auto", input_size=args.input_size,
    )  # fmt: skip
    # The file that runs, which may be a sibling of the one given (an INT8 file, a built engine).
    model = getattr(inference, "path", model)
    info = metadata_of_backend(inference)
    profile_name = args.profile or info.profile
    if profile_name is None:
        raise InvalidInputError(
            f"no sensor profile: the model {model} names none in its metadata; give one with --profile NAME|PATH"
        )
    profile = load_profile(profile_name)
    raw_spec = next((s for s in inference.input_specs() if s.name == "raw"), None)
    if raw_spec is None:
        names = [s.name for s in inference.input_specs()]
        hint = (
            " (an rgb-input model runs as --conventional-model, beside a fused one)" if info.input_kind == "rgb" else ""
        )
        raise InvalidInputError(
            f"the model {model} has no 'raw' input (it has {names}){hint}; see docs/ARCHITECTURE.md"
        )
    # A dynamic-size model (None axes) runs at --input-size, else at each frame's own size cut
    # to its multiple; a fixed one at its size, and a frame too small for it is refused.
    multiple = info.size_multiple or DEFAULT_SIZE_MULTIPLE
    input_size = model_input_size(raw_spec.shape, args.input_size, multiple)
    conventional = None
    if getattr(args, "conventional_model", None):
        conventional = _conventional_model(args, info, input_size, profile, device)
        if input_size is None:  # the learned model runs at any size: at the conventional one's
            input_size = model_input_size(raw_spec.shape, conventional.size, multiple)

    if kind == "sim" and getattr(args, "size", None) is None and input_size is not None:
        # Simulate at the model's own size (a bigger frame is only resized down again), or for
        # the demo a camera of several times that, so its conventional view has a camera's detail.
        scale = getattr(args, "sim_scale", 1)
        args.size = (input_size[0] * scale, input_size[1] * scale)
    exposure = wants_auto_exposure(args.auto_exposure, kind)
    options = _source_options(args, kind, profile)
    if exposure and kind in _CAMERAS:
        limits = ExposureLimits(
            max_exposure_s=getattr(args, "max_exposure_ms", 1000 / 30) / 1000,
            max_analogue_gain=profile.max_analogue_gain,
        )
        options["auto_exposure"] = ExposureController(limits)
    source = open_source(source_spec, **options)
    if kind in _CAMERAS:
        source = RetryingSource(source)
    # A camera's exposure controller sets exposure, gains and the frame's digital gain itself;
    # other frames that carry no gain get the digital auto-exposure of the preprocessing.
    digital = exposure and kind not in _CAMERAS
    preprocessor = live_preprocessor(
        profile, input_size, auto_exposure=digital, noise_range=info.noise_range, multiple=multiple
    )
    frame_size = _frame_size(source)
    if frame_size is not None:  # else the first frame says it (the same check, in the preprocessing)
        try:
            preprocessor.geometry(frame_size)
        except InvalidInputError:
            source.close()
            inference.close()
            raise
    postprocessor = Postprocessor(
        info, score_threshold=args.score_threshold, top_k=args.top_k, nms_iou=args.nms,
        nms_across_classes=args.nms_across_classes,
    )  # fmt: skip
    every = args.conventional_every if args.conventional_every is not None else (3 if args.http else 0)
    if conventional is not None and every < 1:
        every = 1 if args.conventional_every is None else every
    config = PipelineConfig(
        conventional_every=every,
        when_full="block" if args.process_all or kind in _FINITE else "drop_oldest",
        max_frames=args.max_frames,
    )
    pipeline: Pipeline
    outputs = make_outputs(
        http=args.http,
        rtsp=args.rtsp,
        record=args.record,
        token=args.token,
        controls=source,
        metrics=lambda: pipeline.metrics(),
        fps=float(getattr(source, "fps", None) or args.fps or 30.0),
        info=_dashboard_info(model, info, inference, profile.name, input_size, source_spec, args),
        class_names=info.class_names,
        score_threshold=args.score_threshold,
        record_size=lambda: getattr(args, "size", None) or _frame_size(source),
        allowed_hosts=tuple(getattr(args, "allow_host", None) or ()),
    )
    pipeline = Pipeline(
        source, inference, preprocessor, postprocessor, outputs, profile=profile, config=config,
        conventional=None if conventional is None else conventional.model,
    )  # fmt: skip
    size = format_size(input_size) if input_size else "each frame's own size"
    print(f"model {model}: {info.task}, input {size}, profile {profile.name}, on {inference.description}")
    if conventional is not None:
        isp = conventional.model.isp
        print(
            f"conventional model {args.conventional_model}: {conventional.info.task} behind the conventional ISP "
            f"({isp.demosaic}, denoise {isp.denoise}), every {every} frame(s), on "
            f"{conventional.model.backend.description}"
        )
    try:
        pipeline.start()
        for output in outputs:
            if hasattr(output, "url"):
                hint = " with ?token=<your token> after it" if args.token else ""
                print(f"dashboard: open {output.url}{hint} in a browser")
        metrics = pipeline.run(duration_s=args.duration, report_every_s=10.0)
    except KeyboardInterrupt:
        pipeline.close()
        metrics = pipeline.metrics()
    _summary(metrics)
    return 0


def _dashboard_info(
    model: str | Path, info: Any, inference: Any, profile: str, input_size: Any, source_spec: str, args: Any
) -> dict[str, Any]:
    """What the dashboard's header says runs: model, task, backend, device, profile, sizes."""
    described = inference.description
    device = described.split(" on ", 1)[1] if " on " in described else described.partition("(")[2].rstrip(")")
    size = getattr(args, "size", None)
    return {
        "model": _short(model),
        "task": info.task,
        "backend": inference.name,
        "device": device or described,
        "profile": profile,
        "input_size": None if input_size is None else f"{input_size[0]}x{input_size[1]}",
        "source": source_spec,
        "frame_size": None if size is None else f"{size[0]}x{size[1]}",
        "conventional_model": _short(args.conventional_model) if getattr(args, "conventional_model", None) else None,
    }


def _short(model: str | Path) -> str:
    """A model file's name, with its folder's when it has one (``garment-det/model.onnx``)."""
    path = Path(model)
    return path.name if path.parent.name in ("", ".") else f"{path.parent.name}/{path.name}"


@dataclasses.dataclass
class _Conventional:
    model: Any  # ConventionalModel
    info: Any  # its ModelMetadata
    size: tuple[int, int] | None


def _conventional_model(args: argparse.Namespace, learned: Any, learned_size: Any, profile: Any, device: str):
    """The --conventional-model: its backend, checked against the learned model."""
    from edge_isp.contract.metadata import metadata_of_backend
    from edge_isp.runtime.backends import make_backend
    from edge_isp.runtime.conventional import (
        ConventionalModel,
        check_conventional_model,
        conventional_isp_of,
        rgb_input_size,
    )
    from edge_isp.runtime.postprocess import Postprocessor

    path = args.conventional_model
    backend = make_backend(path, "auto", device=device, threads=args.threads, engine_on_first_use=True)
    info = metadata_of_backend(backend)
    origin = f"the conventional model {path}"
    check_conventional_model(info, None, learned, learned_size, origin)  # kind and task first
    size = rgb_input_size(backend, info)
    check_conventional_model(info, size, learned, learned_size, origin)
    postprocessor = Postprocessor(
        info, score_threshold=args.score_threshold, top_k=args.top_k, nms_iou=args.nms,
        nms_across_classes=args.nms_across_classes,
    )  # fmt: skip
    model = ConventionalModel(backend, postprocessor, profile, conventional_isp_of(info))
    return _Conventional(model, info, size)


def _frame_size(source: Any) -> tuple[int, int] | None:
    """(width, height) of the frames the (open) source delivers, where it says: the footage's,
    or the size a V4L2 device settled on; None where unknown (the recording keeps its own)."""
    inner = getattr(source, "source", source)  # inside a RetryingSource
    if getattr(inner, "frame_size", None):
        return tuple(inner.frame_size)
    width, height = getattr(inner, "width", None), getattr(inner, "height", None)
    return (int(width), int(height)) if isinstance(width, int) and isinstance(height, int) else None


def _source_options(args: argparse.Namespace, kind: str, profile: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if kind in ("sim", "v4l2", "file", "heldout"):
        opts["profile"] = profile
    if getattr(args, "size", None) is not None:
        opts["size"] = args.size
    if getattr(args, "fps", None) is not None:
        opts["fps"] = args.fps
    if args.lux is not None:
        if kind not in ("sim", "file", "heldout"):
            raise InvalidInputError(f"--lux sets a simulated source's light level; the source here is {kind!r}")
        opts["lux"] = args.lux
    if getattr(args, "loop", False):
        if kind not in _FINITE:
            raise InvalidInputError(f"--loop is for replay and file sources; the source here is {kind!r}")
        opts["loop"] = True
    return opts


def _summary(metrics: dict[str, Any]) -> None:
    e2e = metrics["latency_ms"]["end_to_end"]
    print(
        f"{metrics['frames']} frame(s) processed, {metrics['dropped']} dropped, "
        f"{metrics.get('source_errors', 0)} camera error(s); end-to-end latency p50 {e2e['p50']:.1f} ms, "
        f"p99 {e2e['p99']:.1f} ms; {metrics['frames'] / max(metrics['uptime_s'], 1e-9):.1f} FPS over the run"
    )
