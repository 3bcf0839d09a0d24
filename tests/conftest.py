import contextlib
import os

import pytest
import torch

from dbnet_fast.testing import emulated_cuda, emulation_unavailable


class Emulated(str):
    """The "device" of the CUDA kernels emulated on the host: CPU tensors ("cpu")
    whose ops run their CUDA launchers under dbnet_fast.testing.emulated_cuda()."""

    def __new__(cls):
        return super().__new__(cls, "cpu")


EMULATED = Emulated()
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
_WHY_NOT_EMULATED = emulation_unavailable()
EMULATION = pytest.mark.skipif(_WHY_NOT_EMULATED is not None, reason=str(_WHY_NOT_EMULATED))
# Where the CUDA kernels run: a GPU, or the host emulation (`pytest -k emulated`).
GPUS = [pytest.param("cuda", marks=[CUDA, pytest.mark.cuda]),
        pytest.param(EMULATED, id="emulated", marks=[EMULATION, pytest.mark.emulated])]
DEVICES = ["cpu", *GPUS]


def schedule_for(request) -> str | int:
    """The emulated schedule of a test: DBF_EMULATED_SCHEDULE ("raster",
    "reversed" or a seed) or a random seed, printed so a failure can be replayed."""
    value = os.environ.get("DBF_EMULATED_SCHEDULE") or str(int.from_bytes(os.urandom(4), "little"))
    schedule = value if value in ("raster", "reversed") else int(value)
    print(f"{request.node.nodeid}: emulated schedule {schedule} (DBF_EMULATED_SCHEDULE={value} replays it)")
    return schedule


def on(device, schedule: str | int = "raster"):
    """A context in which ops on `device` tensors run the CUDA kernels: the
    emulation for EMULATED, nothing to do for "cuda"."""
    return emulated_cuda(schedule) if isinstance(device, Emulated) else contextlib.nullcontext()


@pytest.fixture(autouse=True)
def _emulated_device(request):
    """Tests parametrised with device=EMULATED run whole under emulated_cuda()."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or not isinstance(callspec.params.get("device"), Emulated):
        yield
        return
    with emulated_cuda(schedule_for(request)):
        yield


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
