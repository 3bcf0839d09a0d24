"""What of scripts/gpu_check.sh runs without a GPU: its syntax, and the
comparison script in its dry run (the emulated kernels against the CPU's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EMULATION

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")], check=True)


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
