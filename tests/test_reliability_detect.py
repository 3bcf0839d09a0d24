"""Reliability of ``dbnet-fast detect`` (issue 22): Ctrl-C keeps the finished work,
memory stays about one batch whatever the image sizes, and links and FIFOs among
the inputs are reported like any unreadable image.

Each run is a subprocess (a signal, a peak RSS, a FIFO that must not hang the
test) with a small random DBNet checkpoint, at a small inference size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from dbnet_fast.engine.checkpoint import build_model, save_checkpoint  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two shared cores: one thread each
SIDE = "320"  # the inference size: the model is cheap, the originals are what is measured


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build_model("resnet18", inner_channels=64)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "m.pt", model, rng=False)


def _detect_command(checkpoint, out, *args) -> list[str]:
    return [sys.executable, "-m", "dbnet_fast.cli", "detect", "--checkpoint", str(checkpoint),
            "--out", str(out), "--device", "cpu", "--limit-side-len", SIDE, "--no-progress",
            *map(str, args)]


def _write_images(folder: Path, count: int, height: int, width: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), (40, 160, 220), np.uint8)  # solid: small on disk
    paths = [folder / f"img{k:03}.png" for k in range(count)]
    for path in paths:
        assert cv2.imwrite(str(path), image)
    return paths


# ----------------------------------------------------------------------------- item 4: Ctrl-C


def test_ctrl_c_keeps_finished_images_and_exits_130(checkpoint, tmp_path):
    count = 120
    _write_images(tmp_path / "in", count, 320, 320)
    out = tmp_path / "out"
    # its own process group, signalled as a terminal's Ctrl-C is: the workers get it too.
    # SIGINT back to its default first: a shell starts background jobs with it ignored
    # (a CI run launched with `&`), and a process that ignores Ctrl-C rightly goes on.
    proc = subprocess.Popen(_detect_command(checkpoint, out, tmp_path / "in", "--batch-size", 2,
                                            "--workers", 1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not any(out.glob("img*.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no output within 300 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted" in stderr, stderr
    summary = json.loads((out / "summary.rank0.json").read_text())
    written = sorted(out.glob("img*.json"))
    assert summary["interrupted"] is True
    assert 0 < summary["done"] == len(written) < count, "the run ended before the signal"
    for path in written:
        record = json.loads(path.read_text())  # complete JSON, with its picture beside it
        assert record["count"] == len(record["detections"])
        assert cv2.imread(str(path.with_suffix(".png"))).shape == (320, 320, 3)
    assert not list(out.glob(".*.partial")), "temporary files left behind"


# ----------------------------------------------------------------------------- item 5: memory

_PEAK = ("import resource, sys\n"
         "from dbnet_fast.cli import main\n"
         "code = main(sys.argv[1:])\n"
         "peak = sum(resource.getrusage(who).ru_maxrss  # KiB on Linux; children: the workers\n"
         "           for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
         "print('PEAK', code, peak)\n")


def _peak_rss_bytes(command: list[str]) -> int:
    """Peak RSS of a detect run plus that of its workers, in bytes."""
    command = [sys.executable, "-c", _PEAK, *command[3:]]  # the same arguments, measured
    run = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    line = [line for line in run.stdout.splitlines() if line.startswith("PEAK")]
    assert run.returncode == 0 and line, run.stdout + run.stderr
    _, code, peak = line[-1].split()
    assert code == "0", run.stdout + run.stderr
    return int(peak) * 1024


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")
def test_memory_stays_about_one_batch_with_large_images(checkpoint, tmp_path):
    batch, side = 2, 6000
    image_bytes = side * side * 3
    small = _write_images(tmp_path / "small", 1, int(SIDE), int(SIDE))
    _write_images(tmp_path / "large", 10, side, side)  # more than a chunk of 4 batches
    options = ("--batch-size", batch, "--workers", 1)
    baseline = _peak_rss_bytes(_detect_command(checkpoint, tmp_path / "o1", small[0], *options))
    peak = _peak_rss_bytes(_detect_command(checkpoint, tmp_path / "o2", tmp_path / "large",
                                           *options))
    assert len(list((tmp_path / "o2").glob("img*.png"))) == 10
    # measured about 3 images over the idle run (one decoded by the worker, one drawn
    # and its picture); before the fix 12 (a chunk of 8 originals and the prefetch)
    bound = baseline + (batch + 3) * image_bytes
    assert peak < bound, (f"peak RSS {peak / 2**20:.0f} MiB > {bound / 2**20:.0f} MiB (idle "
                          f"{baseline / 2**20:.0f} MiB, one image {image_bytes / 2**20:.0f} MiB)")


# ----------------------------------------------------------------------------- item 14: links


def test_links_and_fifos_are_reported_not_skipped(checkpoint, tmp_path):
    folder, loose = tmp_path / "in", tmp_path / "loose"
    _write_images(folder, 1, 64, 64)
    loose.mkdir()
    for where in (folder, loose):
        (where / "dangling.png").symlink_to(tmp_path / "gone.png")
        (where / "self.png").symlink_to(where / "self.png")
        (where / "a.png").symlink_to(where / "b.png")
        (where / "b.png").symlink_to(where / "a.png")
        os.mkfifo(where / "pipe.png")  # reading it would wait for a writer forever
    (folder / "sub.png").mkdir()  # a folder is not an entry to read: folders are one level deep
    explicit = [loose / n for n in ("dangling.png", "self.png", "a.png", "b.png", "pipe.png")]
    out = tmp_path / "out"
    run = subprocess.run(_detect_command(checkpoint, out, folder, *explicit, "--workers", 1),
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr  # some images failed
    assert "Traceback" not in run.stderr, run.stderr
    summary = json.loads((out / "summary.rank0.json").read_text())
    assert summary["done"] == 1 and summary["failed"] == 10, summary
    for where in (folder, loose):
        for name, reason in [("dangling.png", "broken symbolic link"),
                             ("self.png", "symbolic link loop"), ("a.png", "symbolic link loop"),
                             ("b.png", "symbolic link loop"),
                             ("pipe.png", "not a regular file (FIFO)")]:
            assert any(str(where / name) in e and reason in e for e in summary["errors"]), \
                (where / name, reason, summary["errors"])
            assert f"{where / name}: {reason}" in run.stdout  # reported as it happens
