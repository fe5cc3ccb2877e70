"""`edge-isp eval`: accuracy and image quality against light level, for every pipeline.

    edge-isp eval --task classification --data data/demo --runs runs --out results/classification
    edge-isp eval --task detection --data data/demo --checkpoint joint=runs/detection/joint/best.pt \\
        --checkpoint baseline=runs/detection/baseline/best.pt --seeds 3 --out results/detection
    edge-isp eval recon --data data/demo --runs runs --limit 100 --out results/recon
    edge-isp eval merge results/seed0 results/seed1 results/seed2 --out results/merged

The first two write sweep.md, sweep.json, sweep.png and scene.png; `eval recon` writes
recon.md, recon.json, recon.png and recon-scene.png; `eval merge` writes the merged sweep.*
(and the first run's scene.png).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge_isp.contract.sizes import size_argument
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import write_bytes

ROLE_HELP = (
    "a checkpoint for a role: ROLE=PATH or ROLE:LABEL=PATH (a labelled variant, e.g. joint:dark=...), "
    "ROLE one of head, baseline, isp, raw, joint, noansc (repeatable; replaces what --runs found)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate pipelines against light level: table, plot, picture grid (and `eval recon`)",
        description="Evaluate the six pipelines of the study - (a) conventional ISP + clean head, (b) conventional "
        "ISP + fine-tuned head, (c) reconstruction ISP + clean head, (d) raw without ISP, (e) joint, (f) joint "
        "without Anscombe - on the held-out split, on the same simulated raw and noise draws, over light "
        "levels. Pipelines without their checkpoints are skipped with a note. `edge-isp eval recon ...` "
        "compares reconstructions instead.",
    )
    _common(p)
    p.add_argument("--task", choices=["classification", "detection"], help="the task (required without recon)")
    p.add_argument("--scene-index", type=int, default=0, help="test image of the picture grid (default 0)")
    p.set_defaults(func=_eval, eval_action=None)
    actions = p.add_subparsers(dest="eval_action", metavar="ACTION", parser_class=type(p))
    r = actions.add_parser(
        "recon",
        help="the reconstruction comparison: learned ISP vs conventional (NLM, BM3D) vs demosaicnet",
        description="PSNR and SSIM per light level of the ISP trained for reconstruction, the conventional ISP "
        "with NLM and with BM3D denoising, and the pretrained demosaicnet (Gharbi et al. 2016) followed by the "
        "same denoiser. BM3D is slow: use --limit.",
    )
    _common(r)
    r.add_argument("--images", choices=["classification", "detection"], default="classification",
                   help="which test images (default %(default)s)")  # fmt: skip
    r.add_argument(
        "--denoisers",
        default="nlm,bm3d",
        help="comma-separated, of nlm, bm3d (default %(default)s; the bm3d package is free "
        "for non-commercial use only)",
    )
    r.add_argument("--no-demosaicnet", action="store_true", help="leave out the demosaicnet pipelines")
    r.add_argument("--scene-index", type=int, default=0, help="test image of the picture grid (default 0)")
    r.set_defaults(func=_recon)
    m = actions.add_parser(
        "merge",
        help="merge the sweeps of repeated training runs (one per seed): spread between runs",
        description="Merge sweeps of the same evaluation made with each training seed's checkpoints into one "
        "report: cells mean ± std over the runs, and the joint pipeline (e) minus each other pipeline paired "
        "within runs. The sweeps must agree on task, profile, levels, blur, noise seeds, images and pipelines "
        "(with --common, only on the pipelines they all have).",
    )
    m.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP", help="folders with sweep.json (or the files)")
    m.add_argument("--out", type=Path, required=True, help="report folder for the merged sweep")
    m.add_argument("--title", help="the report's title (default: from the task and profile)")
    m.add_argument("--paired", action="append", metavar="KEY",
                   help="a pipeline key (e.g. e:last) whose difference to every other pipeline, paired within "
                   "runs, gets a table; repeatable (default: e)")  # fmt: skip
    m.add_argument("--common", action="store_true",
                   help="merge the pipelines every sweep has (same key and label) and list the others in the "
                   "report's notes, instead of refusing sweeps whose pipelines differ")  # fmt: skip
    m.set_defaults(func=_merge)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="a built data set (its test split), an image folder or a COCO JSON file")
    p.add_argument("--runs", type=Path, help="runs folder: checkpoints at RUNS/<task>/<role folder>/best.pt")
    p.add_argument("--checkpoint", action="append", default=[], metavar="ROLE=PATH", help=ROLE_HELP)
    p.add_argument("--out", type=Path, help="report folder")
    p.add_argument(
        "--profile",
        default="nexus6p-rear",
        help="sensor profile: a shipped name or a JSON file, e.g. a second camera (default %(default)s)",
    )
    light = p.add_mutually_exclusive_group()
    light.add_argument("--lux", type=_numbers, help="light levels in lux (default 1.5,3,6,12,24,48,96)")
    light.add_argument("--electrons", type=_numbers, help="light levels in photo-electrons at white instead")
    p.add_argument("--blur", default="none", help="optical blur with the low light: gaussian:S, disk:R, "
                   "motion:L:A, psf:FILE.npy (default none)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=1, help="noise seeds 0..N-1: mean and spread (default 1)")
    p.add_argument("--limit", type=int, help="evaluate N test images, spread over the split")
    p.add_argument("--size", type=size_argument, metavar="WxH", help="resize images (default: the checkpoints' size)")
    p.add_argument("--raw-scale", type=int, choices=[1, 2],
                   help="simulate the raw at 1 or 2 times the picture's sides, for every pipeline; full-resolution "
                   "pipelines area-average their image of a 2x raw to the picture (default: 2 when a "
                   "half-resolution checkpoint is among them, else 1)")  # fmt: skip
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default test)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--isp-demosaic", help="conventional ISP's demosaicking (default: the baseline's, or malvar)")
    p.add_argument("--isp-denoise", help="conventional ISP's denoiser (default: the baseline's, or nlm)")
    p.add_argument("--workers", type=int, default=_default_workers(),
                   help="conventional ISP denoiser threads (default: the cores, at most 4: %(default)s)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")
    p.add_argument("--scene-lux", type=float, default=3.0,
                   help="light level of the picture grid, in the sweep's unit (default 3)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar or lines")


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1.5,3,6, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _settings(args: argparse.Namespace) -> dict:
    if args.seeds < 1:
        raise InvalidInputError(f"--seeds must be >= 1, got {args.seeds}")
    if args.limit is not None and args.limit < 1:
        raise InvalidInputError(f"--limit must be >= 1, got {args.limit}")
    settings = {
        "profile": args.profile,
        "blur": args.blur,
        "seeds": tuple(range(args.seeds)),
        "batch_size": args.batch_size,
        "workers": args.workers,
    }
    if args.electrons is not None:
        settings.update(levels=args.electrons, light_unit="electrons")
    elif args.lux is not None:
        settings["levels"] = args.lux
    if args.isp_demosaic:
        settings["demosaic"] = args.isp_demosaic
    if args.isp_denoise:
        settings["denoise"] = args.isp_denoise
    return settings


def _required(args: argparse.Namespace, *names: str, checkpoints: bool = True) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise InvalidInputError(f"edge-isp eval needs {', '.join(missing)}")
    if checkpoints and args.runs is None and not args.checkpoint:
        raise InvalidInputError("edge-isp eval needs checkpoints: --runs DIR and/or --checkpoint ROLE=PATH")


def _progress(args: argparse.Namespace):
    return None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))


def _eval(args: argparse.Namespace) -> int:
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.evaluate.pipelines import parse_checkpoint_args
    from edge_isp.evaluate.runner import evaluate_task

    _required(args, "task", "data", "out")
    outcome = evaluate_task(
        args.task, args.data, args.out,
        runs=args.runs, checkpoints=parse_checkpoint_args(args.checkpoint), settings=_settings(args),
        limit=args.limit, size=args.size, split=args.split, device=args.device,
        scene_level=args.scene_lux, scene_index=args.scene_index, progress=_progress(args), raw_scale=args.raw_scale,
    )  # fmt: skip
    _print(outcome)
    return 0


def _recon(args: argparse.Namespace) -> int:
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.evaluate.pipelines import parse_checkpoint_args
    from edge_isp.evaluate.runner import evaluate_recon

    _required(args, "data", "out", checkpoints=False)
    denoisers = tuple(d.strip() for d in args.denoisers.split(",") if d.strip())
    outcome = evaluate_recon(
        args.data, args.out,
        images=args.images, runs=args.runs, checkpoints=parse_checkpoint_args(args.checkpoint),
        settings=_settings(args), denoisers=denoisers, demosaicnet=not args.no_demosaicnet,
        limit=args.limit, size=args.size, split=args.split, device=args.device,
        scene_level=args.scene_lux, scene_index=args.scene_index, progress=_progress(args), raw_scale=args.raw_scale,
    )  # fmt: skip
    _print(outcome)
    return 0


def _merge(args: argparse.Namespace) -> int:
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.evaluate.merge import load_sweep, merge_results, sweep_file
    from edge_isp.evaluate.report import markdown, write_report

    results = [load_sweep(path) for path in args.sweeps]
    merged = merge_results(results, [str(path) for path in args.sweeps], common=args.common)
    paired = args.paired or ["e"]
    keys = [p["key"] for p in merged.pipelines]
    unknown = [key for key in paired if key not in keys]
    if unknown and args.paired:  # the default (e) may be absent: then no table, no error
        raise InvalidInputError(f"--paired {', '.join(unknown)}: no such pipeline; the sweeps have {', '.join(keys)}")
    s = merged.settings
    title = args.title or f"Light sweep: {s['task']} on {s['profile']}, {len(results)} training runs"
    paths = write_report(merged, args.out, title=title, paired=paired)
    # The picture grid is one scene through one run's pipelines: the first run's stands in.
    first = sweep_file(args.sweeps[0]).parent
    if (first / "scene.png").is_file() and first.resolve() != args.out.resolve():
        write_bytes(args.out / "scene.png", (first / "scene.png").read_bytes())
        paths["scene"] = args.out / "scene.png"
    print(markdown(merged, title, paired))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _print(outcome) -> None:
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.evaluate.report import markdown

    print(markdown(outcome.result))
    print("wrote " + ", ".join(str(p) for p in outcome.paths.values()))
