"""Builds dbnet_fast._C, the one native extension (DESIGN.md section 4).

CUDA kernels are built when DBNET_FAST_WITH_CUDA=1, or by default when torch is
a CUDA build and a CUDA toolkit is found (never gated on a GPU being present).
TORCH_CUDA_ARCH_LIST defaults per CUDA version; MAX_JOBS to the core count.
Build with --no-build-isolation: the extension must match the installed torch.
"""

import glob
import os
import re
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))

DEFAULT_ARCHS = [  # (lowest CUDA version, architectures)
    ((13, 0), "7.5;8.0;8.6;9.0;10.0;12.0+PTX"),
    ((12, 8), "7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX"),
    ((11, 8), "6.0;7.0;7.5;8.0;8.6;9.0+PTX"),
]


def read_version():
    with open(os.path.join(ROOT, "dbnet_fast", "version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def is_toolkit_root(path):
    """A CUDA toolkit root holds the real nvcc and libcudart."""
    if not path:
        return False
    has_nvcc = os.path.isfile(os.path.join(path, "bin", "nvcc"))
    libs = glob.glob(os.path.join(path, "lib64", "libcudart.so*"))
    libs += glob.glob(os.path.join(path, "targets", "*", "lib", "libcudart.so*"))
    return has_nvcc and bool(libs)


def find_cuda_home():
    """The toolkit root. `nvcc` on PATH may be a wrapper script in /usr/local/bin,
    from which torch would guess a root without libcudart, so look for a real one."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    return next((c for c in candidates if is_toolkit_root(c)), None)


def env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    sys.exit(f"setup.py: {name} must be 0 or 1, got {os.environ[name]!r}")


try:
    import torch
except ImportError:
    sys.exit("setup.py: torch must be installed first; build with "
             "`pip install --no-build-isolation .` so the extension matches it")

cuda_home = find_cuda_home()
forced = env_flag("DBNET_FAST_WITH_CUDA")
with_cuda = forced if forced is not None else bool(torch.version.cuda and cuda_home)
if with_cuda:
    if not torch.version.cuda:
        sys.exit("setup.py: DBNET_FAST_WITH_CUDA=1 needs a CUDA build of torch")
    if not cuda_home:
        sys.exit("setup.py: DBNET_FAST_WITH_CUDA=1 but no CUDA toolkit was found; set CUDA_HOME")
    os.environ["CUDA_HOME"] = cuda_home  # read when cpp_extension is imported
    cuda_version = tuple(int(x) for x in torch.version.cuda.split(".")[:2])
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        archs = next((a for v, a in DEFAULT_ARCHS if cuda_version >= v), DEFAULT_ARCHS[-1][1])
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

cuda_tag = "cu" + torch.version.cuda.replace(".", "") if with_cuda else "cpu"
version = f"{read_version()}+{cuda_tag}"
archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else ""

sources = sorted(glob.glob("csrc/core/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
sources += ["csrc/tensor_checks.cpp", "csrc/bindings.cpp"]
define_macros = [
    ("DBF_VERSION", f'"{version}"'),
    ("DBF_TORCH_VERSION", f'"{torch.__version__}"'),
    ("DBF_CUDA_ARCHS", f'"{archs}"'),
]
# The C++ standard is the one torch asks for (cpp_extension adds it).
# -fno-trapping-math lets GCC turn the branch-free selects of the element math
# into vector blends, -fno-math-errno lets it vectorise sqrt (no errno path);
# OpenMP makes at::parallel_for use torch's thread pool.
cxx_flags = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-fopenmp", "-Wall", "-Wno-unknown-pragmas"]
extension_kwargs = dict(extra_link_args=["-fopenmp"])
if with_cuda:
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    define_macros += [("DBF_WITH_CUDA", None), ("DBF_CUDA_VERSION", f'"{torch.version.cuda}"')]
    extension_kwargs["extra_compile_args"] = {
        "cxx": cxx_flags,
        "nvcc": ["-O3", "-lineinfo"],
    }
    extension = CUDAExtension
else:
    extension_kwargs["extra_compile_args"] = {"cxx": cxx_flags}
    extension = CppExtension

setup(
    version=version,
    packages=find_packages(include=["dbnet_fast", "dbnet_fast.*"]),
    ext_modules=[
        extension("dbnet_fast._C", sources, define_macros=define_macros, **extension_kwargs)
    ],
    cmdclass={"build_ext": BuildExtension},
)
