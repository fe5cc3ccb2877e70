"""How far a classifier that starts as its teacher drifts when distilled on clean crops.

The real-image study's student classifier starts from the teacher's own weights, so on clean
images it agrees with the teacher on every crop. This trains the ``head`` stage of
``configs/real-cls.toml`` for a few steps with the optimizer settings given and prints its top-1
agreement with the teacher on validation crops afterwards (docs/STUDY.md, "A student that
starts as its teacher must not drift"):

    .venv/bin/python scripts/study_head_drift.py --lr 3e-4 --dropout 0.2             # the garment settings
    .venv/bin/python scripts/study_head_drift.py --lr 1e-5 --freeze-bn --dropout 0   # configs/real-cls.toml
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from edge_isp.train.config import load_config
from edge_isp.train.loop import Trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/real-cls.toml")
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd"])
    parser.add_argument("--freeze-bn", action="store_true", help="optim.freeze_head_bn")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=4, help="score every Nth validation crop")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        frozen = "true" if args.freeze_bn else "false"
        overrides = [
            f"optim.lr={args.lr}", f"optim.name={args.optimizer}", f"optim.freeze_head_bn={frozen}",
            f"model.dropout={args.dropout}", "optim.warmup_steps=20", f"run.out={out}", "run.progress=false",
        ]  # fmt: skip
        trainer = Trainer("head", load_config(args.config, stage="head", overrides=overrides))
        trainer._train_mode()
        batches = iter(trainer.train_loader)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss, _ = trainer._train_step(next(batches))
            trainer.global_step += 1
        trainer.module.eval()
        val = trainer.val_loader.dataset
        picks = range(0, len(val), args.every)
        images = torch.stack([val[i][0] for i in picks]).float() / 255
        labels = torch.tensor([val[i][1] for i in picks])
        with torch.no_grad():
            agreement = float((trainer.model.head(images).argmax(1) == labels).float().mean())
    print(
        f"{args.optimizer} lr {args.lr:g}, BatchNorm {'frozen' if args.freeze_bn else 'training'}, dropout "
        f"{args.dropout:g}: top-1 agreement {agreement:.3f} on {len(labels)} crops after {args.steps} steps "
        f"(last loss {loss:.3f}; {time.perf_counter() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
