"""Checks a repaired dbnet_fast wheel before it is published (scripts/build_wheels.sh).

    python scripts/check_wheel.py dist/dbnet_fast-0.1.0+cu130-cp311-cp311-manylinux_2_28_x86_64.whl

- the file name: version with the build tag (+cpu / +cuXYZ) that the recorded build
  (dbnet_fast/_build_config.py inside the wheel) gives, a manylinux platform tag;
- one extension dbnet_fast/_C*.so; no library grafted in by auditwheel (torch's, CUDA's
  and OpenMP's libraries come from torch; anything else needs a decision);
- a CPU wheel links no CUDA library; a CUDA wheel holds device code (cubin) for every
  architecture of its TORCH_CUDA_ARCH_LIST and PTX for each '+PTX' one (cuobjdump).

Run it with the build venv's Python so that cuobjdump is found next to triton when
neither CUOBJDUMP, PATH nor CUDA_HOME has one. Prints what it checked; exits 1 with
the reasons when something is wrong.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

CUDA_LIBRARIES = ("libcudart", "libc10_cuda", "libtorch_cuda", "libcuda.")


def read_build_config(wheel: zipfile.ZipFile) -> dict:
    try:
        text = wheel.read("dbnet_fast/_build_config.py").decode()
    except KeyError:
        raise SystemExit(
            "check_wheel: the wheel has no dbnet_fast/_build_config.py "
            "(setup.py writes it; the import-time torch check needs it)"
        ) from None
    return parse_build_config(text)


def parse_build_config(text: str) -> dict:
    """The NAME = literal lines of a generated _build_config.py (read, never run)."""
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
    }


def expected_device_code(arch_list: str) -> tuple[set[str], set[str]]:
    """TORCH_CUDA_ARCH_LIST -> (cubin architectures, PTX architectures), e.g.
    '8.0;9.0a;12.0+PTX' -> ({'sm_80', 'sm_90a', 'sm_120'}, {'sm_120'})."""
    cubins, ptx = set(), set()
    for item in arch_list.replace(" ", ";").split(";"):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)\.(\d+)([af]?)(\+PTX)?", item)
        if not match:
            raise SystemExit(
                f"check_wheel: cannot check the architecture {item!r} of "
                f"TORCH_CUDA_ARCH_LIST={arch_list!r}; give numbers such as 8.6 or 12.0+PTX"
            )
        name = f"sm_{match[1]}{match[2]}{match[3]}"
        cubins.add(name)
        if match[4]:
            ptx.add(name)
    return cubins, ptx


def find_cuobjdump() -> str:
    candidates = [os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(os.path.join(home, "bin", "cuobjdump"))
    triton = importlib.util.find_spec("triton")
    if triton and triton.origin:
        candidates.append(
            os.path.join(os.path.dirname(triton.origin), "backends", "nvidia", "bin", "cuobjdump")
        )
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(
        "check_wheel: no cuobjdump found; set CUOBJDUMP, put a CUDA toolkit's bin on "
        "PATH, or `pip install nvidia-cuda-cuobjdump` (triton ships one too)"
    )


def listed(cuobjdump: str, option: str, library: str, suffix: str) -> dict[str, set[str]]:
    """cuobjdump's listing as {object (one per .cu file): architectures}."""
    result = subprocess.run([cuobjdump, option, library], capture_output=True, text=True)
    if result.returncode != 0 and "does not contain" not in result.stderr + result.stdout:
        raise SystemExit(f"check_wheel: {cuobjdump} {option} failed:\n{result.stderr}")
    print(result.stdout.rstrip())
    found: dict[str, set[str]] = {}
    for obj, arch in re.findall(rf"file\s+\d+:\s+(\S+?)\.(sm_\d+[af]?)\.{suffix}\b", result.stdout):
        found.setdefault(obj, set()).add(arch)
    return found


def missing(
    found: dict[str, set[str]], objects: set[str], wanted: set[str], what: str
) -> list[str]:
    return [
        f"{obj}: no {what} for {sorted(wanted - found.get(obj, set()))}"
        for obj in sorted(objects)
        if wanted - found.get(obj, set())
    ]


def needed_libraries(library: str) -> list[str]:
    result = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", result.stdout)


def check_names(name: str, config: dict, names: list[str]) -> list[str]:
    """The file name's tags against the recorded build; what the archive holds."""
    problems = []
    match = re.fullmatch(r"dbnet_fast-([^-]+)-([^-]+)-([^-]+)-([^-]+)\.whl", name)
    if not match:
        return [f"{name} is not a dbnet_fast wheel file name"]
    version, _, _, platform = match.groups()
    tag = "cu" + config["CUDA_VERSION"].replace(".", "") if config["WITH_CUDA"] else "cpu"
    if config["VERSION"] != version:
        problems.append(f"file name version {version} is not the recorded {config['VERSION']}")
    if not version.endswith("+" + tag):
        problems.append(f"version {version} lacks the build tag +{tag}")
    if not re.fullmatch(r"manylinux_\d+_\d+_(x86_64|aarch64)", platform.split(".")[0]):
        problems.append(f"platform tag {platform} is not manylinux (was it repaired?)")
    extensions = [n for n in names if re.fullmatch(r"dbnet_fast/_C\.[^/]*\.so", n)]
    if len(extensions) != 1:
        problems.append(f"expected one dbnet_fast/_C*.so, found {extensions}")
    emulated = [n for n in names if n.startswith("dbnet_fast/_C_emulated")]
    if emulated:
        problems.append(f"the test-only emulated CUDA module is in the wheel: {emulated}")
    grafted = [n for n in names if re.match(r"dbnet_fast[^/]*\.libs/", n)]
    if grafted:
        problems.append(
            "auditwheel grafted libraries into the wheel (torch and CUDA provide theirs; "
            f"add an --exclude to scripts/build_wheels.sh or a dependency): {grafted}"
        )
    return problems


def check_library(library: str, config: dict) -> list[str]:
    """A CPU build links no CUDA library; a CUDA build holds, in every object (one per .cu
    file), a cubin for each architecture of its list and PTX for each '+PTX' one."""
    needed = needed_libraries(library)
    print(f"  NEEDED: {' '.join(needed)}")
    if not config["WITH_CUDA"]:
        cuda_needed = [n for n in needed if n.startswith(CUDA_LIBRARIES)]
        return [f"a CPU wheel that links CUDA libraries: {cuda_needed}"] if cuda_needed else []
    problems = []
    cuobjdump = find_cuobjdump()
    want_cubins, want_ptx = expected_device_code(config["CUDA_ARCHS"])
    print(f"  {cuobjdump} --list-elf / --list-ptx:")
    cubins = listed(cuobjdump, "--list-elf", library, "cubin")
    ptx = listed(cuobjdump, "--list-ptx", library, "ptx")
    objects = set(cubins) | set(ptx)
    if not objects:
        problems.append("a CUDA wheel without device code")
    if not want_cubins:
        problems.append("a CUDA build with an empty architecture list")
    problems += missing(cubins, objects, want_cubins, "device code (cubin)")
    problems += missing(ptx, objects, want_ptx, "PTX")
    print(f"  {len(objects)} CUDA objects ({', '.join(sorted(objects))}), each must hold")
    print(f"  cubins {sorted(want_cubins)} and PTX {sorted(want_ptx)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel")
    path = parser.parse_args().wheel
    name = os.path.basename(path)
    with zipfile.ZipFile(path) as wheel, tempfile.TemporaryDirectory() as folder:
        config = read_build_config(wheel)
        print(f"{name}\n  recorded build: {config}")
        names = wheel.namelist()
        problems = check_names(name, config, names)
        extensions = [n for n in names if re.fullmatch(r"dbnet_fast/_C\.[^/]*\.so", n)]
        if len(extensions) == 1:
            problems += check_library(wheel.extract(extensions[0], folder), config)

    if problems:
        print("check_wheel FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("  check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
