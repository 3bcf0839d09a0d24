"""A DataLoader-friendly transform that builds DBNet's label maps in C++."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dbnet_fast.ops.targets import DISTANCES, DBTargets, db_targets


@dataclass
class DBTargetBuilder:
    """Builds the four label maps of one sample; picklable, for DataLoader workers.

    ``builder(polygons, size, ignore)`` returns :class:`~dbnet_fast.ops.DBTargets`
    of (H, W) float32 tensors (see :func:`dbnet_fast.ops.db_targets` for the
    semantics and options). Maps are built on one thread. ``threads`` sets
    torch's intra-op threads inside DataLoader worker processes (1 by default:
    the workers already run in parallel, and more threads per worker would
    oversubscribe the cores); the main process is never changed. None leaves
    the setting alone everywhere.
    """

    shrink_ratio: float = 0.4
    thresh_min: float = 0.3
    thresh_max: float = 0.7
    min_text_size: float = 8
    distance: str = "reference"
    threads: int | None = 1

    def __post_init__(self):
        if self.distance not in DISTANCES:
            raise ValueError(f"DBTargetBuilder: distance must be one of {DISTANCES}")
        if self.threads is not None and self.threads < 1:
            raise ValueError("DBTargetBuilder: threads must be >= 1 or None")

    def __call__(self, polygons, size, ignore=None) -> DBTargets:
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker and self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return db_targets(
            polygons,
            size,
            ignore,
            shrink_ratio=self.shrink_ratio,
            thresh_min=self.thresh_min,
            thresh_max=self.thresh_max,
            min_text_size=self.min_text_size,
            distance=self.distance,
        )
