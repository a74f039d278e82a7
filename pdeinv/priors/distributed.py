"""Process-group setup for ``torchrun --nproc_per_node N pdeinv train ...``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training runs in
one process. The backend is ``nccl`` on CUDA and ``gloo`` on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pdeinv.errors import UsageError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a (possibly single-process) run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def check_device(device: str) -> None:
    """Raise a :class:`~pdeinv.errors.UsageError` unless ``device`` is ``cpu``, ``cuda`` or ``cuda:N`` and exists."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"training runs on 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {device!r} asked for, but CUDA is not available on this machine; use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )


def setup(device: str = "cpu") -> DistEnv:
    """Join the process group described by the ``torchrun`` environment (if any).

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` (one GPU per local rank) or an explicit device string.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world_size, local_rank, dev)


def teardown(env: DistEnv) -> None:
    """Leave the process group joined by :func:`setup`."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(env: DistEnv, obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without a process group)."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.distributed:
        dist.barrier()
