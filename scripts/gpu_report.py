"""The two helpers of scripts/gpu_check.sh.

``packages``: which Python packages the GPU machine lacks for the check. On the
machine itself (no --dry-run) it looks at what is installed there; in the dry
run it compares what the check needs with the GPU machine's package list as
/work/.library/device/KINDS.md gave it (read 2026-11-17; the GPU run itself
prints what is really missing), and says how to carry them.

``summary``: writes $OUT/summary.md from the step statuses and the JSON results
the steps have written so far (called after every step, so a call stopped at
its limit still returns the table of what it got).

    python scripts/gpu_report.py packages [--dry-run]
    python scripts/gpu_report.py summary --out DIR --status FILE [--packages FILE]
                                         [--vs-onnxruntime FILE]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# distribution: what the check loses without it
NEEDED = {
    "numpy": "everything", "tqdm": "dbnet_fast", "opencv-python-headless": "dbnet_fast",
    "shapely": "dbnet_fast.metrics, which dbnet_fast.engine imports (tests, training rows)",
    "pyclipper": "the reference label maps and post-processing (tests, label-map rows)",
    "rapidocr-onnxruntime": "PaddleOCR's DBPostProcess oracle and the PP-OCRv4 ONNX weights "
                            "(post-processing tests, DBPredictor rows)",
    "onnxruntime": "PaddleOCR's detector", "onnx": "loading the PP-OCRv4 weights",
    "pyyaml": "rapidocr", "pillow": "rapidocr", "pytest": "the tests", "hypothesis": "the tests",
    "pytest-benchmark": "the op and predictor rows", "torchvision": "the ResNet backbones",
}
# The nvidia-h200 image's packages (the subset NEEDED asks about), as KINDS.md lists them.
GPU_MACHINE_HAS = {"numpy", "tqdm", "opencv-python-headless", "onnxruntime", "onnx", "pyyaml",
                   "pillow", "pytest", "hypothesis", "pytest-benchmark", "torchvision"}
# installed with --no-deps, as the Makefile does (its own requirements pin other opencv builds)
PINNED = {"rapidocr-onnxruntime": "1.4.4"}
# Wanted for one row only: without it that row says so and the check goes on.
# onnxruntime-gpu 1.31.1 is the CUDA 13 build (its CUDA provider links libcublas.so.13,
# as the image's nvidia-* packages give it); its wheel is 256 MB (read 2026-12-02).
OPTIONAL = {"onnxruntime-gpu": ("1.31.1", "onnxruntime's CUDA provider, the peer of the "
                                "vs_onnxruntime step (the image's onnxruntime has none)")}
CARRY_LIMIT_MB = 64  # what one device run carries, work tree included
DOWNLOAD = ("python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 "
            "--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 "
            "--platform manylinux2014_x86_64 -d .whl")


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_packages(dry_run: bool, names=NEEDED) -> list[str]:
    if dry_run:
        return sorted(set(names) - GPU_MACHINE_HAS)
    return sorted(name for name in names if installed(name) is None)


def optional_report(dry_run: bool) -> list[str]:
    """Lines on the optional packages missing there: what each gives, how to fetch it."""
    missing = missing_packages(dry_run, OPTIONAL)
    if not missing:
        return []
    lines = ["Optional, missing there too (their rows say so and the check goes on):"]
    for name in missing:
        version, use = OPTIONAL[name]
        lines += [f"- {name}: {use}", f"    {DOWNLOAD} {name}=={version}"]
    lines.append(f"  (onnxruntime-gpu's wheel is 256 MB, over the {CARRY_LIMIT_MB} MiB one run "
                 "carries: until a run can take it, the vs_onnxruntime rows have our side only.)")
    return lines


def packages_report(dry_run: bool) -> str:
    missing = missing_packages(dry_run)
    where = "the GPU machine (its package list)" if dry_run else "this machine"
    if not missing:
        return "\n".join([f"Python packages: nothing the check needs is missing on {where}.",
                          *optional_report(dry_run)])
    lines = [f"Python packages missing on {where}:"]
    lines += [f"- {name}: {NEEDED[name]}" for name in missing]
    specs = [f"{name}=={PINNED.get(name) or installed(name) or 'VERSION'}" for name in missing]
    lines += ["Carry them as wheels (DESIGN.md section 6; the device tool's README):",
              "    echo /.whl/ >> .git/info/exclude",
              f"    {DOWNLOAD} {' '.join(specs)}",
              f"then call the device's run with carry [\".whl\"] ({CARRY_LIMIT_MB} MiB for the "
              "tree and wheels together); scripts/gpu_check.sh installs .whl/*.whl into "
              "/tmp/site itself."]
    return "\n".join(lines + optional_report(dry_run))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _bench_table(data: dict) -> list[str]:
    lines = [f"machine: {data['machine']}", "",
             "| group | variant | median ms | ours is x faster | share of copy bandwidth |",
             "|---|---|---:|---:|---:|"]
    for row in data["results"]:
        speedup = f"{row['speedup']:.2f}" if "speedup" in row else ""
        share = f"{row['bandwidth_share']:.0%}" if "bandwidth_share" in row else ""
        lines.append(f"| {row['group']} | {row['variant']} | {row['median_ms']:.3f} | {speedup} | {share} |")
    return lines


def _rate(cell: dict | None) -> str:
    return "" if cell is None else f"{cell['images_per_s']:.1f} ({cell['first_s']:.2f})"


def _onnxruntime_table(data: dict) -> list[str]:
    lines = [f"CPU capability {data['cpu_capability']}, {data['threads']} threads; images/s of "
             "the median pass over the set, (seconds of the first pass)", "",
             "| model | images | device | DBPredictor batch 1 | DBPredictor batch 16 "
             "| onnxruntime | onnxruntime batch 1 |", "|---|---|---|---:|---:|---|---:|"]
    for row in data["rows"]:
        lines.append(f"| {row['model']} | {row['count']} {row['images']} | {row['device']} "
                     f"| {_rate(row['dbnet_fast_batch1'])} | {_rate(row['dbnet_fast_batch16'])} "
                     f"| {row['onnxruntime']} | {_rate(row.get('onnxruntime_batch1'))} |")
    return lines


def summary(out: Path, status: Path, packages: Path | None,
            vs_onnxruntime: Path | None = None) -> str:
    lines = [f"# GPU check {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}", "",
             "| step | exit | seconds |", "|---|---|---:|"]
    for line in status.read_text().splitlines() if status.exists() else []:
        name, code, seconds = line.split("|")
        lines.append(f"| {name} | {code} | {seconds} |")
    tests = out / "tests.log"
    if tests.exists():
        last = [line for line in tests.read_text().splitlines() if line.strip()][-1:]
        lines += ["", f"CUDA tests: {last[0] if last else '(no output)'}"]
    compare = _read_json(out / "compare.json")
    if compare:
        lines += ["", f"## CUDA kernels on the device against their host emulation "
                      f"(reference: {compare['reference']})", "",
                  "| case | outputs | max abs diff | result |", "|---|---:|---:|---|"]
        lines += [f"| {r['case']} | {r['outputs']} | {r['max_abs_diff']:.3g} | {'ok' if r['ok'] else 'FAIL'} |"
                  for r in compare["rows"]]
    train = _read_json(out / "train.json")
    if train:  # (written only once the build imports: before it, this summary needs no torch)
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_train_cuda import markdown as training_tables

        lines += ["", "## Training", "", training_tables(train)]
    for name, title in (("ops", "Op rows"), ("predict", "DBPredictor end to end")):
        data = _read_json(out / f"{name}.json")
        if data:
            lines += ["", f"## {title}", "", *_bench_table(data)]
    data = _read_json(vs_onnxruntime) if vs_onnxruntime is not None else None
    if data:
        lines += ["", "## DBPredictor against onnxruntime on the same ONNX file", "",
                  *_onnxruntime_table(data)]
    if packages is not None and packages.exists():
        lines += ["", packages.read_text().strip()]
    text = "\n".join(lines) + "\n"
    tmp = out / "summary.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "summary.md")  # atomic: a call stopped now returns the last whole table
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("packages", help="which packages the GPU machine lacks")
    check.add_argument("--dry-run", action="store_true", help="judge from the GPU machine's list")
    write = commands.add_parser("summary", help="write OUT/summary.md")
    write.add_argument("--out", type=Path, required=True)
    write.add_argument("--status", type=Path, required=True, help="lines 'step|exit|seconds'")
    write.add_argument("--packages", type=Path, help="the packages report to append")
    write.add_argument("--vs-onnxruntime", type=Path,
                       help="the JSON of benchmarks/bench_vs_rapidocr.py --device cuda")
    args = parser.parse_args(argv)
    if args.command == "packages":
        print(packages_report(args.dry_run))
    else:
        summary(args.out, args.status, args.packages, args.vs_onnxruntime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
