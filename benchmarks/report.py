"""Runs the benchmark suites and prints, per group, each variant's median time
and how many times faster our op is (variant / ours); for the memory-limit row,
the share of the copy's bandwidth that our op reaches (copy / ours).

    python benchmarks/report.py [--quick] [--device cpu|cuda] [-k EXPR] [--json PATH] [--cpu avx2] [--cpu-time]

--cpu avx2 measures an AVX2-only CPU (no AVX-512) on an AVX-512 one: our kernels'
avx2 variant (DBNET_FAST_CPU_VARIANT) against references limited the same way
(torch's ATen and oneDNN, NumPy's and OpenCV's own dispatch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STABLE_HEAP = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def avx2_environment() -> dict[str, str]:
    """Settings that make every library on an AVX-512 CPU run as on one with AVX2 only."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    numpy_avx512 = [name for name in __cpu_dispatch__ if "AVX512" in name or name == "X86_V4"]
    return {
        "DBNET_FAST_CPU_VARIANT": "avx2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": " ".join(numpy_avx512),
        "OPENCV_CPU_DISABLE": "AVX512-SKX",
    }


def run_suites(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.json"
        command = [sys.executable, "-m", "pytest", str(HERE), "-q", f"--benchmark-json={raw}"]
        if args.cpu_time:
            command.append("--benchmark-timer=time.process_time")
        selectors = [s for s in (args.k, args.device) if s]
        if selectors:
            command += ["-k", " and ".join(f"({s})" for s in selectors)]
        env = dict(os.environ, DBF_BENCH_ROUNDS=str(args.rounds or (5 if args.quick else 30)))
        # glibc otherwise hands large freed blocks back to the kernel and then
        # page-faults them in again on the next allocation, which adds a
        # millisecond of noise per call that depends on heap history, not on the
        # code measured. Keeping them (up to 32 MiB blocks) applies to every variant.
        env.setdefault("GLIBC_TUNABLES", STABLE_HEAP)
        code = subprocess.call(command, env=env, cwd=HERE)
        if code != 0 or not raw.exists():
            sys.exit(f"report.py: the benchmark run failed (pytest exit code {code})")
        return json.loads(raw.read_text())


def summarise(raw: dict) -> list[dict]:
    groups: dict[str, dict] = {}
    for bench in raw["benchmarks"]:
        info = bench["extra_info"]
        median = bench["stats"]["median"] / info.get("inner", 1)
        groups.setdefault(bench["group"], {})[info["variant"]] = (info["role"], median)
    summary = []
    for group, rows in groups.items():
        ours = next((m for role, m in rows.values() if role == "ours"), None)
        for variant, (role, median) in rows.items():
            entry = {"group": group, "variant": variant, "role": role, "median_ms": median * 1e3}
            if ours and role == "baseline":
                entry["speedup"] = median / ours
            if ours and role == "memory limit":
                entry["bandwidth_share"] = median / ours
            summary.append(entry)
    return summary


def machine_description() -> str:
    """The CPU the figures come from (torch's dispatched capability and bfloat16
    support, cores, threads) and the GPU if any: quoted beside every figure."""
    import os
    import platform

    import torch

    from dbnet_fast.engine.precision import describe_cpu

    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from dbnet_fast.ops import cpu_variant

    text = (f"{name}; torch {describe_cpu()}; dbnet_fast kernels {cpu_variant()}; {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads")
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text


def print_table(summary: list[dict]) -> None:
    print("\n| group | variant | median ms | ours is x faster | share of copy bandwidth |")
    print("|---|---|---:|---:|---:|")
    for row in summary:
        speedup = f"{row['speedup']:.2f}" if "speedup" in row else ""
        share = f"{row['bandwidth_share']:.0%}" if "bandwidth_share" in row else ""
        print(f"| {row['group']} | {row['variant']} | {row['median_ms']:.3f} | {speedup} | {share} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds per benchmark (default 30)")
    parser.add_argument("--rounds", type=int, help="timed rounds per benchmark")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="only this device")
    parser.add_argument("-k", help="pytest -k expression selecting benchmarks")
    parser.add_argument("--json", type=Path, default=Path("bench-results/bench.json"),
                        help="where to write the summary (default: %(default)s)")
    parser.add_argument("--cpu", choices=["avx2"], help="run as on a CPU without AVX-512 (see above)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the process's CPU time, not wall time (on a busy machine; CPU only)")
    args = parser.parse_args(argv)
    if args.cpu == "avx2":
        os.environ.update(avx2_environment())  # before torch loads, here and in the suites
    summary = summarise(run_suites(args))
    machine = machine_description()
    print(f"\nmachine: {machine}")
    print_table(summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": machine, "results": summary}, indent=2))
    tmp.replace(args.json)  # atomic
    print(f"\nsummary written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
