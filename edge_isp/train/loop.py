"""The trainer: one stage of one config, with checkpoints that resume to the same state.

Repeatability: all randomness of a step (light levels, noise, flips) comes from generators
seeded by ``(run.seed, rank, global step)``; the data order of an epoch is a function of
``(run.seed, epoch)`` (``DistributedSampler``); torch's global generator (dropout) is saved
in every checkpoint with numpy's and Python's. So a run resumed from a checkpoint takes the
same steps as one that was never stopped: on the CPU its parameters are bitwise equal.

Outputs in the run folder: ``last.pt`` (each epoch, every ``run.checkpoint_every`` steps,
and when ``run.max_steps`` stops the run), ``best.pt`` (best validation metric),
``config.toml`` (the resolved config) and ``history.json`` (per-epoch losses and metrics).
Only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from edge_isp.data.real_build import real_set_dir
from edge_isp.errors import EdgeIspError, InvalidInputError, MissingFileError
from edge_isp.fileio import write_bytes, write_json
from edge_isp.model.heads import DETECTOR_STRIDE
from edge_isp.model.registry import create_model, get_config
from edge_isp.train import distributed as D
from edge_isp.train.batches import apply_hflip, collate_classification, collate_detection, hflip_mask, to_float
from edge_isp.train.checkpoint import (
    RESUME_KEYS,
    load_checkpoint,
    load_submodule,
    require_keys,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from edge_isp.train.config import TrainConfig
from edge_isp.train.datasets import data_task, open_datasets, open_real_datasets
from edge_isp.train.qat import FakeQuant, calibrate_ranges, quantized_layers
from edge_isp.train.stages import Stage, StageModule, check_stage, seeded_generator

# Keys that may differ between a run and its resumption: they change how long it runs and
# how it reports, not the steps already taken.
_RESUMABLE_CHANGES = {"run.epochs", "run.max_steps", "run.progress", "run.checkpoint_every", "data.num_workers"}


class DivergedError(EdgeIspError, ArithmeticError):
    """The loss stopped being a finite number."""


@dataclasses.dataclass
class TrainResult:
    """What a run reached. ``finished``: all epochs done (not stopped by max_steps)."""

    out_dir: Path
    stage: str
    metric_name: str
    best_metric: float | None
    global_step: int
    epochs_completed: int
    finished: bool
    history: list[dict[str, Any]]


class _ResumableSampler(Sampler):
    """A DistributedSampler that can start an epoch part-way, after ``skip`` samples."""

    def __init__(self, inner: DistributedSampler) -> None:
        self.inner = inner
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.inner)[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _lr_factor(config: TrainConfig, steps_per_epoch: int):
    o = config.optim
    total = config.run.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        if o.schedule == "step":
            return o.gamma ** (step // (o.step_epochs * steps_per_epoch))
        progress = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _flat(config_dict: dict) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in config_dict.items() for k, v in values.items()}


def _check_image_size(hw: tuple[int, int], task: str, raw_scale: int = 1) -> None:
    """The raw needs whole Bayer tiles; the detector's feature pyramid needs multiples of 32
    (of the picture, the raw divided by ``raw_scale``)."""
    h, w = (int(v) for v in hw)
    multiple = (32 if task == "detection" else 2) * raw_scale
    if h % multiple or w % multiple:
        picture = f" (the raw of a {raw_scale}x model: data.size times {raw_scale})" if raw_scale > 1 else ""
        raise InvalidInputError(
            f"{task} training needs image sides that are multiples of {multiple} pixels{picture}, got {w}x{h}; "
            f"set data.size = [width, height] to resize them"
        )


class Trainer:
    """Set up everything for ``stage`` from ``config``; :meth:`fit` runs it.

    Args:
        stage: "isp", "head", "joint" or "baseline".
        config: the resolved config; ``run.out`` None writes to ``runs/STAGE-MODEL``.
        resume: continue from ``OUT/last.pt`` (its model, optimizer, schedule, generators, step);
            a finished run is completed where a kill left it short (``best.pt``, ``history.json``).
        force: start afresh in a folder that holds a run (its checkpoints are replaced); without
            it (or ``resume``) such a folder is refused.
    """

    def __init__(self, stage: str, config: TrainConfig, resume: bool = False, force: bool = False) -> None:
        if config.run.out is None:
            out = f"runs/{stage}-{config.model.name}"
            config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=out))
        self.config = config
        self.stage_name = stage
        self.out_dir = Path(config.run.out)
        last = self.out_dir / "last.pt"
        if not resume and not force and last.exists():
            raise InvalidInputError(
                f"{self.out_dir} already holds a run ({last}): continue it with --resume, start it again "
                f"with --force (its checkpoints are replaced), or give another folder with --out"
            )
        self.dist = D.setup_distributed(config.run.device)
        try:
            self._setup(resume)
        except BaseException:
            D.teardown_distributed(self.dist)
            raise
        if force and not resume and self.dist.is_main:
            # The old pair goes only now that the new run is set up: a bad config keeps it.
            for name in ("best.pt", "last.pt"):
                (self.out_dir / name).unlink(missing_ok=True)

    # -- setup ------------------------------------------------------------------------
    def _setup(self, resume: bool) -> None:
        cfg = self.config
        self.device = D.resolve_device(cfg.run.device, self.dist.local_rank)
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        D.seed_everything(cfg.run.seed + self.dist.rank)
        model_config = get_config(cfg.model.name)
        model_task, self.raw_scale = model_config.task, model_config.raw_scale
        self.spec = check_stage(self.stage_name, cfg.model.name, model_task)
        image_task = data_task(cfg.data, model_task)
        if cfg.data.root is not None and real_set_dir(cfg.data.root, image_task) is not None:
            real_task = "reconstruction" if model_task == "reconstruction" else model_task
            show = cfg.run.progress and self.dist.is_main
            train_ds, val_ds, class_names = open_real_datasets(
                cfg, real_task, image_task, show=show, raw_scale=self.raw_scale
            )
        else:
            if cfg.teacher.enabled:
                raise InvalidInputError(
                    "a [teacher] labels a real image set: data.root must hold one (edge-isp data build --real)"
                )
            train_ds, val_ds, class_names = open_datasets(cfg.data, image_task, raw_scale=self.raw_scale)
        self.train_ds = train_ds
        num_classes = cfg.model.num_classes or max(1, len(class_names))
        if model_task != "reconstruction" and num_classes < len(class_names):
            raise InvalidInputError(
                f"config key 'model.num_classes' is {num_classes}, but the data has {len(class_names)} classes"
            )
        self.class_names = class_names
        _check_image_size(train_ds[0][0].shape[-2:], model_task, self.raw_scale)
        self.model = create_model(
            cfg.model.name,
            num_classes=num_classes,
            pretrained_backbone=cfg.model.pretrained_backbone,
            width_mult=cfg.model.width_mult,
            dropout=cfg.model.dropout,
        )
        resume_path = self.out_dir / "last.pt"
        if resume and not resume_path.is_file():
            raise MissingFileError(f"nothing to resume: {resume_path} does not exist; run without --resume to start")
        if not resume:
            for part in ("isp", "head"):
                path = getattr(cfg.init, part)
                if path is not None:
                    if not Path(path).is_file():
                        raise MissingFileError(
                            f"init.{part} = {path!r}: no such checkpoint; train that stage first "
                            f"(edge-isp train {part} --config ...) or set init.{part}=none"
                        )
                    load_submodule(self.model, path, part)
        self.model.to(self.device)
        if cfg.run.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.spec.head_only:
            self.model.isp.requires_grad_(False)
        det_stride = getattr(self.model.head, "stride", DETECTOR_STRIDE)  # the classifier has none
        self.stage = Stage(
            self.spec, cfg, model_task, num_classes, self.device, raw_scale=self.raw_scale, det_stride=det_stride
        )
        self.module = StageModule(self.model, self.spec)
        self.train_module: torch.nn.Module = self.module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_module = DistributedDataParallel(self.module, device_ids=ids)
        self._make_loaders(train_ds, val_ds)
        self._make_optimizer()
        self.fake_quant: FakeQuant | None = None
        if cfg.quant.fake_quant and not resume:
            self._start_fake_quant(None)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.history: list[dict[str, Any]] = []
        self.epoch_losses: list[float] = []
        if resume:
            self._restore(resume_path)

    def _make_loaders(self, train_ds, val_ds) -> None:
        cfg, info = self.config, self.dist
        collate = collate_detection if train_ds.task == "detection" else collate_classification
        inner = DistributedSampler(
            train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.run.seed
        )
        self.sampler = _ResumableSampler(inner)
        self.batch_size = cfg.data.batch_size
        # A partial last batch is dropped when there is a full one (BatchNorm needs > 1 sample).
        self.drop_last = len(inner) >= self.batch_size
        per_epoch = len(inner) // self.batch_size if self.drop_last else 1
        self.steps_per_epoch = per_epoch
        common = {
            "batch_size": self.batch_size,
            "num_workers": cfg.data.num_workers,
            "collate_fn": collate,
            "pin_memory": self.device.type == "cuda",
            # The loader draws its workers' base seed from this, not from torch's global generator.
            "generator": torch.Generator().manual_seed(cfg.run.seed),
        }
        self.train_loader = DataLoader(train_ds, sampler=self.sampler, drop_last=self.drop_last, **common)
        self.val_loader = DataLoader(val_ds, shuffle=False, **common)
        self.num_train, self.num_val = len(train_ds), len(val_ds)

    def _start_fake_quant(self, scales: dict[str, float] | None) -> None:
        """Round the layers the INT8 export quantizes from now on (:mod:`edge_isp.train.qat`), at
        ``scales`` (a resumed run's) or at ranges calibrated on the first ``quant.calib_batches``
        training batches, each simulated at its own random light level (fixed seeds)."""
        q, seed = self.config.quant, self.config.run.seed
        if scales is None:
            count = min(q.calib_batches * self.batch_size, len(self.train_ds))
            indices = np.linspace(0, len(self.train_ds) - 1, count).round().astype(int).tolist()
            loader = DataLoader(
                torch.utils.data.Subset(self.train_ds, indices), batch_size=self.batch_size, shuffle=False,
                num_workers=0, collate_fn=self.train_loader.collate_fn,
            )  # fmt: skip
            batches = [
                self.stage.inputs(to_float(batch[0], self.device), seeded_generator(self.device, seed, 7, i))[0]
                for i, batch in enumerate(loader)
            ]
            was_training = self.module.training
            self.module.eval()
            try:
                names = quantized_layers(self.model, lambda: self.module(*batches[0]))
                scales = calibrate_ranges(
                    self.model, names, [lambda b=b: self.module(*b) for b in batches], percentile=q.percentile
                )
            finally:
                self.module.train(was_training)
            if self.dist.is_main:
                print(
                    f"fake quantization: {len(scales)} layers in int8, ranges from {len(batches)} batches "
                    f"({count} images) at the {q.percentile:g}th percentile",
                    file=sys.stderr,
                )
        self.fake_quant = FakeQuant(self.model, scales).attach()

    def _make_optimizer(self) -> None:
        o = self.config.optim
        isp_params = [p for p in self.model.isp.parameters() if p.requires_grad]
        isp_ids = {id(p) for p in isp_params}
        other = [p for p in self.model.parameters() if p.requires_grad and id(p) not in isp_ids]
        groups = [
            g
            for g in ({"params": other, "lr": o.lr}, {"params": isp_params, "lr": o.lr * o.isp_lr_scale})
            if g["params"]
        ]
        if o.name == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        elif o.name == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        self.params = [p for g in groups for p in g["params"]]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_factor(self.config, self.steps_per_epoch)
        )

    def _restore(self, path: Path) -> None:
        data = load_checkpoint(path, map_location=self.device)
        require_keys(data, path, RESUME_KEYS)
        if data.get("stage") != self.stage_name or data["model_config"]["name"] != self.config.model.name:
            raise InvalidInputError(
                f"{path} is stage {data.get('stage')!r} of model {data['model_config']['name']!r}; it cannot resume "
                f"stage {self.stage_name!r} of model {self.config.model.name!r} (use another run.out)"
            )
        before, now = _flat(data["train_config"]), _flat(self.config.to_dict())
        changed = sorted(
            k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in _RESUMABLE_CHANGES
        )
        if changed and self.dist.is_main:
            print(f"warning: resuming with changed config keys: {', '.join(changed)}", file=sys.stderr)
        self.model.load_state_dict(data["model"])
        if self.config.quant.fake_quant:
            if not data.get("fake_quant"):
                raise InvalidInputError(
                    f"{path} was trained without quant.fake_quant; resume it without, or start the fake-quantized "
                    "fine-tuning in another run.out from it (init.isp/init.head)"
                )
            self._start_fake_quant(data["fake_quant"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        states = data["rng"]
        set_rng_state(states[self.dist.rank] if len(states) == self.dist.world_size else states[0])
        self.epoch, self.step_in_epoch = data["epoch"], data["step_in_epoch"]
        self.global_step, self.best_metric, self.history = data["global_step"], data["best_metric"], data["history"]
        self.epoch_losses = list(data["epoch_losses"])
        self.best_step = data.get("best_step", _best_step(self.history, self.best_metric, data.get("metric_name")))
        if self.dist.is_main:
            self._complete(path)

    def _complete(self, last: Path) -> None:
        """Write what a kill between the files of one save left missing or stale: best.pt when
        last.pt holds the best weights, history.json and config.toml from last.pt."""
        best = self.out_dir / "best.pt"
        if self.best_step is not None and self.best_step == self.global_step:
            try:
                have = load_checkpoint(best).get("global_step") if best.is_file() else None
            except InvalidInputError:  # a best.pt damaged by other hands: written again
                have = None
            if have != self.best_step:
                # last.pt is that very state: the same bytes make best.pt.
                write_bytes(best, last.read_bytes())
                print(f"resume: best.pt restored from {last} (step {self.global_step})", file=sys.stderr)
        elif self.best_step is not None and not best.is_file():
            print(
                f"warning: {best} is missing and last.pt (step {self.global_step}) does not hold the best weights "
                f"(step {self.best_step}); best.pt is written again at the next improvement",
                file=sys.stderr,
            )
        self.config.save(self.out_dir / "config.toml")
        write_json(self.out_dir / "history.json", {"stage": self.stage_name, "epochs": self.history})

    # -- checkpoints --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "stage": self.stage_name,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "class_names": self.class_names,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "metric_name": self.stage.metric_name,
            "history": self.history,
            "epoch_losses": self.epoch_losses,
            "fake_quant": self.fake_quant.state_dict() if self.fake_quant is not None else None,
        }

    def save(self, best: bool = False) -> None:
        """Write last.pt (and best.pt), config.toml and history.json. Every rank must call it
        (the generator states are gathered); rank 0 writes."""
        states = D.gather_objects(self.dist, rng_state())
        if not self.dist.is_main:
            return
        state = {**self._state(), "rng": states}
        self.config.save(self.out_dir / "config.toml")
        # best.pt before last.pt: a kill between them leaves last.pt one save behind (a resume
        # redoes those steps and saves both again), never a last.pt that names a best.pt that
        # was not written.
        if best:
            save_checkpoint(self.out_dir / "best.pt", state)
        save_checkpoint(self.out_dir / "last.pt", state)
        write_json(self.out_dir / "history.json", {"stage": self.stage_name, "epochs": self.history})

    # -- training -----------------------------------------------------------------------
    def _train_step(self, batch: tuple) -> tuple[float, dict[str, float]]:
        seed, rank = self.config.run.seed, self.dist.rank
        images = batch[0]
        if self.config.data.hflip:
            flip = hflip_mask(images.shape[0], seeded_generator("cpu", seed, rank, self.global_step, 1))
            if self.stage.task == "detection":
                images, boxes = apply_hflip(images, flip, batch[1], batch[2], raw_scale=self.raw_scale)
                batch = (images, boxes, batch[2])
            else:
                images, _ = apply_hflip(images, flip)
                batch = (images, *batch[1:])
                if len(batch) == 3:  # a teacher's answers on (image, mirror): take the one it sees
                    batch = (images, batch[1], torch.where(flip.view(-1, 1), batch[2][:, 1], batch[2][:, 0]))
        elif self.stage.task != "detection" and len(batch) == 3:
            batch = (images, batch[1], batch[2][:, 0])
        clean = to_float(images, self.device)
        inputs, target = self.stage.inputs(clean, seeded_generator(self.device, seed, rank, self.global_step))
        prediction, image = self.train_module(*inputs)
        loss, parts = self.stage.loss(prediction, image, target, batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(
                f"the loss became {value} at step {self.global_step + 1} (epoch {self.epoch + 1}); "
                "lower optim.lr or optim.grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return value, {k: float(v) for k, v in parts.items()}

    def _train_mode(self) -> None:
        self.module.train()
        if self.config.optim.freeze_head_bn and self.model.head is not None:
            for layer in self.model.head.modules():
                if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                    layer.eval()

    def _validate(self) -> dict[str, Any] | None:
        result = None
        if self.dist.is_main:
            self.module.eval()
            result = self.stage.validate(self.module, self.val_loader, self.config.run.seed)
            self._train_mode()
        D.barrier(self.dist)
        return result

    def fit(self) -> TrainResult:
        """Train until ``run.epochs`` (or ``run.max_steps``) and return what was reached."""
        from tqdm import tqdm

        cfg = self.config
        show = cfg.run.progress and self.dist.is_main
        try:
            if self.dist.is_main:
                self._announce()
            self._train_mode()
            stopped = False
            while self.epoch < cfg.run.epochs and not stopped:
                epoch = self.epoch
                self.sampler.set_epoch(epoch, skip=self.step_in_epoch * self.batch_size)
                if hasattr(self.train_ds, "set_epoch"):  # real detection sets draw new crops each epoch
                    self.train_ds.set_epoch(epoch)
                started = time.perf_counter()
                if self.step_in_epoch == 0:
                    self.epoch_losses = []
                bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, disable=not show,
                           desc=f"{self.stage_name} {epoch + 1}/{cfg.run.epochs}", dynamic_ncols=True)  # fmt: skip
                for batch in self.train_loader:
                    loss, parts = self._train_step(batch)
                    self.epoch_losses.append(loss)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", **{k: f"{v:.3f}" for k, v in parts.items()})
                    every = cfg.run.checkpoint_every
                    stopped = cfg.run.max_steps is not None and self.global_step >= cfg.run.max_steps
                    if stopped and self.step_in_epoch < self.steps_per_epoch:
                        break
                    if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                        self.save()
                bar.close()
                if self.step_in_epoch < self.steps_per_epoch:
                    self.save()
                    break
                self._end_epoch(epoch, self.epoch_losses, time.perf_counter() - started)
        finally:
            D.teardown_distributed(self.dist)
        return TrainResult(
            self.out_dir,
            self.stage_name,
            self.stage.metric_name,
            self.best_metric,
            self.global_step,
            self.epoch,
            self.epoch >= cfg.run.epochs,
            self.history,
        )

    def _end_epoch(self, epoch: int, losses: list[float], seconds: float) -> None:
        val = self._validate()
        self.epoch, self.step_in_epoch = epoch + 1, 0
        improved = False
        if val is not None:
            improved = self.best_metric is None or val["value"] > self.best_metric
            if improved:
                self.best_metric, self.best_step = val["value"], self.global_step
            self.history.append({
                "epoch": epoch + 1,
                "step": self.global_step,
                "train_loss": sum(losses) / len(losses) if losses else None,
                "lr": self.scheduler.get_last_lr()[0],
                val["name"]: val["value"],
                "per_level": val["per_level"],
                "seconds": round(seconds, 3),
            })  # fmt: skip
            levels = ", ".join(f"{k} {v:.4g}" for k, v in val["per_level"].items())
            loss_text = f"{self.history[-1]['train_loss']:.4f}" if losses else "-"
            print(
                f"epoch {epoch + 1}/{self.config.run.epochs}: train loss {loss_text}, {val['name']} "
                f"{val['value']:.4g} ({levels}), best {self.best_metric:.4g}",
                file=sys.stderr,
            )
        self.save(best=improved)

    def _announce(self) -> None:
        params = sum(p.numel() for p in self.model.parameters())
        world = f" x {self.dist.world_size} processes" if self.dist.enabled else ""
        print(
            f"stage {self.stage_name}: model {self.config.model.name} ({params / 1e6:.2f} M parameters), "
            f"{self.num_train} train / {self.num_val} val images, {self.steps_per_epoch} steps per epoch, "
            f"on {self.device}{world} -> {self.out_dir}",
            file=sys.stderr,
        )


def _best_step(history: list[dict[str, Any]], best: float | None, metric: str | None) -> int | None:
    """The step of the epoch that reached ``best``, for checkpoints older than ``best_step``: the
    first that did, since a later epoch that only equals it is no improvement."""
    steps = [entry.get("step") for entry in history if best is not None and entry.get(metric) == best]
    return steps[0] if steps else None


def train(stage: str, config: TrainConfig, resume: bool = False, force: bool = False) -> TrainResult:
    """Run ``stage`` with ``config`` (see :class:`Trainer`)."""
    return Trainer(stage, config, resume=resume, force=force).fit()
