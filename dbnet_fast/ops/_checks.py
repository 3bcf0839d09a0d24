"""Argument checks at the Python door of the ops: clear exceptions that name
the argument, before anything reaches the native code."""

from __future__ import annotations

import functools
import math
import numbers

import torch

from dbnet_fast.ops._native import BUILD_INFO

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(op: str, name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_float_tensor(op: str, name: str, value) -> torch.Tensor:
    check_tensor(op, name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} must be a float16, bfloat16, float32 or float64 tensor, "
            f"got {value.dtype}"
        )
    check_device(op, name, value.device)
    return value


def as_float32(value: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous float32 view or copy (no new tensor when it is one)."""
    if value.requires_grad:
        value = value.detach()
    if value.dtype != torch.float32:
        value = value.float()
    return value.contiguous()


@functools.lru_cache(maxsize=64)
def map_sizes(batch: int, height: int, width: int) -> torch.Tensor:
    """(batch, 2) int64 of (height, width): the default destination sizes
    (cached, read only: rebuilding it would cost more than the rest of a call)."""
    return torch.tensor([[height, width]] * batch, dtype=torch.int64).reshape(batch, 2)


def check_device(op: str, name: str, device: torch.device) -> None:
    """CPU and CUDA run kernels; meta tensors only trace shapes."""
    if device.type == "cuda":
        if not BUILD_INFO["with_cuda"]:
            raise RuntimeError(
                f"{op}: {name} is on {device}, but dbnet_fast was built without CUDA "
                f"kernels (build {BUILD_INFO['version']}); install a CUDA wheel or rebuild "
                "with DBNET_FAST_WITH_CUDA=1"
            )
    elif device.type not in ("cpu", "meta"):
        raise ValueError(f"{op}: {name} is on {device}; only CPU and CUDA tensors are supported")


def check_same_layout(op: str, a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    """Same shape, dtype and device."""
    if a.shape != b.shape:
        raise ValueError(
            f"{op}: {a_name} and {b_name} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(
            f"{op}: {a_name} and {b_name} must have the same dtype, got {a.dtype} and {b.dtype}"
        )
    if a.device != b.device:
        raise ValueError(
            f"{op}: {a_name} and {b_name} must be on the same device, "
            f"got {a.device} and {b.device}"
        )


def check_finite_scalar(op: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    return value
