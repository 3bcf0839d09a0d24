"""What of scripts/gpu_check.sh runs without a GPU: its syntax, the comparison
script in its dry run (the emulated kernels against the CPU's), the packages the
GPU machine must be given, the summary of a run stopped half way, the
DBPredictor-against-onnxruntime table and its peer's missing provider, and the
training benchmark's CUDA-graph section on the emulated kernels. CI runs the
whole rehearsal, `scripts/gpu_check.sh --dry-run`, as a step of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EMULATION

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_train_cuda  # noqa: E402
import gpu_report  # noqa: E402


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")], check=True)


def test_gpu_check_refuses_unknown_options():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dryrun"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "usage: scripts/gpu_check.sh [--dry-run]" in done.stderr


@EMULATION
@pytest.mark.emulated
def test_compare_emulated_dry_run(tmp_path):
    out = tmp_path / "compare.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_emulated.py"), "--reference", "cpu",
                           "--json", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {row["case"] for row in rows} >= {"db_binarize float32", "db_loss float32", "db_targets",
                                             "db_boxes real maps"}
    assert all(row["ok"] for row in rows) and "| db_targets | 4 |" in done.stdout


def test_packages_the_gpu_machine_lacks_and_how_to_carry_them():
    report = gpu_report.packages_report(dry_run=True)
    missing = gpu_report.missing_packages(dry_run=True)
    assert missing == ["pyclipper", "rapidocr-onnxruntime", "shapely"]
    assert "rapidocr-onnxruntime==1.4.4" in report  # the Makefile's pin, installed with --no-deps
    assert "--python-version 3.12" in report and "-d .whl" in report and 'carry [".whl"]' in report
    assert "torchvision" not in report  # the machine has it
    # optional: the vs_onnxruntime step's peer, named with its download and its size
    assert gpu_report.missing_packages(dry_run=True, names=gpu_report.OPTIONAL) == \
        ["onnxruntime-gpu"]
    assert "-d .whl onnxruntime-gpu==1.31.1" in report and "256 MB, over the 64 MiB" in report


def test_summary_of_a_run_stopped_half_way(tmp_path):
    status = tmp_path / "status"
    status.write_text("packages|0|1\nbuild|0|95\ntests|1|40\ncompare|124 (stopped at the time limit)|300\n")
    (tmp_path / "tests.log").write_text("...\n1 failed, 40 passed, 3 skipped in 30.0s\n")
    (tmp_path / "train.json").write_text("{not json: written when the run was stopped")
    text = gpu_report.summary(tmp_path, status, None)
    assert text == (tmp_path / "summary.md").read_text()
    assert "| compare | 124 (stopped at the time limit) | 300 |" in text
    assert "CUDA tests: 1 failed, 40 passed, 3 skipped in 30.0s" in text
    assert "## Training" not in text and not list(tmp_path.glob("*.tmp"))


def test_summary_shows_the_onnxruntime_table_with_or_without_its_peer(tmp_path):
    status = tmp_path / "status"
    status.write_text("vs_onnxruntime|0|60\n")
    rate = {"first_s": 1.5, "images_per_s": 40.25}
    ours = {"dbnet_fast_batch1": rate, "dbnet_fast_batch16": rate}
    rows = [{"model": "ppocr-v4", "images": "960x960", "count": 16, "device": "NVIDIA H200",
             "onnxruntime": "CUDAExecutionProvider", **ours,
             "onnxruntime_batch1": {"first_s": 9.0, "images_per_s": 20}},
            {"model": "dbnet-r18", "images": "mixed", "count": 16, "device": "NVIDIA H200",
             "onnxruntime": "CUDAExecutionProvider not in onnxruntime 1.30.0 (onnxruntime-gpu "
                            "not installed)", **ours}]
    vs = tmp_path / "vs_onnxruntime.json"
    vs.write_text(json.dumps({"cpu_capability": "AVX512", "threads": 16, "rows": rows}))
    text = gpu_report.summary(tmp_path, status, None, vs)
    assert ("| ppocr-v4 | 16 960x960 | NVIDIA H200 | 40.2 (1.50) | 40.2 (1.50) "
            "| CUDAExecutionProvider | 20.0 (9.00) |") in text
    assert ("| dbnet-r18 | 16 mixed | NVIDIA H200 | 40.2 (1.50) | 40.2 (1.50) "
            "| CUDAExecutionProvider not in onnxruntime 1.30.0 (onnxruntime-gpu not installed) "
            "|  |") in text
    vs.write_text('{"rows": [')  # stopped while writing: the table is left out, nothing fails
    assert "against onnxruntime" not in gpu_report.summary(tmp_path, status, None, vs)


def test_onnxruntime_peer_reports_a_provider_that_cannot_run(tmp_path, monkeypatch):
    """No CUDA provider, or one that is listed but falls back to the CPU: the row
    says so (DBPredictor's rows are still measured), never CPU figures as CUDA's."""
    bench = pytest.importorskip("bench_vs_rapidocr")
    from dbnet_fast.model.paddle import is_installed

    if not is_installed("ppocr-v4"):
        pytest.skip("PP-OCRv4's ONNX file is not installed")
    if bench.CUDA_EP in bench.ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    peer, why = bench.onnxruntime_peer("ppocr-v4", str(tmp_path), bench.CUDA_EP)
    assert peer is None and why.startswith("CUDAExecutionProvider not in onnxruntime")
    monkeypatch.setattr(bench.ort, "get_available_providers",
                        lambda: [bench.CUDA_EP, bench.CPU_EP])  # listed, cannot load
    peer, why = bench.onnxruntime_peer("ppocr-v4", str(tmp_path), bench.CUDA_EP)
    assert peer is None and why == ("CUDAExecutionProvider did not load; the session fell back "
                                    "to CPUExecutionProvider")
    peer, why = bench.onnxruntime_peer("ppocr-v4", str(tmp_path), bench.CPU_EP)
    assert why is None and peer.provider == bench.CPU_EP


def test_training_tables_show_ratios_shares_and_errors():
    data = {"machine": "test CPU", "device": "cuda", "emulated": False,
            "sizes": {"size": 640, "batch": 16, "warmup": 3, "steps": 10, "workers": 15},
            "train": [
                {"model": "DBNet-R18", "precision": "float32", "loss": bench_train_cuda.FUSED,
                 "ms_per_step": 100.0, "images_per_s": 160.0, "loss_ms": 5.0, "loss_share": 0.05},
                {"model": "DBNet-R18", "precision": "float32", "loss": bench_train_cuda.REFERENCE,
                 "ms_per_step": 125.0, "images_per_s": 128.0, "loss_ms": 30.0, "loss_share": 0.24},
                {"model": "DBNet++ R50", "precision": "float32", "loss": bench_train_cuda.FUSED,
                 "error": "OutOfMemoryError: CUDA out of memory"}],
            "labels": [], "graph": [], "errors": []}
    text = bench_train_cuda.markdown(data)
    assert "| DBNet-R18 | float32 | db_loss (fused) | 100 | 160.0 | 1.25 | 5.00 | 5.0% |" in text
    assert "| DBNet++ R50 | float32 | db_loss (fused) | OutOfMemoryError: CUDA out of memory |" in text


@EMULATION
@pytest.mark.emulated
def test_graph_section_on_the_emulated_kernels(tmp_path):
    """The static-buffer step that the GPU run captures gives the eager step's
    losses, and the fused loss's CUDA launchers never wait for the host."""
    out = tmp_path / "train.json"
    code = bench_train_cuda.main(["--device", "cpu", "--tiny", "--emulated", "--sections", "graph",
                                  "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 0, data["errors"]
    rows = {row["precision"]: row for row in data["graph"]}
    assert set(rows) == {"float32", "bfloat16 autocast"}
    for row in rows.values():
        assert row["captured"] is False  # no CUDA here: the same step, called eagerly
        assert row["loss_waits_for_host"] is False
        assert row["max_rel_diff"] < 1e-6 and row["eager_ms"] > 0 and row["graph_ms"] > 0
