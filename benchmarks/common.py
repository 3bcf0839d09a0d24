"""Shared pieces of the benchmark suites: devices, timing rounds, metadata.

Each benchmark records `extra_info` that report.py reads: `op`, `variant`,
`role` ("ours", "baseline" or "memory limit") and `inner` (calls per timed
round; CUDA rounds run several calls and synchronise once).
"""

from __future__ import annotations

import os

import torch

from dbnet_fast.ops import cpu_variant


_compiled: dict = {}


def compiled(fn, **options):
    """torch.compile(fn, **options), made once per process and function."""
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn, **options)
    return _compiled[fn]


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def rounds() -> int:
    return int(os.environ.get("DBF_BENCH_ROUNDS", "15"))


def one_thread(fn):
    """fn run with torch's intra-op thread pool limited to one thread."""

    def call():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return call


def run(benchmark, fn, *, device: str, op: str, variant: str, role: str, group: str) -> None:
    """Time fn (calls per round: 1 on the CPU, 20 on CUDA with one sync per round)."""
    inner = 20 if device == "cuda" else 1

    def timed():
        for _ in range(inner):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()

    timed()  # warm-up: compilation, allocator, caches
    benchmark.group = group
    benchmark.extra_info.update(op=op, variant=variant, role=role, inner=inner, cpu_variant=cpu_variant(),
                                torch_cpu_capability=torch.backends.cpu.get_cpu_capability())
    benchmark.pedantic(timed, rounds=rounds(), warmup_rounds=1)
