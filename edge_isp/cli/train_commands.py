"""`edge-isp train STAGE`: the four training stages of the joint network on the command line.

    edge-isp train isp      --config configs/classification.toml   # ISP for reconstruction
    edge-isp train head     --config configs/classification.toml   # head on clean images
    edge-isp train joint    --config configs/classification.toml --set init.isp=... --set init.head=...
    edge-isp train baseline --config configs/classification.toml   # head on the conventional ISP

Several GPUs: ``torchrun --nproc_per_node=N -m edge_isp train joint --config ...``.

With ``--out``, joint and baseline start from the isp/head runs beside it when the same habit
put them there (``--out runs/x/isp``, ``--out runs/x/head``, then ``--out runs/x/joint`` finds
``runs/x/isp/best.pt``), unless ``--set init.isp=...`` names them
(:func:`edge_isp.train.config_paths.runs_beside`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

STAGE_HELP = {
    "isp": "pretrain the ISP for reconstruction (L1/SSIM of its sRGB against the clean image)",
    "head": "train the perception head on the clean sRGB images (no raw)",
    "joint": "train ISP and head end to end on simulated raw, on the task loss",
    "baseline": "fine-tune the head on the conventional ISP's output at the same light levels",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the joint ISP + perception network (stages: isp, head, joint, baseline)",
        description="Train one stage of the Dirty Pixels joint network on raw simulated on the fly from "
        "clean images through a sensor profile. Settings come from a TOML config (see configs/), "
        "overridden by --set SECTION.KEY=VALUE.",
    )
    stages = p.add_subparsers(dest="stage", metavar="STAGE", parser_class=type(p))
    stages.required = True
    for name, text in STAGE_HELP.items():
        s = stages.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        s.add_argument("--config", type=Path, required=True, help="TOML config file (e.g. configs/smoke.toml)")
        s.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set optim.lr=1e-3 (repeatable; the value is read as TOML)",
        )
        s.add_argument(
            "--out",
            type=Path,
            help="run folder for checkpoints and logs (default: run.out); joint/baseline then start from the "
            "isp/head runs beside it when they are there",
        )
        s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt to the same state")
        s.add_argument(
            "--force", action="store_true", help="start again in a folder that holds a run (replaces its checkpoints)"
        )
        s.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        s.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.train.config import load_config
    from edge_isp.train.config_paths import STAGE_RUNS, runs_beside

    config = load_config(args.config, stage=args.stage, overrides=args.set)
    if args.out is not None:
        set_by_hand = {text.split("=", 1)[0].strip().removeprefix("init.") for text in args.set}
        init = {role: getattr(config.init, role) for role in STAGE_RUNS if role not in set_by_hand}
        moved = runs_beside(init, config.run.out, args.out)
        for role, path in moved.items():
            print(f"init.{role}: {path} (the {role} run beside --out {args.out})")
        config = dataclasses.replace(
            config,
            run=dataclasses.replace(config.run, out=str(args.out)),
            init=dataclasses.replace(config.init, **moved),
        )
    if args.print_config:
        print(config.to_toml(), end="")
        return 0
    # torch comes with it: imported here so the runtime's commands (run, record, deploy) never load it.
    from edge_isp.train.loop import train

    result = train(args.stage, config, resume=args.resume, force=args.force)
    best = "n/a" if result.best_metric is None else f"{result.best_metric:.4g}"
    state = "finished" if result.finished else f"stopped at step {result.global_step} (resume with --resume)"
    print(
        f"{args.stage}: {state}; {result.epochs_completed} epoch(s), best {result.metric_name} {best}; "
        f"checkpoints in {result.out_dir}"
    )
    return 0
