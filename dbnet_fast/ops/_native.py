"""Loads the native extension ``dbnet_fast._C`` and checks that it matches torch.

This is the only module that imports ``_C``; the ops reach it through here, as
``_native._C``: a thin proxy that forwards to ``_C``, or, while
:func:`dbnet_fast.testing.emulated_cuda` is active, to the test-only module of
host-emulated CUDA kernels for the entry points it has.

The check runs BEFORE ``_C`` is imported: an extension built for another torch
or CUDA fails to load with an undefined symbol (or a missing libcudart), which
tells the user nothing. setup.py records what it built against in the generated
module ``dbnet_fast._build_config``; a mismatch raises an ImportError that names
the wheel to install. If loading ``_C`` still fails with a linker error, the same
advice is given.
"""

from __future__ import annotations

import torch

# The PEP 503 index that .github/workflows/wheels.yml publishes: one folder per
# CUDA flavour and torch release, e.g. <index>/cu130/torch2.14/ (see README).
WHEEL_INDEX_URL = "https://dbnet-fast.github.io/dbnet_fast/whl"

# What a failed load of an extension built for another torch or CUDA says.
_LINKER_ERRORS = ("undefined symbol", "cannot open shared object file", "version `")


def _public(version: str) -> str:
    return str(version).split("+")[0]


def _minor(version: str) -> str:
    """'2.14.1+cu130' -> '2.14'."""
    return ".".join(_public(version).split(".")[:2])


def flavour(cuda_version: str | None) -> str:
    """The wheel's build tag for a CUDA version: None -> 'cpu', '13.0' -> 'cu130'."""
    return "cu" + cuda_version.replace(".", "") if cuda_version else "cpu"


def install_advice(torch_version: str, torch_cuda: str | None) -> str:
    """How to get the dbnet_fast that matches the installed torch."""
    folder = f"{WHEEL_INDEX_URL}/{flavour(torch_cuda)}/torch{_minor(torch_version)}/"
    return (
        f"Install the dbnet_fast wheel for torch {_minor(torch_version)} "
        f"({'CPU' if torch_cuda is None else 'CUDA ' + torch_cuda}): "
        f"`pip install --force-reinstall --no-deps dbnet-fast --extra-index-url {folder}`, "
        "or build it from source against this torch: "
        "`pip install --no-build-isolation .` in a checkout (README: 'Installing a wheel / "
        "building from source')."
    )


def check_torch_matches(built: dict, torch_version: str, torch_cuda: str | None) -> None:
    """Raise ImportError when the extension was built for another torch or CUDA.

    ``built`` has ``version``, ``torch_version``, ``with_cuda`` and ``cuda_version`` as
    :func:`build_info` gives them. Torch must be the same release series (major.minor:
    patch releases keep the C++ ABI); a build with CUDA kernels also needs torch's CUDA
    version to be the build's. A CPU-only build runs under any flavour of its torch.
    """
    advice = install_advice(torch_version, torch_cuda)
    installed = f"torch {torch_version}"
    if _minor(built["torch_version"]) != _minor(torch_version):
        raise ImportError(
            f"dbnet_fast {built['version']} was built for torch {built['torch_version']}, "
            f"but {installed} is installed. {advice}"
        )
    if built["with_cuda"] and torch_cuda is None:
        raise ImportError(
            f"dbnet_fast {built['version']} has CUDA {built['cuda_version']} kernels, but the "
            f"installed torch is a CPU-only build ({installed}). {advice}"
        )
    if built["with_cuda"] and _minor(built["cuda_version"]) != _minor(torch_cuda):
        raise ImportError(
            f"dbnet_fast {built['version']} has CUDA {built['cuda_version']} kernels, but the "
            f"installed torch uses CUDA {torch_cuda} ({installed}). {advice}"
        )


def recorded_build() -> dict | None:
    """What setup.py recorded about the build (None for a build older than the record)."""
    try:
        from dbnet_fast import _build_config as config
    except ImportError:
        return None
    return {
        "version": config.VERSION,
        "torch_version": config.TORCH_VERSION,
        "cuda_version": config.CUDA_VERSION,
        "cuda_archs": config.CUDA_ARCHS,
        "with_cuda": config.WITH_CUDA,
        "emulated_sources": getattr(config, "EMULATED_SOURCES", None),
    }


def load_extension(built: dict | None, torch_version: str, torch_cuda: str | None):
    """Check ``built`` against torch, then import ``dbnet_fast._C`` and return it."""
    if built is not None:
        check_torch_matches(built, torch_version, torch_cuda)
    try:
        from dbnet_fast import _C
    except ImportError as error:
        if "DBNET_FAST_CPU_VARIANT" in str(error):
            raise  # the user's setting, not a broken build: its message says what is wrong
        what = f"dbnet_fast {built['version']}" if built else "dbnet_fast"
        if any(text in str(error) for text in _LINKER_ERRORS):
            raise ImportError(
                f"{what}'s native extension does not load with torch {torch_version} ({error}): "
                "it was built for another torch or CUDA version. "
                + install_advice(torch_version, torch_cuda)
            ) from error
        raise ImportError(
            f"{what}'s native extension could not be loaded with torch {torch_version} "
            f"({error}). If this is a source checkout, build it with "
            "`pip install --no-build-isolation -e .`; otherwise "
            + install_advice(torch_version, torch_cuda)
        ) from error
    check_torch_matches(dict(_C.build_info()), torch_version, torch_cuda)
    return _C


class _Routed:
    """The extension the ops call: attribute lookups go to ``real``, or to
    ``emulated`` (set by dbnet_fast.testing.emulated_cuda) for the names it has."""

    def __init__(self, real):
        self.real = real
        self.emulated = None

    def __getattr__(self, name):
        emulated = self.__dict__["emulated"]
        if emulated is not None and hasattr(emulated, name):
            return getattr(emulated, name)
        return getattr(self.__dict__["real"], name)


_C = _Routed(load_extension(recorded_build(), torch.__version__, torch.version.cuda))
BUILD_INFO: dict = dict(_C.real.build_info())


def build_info() -> dict:
    """How the native extension was built.

    Returns a dict with ``version`` (e.g. ``"0.1.0+cu130"``), ``torch_version``
    and ``cuda_version`` it was built against (``cuda_version`` is None for a
    CPU-only build), ``cuda_archs`` (list of architectures, e.g. ``["8.0"]``),
    ``with_cuda`` (whether CUDA kernels are in the build) and ``cxx_compiler``.
    """
    info = dict(BUILD_INFO)
    info["cuda_archs"] = [a for a in info["cuda_archs"].replace(" ", ";").split(";") if a]
    return info


def cpu_variant() -> str:
    """The SIMD variant the CPU kernels run: ``"avx512"`` (x86-64-v4), ``"avx2"``
    (x86-64-v3: AVX2 + FMA) or ``"baseline"``.

    Chosen once when the extension loads: the best that the CPU runs, or the one
    forced with ``DBNET_FAST_CPU_VARIANT=baseline|avx2|avx512`` (a variant the CPU
    cannot run makes the import fail with an ImportError that says so).
    """
    return _C.real.cpu_variants()[0]


def cpu_variants() -> list[str]:
    """The variants this CPU can run, lowest first, e.g. ``["baseline", "avx2"]``."""
    return list(_C.real.cpu_variants()[1])
