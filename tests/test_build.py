"""build_info, the import-time version check and the command line."""

import json
import subprocess
import sys

import pytest
import torch

import dbnet_fast
from dbnet_fast.ops._native import check_torch_matches


def test_build_info_describes_the_build():
    info = dbnet_fast.build_info()
    assert info["version"].startswith(dbnet_fast.__version__ + "+")
    assert info["torch_version"] == torch.__version__
    if info["with_cuda"]:
        assert info["version"].endswith("+cu" + info["cuda_version"].replace(".", ""))
        assert info["cuda_version"] == torch.version.cuda
        assert info["cuda_archs"] and all(a[0].isdigit() for a in info["cuda_archs"])
    else:
        assert info["version"].endswith("+cpu")
        assert info["cuda_version"] is None and info["cuda_archs"] == []


def test_other_torch_is_refused_with_advice():
    built = {"version": "0.1.0+cu130", "torch_version": "2.14.1+cu130", "with_cuda": True,
             "cuda_version": "13.0"}
    check_torch_matches(built, "2.14.1+cu130", "13.0")
    with pytest.raises(ImportError, match=r"built for torch 2\.14\.1\+cu130, but torch 2\.11\.0 is installed"):
        check_torch_matches(built, "2.11.0", "13.0")
    with pytest.raises(ImportError, match="CUDA 13.0 kernels, but the installed torch uses CUDA 12.8"):
        check_torch_matches(built, "2.14.1+cu128", "12.8")
    cpu_build = dict(built, version="0.1.0+cpu", with_cuda=False, cuda_version=None)
    check_torch_matches(cpu_build, "2.14.1+cu130", "13.0")  # CPU kernels run under any flavour


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dbnet_fast.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_info_prints_build_info():
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == dbnet_fast.build_info()["version"]
    assert info["installed_torch"] == torch.__version__
    plain = run_cli("info")
    assert plain.returncode == 0 and "with_cuda" in plain.stdout


def test_cli_rejects_unknown_commands():
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
