import os

import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])]


@pytest.fixture
def gen(request):
    """A fresh random generator per test; its seed is printed so a failure can be replayed
    (DBF_TEST_SEED=N pins it)."""
    seed = int(os.environ.get("DBF_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"{request.node.nodeid}: seed {seed}")
    return torch.Generator().manual_seed(seed)


def pytest_configure(config):
    # Nothing the tests read may lie beside the repository (../shared and the like).
    from pathlib import Path

    from dbnet_fast.testing import OutsideReadGuard

    config.pluginmanager.register(OutsideReadGuard(Path(__file__).resolve().parents[1]),
                                  "outside-read-guard")
