import sys
from pathlib import Path

# The suites import their shared helpers as `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # Nothing the benchmarks read may lie beside the repository (../shared and the like).
    from dbnet_fast.testing import OutsideReadGuard

    config.pluginmanager.register(OutsideReadGuard(Path(__file__).resolve().parents[1]),
                                  "outside-read-guard")
