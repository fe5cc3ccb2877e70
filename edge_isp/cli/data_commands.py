"""`edge-isp data build`: build the built-in demo data set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_isp.contract.sizes import size_argument
from edge_isp.data import real_build, real_sources
from edge_isp.data.builtin import DEFAULT_COUNTS, DEFAULT_SIZE, TASKS, BuildConfig, TaskConfig, build_dataset
from edge_isp.errors import InvalidInputError

DEFAULT_OUT = Path("data/demo")
DEFAULT_REAL_OUT = Path("data/real")


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build and inspect data sets", description="Build and inspect data sets.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(data))
    data_sub.required = True
    p = data_sub.add_parser(
        "build",
        help="build the built-in demo data set (Fashion-MNIST garments on photographs)",
        description="Build the built-in demo data set from offline sources: Fashion-MNIST garments, coloured "
        "and composited onto natural photographs, as an image folder (classification) and COCO JSON "
        "(detection). The same seed gives byte-identical files.",
    )
    p.add_argument("--out", type=Path, help=f"output folder (default {DEFAULT_OUT}; real sets {DEFAULT_REAL_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    p.add_argument("--task", choices=["classification", "detection", "both"], default="both")
    p.add_argument(
        "--size", type=size_argument, metavar="WxH", help="image size of every task built (default 64x64 and 128x128)"
    )
    for split in ("train", "val", "test"):
        p.add_argument(f"--{split}", type=int, metavar="N", help=f"images in the {split} split of every task built")
    p.add_argument("--classes", choices=["garments", "textures"], default="garments",
                   help="classification labels: the garment's class, or its fill (10 stripe and check textures on "
                   "garments of any class; with --task classification) (default %(default)s)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace OUT if it holds something else")
    p.add_argument("--fashion-mnist", type=Path, metavar="DIR", help="folder of the Fashion-MNIST *-ubyte.gz files")
    p.add_argument("--opencv-samples", type=Path, metavar="DIR", help="folder of the OpenCV sample images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    real = p.add_argument_group(
        "real sets",
        "Unlabelled real images for teacher-student training: crops of photographs (classification) and "
        "frames of a video plus the photographs whole (detection), split by photograph and by time block.",
    )
    real.add_argument("--real", action="store_true",
                      help="build the real sets from the built-in photographs and OpenCV's vtest.avi")  # fmt: skip
    real.add_argument("--images", type=Path, metavar="DIR", help="build the real sets from your own photographs")
    real.add_argument("--video", type=Path, metavar="FILE", help="build the real detection set from your own video")
    real.add_argument("--crop-size", type=int, default=160, metavar="PX", help="crop side (default %(default)s)")
    real.add_argument("--store-size", type=int, metavar="PX",
                      help="store the crops at this side instead (the same crop windows as --crop-size gives, more "
                      "pixels: 256 for configs/real-cls-half.toml)")  # fmt: skip
    real.add_argument("--crops-per-photo", type=_three_ints, default=(100, 50, 50), metavar="TRAIN,VAL,TEST",
                      help="crops from each photograph of each split (default 100,50,50)")  # fmt: skip
    real.add_argument("--source-root", type=Path, metavar="DIR",
                      help="with --real: read the listed photographs and vtest.avi under DIR (DIR/usr/share/..., "
                      "DIR/skimage/data/...), a copy of the sources made by scripts/gpu_pack.py")  # fmt: skip
    real.add_argument("--frame-stride", type=int, default=3, metavar="N", help="keep every Nth video frame (default 3)")
    p.set_defaults(func=_build)


def _three_ints(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three integers TRAIN,VAL,TEST, got {text!r}")
    return values  # type: ignore[return-value]


def _build_real(args: argparse.Namespace) -> int:
    skipped: list[tuple[str, str]] = []
    if args.source_root is not None and (not args.real or args.images is not None or args.video is not None):
        raise InvalidInputError("--source-root goes with --real (the built-in photographs and video) alone")
    if args.images is not None or args.video is not None:
        photos = real_sources.folder_photos(args.images, args.seed) if args.images is not None else []
        video = args.video
        if video is not None:
            real_sources.video_frame_count(video)
    else:
        photos, skipped = real_sources.builtin_photos(source_root=args.source_root)
        video = real_sources.vtest_video(args.source_root)
    config = real_build.RealBuildConfig(
        seed=args.seed,
        crop_px=args.crop_size,
        crops_per_photo=args.crops_per_photo,
        frame_stride=args.frame_stride,
        store_px=args.store_size,
    )
    out = args.out or DEFAULT_REAL_OUT
    manifests = real_build.build_real(
        out, photos, video, config, skipped=skipped, force=args.force,
        progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    print(f"{out}: built")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")
    if photos:
        by_split = {s: sum(1 for p in photos if p.split == s) for s in real_sources.SPLITS}
        print("  photographs: " + ", ".join(f"{s} {n}" for s, n in by_split.items()))
    for task, manifest in manifests.items():
        folder = real_build.CLASSIFICATION_DIR if task == "classification" else real_build.DETECTION_DIR
        counts = ", ".join(f"{s} {n}" for s, n in manifest["counts"].items())
        print(f"  {task:<14} {counts} in {out / folder} (manifest {out / folder / real_build.MANIFEST})")
    return 0


def _build(args: argparse.Namespace) -> int:
    if args.real or args.images is not None or args.video is not None:
        return _build_real(args)

    tasks = TASKS if args.task == "both" else (args.task,)
    configs = {}
    for task in tasks:
        counts = tuple(
            n if n is not None else d
            for n, d in zip((args.train, args.val, args.test), DEFAULT_COUNTS[task], strict=True)
        )
        configs[task] = TaskConfig(args.size or DEFAULT_SIZE[task], counts)
    result = build_dataset(
        args.out or DEFAULT_OUT,
        BuildConfig(seed=args.seed, tasks=configs, classes=args.classes),
        force=args.force,
        progress=not args.no_progress and sys.stderr.isatty(),
        fashion_mnist_dir=args.fashion_mnist,
        opencv_dir=args.opencv_samples,
    )
    manifest = result.manifest
    verb = "already built (same config), kept" if result.reused else f"built in {result.seconds:.1f} s"
    print(f"{result.root}: {verb}")
    for task, info in manifest["tasks"].items():
        w, h = info["size"]
        for split, summary in info["splits"].items():
            extra = f", {summary['annotations']} boxes, COCO {summary['coco']}" if "annotations" in summary else ""
            print(f"  {task:<14} {split:<5} {summary['images']:>6} images {w}x{h} in {summary['folder']}{extra}")
    for split, photos in manifest["sources"]["photos"].items():
        print(f"  backgrounds {split:<5} {len(photos):>2}: {', '.join(p['id'].split(':', 1)[1] for p in photos)}")
    print(f"  manifest: {result.root / 'dataset.json'}")
    return 0
