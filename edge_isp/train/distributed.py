"""Process setup for training: device choice, seeds, and torchrun's DistributedDataParallel.

``torchrun --nproc_per_node=N -m edge_isp train STAGE ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; when they are present the process group
is initialized from them (NCCL on CUDA, Gloo on the CPU) and each process drives the GPU of
its local rank. Without them training runs in one process.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from edge_isp.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the job. ``owns_group``: this code initialized the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's CUDA GPU if torch sees one, else the CPU; ``cuda`` -> the
    GPU of the local rank; ``cuda:N`` and ``cpu`` as given."""
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if not torch.cuda.is_available():
        raise InvalidInputError(
            f"run.device = {spec!r} but this torch ({torch.__version__}) sees no CUDA GPU; "
            "use run.device = 'cpu' or 'auto'"
        )
    index = local_rank if spec == "cuda" else int(spec.split(":")[1])
    if index >= torch.cuda.device_count():
        raise InvalidInputError(f"run.device = {spec!r}: there are only {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(f"cuda:{index}")


def setup_distributed(device_spec: str) -> DistInfo:
    """Join torchrun's process group if its environment variables are set."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return DistInfo()
    try:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0"))
    except ValueError:
        raise InvalidInputError(
            f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them), got "
            f"{env.get('RANK')!r}, {env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r}"
        ) from None
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, True, False)
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in env:
            raise InvalidInputError(f"RANK and WORLD_SIZE are set but {key} is not; start the job with torchrun")
    device = resolve_device(device_spec, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(rank, world, local, True, True)


def teardown_distributed(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (a list of one without a process group)."""
    if not info.enabled:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
