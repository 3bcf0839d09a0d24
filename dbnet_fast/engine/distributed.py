"""Multi-process training with ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node N -m dbnet_fast.cli train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` reads them and joins the process group: ``gloo`` on the CPU,
``nccl`` on CUDA (one GPU per process, chosen by ``LOCAL_RANK``). Without
``WORLD_SIZE`` (or with 1) nothing is initialised and the helpers below act
on a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) logs and writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be an integer, "
                         f"got {value!r}") from error


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; ``"cpu"`` / ``"cuda"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():  # a user's choice: ValueError
        raise ValueError("--device cuda was asked for, but no CUDA device is available "
                         "(torch.cuda.is_available() is False); use --device cpu or auto")
    return torch.device(device)


def setup(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Joins the process group that ``torchrun`` describes in the environment (if any)
    and returns this process's :class:`DistContext`."""
    base = resolve_device(device)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext(device=base)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} "
                               "CUDA devices are visible")
        torch.cuda.set_device(local_rank)
        base = torch.device("cuda", local_rank)
    initialised_here = False
    if not dist.is_initialized():
        backend = "nccl" if base.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank,
                                world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        initialised_here = True
    return DistContext(rank, world_size, local_rank, base, initialised_here)


def cleanup(ctx: DistContext) -> None:
    """Leaves the process group if :func:`setup` joined it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """The sum over processes of a tensor (returned as a new tensor)."""
    if not ctx.distributed:
        return values.clone()
    out = values.detach().clone().to(_comm_device(ctx))
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def all_reduce_mean(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """The mean over processes of a float tensor (returned as a new tensor)."""
    return all_reduce_sum(ctx, values) / ctx.world_size


def any_process(ctx: DistContext, flag: bool) -> bool:
    """True on every process when ``flag`` is true on at least one (so all agree)."""
    if not ctx.distributed:
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=_comm_device(ctx))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(ctx: DistContext, value):
    """Rank 0's ``value`` on every process (a picklable Python object)."""
    if not ctx.distributed:
        return value
    box = [value if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=_comm_device(ctx))
    return box[0]


def _comm_device(ctx: DistContext) -> torch.device:
    return ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
