"""``edge-isp export all``: from a checkpoint to the engine for a board, every step measured.

1. ONNX (FP32) at ``--input-size``, else the size the checkpoint was trained at, else the
   target's; checked, compared with torch.
2. FP16 and INT8 ONNX files; each layer group that measurably costs accuracy kept in FP32
   (:mod:`edge_isp.export.precision_search`), INT8 calibrated on raw simulated at the
   deployment light levels through the camera's profile, or on recorded frames.
3. The accuracy report per precision per light level through ONNX Runtime (table + JSON).
4. The TensorRT engine of the target's precision, from the cache or built; where TensorRT is
   not installed (or with ``--no-engine``), what to run on the board (and the equivalent
   trtexec command) instead. Without a target (``--no-engine`` only) there is no engine step.

Everything lands in ``OUT``: ``NAME.fp32.onnx``, ``NAME.fp16.onnx``, ``NAME.int8.onnx``, with
``--precisions ...,int8-cpu`` ``NAME.int8-cpu.onnx`` (INT8 for ONNX Runtime's CPU, boards without
TensorRT: :mod:`edge_isp.export.cpu_int8`, the ISP placed by its measured rule, no search),
``accuracy.json``, ``export.json`` (all of it), ``engines/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_isp.contract.engine import build_engine, plan_for
from edge_isp.contract.metadata import DEFAULT_TOP_K
from edge_isp.contract.model_files import MIN_INT8_MAC_SHARE
from edge_isp.contract.progress import BuildProgress
from edge_isp.contract.targets import Target
from edge_isp.contract.tensorrt_build import installed_version
from edge_isp.contract.trtexec import format_command, trtexec_args
from edge_isp.errors import InvalidInputError
from edge_isp.export.accuracy import accuracy_report
from edge_isp.export.calibration import frames_feed, recorded_frames, simulated_feed
from edge_isp.export.cpu_int8 import (
    CPU_DEFAULT_CALIBRATION,
    CPU_INT8_PRECISION,
    int8_mac_fraction,
    quantize_int8_cpu,
)
from edge_isp.export.evalset import check_class_names, light_levels, load_images, open_dataset
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.onnx_export import export_onnx
from edge_isp.export.precision import DEFAULT_CALIBRATION, convert_fp16, precision_suffix, quantize_int8
from edge_isp.export.precision_search import FrameSet, Ranking, reduce_precision
from edge_isp.fileio import write_json
from edge_isp.model.loading import default_input_kind, load_model
from edge_isp.sensor.profile import SensorProfile

RANKING_DIVISOR = 4


@dataclasses.dataclass
class ExportOptions:
    """Settings of :func:`export_all` (the command line's options).

    Attributes:
        target: the board; None (with ``engine=False``) for the ONNX files and report only.
        out_dir: where everything is written.
        data: evaluation data (built data set, image folder, or COCO JSON); None skips the
            precisions' measurement, the search and the report (FP32 and the engine only).
        split: the split of a built data set to report on; calibration and the layer search use
            its "train" split (a plain folder or COCO file serves all three).
        light: light levels; None takes the checkpoint's validation levels.
        light_unit: "lux" or "electrons"; None takes the checkpoint's.
        profile: sensor profile name/path; None: the target's, else the checkpoint's.
        precisions: the reduced precisions to make ("fp16", "int8").
        eval_images, search_images, calib_images: images used for the report, the search's
            metric, and INT8 calibration (each spread over its set; None = all for the report).
        calib_frames: a folder of recorded RawFrames to calibrate INT8 on instead.
        tolerance: the largest acceptable drop from FP32 in points.
        min_int8_macs: the share of the MACs the INT8 search must leave in INT8 (None: no
            budget; the layers it keeps in FP32 may be any).
        search: search for layers to keep in FP32 (False: reduce every layer and report).
        calibration: "minmax", "percentile" or "entropy"; None: each INT8 model's measured
            default (percentile for the Q/DQ graph, minmax for the CPU one).
        with_image, top_k, dynamic_batch, dynamic_size: the exported graph's options.
        engine: build (or look up) the engine when TensorRT is installed.
        cache_dir: the engine cache (default ``OUT/engines``).
        rebuild: build the engine even when the cache has it.
        seed: the noise seed of every simulation.
        input_size: (width, height) of the exported graph; None: the checkpoint's training
            size, else the target's.
    """

    target: Target | None
    out_dir: Path
    data: Path | None = None
    split: str = "val"
    light: tuple[float, ...] | None = None
    light_unit: str | None = None
    profile: str | None = None
    precisions: tuple[str, ...] = ("fp16", "int8")
    eval_images: int | None = 200
    search_images: int = 32
    calib_images: int = 32
    calib_frames: Path | None = None
    tolerance: float = 1.0
    min_int8_macs: float | None = MIN_INT8_MAC_SHARE
    search: bool = True
    calibration: str | None = None
    with_image: bool = False
    top_k: int = DEFAULT_TOP_K
    dynamic_batch: bool = False
    engine: bool = True
    cache_dir: Path | None = None
    rebuild: bool = False
    seed: int = 0
    input_size: tuple[int, int] | None = None
    dynamic_size: bool = False


REPORT_EVERY_S = 10.0


def report_progress(say: Callable[[str], None], every_s: float = REPORT_EVERY_S) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that says how far the accuracy report is, at most every
    ``every_s`` seconds and once at the end, with the time left at the rate so far."""
    start = time.monotonic()
    last = [start]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every_s:
            return
        last[0] = now
        left = (now - start) / max(done, 1) * (total - done)
        say(f"  accuracy report: {done}/{total} batches ({done / max(total, 1):.0%}), about {left:.0f} s left")

    return progress


def resolve_size(
    options: ExportOptions, trained_size: tuple[int, int] | None, say: Callable[[str], None]
) -> tuple[Target | None, tuple[int, int]]:
    """The input size of the export and the target at that size: ``--input-size``, else the
    size the checkpoint was trained at, else the target's; a target's engine is built at it."""
    target = options.target
    if options.input_size is not None:
        size, why = tuple(options.input_size), "--input-size"
    elif trained_size is not None:
        size, why = tuple(trained_size), "the size the checkpoint was trained at; --input-size to change it"
    elif target is not None:
        size, why = target.input_size, f"target {target.name}'s; --input-size to change it"
    else:
        raise InvalidInputError("the checkpoint does not say its training size: give --input-size WxH or --target")
    say(f"input size {size[0]}x{size[1]} ({why})")
    if target is not None and target.input_size != size:
        target = target.replace(input_size=size)
    return target, size  # type: ignore[return-value]


def ranking_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """The small size a sensitivity ranking runs at: a quarter of each side, rounded to a
    multiple of 32 (at least 64), e.g. 640x480 -> 160x128."""
    return tuple(max(64, round(v / RANKING_DIVISOR / 32) * 32) for v in input_size)  # type: ignore[return-value]


def export_all(source: str | Path, options: ExportOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole export (see the module docstring); returns what ``export.json`` holds."""
    out = Path(options.out_dir)
    loaded = load_model(source)
    if default_input_kind(loaded) != "raw":
        raise InvalidInputError(
            f"{loaded.source} is a {loaded.stage}-stage checkpoint: its perception network was trained alone on sRGB "
            "pictures, and export all makes and measures fused raw-input models; export it with `edge-isp export "
            "onnx CHECKPOINT -o FILE.onnx --input-size WxH` (an rgb-input model, for `run --conventional-model`)"
        )
    if not loaded.trained:
        say(f"warning: {loaded.source} has fresh weights: its answers mean nothing; use a trained checkpoint")
    target, size = resolve_size(options, loaded.input_size, say)
    options = dataclasses.replace(options, target=target, input_size=size)
    profile = SensorProfile.load(options.profile or (target.sensor_profile if target else None) or loaded.profile)
    name = loaded.config.name
    fp32_path = out / f"{name}.fp32.onnx"
    summary: dict[str, Any] = {
        "source": loaded.source, "target": target.to_dict() if target else None, "input_size": list(size),
        "profile": profile.name,
    }  # fmt: skip
    result = export_onnx(
        loaded.model, fp32_path, input_size=size, class_names=loaded.class_names, profile=profile,
        batch=target.batch if target else 1, dynamic_batch=options.dynamic_batch, with_image=options.with_image,
        top_k=options.top_k, noise_range=loaded.noise_range, teacher=loaded.teacher,
        dynamic_size=options.dynamic_size,
    )  # fmt: skip
    parity = {k: dataclasses.asdict(v) for k, v in result.parity.items()}
    say(f"fp32: {fp32_path} ({result.seconds:.1f} s); ONNX Runtime vs torch, largest difference per output:")
    for key, stats in result.parity.items():
        flag = "" if stats.ok() else "  <- larger than expected: check the exported graph"
        say(f"  {key:<15} {stats.max_abs:.3g} (values up to {stats.ref_max_abs:.3g}){flag}")
    summary["onnx"] = {"fp32": str(fp32_path)}
    summary["parity"] = parity
    summary["parity_ok"] = all(stats.ok() for stats in result.parity.values())
    paths = {"fp32": fp32_path}
    if options.data is not None and loaded.config.task in ("classification", "detection"):
        paths.update(_reduced_precisions(loaded, profile, fp32_path, options, summary, say))
    elif options.precisions:
        say("no evaluation data (--data): fp16 and int8 are neither made nor measured; pass --data to make them")
    write_json(out / "export.json", summary)
    summary["engine"] = _engine_step(paths, options, say)
    write_json(out / "export.json", summary)
    return summary


def _reduced_precisions(
    loaded: Any, profile: Any, fp32_path: Path, options: ExportOptions, summary: dict[str, Any],
    say: Callable[[str], None],
) -> dict[str, Path]:  # fmt: skip

    size, task = options.input_size, loaded.config.task
    values = options.light or loaded.light_levels
    if not values:
        raise InvalidInputError("no light levels: pass --light (the checkpoint does not name its validation levels)")
    levels = light_levels(profile, values, options.light_unit or loaded.light_unit)
    # A real set is labelled by the teacher the model learnt from, as training labelled it.
    real = {"teacher": loaded.teacher, "input_size": size, "raw_scale": loaded.config.raw_scale}
    dataset = open_dataset(options.data, task, options.split, **real)
    check_class_names(dataset.class_names, loaded.class_names, str(options.data))
    calib_set = open_dataset(options.data, task, "train", **real)
    batch = None if options.dynamic_batch else (options.target.batch if options.target else 1)
    # The search measures on the calibration split, so the report's images play no part in it.
    search_images = load_images(calib_set, task, size, options.search_images)
    frames = FrameSet.simulate(search_images.images, profile, levels, options.seed)
    feed = None
    if "int8" in options.precisions or CPU_INT8_PRECISION in options.precisions:
        if options.calib_frames is not None:
            feed = frames_feed(recorded_frames(options.calib_frames), profile, size, batch=batch or 1,
                               noise_range=loaded.noise_range)  # fmt: skip
        else:
            calib = load_images(calib_set, task, size, options.calib_images)
            feed = simulated_feed(calib.images, profile, [lv.electrons for lv in levels], batch=batch or 1,
                                  seed=options.seed)  # fmt: skip
        say(f"int8 calibration: {feed.description}")

    ranking_path = options.out_dir / f".{loaded.config.name}.ranking.onnx"

    def ranking() -> Ranking:
        small_size = ranking_size(size)
        path = ranking_path
        say(f"ranking layer groups on the same network at {small_size[0]}x{small_size[1]} (its dense outputs)")
        export_onnx(
            loaded.model, path, input_size=small_size, class_names=loaded.class_names, profile=profile, dense=True
        )
        small = load_images(calib_set, task, small_size, options.search_images)
        small_feed = None
        if feed is not None:
            small_calib = load_images(calib_set, task, small_size, options.calib_images)
            small_feed = simulated_feed(small_calib.images, profile, [lv.electrons for lv in levels],
                                        seed=options.seed)  # fmt: skip
        return Ranking(path, FrameSet.simulate(small.images, profile, levels, options.seed), small_feed)

    stats = graph_stats(fp32_path)
    paths, searches, notes = {}, {}, {}
    try:
        for precision in options.precisions:
            out_path = precision_suffix(fp32_path, precision)
            if precision == CPU_INT8_PRECISION:
                say(f"{precision}: ONNX Runtime's CPU INT8 (u8 activations, s8 per-channel weights)")
                paths[precision] = quantize_int8_cpu(
                    fp32_path, out_path, feed, method=options.calibration or CPU_DEFAULT_CALIBRATION
                )
                notes[precision] = f"{int8_mac_fraction(fp32_path, out_path):.1%} of the multiply-accumulates in int8"
                continue
            say(f"{precision}: {'searching for layers to keep in fp32' if options.search else 'reducing every layer'}")
            if options.search:
                found = reduce_precision(
                    precision, fp32_path, out_path, images=search_images, frames=frames, feed=feed,
                    ranking=ranking, tolerance=options.tolerance, min_int8_macs=options.min_int8_macs,
                    calibration_method=options.calibration or DEFAULT_CALIBRATION, progress=lambda t: say("  " + t),
                )  # fmt: skip
                searches[precision] = found.to_json()
                say("  " + found.summary())
                if found.kept_nodes:
                    share = stats.mac_fraction(found.kept_nodes)
                    notes[precision] = f"{share:.1%} of the multiply-accumulates stay in fp32"
            elif precision == "fp16":
                convert_fp16(fp32_path, out_path)
            else:
                quantize_int8(fp32_path, out_path, feed, method=options.calibration or DEFAULT_CALIBRATION)
            paths[precision] = out_path
            if precision == "int8":
                share = f"{int8_mac_fraction(fp32_path, out_path):.1%} of the multiply-accumulates in int8"
                notes[precision] = f"{share}; {notes[precision]}" if precision in notes else share
    finally:
        ranking_path.unlink(missing_ok=True)
    eval_images = load_images(dataset, task, size, options.eval_images)
    say(f"accuracy report: {len(eval_images)} images x {len(levels)} light levels x {1 + len(paths)} models")
    report = accuracy_report({"fp32": fp32_path, **paths}, eval_images, profile, levels,
                             tolerance=options.tolerance, seed=options.seed, progress=report_progress(say))  # fmt: skip
    report.notes.update(notes)
    say(report.table())
    write_json(options.out_dir / "accuracy.json", {**report.to_json(), "search": searches})
    summary["onnx"].update({k: str(v) for k, v in paths.items()})
    summary["accuracy"] = report.to_json()
    summary["search"] = searches
    return paths


def _engine_step(paths: dict[str, Path], options: ExportOptions, say: Callable[[str], None]) -> dict[str, Any]:
    target = options.target
    if target is None:
        say("engine: none planned (no --target)")
        return {"status": "not planned", "reason": "no target"}
    onnx_path = paths.get(target.precision)
    if onnx_path is None:
        say(f"engine: target {target.name!r} wants {target.precision}, which was not made (pass --data to make it)")
        return {"status": "skipped", "reason": f"no {target.precision} model"}
    cache = options.cache_dir or options.out_dir / "engines"
    version = installed_version() if options.engine else None
    if version is None:
        board_version = target.tensorrt_version or "10.0"
        plan = plan_for(target, onnx_path, board_version)
        engine_path = cache / f"{onnx_path.name.split('.')[0]}.{target.precision}.engine"
        command = format_command(trtexec_args(onnx_path, plan, engine_path))
        why = "--no-engine" if not options.engine else "TensorRT is not installed here"
        say(f"engine: not built ({why}). On the board: edge-isp export engine {onnx_path} --target {target.name}")
        say(f"or with trtexec (TensorRT {board_version}):\n{command}")
        return {"status": "not built", "reason": why, "trtexec": command, "onnx": str(onnx_path)}
    result = build_engine(onnx_path, target, cache, rebuild=options.rebuild, say=say, progress=_progress())
    verb = "built" if result.built else "found in the cache"
    say(f"engine: {result.entry.engine_path} ({verb}; sidecar {result.entry.sidecar_path.name})")
    return {"status": verb, "engine": str(result.entry.engine_path), "sidecar": str(result.entry.sidecar_path)}


def _progress() -> Any:
    import sys

    return BuildProgress(show=sys.stderr.isatty())
