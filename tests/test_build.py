"""build_info, the import-time version check and the command line."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

import dbnet_fast
from dbnet_fast.ops import _native
from dbnet_fast.ops._native import (
    check_torch_matches,
    install_advice,
    load_extension,
    recorded_build,
)


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
    check_torch_matches(built, "2.14.0+cu130", "13.0")  # patch releases keep the ABI
    cpu_torch = r"CUDA 13\.0 kernels, but the installed torch is a CPU-only build"
    with pytest.raises(ImportError, match=cpu_torch):
        check_torch_matches(built, "2.14.1+cpu", None)


def test_refusal_names_the_wheel_to_install():
    built = {"version": "0.1.0+cu130", "torch_version": "2.14.1+cu130", "with_cuda": True,
             "cuda_version": "13.0"}
    with pytest.raises(ImportError) as refused:
        check_torch_matches(built, "2.13.0+cpu", None)
    message = str(refused.value)
    assert f"--extra-index-url {_native.WHEEL_INDEX_URL}/cpu/torch2.13/" in message
    assert "pip install --no-build-isolation" in message
    assert f"{_native.WHEEL_INDEX_URL}/cu128/torch2.9/" in install_advice("2.9.1+cu128", "12.8")


def test_recorded_build_is_the_loaded_extension():
    recorded = recorded_build()
    assert recorded is not None, "setup.py did not write dbnet_fast/_build_config.py"
    info = dbnet_fast.build_info()
    for key in ("version", "torch_version", "cuda_version", "with_cuda"):
        assert recorded[key] == info[key], key
    archs = [a for a in recorded["cuda_archs"].replace(" ", ";").split(";") if a]
    assert archs == info["cuda_archs"]


def test_mismatch_is_refused_before_the_extension_loads(monkeypatch):
    loads = []
    monkeypatch.setattr(sys, "meta_path", [_Refuse("dbnet_fast._C", "never loaded", loads)]
                        + sys.meta_path)
    monkeypatch.delitem(sys.modules, "dbnet_fast._C")
    monkeypatch.delattr(dbnet_fast, "_C")
    built = dict(recorded_build(), torch_version="2.11.0")
    with pytest.raises(ImportError, match=r"built for torch 2\.11\.0, but torch 2\.14\.1"):
        load_extension(built, "2.14.1+cu130", "13.0")
    assert loads == []


def test_undefined_symbol_is_explained(monkeypatch):
    symbol_error = ("dbnet_fast/_C.so: undefined symbol: "
                    "_ZN3c1017RegisterOperatorsD1Ev")
    loads = []
    monkeypatch.setattr(sys, "meta_path", [_Refuse("dbnet_fast._C", symbol_error, loads)]
                        + sys.meta_path)
    monkeypatch.delitem(sys.modules, "dbnet_fast._C")
    monkeypatch.delattr(dbnet_fast, "_C")
    with pytest.raises(ImportError, match="built for another torch or CUDA version") as refused:
        load_extension(recorded_build(), torch.__version__, torch.version.cuda)
    assert loads == ["dbnet_fast._C"]
    assert "undefined symbol" in str(refused.value) and "--extra-index-url" in str(refused.value)


class _Refuse:
    """A meta path finder that fails the import of one module with a given message."""

    def __init__(self, name, message, log):
        self.name, self.message, self.log = name, message, log

    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            self.log.append(name)
            raise ImportError(self.message)


def test_import_under_another_torch_gives_advice_not_a_linker_error():
    # A fresh interpreter whose torch claims another release: importing dbnet_fast must
    # fail with the advice, before the extension is loaded.
    code = ("import sys, torch; torch.__version__ = '2.11.0'; torch.version.cuda = '12.6'\n"
            "try:\n    import dbnet_fast\n"
            "except ImportError as error:\n"
            "    print(error)\n"
            "    print('loaded' if 'dbnet_fast._C' in sys.modules else 'not loaded')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "but torch 2.11.0 is installed" in result.stdout
    assert "/cu126/torch2.11/" in result.stdout
    assert result.stdout.strip().endswith("not loaded")


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dbnet_fast.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_info_prints_build_info():
    from dbnet_fast.ops import cpu_variant, cpu_variants

    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == dbnet_fast.build_info()["version"]
    assert info["installed_torch"] == torch.__version__
    assert info["cpu_variants"] == cpu_variants() and info["cpu_variants"][0] == "baseline"
    assert info["cpu_variant"] == cpu_variant() and cpu_variant() in cpu_variants()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    plain = run_cli("info")
    assert plain.returncode == 0 and "with_cuda" in plain.stdout
    assert re.search(rf"^cpu_variant +{cpu_variant()}$", plain.stdout, re.M), plain.stdout
    # a forced variant is what info reports; what the CPU can run stays the same
    forced = run_cli("info", "--json", env={**os.environ, "DBNET_FAST_CPU_VARIANT": "baseline"})
    assert forced.returncode == 0, forced.stderr
    forced = json.loads(forced.stdout)
    assert forced["cpu_variant"] == "baseline" and forced["cpu_variants"] == cpu_variants()


def test_cli_rejects_unknown_commands():
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
