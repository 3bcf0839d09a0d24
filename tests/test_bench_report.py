"""The benchmark runner behind `dbnet-fast bench` / `make bench`: a tiny run
must produce the ratio table and its JSON summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_report_prints_ratios_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    selection = "binarize and forward and not backward and cpu and (dbnet_fast or eager or copy)"
    result = subprocess.run(
        [sys.executable, "-m", "dbnet_fast.cli", "bench", "--rounds", "1", "-k", selection,
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| group | variant | median ms |" in result.stdout
    report = json.loads(out.read_text())
    # the figures name the CPU they came from (capability, bfloat16 support)
    assert torch.backends.cpu.get_cpu_capability() in report["machine"]
    assert f"machine: {report['machine']}" in result.stdout
    rows = report["results"]
    assert {r["variant"] for r in rows} == {
        "dbnet_fast", "eager sigmoid", "eager reference form", "copy, same bytes"}
    ours = next(r for r in rows if r["role"] == "ours")
    for row in rows:
        assert row["median_ms"] > 0
        if row["role"] == "baseline":
            assert row["speedup"] == pytest.approx(row["median_ms"] / ours["median_ms"])
        if row["role"] == "memory limit":
            assert row["bandwidth_share"] == pytest.approx(row["median_ms"] / ours["median_ms"])
