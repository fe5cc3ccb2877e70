"""`edge-isp export ...`: ONNX, FP16/INT8 with an accuracy report, TensorRT engines.

edge-isp export all runs/joint/best.pt --target orin-nx --data data/demo --out export/out
edge-isp export onnx runs/joint/best.pt --target orin-nx -o model.fp32.onnx
edge-isp export onnx runs/baseline/best.pt --input-size 256x192 -o conventional.onnx   (rgb input)
edge-isp export precision model.fp32.onnx --precision int8 --data data/demo --light 3,30
edge-isp export report model.fp32.onnx model.fp16.onnx model.int8.onnx --data data/demo --light 3,30
edge-isp export engine model.int8.onnx --target orin-nx [--print-trtexec]
edge-isp export targets
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_isp.contract.model_files import MIN_INT8_MAC_SHARE
from edge_isp.contract.sizes import size_argument
from edge_isp.contract.targets import load_target
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.shipped import shipped_dir

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def _levels(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 3,30,300, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one light level")
    return values


def _add_light(p: argparse.ArgumentParser, split: bool = True) -> None:
    p.add_argument("--light", type=_levels, metavar="L1,L2", help="deployment light levels (default: the checkpoint's)")
    p.add_argument("--light-unit", choices=["lux", "electrons"], help="unit of --light (default: lux)")
    p.add_argument("--profile", help="sensor profile name or JSON (default: the target's, else the model's)")
    p.add_argument("--data", type=Path, help="evaluation data: a built data set, an image folder, or COCO JSON")
    if split:
        p.add_argument("--split", default="val", help="split of a built data set to report on (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the simulated raw (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="ONNX, FP16/INT8 with an accuracy report, TensorRT engines for a board",
        description="Export a trained joint network for a board: ONNX, FP16 and INT8 measured per light level, "
        "then a TensorRT engine, cached and keyed on everything that makes it valid.",
    )
    actions = export.add_subparsers(dest="export_command", metavar="ACTION", parser_class=type(export))
    actions.required = True

    p = actions.add_parser("all", help="every step: onnx, fp16/int8, accuracy report, engine")
    p.add_argument("source", help="a checkpoint (.pt) or a registered model name (untrained)")
    p.add_argument(
        "--target", help="target name (see `edge-isp export targets`) or TOML file; not needed with --no-engine"
    )
    p.add_argument("--out", type=Path, default=Path("export/out"), help="output folder (default %(default)s)")
    p.add_argument(
        "--input-size",
        type=size_argument,
        metavar="WxH",
        help="default: the size the checkpoint was trained at, else the target's",
    )
    _add_light(p)
    p.add_argument(
        "--precisions",
        default="fp16,int8",
        help="reduced precisions to make: fp16, int8 (Q/DQ, TensorRT), int8-cpu (ONNX Runtime's CPU) "
        "(default %(default)s)",
    )
    p.add_argument("--eval-images", type=int, default=200, help="images per light level in the report")
    p.add_argument("--search-images", type=int, default=32, help="images the layer search measures on")
    p.add_argument("--calib-images", type=int, default=32, help="images INT8 calibrates on (per light level)")
    p.add_argument("--calib-frames", type=Path, help="calibrate INT8 on recorded RawFrames in this folder instead")
    p.add_argument(
        "--calibration",
        choices=CALIBRATION_METHODS,
        help="INT8 range estimator (default: percentile, the 99.99th of |x|: what measured best)",
    )
    p.add_argument("--tolerance", type=float, default=1.0, help="largest acceptable drop from fp32 (points)")
    _add_mac_budget(p)
    p.add_argument("--no-search", action="store_true", help="reduce every layer; do not search for ones to keep")
    _add_graph_options(p)
    p.add_argument("--no-engine", action="store_true", help="stop before the TensorRT engine")
    p.add_argument("--cache", type=Path, help="engine cache folder (default OUT/engines)")
    p.add_argument("--rebuild", action="store_true", help="build the engine even if the cache has it")
    p.set_defaults(func=_all)

    p = actions.add_parser("onnx", help="export to ONNX, checked and compared with torch")
    p.add_argument("source", help="a checkpoint (.pt) or a registered model name (untrained)")
    p.add_argument("-o", "--out", "--output", dest="out", type=Path, required=True, help="the .onnx file to write")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--target", help="take the input size and batch from this target")
    size.add_argument("--input-size", type=size_argument, metavar="WxH",
                      help="full-resolution frame (raw) size; a half-resolution (dpnh_*) model's picture is half "
                      "its sides")  # fmt: skip
    p.add_argument("--batch", type=int, default=1, help="batch of the graph (default %(default)s)")
    p.add_argument("--profile", help="sensor profile the model was trained for (default: the checkpoint's)")
    p.add_argument(
        "--input",
        choices=["auto", "raw", "rgb"],
        default="auto",
        help="what the exported model takes: raw (the fused learned ISP + perception: inputs raw, noise) or rgb "
        "(the perception network alone on a conventional ISP's sRGB picture: input rgb (B, 3, H, W) on [0, 1], "
        "for `edge-isp run --conventional-model`); auto (default): rgb for a head or baseline checkpoint (trained "
        "on sRGB; a baseline's conventional ISP goes in the metadata), raw otherwise",
    )
    _add_graph_options(p)
    p.set_defaults(func=_onnx)

    p = actions.add_parser("precision", help="make the fp16 or int8 model, keeping measured layers in fp32")
    p.add_argument("model", type=Path, help="the fp32 ONNX file from `export onnx`")
    p.add_argument(
        "--precision",
        choices=["fp16", "int8", "int8-cpu"],
        required=True,
        help="int8: Q/DQ for TensorRT; int8-cpu: ONNX Runtime's CPU format, boards without TensorRT",
    )
    p.add_argument(
        "--isp",
        choices=["fp32", "wide", "int8"],
        default="wide",
        help="int8-cpu: where the ISP runs (wide: its 16+ channel convolutions in int8, the rest fp32; "
        "measured in bench/cpu_int8.py) (default %(default)s)",
    )
    p.add_argument("-o", "--out", "--output", dest="out", type=Path, help="default: MODEL with .fp16/.int8 in its name")
    _add_light(p, split=False)  # a built data set's train split: calibration and search only
    p.add_argument("--search-images", type=int, default=32, help="images the layer search measures on")
    p.add_argument("--calib-images", type=int, default=32, help="images INT8 calibrates on (per light level)")
    p.add_argument("--calib-frames", type=Path, help="calibrate INT8 on recorded RawFrames in this folder instead")
    p.add_argument(
        "--calibration",
        choices=CALIBRATION_METHODS,
        help="INT8 range estimator (default: percentile, the 99.99th of |x|: what measured best)",
    )
    p.add_argument("--tolerance", type=float, default=1.0, help="largest acceptable drop from fp32 (points)")
    _add_mac_budget(p)
    p.add_argument("--no-search", action="store_true", help="reduce every layer (no --data needed for fp16)")
    p.add_argument(
        "--int8-outputs", action="store_true",
        help="with --no-search: the output layers in int8 too (kept float by default; a 1000-class classifier's "
        "last layer holds a third of its weights, so this takes the int8 file from 7.6 to 3.8 MB; measure it "
        "with `edge-isp export report`)",
    )  # fmt: skip
    p.set_defaults(func=_precision)

    p = actions.add_parser("report", help="accuracy per precision per light level through ONNX Runtime")
    p.add_argument("models", type=Path, nargs="+", help="ONNX files of one network; the fp32 one among them")
    _add_light(p)
    p.add_argument("--images", type=int, help="images per light level (default: all)")
    p.add_argument(
        "--draws", type=int, default=1,
        help="noise draws of each image per light level, all precisions on the same ones: a small held-out set "
        "(63 real frames) x 7 draws gives 441 evaluations per level (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--tolerance", type=float, default=1.0, help="largest acceptable drop from fp32 (points)")
    p.add_argument("--json", type=Path, help="write the report as JSON here too")
    p.set_defaults(func=_report)

    p = actions.add_parser("engine", help="build (or find in the cache) the TensorRT engine for a target")
    p.add_argument("model", type=Path, help="the ONNX file of the target's precision")
    p.add_argument("--target", required=True, help="target name or TOML file")
    p.add_argument("--cache", type=Path, default=Path("export/engines"), help="engine cache (default %(default)s)")
    p.add_argument("--rebuild", action="store_true", help="build even if the cache has the engine")
    p.add_argument("--print-trtexec", action="store_true", help="print the equivalent trtexec command and exit")
    p.add_argument("--tensorrt-version", help="with --print-trtexec: the board's TensorRT (default: installed/target)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_engine)

    p = actions.add_parser("targets", help="list the shipped build targets")
    p.set_defaults(func=_targets)


def _add_graph_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch axis dynamic")
    p.add_argument(
        "--dynamic-size",
        action="store_true",
        help="make height and width dynamic: the Bayer mask and every other shape-dependent part is computed from "
        "the input's shape in the graph, so the file runs at any frame size that is a multiple of the model's "
        "(32 for detectors, dp_* and dpnh_* alike; 4 for a full-resolution ISP's classifier, 8 for a "
        "half-resolution one), recorded as metadata edge_isp.size_multiple; the input size is then the size "
        "it is traced and checked at (and a second size is checked too); a TensorRT engine is still built "
        "fixed, at the target's size",
    )
    p.add_argument("--with-image", action="store_true", help="add the learned ISP's sRGB as output 'image'")
    p.add_argument("--top-k", type=int, default=100, help="detections per image (default %(default)s)")


def _target(args: argparse.Namespace):
    target = load_target(args.target)
    if getattr(args, "input_size", None):
        target = target.replace(input_size=tuple(args.input_size))
    return target


def _all(args: argparse.Namespace) -> int:
    from edge_isp.export.workflow import ExportOptions, export_all

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    bad = [p for p in precisions if p not in ("fp16", "int8", "int8-cpu")]
    if bad:
        raise InvalidInputError(f"--precisions takes fp16, int8 and/or int8-cpu, got {', '.join(bad)}")
    if args.target is None and not args.no_engine:
        raise InvalidInputError("export all needs --target (the board whose engine it plans), or --no-engine")
    target = load_target(args.target) if args.target else None
    options = ExportOptions(
        target=target, input_size=args.input_size, out_dir=args.out, data=args.data, split=args.split, light=args.light,
        light_unit=args.light_unit, profile=args.profile, precisions=precisions, eval_images=args.eval_images,
        search_images=args.search_images, calib_images=args.calib_images, calib_frames=args.calib_frames,
        tolerance=args.tolerance, min_int8_macs=args.min_int8_macs, search=not args.no_search,
        calibration=args.calibration, with_image=args.with_image, top_k=args.top_k, dynamic_batch=args.dynamic_batch,
        engine=not args.no_engine, cache_dir=args.cache, rebuild=args.rebuild, seed=args.seed,
        dynamic_size=args.dynamic_size,
    )  # fmt: skip
    export_all(args.source, options)
    print(f"summary: {args.out / 'export.json'}")
    return 0


def _onnx(args: argparse.Namespace) -> int:
    from edge_isp.export.onnx_export import export_onnx
    from edge_isp.model.loading import default_input_kind, load_model
    from edge_isp.sensor.profile import SensorProfile

    loaded = load_model(args.source)
    kind = default_input_kind(loaded, args.input)
    if not loaded.trained:
        print(f"warning: {loaded.source} has fresh weights: its answers mean nothing")
    batch = args.batch
    if args.target:
        target = _target(args)
        size, batch = target.input_size, target.batch
    else:
        size = args.input_size
    profile = SensorProfile.load(args.profile or loaded.profile)
    result = export_onnx(
        loaded.model, args.out, input_size=size, class_names=loaded.class_names, profile=profile, batch=batch,
        dynamic_batch=args.dynamic_batch, with_image=args.with_image, top_k=args.top_k,
        noise_range=loaded.noise_range, input_kind=kind, conventional_isp=loaded.conventional_isp,
        teacher=loaded.teacher,
        dynamic_size=args.dynamic_size,
    )  # fmt: skip
    behind = result.metadata.conventional_isp
    takes = (
        "raw input"
        if kind == "raw"
        else "rgb input"
        + (f" (trained behind the conventional ISP {behind['demosaic']} + {behind['denoise']})" if behind else "")
    )
    multiple = result.metadata.size_multiple
    at = (
        f"at {size[0]}x{size[1]}"
        if multiple is None
        else f"at any size in multiples of {multiple} (traced at {size[0]}x{size[1]})"
    )
    print(f"{result.path}: {loaded.config.name} {at}, {takes}, {result.seconds:.1f} s")
    print("ONNX Runtime vs torch, largest difference per output:")
    for name, stats in result.parity.items():
        extra = f", {stats.unmatched} unmatched detections" if stats.unmatched else ""
        extra += "" if stats.ok() else "  <- larger than expected: check the exported graph"
        print(f"  {name:<15} {stats.max_abs:.3g} (values up to {stats.ref_max_abs:.3g}){extra}")
    return 0


def _min_int8_macs(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1 or 'none', got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1 or 'none', got {text!r}")
    return value


def _add_mac_budget(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-int8-macs",
        type=_min_int8_macs,
        default=MIN_INT8_MAC_SHARE,
        metavar="SHARE",
        help="int8 search: the share of the multiply-accumulates that must stay in int8; a layer group that "
        "would take more out is passed over for the next one ranked ('none': no budget; default %(default)s, "
        "the contract's target)",
    )


def _light_and_data(args: argparse.Namespace, metadata, split: str | None = None):
    from edge_isp.export.evalset import check_class_names, light_levels, open_dataset
    from edge_isp.sensor.profile import SensorProfile

    profile = SensorProfile.load(args.profile or metadata.profile)
    if args.data is None:
        raise InvalidInputError("--data is needed: the evaluation images the precisions are measured on")
    if not args.light:
        raise InvalidInputError("--light is needed: the deployment light levels, e.g. --light 3,30,300")
    levels = light_levels(profile, args.light, args.light_unit or "lux")
    dataset = open_dataset(
        args.data, metadata.task, split or getattr(args, "split", "val"), teacher=metadata.teacher,
        input_size=metadata.input_size, raw_scale=metadata.raw_scale,
    )  # fmt: skip
    check_class_names(dataset.class_names, metadata.class_names, str(args.data))
    return profile, levels, dataset


def _precision(args: argparse.Namespace) -> int:
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.export.accuracy import require_raw_input
    from edge_isp.export.precision import convert_fp16, precision_suffix

    metadata = read_metadata(args.model)
    output = args.out or precision_suffix(args.model, args.precision)
    if args.no_search and args.precision == "fp16":
        convert_fp16(args.model, output)
        print(f"{output}: every layer in fp16 (not measured; run `edge-isp export report` to measure it)")
        return 0
    require_raw_input(metadata, args.model)
    from edge_isp.export.calibration import frames_feed, recorded_frames, simulated_feed
    from edge_isp.export.evalset import load_images
    from edge_isp.export.precision import DEFAULT_CALIBRATION, quantize_int8
    from edge_isp.export.precision_search import FrameSet, reduce_precision

    # Calibration and the search use the training split; `export report` the one asked for.
    profile, levels, dataset = _light_and_data(args, metadata, split="train")
    size = metadata.input_size
    feed = None
    if args.precision in ("int8", "int8-cpu"):
        if args.calib_frames is not None:
            feed = frames_feed(recorded_frames(args.calib_frames), profile, size, noise_range=metadata.noise_range)
        else:
            calib = load_images(dataset, metadata.task, size, args.calib_images)
            feed = simulated_feed(calib.images, profile, [lv.electrons for lv in levels], seed=args.seed)
        print(f"int8 calibration: {feed.description}")
    if args.precision == "int8-cpu":
        from edge_isp.export.cpu_int8 import CPU_DEFAULT_CALIBRATION, quantize_int8_cpu

        quantize_int8_cpu(
            args.model, output, feed, isp=args.isp, method=args.calibration or CPU_DEFAULT_CALIBRATION,
            keep_outputs=not args.int8_outputs,
        )  # fmt: skip
        print(f"{output}: ONNX Runtime CPU int8, ISP {args.isp} (no search; `edge-isp export report` measures it)")
        return 0
    if args.no_search:
        quantize_int8(
            args.model, output, feed, method=args.calibration or DEFAULT_CALIBRATION, keep_outputs=not args.int8_outputs
        )
        kept = "the ISP's delicate parts" if args.int8_outputs else "the ISP's delicate parts and the output layers"
        print(f"{output}: every layer in int8 but {kept} (not measured; run `edge-isp export report` to measure it)")
        return 0
    if args.int8_outputs:
        raise InvalidInputError("--int8-outputs goes with --no-search (the search decides layer by layer)")
    images = load_images(dataset, metadata.task, size, args.search_images)
    frames = FrameSet.simulate(images.images, profile, levels, args.seed)
    result = reduce_precision(
        args.precision, args.model, output, images=images, frames=frames, feed=feed, tolerance=args.tolerance,
        min_int8_macs=args.min_int8_macs,
        calibration_method=args.calibration or DEFAULT_CALIBRATION, progress=lambda text: print("  " + text),
    )  # fmt: skip
    print(f"{output}: {result.summary()}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.errors import InvalidInputError
    from edge_isp.export.accuracy import accuracy_report
    from edge_isp.export.evalset import load_images
    from edge_isp.fileio import write_json

    models = {}
    for path in args.models:
        precision = read_metadata(path).precision
        if precision in models:
            raise InvalidInputError(f"two {precision} models given: {models[precision]} and {path}")
        models[precision] = path
    if "fp32" not in models:
        raise InvalidInputError(f"the report compares against fp32; none of {[str(p) for p in args.models]} is fp32")
    metadata = read_metadata(models["fp32"])
    profile, levels, dataset = _light_and_data(args, metadata)
    images = load_images(dataset, metadata.task, metadata.input_size, args.images)
    report = accuracy_report(
        models, images, profile, levels, tolerance=args.tolerance, seed=args.seed, draws=args.draws
    )
    from edge_isp.export.cpu_int8 import int8_mac_fraction

    for precision, path in models.items():
        if precision.startswith("int8"):
            share = int8_mac_fraction(models["fp32"], path)
            report.notes[precision] = f"{share:.1%} of the multiply-accumulates in int8"
    print(report.table())
    if args.json:
        write_json(args.json, report.to_json())
        print(f"JSON: {args.json}")
    return 0


def _engine(args: argparse.Namespace) -> int:
    import sys

    from edge_isp.contract.engine import build_engine, plan_for
    from edge_isp.contract.tensorrt_build import installed_version

    target = _target(args)
    if args.print_trtexec:
        from edge_isp.contract.trtexec import format_command, trtexec_args

        version = args.tensorrt_version or installed_version() or target.tensorrt_version or "10.0"
        plan = plan_for(target, args.model, version)
        engine_path = args.cache / f"{args.model.name.split('.')[0]}.{plan.precision}.engine"
        print(f"# TensorRT {version} ({plan.api}), target {target.name}")
        print(format_command(trtexec_args(args.model, plan, engine_path, args.cache / "timing.cache")))
        return 0
    from edge_isp.contract.progress import BuildProgress

    progress = BuildProgress(show=not args.no_progress and sys.stderr.isatty())
    result = build_engine(args.model, target, args.cache, rebuild=args.rebuild, progress=progress)
    verb = "built" if result.built else "found in the cache"
    print(f"{result.entry.engine_path}: {verb} ({result.plan.api}, TensorRT {result.plan.tensorrt_version})")
    print(f"sidecar: {result.entry.sidecar_path}")
    return 0


def _targets(args: argparse.Namespace) -> int:
    from edge_isp.contract.targets import shipped_targets

    names = shipped_targets()
    if not names:
        raise MissingFileError(f"this edge-isp install ships no build targets (none in {shipped_dir('targets')})")
    for name in names:
        t = load_target(name)
        dla = f"DLA {t.dla_core}" + (" +GPU fallback" if t.gpu_fallback else "") if t.dla_core is not None else "GPU"
        size = f"{t.input_size[0]}x{t.input_size[1]}"
        print(f"{t.name:<10} {t.precision:<5} {size:>8} {dla:<20} {t.memory_pool_mb:>5} MiB  {t.description}")
    return 0
