"""Lays out dbnet_fast wheels as PEP 503 "simple" indexes, one per CUDA flavour and
torch release (.github/workflows/wheels.yml publishes the result):

    python scripts/make_index.py --out site/whl dist/*.whl

    site/whl/index.html                                  the list of indexes
    site/whl/cu130/torch2.14/index.html                  an index: one project
    site/whl/cu130/torch2.14/dbnet-fast/index.html       its wheels, with sha256
    site/whl/cu130/torch2.14/dbnet-fast/dbnet_fast-0.1.0+cu130-cp311-...whl

Users install with `pip install dbnet-fast --extra-index-url <url>/cu130/torch2.14/`.
Each wheel's folder comes from the build it records (dbnet_fast/_build_config.py
inside it), so a wheel cannot land in the wrong index. Wheels already under --out
stay listed (the folder can be the published site, grown release by release); the
pages are written anew each run.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import html
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

PROJECT = "dbnet-fast"  # the PEP 503 normalised name of dbnet_fast


def index_folder(wheel: Path) -> str:
    """'cu130/torch2.14' for a wheel built with CUDA 13.0 against torch 2.14.1."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            text = archive.read("dbnet_fast/_build_config.py").decode()
        except KeyError:
            raise SystemExit(
                f"make_index: {wheel} records no build (dbnet_fast/_build_config.py)"
            ) from None
    config = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
    }
    flavour = "cu" + config["CUDA_VERSION"].replace(".", "") if config["WITH_CUDA"] else "cpu"
    torch_minor = ".".join(config["TORCH_VERSION"].split("+")[0].split(".")[:2])
    return f"{flavour}/torch{torch_minor}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_page(path: Path, title: str, links: list[tuple[str, str]]) -> None:
    """An HTML page of links, written atomically."""
    body = "\n".join(
        f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br/>' for href, text in links
    )
    page = (
        f'<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{html.escape(title)}</title></head>\n  <body>\n    <h1>{html.escape(title)}</h1>\n"
        f"{body}\n  </body>\n</html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(page)
    os.replace(f.name, path)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="the index root (created if missing)"
    )
    parser.add_argument("wheels", nargs="*", type=Path, help="wheels to add")
    args = parser.parse_args()

    for wheel in args.wheels:
        if not re.fullmatch(r"dbnet_fast-[^-]+-[^-]+-[^-]+-[^-]+\.whl", wheel.name):
            raise SystemExit(f"make_index: {wheel} is not a dbnet_fast wheel")
        folder = args.out / index_folder(wheel) / PROJECT
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, folder / wheel.name)
        print(f"{index_folder(wheel)}/{PROJECT}/{wheel.name}")

    indexes = sorted(p.parent for p in args.out.glob(f"*/torch*/{PROJECT}"))
    for index in indexes:
        wheels = sorted((index / PROJECT).glob("dbnet_fast-*.whl"))
        write_page(
            index / PROJECT / "index.html",
            f"Links for {PROJECT}",
            [(f"{quote(w.name)}#sha256={sha256(w)}", w.name) for w in wheels],
        )
        write_page(index / "index.html", "Simple index", [(f"{PROJECT}/", PROJECT)])
    write_page(
        args.out / "index.html",
        "dbnet_fast wheels: pip install dbnet-fast --extra-index-url <folder>",
        [
            (f"{p.relative_to(args.out).as_posix()}/", p.relative_to(args.out).as_posix())
            for p in indexes
        ],
    )
    print(f"{len(indexes)} index(es) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
