"""Helpers for the project's test suites (not needed to use the package).

:class:`OutsideReadGuard` is a pytest plugin (``tests/conftest.py`` and
``benchmarks/conftest.py`` register it) that fails a run which reads a file
beside the repository, such as ``../shared/data``: a user's clone has nothing
beside it, so a test that passes only with such a folder would fail for them.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
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
