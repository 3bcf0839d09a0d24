"""Helpers for the project's test suites (not needed to use the package).

:class:`OutsideReadGuard` is a pytest plugin (``tests/conftest.py`` and
``benchmarks/conftest.py`` register it) that fails a run which reads a file
beside the repository, such as ``../shared/data``: a user's clone has nothing
beside it, so a test that passes only with such a folder would fail for them.

:func:`emulated_cuda` runs the CUDA kernels on the host (the test-only module
``dbnet_fast._C_emulated``), so that every CUDA test also runs without a GPU.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

_EVENTS = ("open", "os.listdir", "os.scandir", "glob.glob")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class OutsideReadGuard:
    """Refuses (and records) any file access below a sibling of ``root``, the
    repository folder: the folders next to it that exist when the guard starts,
    less the interpreter's own (a venv kept beside the clone), ``sys.path`` and
    the temporary directory. Paths that go nowhere near a sibling (the system,
    site-packages, ``/tmp``) are not affected."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        temp = Path(tempfile.gettempdir())
        allowed = {Path(p).resolve() for p in (
            sys.prefix, sys.base_prefix, sys.exec_prefix, temp, temp / f"pytest-of-{_user()}",
            *sysconfig.get_paths().values(), *sys.path) if p}
        parent = self.root.parent
        siblings = []
        if parent != parent.parent:  # a repository at / has no siblings to guard
            for entry in os.scandir(parent):
                path = Path(entry.path).resolve()
                if path != self.root and not any(path == a or path in a.parents for a in allowed):
                    siblings.append(path)
        self.siblings = tuple(siblings)
        self.violations: list[str] = []
        self.active = False

    def _outside(self, target) -> Path | None:
        if isinstance(target, int) or target is None:
            return None
        try:
            path = Path(os.fsdecode(target))
        except TypeError:
            return None
        path = Path(os.path.abspath(path))
        for sibling in self.siblings:
            if path == sibling or sibling in path.parents:
                return path
        return None

    def _hook(self, event: str, args) -> None:
        if not self.active or event not in _EVENTS or not args:
            return
        path = self._outside(args[0])
        if path is not None:
            message = (f"{event} of {path}: a path beside the repository ({self.root}), which a "
                       "user's clone does not have; carry the file in the repository")
            self.violations.append(message)
            raise PermissionError(message)

    # pytest hooks
    def pytest_configure(self, config) -> None:
        if self.siblings:
            sys.addaudithook(self._hook)  # cannot be removed: deactivated at the end
            self.active = True

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.active = False
        if self.violations:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_sep("=", "reads outside the repository", red=True)
                for line in dict.fromkeys(self.violations):
                    reporter.write_line(line)
            session.exitstatus = 1


# --- the CUDA kernels on the host (DESIGN.md section 6) ----------------------------

BUILD_EMULATED = ("build it with `DBNET_FAST_EMULATED_CUDA=1 pip install --no-build-isolation -e .` "
                  "(`make build` does)")


@dataclass(frozen=True)
class EmulatedDevice:
    """The fake device the emulated launchers see (cudaDeviceGetAttribute): its
    multiprocessor count sizes their grids, ``shared_optin`` is the most shared
    memory a block may opt in to (the default limit is 48 KB). H100 by default."""

    name: str = "H100"
    multiprocessors: int = 132
    shared_optin: int = 227 * 1024


def emulated_module():
    """``dbnet_fast._C_emulated``, checked to be built from this checkout's sources;
    ImportError (saying how to build it) otherwise."""
    from dbnet_fast.ops._native import recorded_build

    try:
        from dbnet_fast import _C_emulated
    except ImportError as error:
        raise ImportError(f"dbnet_fast._C_emulated (the host-emulated CUDA kernels, tests only) is not "
                          f"built: {BUILD_EMULATED}") from error
    built = recorded_build() or {}
    if _C_emulated.build_info()["sources"] != built.get("emulated_sources"):
        raise ImportError("dbnet_fast._C_emulated is stale (built from other sources than dbnet_fast._C): "
                          f"re{BUILD_EMULATED[1:]}")
    return _C_emulated


def emulation_unavailable() -> str | None:
    """Why the emulated CUDA tests cannot run (None when they can)."""
    try:
        emulated_module()
    except ImportError as error:
        return str(error)
    return None


_EMULATION_STACK: list = []  # the settings of the active emulated_cuda() contexts


@contextlib.contextmanager
def emulated_cuda(schedule: str | int = "raster", device: EmulatedDevice = EmulatedDevice()):
    """Runs the ops' CUDA launchers and kernels on the host: within the block,
    every public op given CPU tensors runs its CUDA path (compiled by the host
    compiler against an execution model of the GPU) instead of its CPU kernel.

    ``schedule`` is the order in which the threads of a block run between
    barriers and the blocks of a grid run: ``"raster"``, ``"reversed"`` or an
    int seed of a random order. Results that change with the schedule reveal a
    race. Errors the model detects (a barrier not all threads reach, a warp
    collective missing lanes, shared memory or launch limits exceeded, a
    launch without its check) raise RuntimeError naming the kernel and line.

    Yields a function that returns what the launches did since the last call:
    ``{"launches": [...], "copies": n, "syncs": n}``, each launch a dict with
    ``kernel`` (as written at the launch site), ``grid``, ``block``,
    ``dynamic_shared`` and ``static_shared`` (bytes).
    """
    module = emulated_module()
    if isinstance(schedule, bool) or not isinstance(schedule, (str, int)):
        raise TypeError(f"emulated_cuda: schedule must be 'raster', 'reversed' or an int seed, got {schedule!r}")
    if isinstance(schedule, str) and schedule not in ("raster", "reversed"):
        raise ValueError(f"emulated_cuda: schedule must be 'raster', 'reversed' or an int seed, got {schedule!r}")
    order, seed = (schedule, 0) if isinstance(schedule, str) else ("random", schedule % 2**64)
    settings = (order, seed, device.name, device.multiprocessors, device.shared_optin)

    from dbnet_fast.ops import _native

    previous = _native._C.emulated
    module.configure(*settings)
    module.take_record()
    _EMULATION_STACK.append(settings)
    _native._C.emulated = module
    try:
        yield module.take_record
    finally:
        _native._C.emulated = previous
        _EMULATION_STACK.pop()
        if _EMULATION_STACK:
            module.configure(*_EMULATION_STACK[-1])
