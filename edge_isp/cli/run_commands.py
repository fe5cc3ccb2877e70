"""`edge-isp run` and `edge-isp demo`: the live pipeline from a camera to streams and files.

Thin: the options become a source (``edge_isp.runtime.sources``), a backend
(``edge_isp.runtime.backends``), the pre/post-processing for that model, outputs
(``edge_isp.runtime.outputs``) and a :class:`~edge_isp.runtime.pipeline.Pipeline`, which runs
until the source ends, Ctrl-C/SIGTERM, ``--duration`` or ``--max-frames``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError, MissingFileError

log = logging.getLogger("edge_isp.run")

DEFAULT_DEMO_MODEL = Path("models/default-det/model.onnx")
_CAMERAS = ("picamera2", "v4l2")
DEMO_MODEL_HINT = (
    "The demo runs the shipped detection model {path}, which is not there. Make it with: "
    "edge-isp data build --out data/demo && edge-isp train isp --config configs/detection.toml && "
    "edge-isp train head --config configs/detection.toml && edge-isp train joint --config configs/detection.toml "
    "&& edge-isp export onnx runs/detection/joint/best.pt -o {path} --input-size 160x128 --with-image "
    "-- or give any exported detection model with --model PATH."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a model live on a camera and stream or record the annotated video",
        description="Capture Bayer frames, run the fused ISP + perception model on them, and send the annotated "
        "video and results to the outputs asked for. Stops at the end of a finite source, on Ctrl-C/SIGTERM, "
        "or after --duration/--max-frames, closing the camera and finishing every file.",
    )
    p.add_argument("--source", metavar="SPEC", help="sim | replay:DIR | picamera2[:N] | v4l2:/dev/videoN")
    p.add_argument("--model", metavar="FILE", help="ONNX model, TensorRT engine, or (torch) checkpoint")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a run config (TOML, as `edge-isp deploy` writes) giving any of these options; the command line wins",
    )
    _add_common(p)
    p.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime", "torch"], help="default: auto")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (TensorRT: a CUDA device index)")
    p.add_argument("--rtsp", metavar="[HOST:]PORT[/PATH]", help="serve H.264 over RTSP (needs GStreamer)")
    p.add_argument("--record", type=Path, metavar="DIR", help="record annotated MP4 and results as JSON lines")
    p.add_argument("--size", type=_size, metavar="WxH", help="frame size of the camera or simulated source")
    p.add_argument("--fps", type=_positive_float, help="frame rate (sim, replay, picamera2)")
    p.add_argument("--loop", action="store_true", help="replay: loop the recording")
    p.add_argument(
        "--auto-exposure",
        default="auto",
        choices=["auto", "on", "off"],
        help="digital gain that brings the scene to mid-grey, for frames that carry none (auto: on for cameras)",
    )
    p.add_argument("--process-all", action="store_true", help="never drop frames: the source waits for the model")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "demo",
        help="the live demo: a simulated camera in the dark, the detector, and a dashboard",
        description="Run the shipped detection model on the simulated camera (a moving scene at a light level you "
        "change from the dashboard) with ONNX Runtime on the CPU, and serve the dashboard: the learned view "
        "with its detections beside the conventional ISP's view.",
    )
    p.add_argument("--model", type=Path, default=DEFAULT_DEMO_MODEL, metavar="FILE", help="default %(default)s")
    _add_common(p, http_default="127.0.0.1:8080")
    p.set_defaults(func=_demo)


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
        default=[],
        metavar="NAME",
        help="a host name the HTTP server answers to besides localhost when bound to loopback (repeatable)",
    )
    p.add_argument("--lux", type=_positive_float, help="light level of the simulated source, lux (0.01 to 200000)")
    p.add_argument("--input-size", type=_size, metavar="WxH", help="model input size, for models without a fixed one")
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


def _size(text: str) -> tuple[int, int]:
    from edge_isp.runtime.model_info import parse_input_size

    try:
        return parse_input_size(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    return live(args, source_spec=args.source, model=args.model, backend=backend, device=args.device)


def _demo(args: argparse.Namespace) -> int:
    _logging()
    if not Path(args.model).is_file():
        raise MissingFileError(DEMO_MODEL_HINT.format(path=args.model))
    for name, value in (("rtsp", None), ("record", None), ("size", None), ("fps", None), ("loop", False)):
        setattr(args, name, value)
    args.auto_exposure, args.process_all = "off", False
    if args.conventional_every is None:
        args.conventional_every = 2
    return live(args, source_spec="sim", model=args.model, backend="onnxruntime", device="cpu")


def live(args: argparse.Namespace, *, source_spec: str, model: str | Path, backend: str, device: str) -> int:
    """Build and run the pipeline the options describe; print a summary. Returns the exit status."""
    from edge_isp.runtime.backends import make_backend
    from edge_isp.runtime.model_info import model_info_of
    from edge_isp.runtime.outputs import make_outputs
    from edge_isp.runtime.pipeline import Pipeline, PipelineConfig
    from edge_isp.runtime.postprocess import Postprocessor
    from edge_isp.runtime.preprocess import AutoExposure, Preprocessor, model_input_size
    from edge_isp.runtime.sources import RetryingSource, load_profile, open_source, parse_source_spec

    kind, _ = parse_source_spec(source_spec)
    inference = make_backend(model, backend, device=device, threads=args.threads)
    info = model_info_of(inference)
    profile_name = args.profile or info.profile
    if profile_name is None:
        raise InvalidInputError(
            f"no sensor profile: the model {model} names none in its metadata; give one with --profile NAME|PATH"
        )
    profile = load_profile(profile_name)
    raw_spec = next((s for s in inference.input_specs() if s.name == "raw"), None)
    if raw_spec is None:
        names = [s.name for s in inference.input_specs()]
        raise InvalidInputError(f"the model {model} has no 'raw' input (it has {names}); see docs/ARCHITECTURE.md")
    input_size = model_input_size(raw_spec.shape, info.input_size, args.input_size)

    if kind == "sim" and getattr(args, "size", None) is None:
        # Simulate at the model's own size: a bigger frame is only resized down again.
        args.size = input_size
    source = open_source(source_spec, **_source_options(args, kind, profile))
    if kind in _CAMERAS:
        source = RetryingSource(source)
    exposure = args.auto_exposure == "on" or (args.auto_exposure == "auto" and kind in _CAMERAS)
    preprocessor = Preprocessor(profile, input_size, auto_exposure=AutoExposure() if exposure else None)
    postprocessor = Postprocessor(
        info, score_threshold=args.score_threshold, top_k=args.top_k, nms_iou=args.nms,
        nms_across_classes=args.nms_across_classes,
    )  # fmt: skip
    every = args.conventional_every if args.conventional_every is not None else (3 if args.http else 0)
    config = PipelineConfig(
        conventional_every=every,
        when_full="block" if args.process_all else "drop_oldest",
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
        allowed_hosts=tuple(getattr(args, "allow_host", ())),
    )
    pipeline = Pipeline(source, inference, preprocessor, postprocessor, outputs, profile=profile, config=config)
    size = f"{input_size[0]}x{input_size[1]}" if input_size else "each frame's own size"
    print(f"model {model}: {info.task}, input {size}, profile {profile.name}, on {inference.description}")
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


def _source_options(args: argparse.Namespace, kind: str, profile: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if kind in ("sim", "v4l2"):
        opts["profile"] = profile
    if getattr(args, "size", None) is not None:
        opts["size"] = args.size
    if getattr(args, "fps", None) is not None:
        opts["fps"] = args.fps
    if args.lux is not None:
        if kind != "sim":
            raise InvalidInputError(f"--lux sets the simulated source's light level; the source here is {kind!r}")
        opts["lux"] = args.lux
    if getattr(args, "loop", False):
        if kind != "replay":
            raise InvalidInputError(f"--loop is for replay sources; the source here is {kind!r}")
        opts["loop"] = True
    return opts


def _summary(metrics: dict[str, Any]) -> None:
    e2e = metrics["latency_ms"]["end_to_end"]
    print(
        f"{metrics['frames']} frame(s) processed, {metrics['dropped']} dropped, "
        f"{metrics.get('source_errors', 0)} camera error(s); end-to-end latency p50 {e2e['p50']:.1f} ms, "
        f"p99 {e2e['p99']:.1f} ms; {metrics['frames'] / max(metrics['uptime_s'], 1e-9):.1f} FPS over the run"
    )
