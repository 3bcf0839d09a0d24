"""Argument checks at the Python door of the ops: clear exceptions that name
the op and the argument, before anything reaches the native code."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import torch

from dbnet_fast.ops._native import _C, BUILD_INFO

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
# Bitmaps may be of any real dtype: the wide unsigned ones too (they have != 0).
BITMAP_DTYPES = (torch.bool, *INTEGER_DTYPES, torch.uint16, torch.uint32, torch.uint64,
                 *FLOAT_DTYPES)

# The one range rule of point coordinates, in pixels (1e7): far beyond any
# image, and well inside what the native geometry computes exactly (int32
# rasters, int64 cross products, Clipper's 2^30 range). It is the native
# code's kMaxCoordinate (csrc/core/postprocess.h), which checks it too.
MAX_COORDINATE: int = _C.max_coordinate
_MAX_COORDINATE_TEXT = f"{MAX_COORDINATE:.0e}".replace("+0", "")  # "1e7"


def check_tensor(op: str, name: str, value, *, meta: bool = False) -> torch.Tensor:
    """A tensor on a device the ops run on; ``meta``: meta tensors too (for the
    traced custom ops, whose fake kernels only compute shapes)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_cpu:  # (the attribute test is the cheap one: this runs per call)
        check_device(op, name, value.device, meta=meta)
    return value


def check_float_tensor(op: str, name: str, value, *, meta: bool = False) -> torch.Tensor:
    check_tensor(op, name, value, meta=meta)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} must be a float16, bfloat16, float32 or float64 tensor, "
            f"got {value.dtype}"
        )
    return value


def check_device(op: str, name: str, device: torch.device, *, meta: bool = False) -> None:
    """CPU and CUDA run kernels; meta tensors only trace shapes, so only the
    ops that torch.compile traces (``meta=True``) take them."""
    if device.type == "cuda":
        if not BUILD_INFO["with_cuda"]:
            raise RuntimeError(
                f"{op}: {name} is on {device}, but dbnet_fast was built without CUDA "
                f"kernels (build {BUILD_INFO['version']}); install a CUDA wheel or rebuild "
                "with DBNET_FAST_WITH_CUDA=1"
            )
    elif device.type == "meta" and not meta:
        raise ValueError(f"{op}: {name} is a meta tensor (no data); this op needs CPU or CUDA "
                         "tensors")
    elif device.type not in ("cpu", "meta"):
        raise ValueError(f"{op}: {name} is on {device}; only CPU and CUDA tensors are supported")


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


def check_coordinates(op: str, name: str | Callable[[int], str], points: torch.Tensor) -> None:
    """Point coordinates (a real tensor (..., 2)) must be finite and within
    MAX_COORDINATE in magnitude. ``name`` names the argument, or is a function
    of the first bad point's index that does (db_targets names the polygon)."""
    if not points.numel() or (not points.is_floating_point() and points.element_size() < 4):
        return  # (8- and 16-bit integers are in range, and 1e7 would wrap in their dtype)
    # Two comparisons rather than abs(): abs(INT64_MIN) is negative; NaN fails both.
    inside = (points >= -MAX_COORDINATE) & (points <= MAX_COORDINATE)
    if bool(inside.all()):
        return
    index = int((~inside).flatten().byte().argmax())
    value = points.flatten()[index].item()
    where = name if isinstance(name, str) else name(index // 2)
    if not math.isfinite(value):
        raise ValueError(f"{op}: {where} has a NaN or infinite coordinate ({value})")
    raise ValueError(f"{op}: {where} has a coordinate beyond {_MAX_COORDINATE_TEXT} pixels in "
                     f"magnitude ({value})")


def _interval(ge, gt, le, lt) -> str:
    low = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else None
    high = f"{le}]" if le is not None else f"{lt})" if lt is not None else None
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f">= {ge}" if ge is not None else f"> {gt}"
    return f"<= {le}" if le is not None else f"< {lt}"


def _check_bounds(op, name, value, ge, gt, le, lt) -> None:
    if ((ge is not None and not value >= ge) or (gt is not None and not value > gt)
            or (le is not None and not value <= le) or (lt is not None and not value < lt)):
        raise ValueError(f"{op}: {name} must be {_interval(ge, gt, le, lt)}, got {value}")


def check_finite_scalar(op: str, name: str, value, *, ge=None, gt=None, le=None, lt=None) -> float:
    """A finite real number (Python or NumPy, not a bool) as a float, optionally
    bounded: ``ge``/``gt`` below, ``le``/``lt`` above."""
    if type(value) is not float:  # (the common case first: db_boxes runs this per call)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # (np.bool_ is no Real)
            raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    _check_bounds(op, name, value, ge, gt, le, lt)
    return value


def check_int(op: str, name: str, value, *, ge=None, le=None) -> int:
    """An integer (Python or NumPy, not a bool) as an int, optionally bounded."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__} {value!r}")
        value = int(value)
    _check_bounds(op, name, value, ge, None, le, None)
    return value


def check_size(op: str, value, *, positive: bool, maximum: int | None = None) -> tuple[int, int]:
    """A (height, width) pair of ints (Python or NumPy), positive or non-negative,
    at most ``maximum``."""
    try:
        height, width = value
        height, width = check_int(op, "size", height), check_int(op, "size", width)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{op}: size must be a (height, width) pair of ints, got {value!r}") \
            from error
    low = 1 if positive else 0
    if not (low <= min(height, width) and (maximum is None or max(height, width) <= maximum)):
        limit = f" (and at most {maximum})" if maximum is not None else ""
        raise ValueError(f"{op}: size must be {'positive' if positive else 'non-negative'}{limit}, "
                         f"got {value!r}")
    return height, width
