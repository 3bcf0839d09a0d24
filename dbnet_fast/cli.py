"""The ``dbnet-fast`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _info(args: argparse.Namespace) -> int:
    import torch

    from dbnet_fast import build_info

    info = build_info()
    info["installed_torch"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    info["cpu_threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _benchmarks_dir() -> Path | None:
    """benchmarks/ ships with the source tree, next to the package."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    return folder if (folder / "report.py").is_file() else None


def _bench(args: argparse.Namespace) -> int:
    folder = _benchmarks_dir()
    if folder is None:
        print(
            "dbnet-fast bench: the benchmarks ship with the source tree (benchmarks/ next to "
            "the dbnet_fast package); run it from a source checkout installed with `pip install "
            "--no-build-isolation -e .`",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, str(folder / "report.py"), *args.report_args]
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbnet-fast", description="Fast DBNet / DBNet++ scene-text detection."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="print how the native extension was built")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)

    # bench hands its options (--quick, --rounds, --device, -k, --json, --help)
    # to benchmarks/report.py, which owns them.
    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="run the op benchmarks against the reference implementations and print ratios "
        "(options: see `dbnet-fast bench --help`)",
    )
    bench.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.report_args = extra
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
