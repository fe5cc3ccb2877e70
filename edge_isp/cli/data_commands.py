"""`edge-isp data build`: build the built-in demo data set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_isp.contract.sizes import size_argument

DEFAULT_OUT = Path("data/demo")


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
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default %(default)s)")
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
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from edge_isp.data.builtin import DEFAULT_COUNTS, DEFAULT_SIZE, TASKS, BuildConfig, TaskConfig, build_dataset

    tasks = TASKS if args.task == "both" else (args.task,)
    configs = {}
    for task in tasks:
        counts = tuple(
            n if n is not None else d
            for n, d in zip((args.train, args.val, args.test), DEFAULT_COUNTS[task], strict=True)
        )
        configs[task] = TaskConfig(args.size or DEFAULT_SIZE[task], counts)
    result = build_dataset(
        args.out,
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
