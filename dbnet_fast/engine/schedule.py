"""The learning-rate schedule and the per-epoch sampler of the training loop."""

from __future__ import annotations

import math

import numpy as np
import torch


class PolySchedule:
    """Poly decay (MhLiao/DB): ``lr = base * (1 - progress) ** power``, with an optional
    linear warm-up over the first ``warmup_steps`` steps.

    ``progress`` is ``step / total_steps``; with a time budget it is the larger of
    that and ``elapsed / budget_s`` (so the rate reaches 0 when the budget ends
    even though the number of steps that fit is unknown). Call :meth:`step`
    before each optimizer step; it writes the rate into the optimizer's groups.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None,
                 budget_s: float | None = None, power: float = 0.9, warmup_steps: int = 0):
        if total_steps is None and budget_s is None:
            raise ValueError("PolySchedule: give total_steps, budget_s or both")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"PolySchedule: total_steps must be >= 1, got {total_steps}")
        if budget_s is not None and not budget_s > 0:
            raise ValueError(f"PolySchedule: budget_s must be > 0, got {budget_s}")
        if not math.isfinite(power) or power < 0:
            raise ValueError(f"PolySchedule: power must be a finite number >= 0, got {power}")
        if warmup_steps < 0:
            raise ValueError(f"PolySchedule: warmup_steps must be >= 0, got {warmup_steps}")
        self.optimizer = optimizer
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.total_steps = total_steps
        self.budget_s = budget_s
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        self.last_lr = list(self.base_lrs)

    def progress(self, step: int, elapsed: float = 0.0) -> float:
        """The fraction of training done, in [0, 1]."""
        done = 0.0
        if self.total_steps is not None:
            done = step / self.total_steps
        if self.budget_s is not None:
            done = max(done, elapsed / self.budget_s)
        return min(max(done, 0.0), 1.0)

    def factor(self, step: int, elapsed: float = 0.0) -> float:
        """The multiplier of the base rates before optimizer step ``step`` (0-based)."""
        value = (1.0 - self.progress(step, elapsed)) ** self.power
        if self.warmup_steps and step < self.warmup_steps:
            value *= (step + 1) / self.warmup_steps
        return value

    def step(self, step: int, elapsed: float = 0.0) -> float:
        """Sets the rates for optimizer step ``step``; returns the first group's rate."""
        f = self.factor(step, elapsed)
        self.last_lr = [base * f for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self.last_lr):
            group["lr"] = lr
        return self.last_lr[0]

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "total_steps": self.total_steps,
                "budget_s": self.budget_s, "power": self.power,
                "warmup_steps": self.warmup_steps, "last_lr": list(self.last_lr)}

    def load_state_dict(self, state: dict) -> None:
        """Restores the base rates, power and warm-up; the length (``total_steps``,
        ``budget_s``) stays as constructed, so a resumed run may be extended."""
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError("PolySchedule: the checkpoint has a different number of "
                             "parameter groups")
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.power = float(state["power"])
        self.warmup_steps = int(state["warmup_steps"])
        self.last_lr = [float(v) for v in state["last_lr"]]
        for group, lr in zip(self.optimizer.param_groups, self.last_lr):
            group["lr"] = lr


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x5EED]).generate_state(1)[0])


class EpochSampler(torch.utils.data.Sampler):
    """The sample indices one process reads in one epoch.

    The epoch's order is a permutation seeded by ``(seed, epoch)``; it is cut to
    whole global batches (``batch_size * world_size``; the remainder is dropped,
    so every process makes the same number of steps) and global batch ``s``
    gives process ``rank`` the slice ``[rank * batch_size, (rank + 1) * batch_size)``.
    The first ``start_batch`` batches are skipped (resuming mid-epoch).
    """

    def __init__(self, length: int, batch_size: int, seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1, start_batch: int = 0, shuffle: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"EpochSampler: rank {rank} out of range for world_size {world_size}")
        self.length, self.batch_size = int(length), int(batch_size)
        self.seed, self.epoch, self.shuffle = int(seed), int(epoch), bool(shuffle)
        self.rank, self.world_size = int(rank), int(world_size)
        self.steps = self.length // (self.batch_size * self.world_size)
        if not 0 <= start_batch <= self.steps:
            raise ValueError(f"EpochSampler: start_batch {start_batch} not in [0, {self.steps}]")
        self.start_batch = int(start_batch)

    def indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=generator)
        else:
            order = torch.arange(self.length)
        used = order[: self.steps * self.batch_size * self.world_size]
        mine = used.view(self.steps, self.world_size, self.batch_size)[:, self.rank]
        return mine[self.start_batch :].reshape(-1)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return (self.steps - self.start_batch) * self.batch_size


class ThreadTuner:
    """Chooses torch's intra-op thread count from measured step times.

    On a shared machine the best count changes with the load: when other
    processes hold cores, threads that wait for each other at every parallel
    region can make a step several times slower than one thread does (measured
    here on 2 cores, R18 at 192 x 192, batch 4, bf16: 0.15 s per step with 2
    threads when idle, 0.28 s with 1; under load about 1 s with 2 threads and
    still 0.28 s with 1).

    The tuner keeps the current count and tries each other candidate for
    ``probe`` steps (the first one a warm-up) every ``period`` steps, and also
    as soon as the current count's recent median step time grows beyond
    ``slowdown`` times the time it had when chosen. It switches when a
    candidate's median beats the current recent median by 10%.

    Use: ``torch.set_num_threads(tuner.next_threads())`` before a step,
    ``tuner.record(seconds)`` after it.
    """

    def __init__(self, candidates, period: int = 50, probe: int = 3, first_period: int = 5,
                 slowdown: float = 1.5, window: int = 5):
        self.candidates = sorted({int(c) for c in candidates if int(c) >= 1})
        if not self.candidates:
            raise ValueError("ThreadTuner: no candidate thread count >= 1")
        if probe < 2 or period < 1 or window < 1 or slowdown <= 1:
            raise ValueError("ThreadTuner: probe must be >= 2, period and window >= 1, "
                             "slowdown > 1")
        self.period, self.probe, self.slowdown, self.window = period, probe, slowdown, window
        self.current = self.candidates[-1]
        self.trying: int | None = None
        self.until_probe = int(first_period)
        self.reference: float | None = None  # the current count's step time when chosen
        self.recent: list[float] = []
        self.trial: list[float] = []
        self._queue: list[int] = []

    @staticmethod
    def _median(values) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    def _degraded(self) -> bool:
        return (self.reference is not None and len(self.recent) >= 3
                and self._median(self.recent[-3:]) > self.slowdown * self.reference)

    def next_threads(self) -> int:
        if self.trying is None and len(self.candidates) > 1 and len(self.recent) >= 2 and (
                self.until_probe <= 0 or self._degraded()):
            if not self._queue:
                self._queue = [c for c in self.candidates if c != self.current]
            self.trying, self.trial = self._queue.pop(0), []
        return self.trying if self.trying is not None else self.current

    def record(self, seconds: float) -> None:
        if self.trying is None:
            self.recent = (self.recent + [seconds])[-self.window:]
            if self.reference is None and len(self.recent) >= 2:
                self.reference = self._median(self.recent)
            self.until_probe -= 1
            return
        self.trial.append(seconds)
        if len(self.trial) < self.probe:
            return
        measured = self._median(self.trial[1:])
        baseline = self._median(self.recent[-3:])
        if measured < 0.9 * baseline:
            self.current, self.recent = self.trying, self.trial[1:]
            self.reference = measured
            self._queue = []
        else:
            self.reference = baseline
        self.trying, self.until_probe = None, self.period
