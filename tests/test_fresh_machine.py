"""What a fresh clone on any x86-64 CPU relies on: the data the project carries,
a guard against reading beside the repository, precision chosen from the
hardware, and torchvision imported only where a backbone needs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dbnet_fast.assets import real_maps_path
from dbnet_fast.engine import precision
from dbnet_fast.testing import OutsideReadGuard

ROOT = Path(__file__).resolve().parents[1]


def test_real_maps_are_carried_inside_the_package():
    path = real_maps_path()
    assert ROOT in path.parents or "site-packages" in path.parts
    data = np.load(path)
    names = [str(n) for n in data["names"]]
    assert names == ["skimage_page", "networkx_labels", "synth_document", "synth_scene"]
    for name in names:
        prob = data[f"prob_{name}"]
        assert prob.dtype == np.float32 and prob.ndim == 2 and 0 <= prob.min() <= prob.max() <= 1
        assert data[f"boxes_{name}"].shape[1:] == (4, 2)
    assert (path.parent / "README.md").is_file()  # provenance and licences


def test_guard_refuses_a_sibling_of_the_repository(tmp_path):
    repo, shared = tmp_path / "repo", tmp_path / "shared"
    (repo / "data").mkdir(parents=True)
    shared.mkdir()
    guard = OutsideReadGuard(repo)
    assert shared.resolve() in guard.siblings
    guard.active = True
    guard._hook("open", (str(repo / "data" / "x.npz"), "r", 0))  # inside: fine
    guard._hook("open", ("/etc/hostname", "r", 0))               # elsewhere: fine
    with pytest.raises(PermissionError, match="beside the repository"):
        guard._hook("open", (str(repo / ".." / "shared" / "real_maps.npz"), "r", 0))
    with pytest.raises(PermissionError):
        guard._hook("os.listdir", (str(shared),))
    assert len(guard.violations) == 2


def test_guard_fails_a_pytest_run_that_reads_beside_the_clone(tmp_path):
    """End to end, as CI runs it: a suite that reads ../shared fails even where the
    test itself swallows the error."""
    repo = tmp_path / "clone"
    (repo / "tests").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data.txt").write_text("x")
    (repo / "tests" / "conftest.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from dbnet_fast.testing import OutsideReadGuard

        def pytest_configure(config):
            config.pluginmanager.register(OutsideReadGuard(Path(__file__).resolve().parents[1]))
    """))
    (repo / "tests" / "test_reads.py").write_text(textwrap.dedent("""
        from pathlib import Path

        def test_reads_outside():
            try:
                open(Path(__file__).resolve().parents[2] / "shared" / "data.txt").read()
            except OSError:
                pass
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(repo / "tests")], cwd=repo, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0, result.stdout
    assert "reads outside the repository" in result.stdout
    assert "shared" in result.stdout


# ------------------------------------------------------------------ precision


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    """This CPU as an AVX2-only one: no native bfloat16, a slow bfloat16 probe."""
    monkeypatch.setattr(precision, "cpu_features", lambda: {
        "capability": "AVX2", "avx512_bf16": False, "amx_bf16": False,
        "onednn_max_cpu_isa": None, "native_bf16": False})
    monkeypatch.setattr(precision, "bf16_speedup", lambda repeats=3: 0.05)
    monkeypatch.setattr(precision, "_warned", set())


def test_cpu_features_name_the_capability():
    features = precision.cpu_features()
    assert features["capability"] == torch.backends.cpu.get_cpu_capability()
    assert features["native_bf16"] == (features["avx512_bf16"] or features["amx_bf16"]) or \
        features["onednn_max_cpu_isa"] is not None
    assert features["capability"] in precision.describe_cpu(features)


def test_onednn_cap_below_bf16_means_no_native_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    features = precision.cpu_features()
    assert not features["native_bf16"]
    if features["avx512_bf16"]:
        assert "disabled by ONEDNN_MAX_CPU_ISA=AVX2" in precision.describe_cpu(features)


def test_amp_without_native_bf16_warns_once_and_runs_float32(cpu_without_bf16):
    with pytest.warns(RuntimeWarning, match=r"AVX2.*running in float32"):
        assert precision.resolve_amp("cpu", True, "detect --amp") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve_amp("cpu", True, "detect --amp") is False  # said once
        assert precision.resolve_amp("cpu", False, "detect --amp") is False
        assert precision.resolve_amp("cuda", True, "detect --amp") is True


def test_predictor_runs_float32_where_bf16_is_slow(cpu_without_bf16):
    from dbnet_fast.engine import build_model
    from dbnet_fast.predict import DBPredictor

    with pytest.warns(RuntimeWarning, match="running in float32"):
        predictor = DBPredictor(build_model("resnet18", inner_channels=32), "cpu", amp=True)
    assert predictor.amp is False


def test_train_amp_is_float32_where_bf16_is_slow(cpu_without_bf16, tmp_path):
    from dbnet_fast.engine.train import TrainConfig, train

    config = TrainConfig(image_size=64, batch_size=2, max_steps=1, synth_images=4,
                         eval_images=2, num_workers=0, amp=True, out=str(tmp_path),
                         progress=False, inner_channels=32)
    with pytest.warns(RuntimeWarning, match="train --amp"):
        summary = train(config)
    assert summary["precision"]["amp"] is False
    assert summary["precision"]["precision"] == "float32"
    assert "AVX2" in summary["precision"]["why"]


def test_auto_precision_skips_timing_bf16_where_a_probe_shows_it_slow(cpu_without_bf16):
    from dbnet_fast.engine.train import TrainConfig, choose_precision

    config = TrainConfig(max_steps=1, amp="auto")
    chosen = choose_precision(config, None, None, None, torch.device("cpu"))
    assert chosen["amp"] is False and "not timed" in chosen["why"]


def test_auto_precision_times_both_where_bf16_may_be_fast(monkeypatch):
    from dbnet_fast.engine.checkpoint import build_model
    from dbnet_fast.engine.data import train_dataset
    from dbnet_fast.engine.train import TrainConfig, choose_precision, parse_data_spec
    from dbnet_fast.model import DBLoss

    monkeypatch.setattr(precision, "bf16_speedup", lambda repeats=3: 1.0)
    config = TrainConfig(max_steps=1, amp="auto", image_size=64, batch_size=2)
    dataset = train_dataset(parse_data_spec("synthetic"), image_size=64, augment="none", seed=0,
                            synth_images=4)
    model = build_model("resnet18", inner_channels=32).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen = choose_precision(config, model, DBLoss(), dataset, torch.device("cpu"), steps=1)
    assert set(chosen["step_s"]) == {"float32", "bfloat16"}
    assert chosen["precision"] in ("float32", "bfloat16")
    assert chosen["amp"] == (chosen["precision"] == "bfloat16")
    # timed on a copy: the model to train is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_amp_setting_is_checked():
    from dbnet_fast.engine.train import TrainConfig

    with pytest.raises(ValueError, match="amp must be"):
        TrainConfig(max_steps=1, amp="yes")


# ------------------------------------------------------------------ torchvision


def test_torchvision_is_not_imported_by_the_package():
    code = ("import sys, dbnet_fast, dbnet_fast.model, dbnet_fast.predict, dbnet_fast.engine, "
            "dbnet_fast.postprocess\nprint('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    assert result.stdout.strip() == "False"


def test_backbone_without_torchvision_says_what_to_install():
    # torchvision.ops fails to load as it does beside a torch it was not built for
    code = textwrap.dedent("""
        import sys
        sys.modules["torchvision"] = None
        from dbnet_fast.engine import build_model
        model = build_model("ppocr-v4")   # needs no torchvision
        try:
            build_model("resnet18")
        except ImportError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    assert "need torchvision built for the installed torch" in result.stdout
    assert "pip install torchvision" in result.stdout
