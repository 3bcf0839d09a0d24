"""Loads the native extension ``dbnet_fast._C`` and checks that it matches torch.

This is the only module that imports ``_C``; the ops reach it through here.
"""

from __future__ import annotations

import torch


def _public(version: str) -> str:
    return version.split("+")[0]


def check_torch_matches(built: dict, torch_version: str, torch_cuda: str | None) -> None:
    """Raise ImportError when the extension was built for another torch or CUDA."""
    if _public(built["torch_version"]) != _public(torch_version):
        raise ImportError(
            f"dbnet_fast {built['version']} was built for torch {built['torch_version']}, "
            f"but torch {torch_version} is installed. Install the dbnet_fast wheel built for "
            f"torch {_public(torch_version)}, or rebuild from source with "
            "`pip install --no-build-isolation .`."
        )
    if built["with_cuda"] and built["cuda_version"] != torch_cuda:
        raise ImportError(
            f"dbnet_fast {built['version']} has CUDA {built['cuda_version']} kernels, but the "
            f"installed torch uses CUDA {torch_cuda}. Install the matching wheel "
            "(see README, 'Which wheel') or rebuild from source."
        )


try:
    from dbnet_fast import _C
except ImportError as error:
    raise ImportError(
        f"dbnet_fast's native extension could not be loaded with torch {torch.__version__} "
        f"({error}). It is usually built for another torch or CUDA version: install the "
        "matching wheel, or rebuild with `pip install --no-build-isolation -e .`."
    ) from error

BUILD_INFO: dict = dict(_C.build_info())
check_torch_matches(BUILD_INFO, torch.__version__, torch.version.cuda)


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
