"""Single-process or ``torchrun`` (DistributedDataParallel) execution.

Under ``torchrun --nproc_per_node N`` the environment carries ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; the process group uses gloo on CPU and nccl on CUDA. The global batch is split
evenly over the ranks; DDP averages gradients, so one step equals the single-process step at the
same global batch (BatchNorm statistics excepted: they are per rank unless SyncBatchNorm, which
PyTorch supports on GPU only). Only rank 0 writes files.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a config error."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_name: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun; a plain single-process env otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world <= 1:
        return DistEnv(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d/%d joined the %s process group", rank, world, backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown(env: DistEnv) -> None:
    """Leave the process group (if this process joined one)."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(global_batch: int, env: DistEnv) -> int:
    """Batch size on each rank; the global batch must split evenly."""
    if global_batch % env.world_size:
        raise ConfigError(
            f"batch_size {global_batch} must be divisible by the number of processes "
            f"{env.world_size}"
        )
    return global_batch // env.world_size


def wrap_model(model: nn.Module, env: DistEnv, sync_batchnorm: bool) -> nn.Module:
    """DDP-wrap ``model`` under torchrun (SyncBatchNorm on GPU when asked); identity otherwise."""
    if not env.distributed:
        return model
    if sync_batchnorm and env.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def any_flag(flag: bool, env: DistEnv) -> bool:
    """True on every rank if ``flag`` is true on any rank (keeps ranks in lock-step)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0)


def mean_scalar(value: float, env: DistEnv) -> float:
    """Mean of a scalar over ranks (for logging)."""
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world_size


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
