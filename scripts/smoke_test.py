"""Smoke test of an installed dbnet_fast wheel (scripts/build_wheels.sh runs it in a
fresh venv that holds only torch, the wheel and its dependencies).

    python scripts/smoke_test.py --version 0.1.0+cu130 [--archs "7.5;8.0;12.0+PTX"]

Checks: the package imports from site-packages (not a source tree), build_info()
describes the wheel (version, torch, CUDA, architectures), each op runs on the CPU
with tiny inputs and gives sane values (binarize, loss against the float64
reference, label maps, post-processing), and a torch of another release is refused
at import with advice rather than a linker error. Exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"smoke test FAILED: {what}")
    print(f"  ok  {what}")


def archs_of(text: str) -> list[str]:
    return [a for a in text.replace(" ", ";").split(";") if a]


def check_build_info(dbnet_fast, torch, version: str, archs: str | None) -> dict:
    info = dbnet_fast.build_info()
    print("build_info:", info)
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    location = os.path.realpath(dbnet_fast.__file__)
    check(
        location.startswith(site + os.sep), f"dbnet_fast imported from site-packages ({location})"
    )
    check(info["version"] == version, f"version {info['version']} is the wheel's {version}")
    public = str(torch.__version__).split("+")[0]
    check(
        info["torch_version"].split("+")[0] == public,
        f"built against torch {info['torch_version']}, installed torch {torch.__version__}",
    )
    tag = version.split("+")[1]
    if tag == "cpu":
        check(
            not info["with_cuda"] and info["cuda_version"] is None and info["cuda_archs"] == [],
            "CPU build: no CUDA kernels, no CUDA version, no architectures",
        )
    else:
        check(info["with_cuda"], f"{tag} build has CUDA kernels")
        check(
            "cu" + info["cuda_version"].replace(".", "") == tag,
            f"CUDA {info['cuda_version']} matches the tag {tag}",
        )
        check(
            info["cuda_version"] == torch.version.cuda,
            f"torch's CUDA {torch.version.cuda} is the build's",
        )
        if archs is not None:
            check(info["cuda_archs"] == archs_of(archs), f"architectures {info['cuda_archs']}")
    return info


def check_binarize(torch, ops) -> None:
    generator = torch.Generator().manual_seed(0)
    prob = torch.rand(2, 1, 5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    thresh = torch.rand(2, 1, 5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    out = ops.db_binarize(prob, thresh, k=50.0)
    expected = torch.sigmoid(50.0 * (prob - thresh)).detach()
    check(
        torch.allclose(out, expected, rtol=0, atol=1e-12),
        "db_binarize float64 = sigmoid(k (P - T))",
    )
    grad_prob, grad_thresh = torch.autograd.grad(out.sum(), (prob, thresh))
    slope = 50.0 * expected * (1 - expected)
    check(
        torch.allclose(grad_prob, slope, atol=1e-10)
        and torch.allclose(grad_thresh, -slope, atol=1e-10),
        "db_binarize backward = +-k B (1 - B)",
    )
    half = ops.db_binarize(prob.detach().half(), thresh.detach().half(), k=50.0)
    check(
        half.dtype == torch.float16
        and bool(torch.isfinite(half).all())
        and float((half.double() - expected).abs().max()) < 2e-2,
        "db_binarize float16",
    )


def check_targets(torch, ops):
    square = torch.tensor([[8.0, 8.0], [40.0, 8.0], [40.0, 24.0], [8.0, 24.0]])
    maps = ops.db_targets([square], (32, 48))
    for name in ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask"):
        value = getattr(maps, name)
        check(
            value.shape == (32, 48)
            and value.dtype == torch.float32
            and bool(torch.isfinite(value).all()),
            f"db_targets {name}: (32, 48) float32, finite",
        )
    shrink, thresh = maps.shrink_map, maps.thresh_map
    check(
        shrink[16, 24] == 1 and shrink[0, 0] == 0 and shrink[8, 8] == 0,
        "db_targets shrink_map: 1 at the centre, 0 outside and on the corner",
    )
    check(
        bool(((shrink == 0) | (shrink == 1)).all())
        and bool(((maps.thresh_mask == 0) | (maps.thresh_mask == 1)).all()),
        "db_targets maps are 0/1",
    )
    check(
        float(thresh.min()) >= 0.3 - 1e-6
        and float(thresh.max()) <= 0.7 + 1e-6
        and float(thresh[8, 24]) > 0.69,
        "db_targets thresh_map in [0.3, 0.7], 0.7 on the edge",
    )
    check(bool((maps.thresh_mask >= shrink).all()), "db_targets thresh_mask covers shrink_map")
    batch = ops.db_targets_batch([[square], []], (32, 48))
    check(
        batch.shrink_map.shape == (2, 32, 48)
        and torch.equal(batch.shrink_map[0], shrink)
        and float(batch.shrink_map[1].abs().sum()) == 0,
        "db_targets_batch: two images, one empty",
    )
    return maps


def check_loss(torch, ops, maps) -> None:
    from dbnet_fast.reference import db_loss_reference

    generator = torch.Generator().manual_seed(1)
    shape = (1, 1) + tuple(maps.shrink_map.shape)
    labels = [
        getattr(maps, n).reshape(shape)
        for n in ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")
    ]
    prob_logits = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    thresh_logits = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    total, terms = ops.db_loss(prob_logits, thresh_logits, *labels)
    values = {"total": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
    reference, grad_prob_ref, grad_thresh_ref = db_loss_reference(
        prob_logits.detach().numpy(), thresh_logits.detach().numpy(), *(t.numpy() for t in labels)
    )
    print("db_loss:", values)
    check(bool(torch.isfinite(total)) and values["total"] > 0, "db_loss total finite and positive")
    for name, value in values.items():
        check(
            abs(value - reference[name]) <= 1e-9 * max(1.0, abs(reference[name])),
            f"db_loss {name} = float64 reference ({reference[name]:.6f})",
        )
    grad_prob, grad_thresh = torch.autograd.grad(total, (prob_logits, thresh_logits))
    check(
        torch.allclose(grad_prob, torch.from_numpy(grad_prob_ref), atol=1e-10)
        and torch.allclose(grad_thresh, torch.from_numpy(grad_thresh_ref), atol=1e-10),
        "db_loss backward = float64 reference",
    )
    single, _ = ops.db_loss(prob_logits.detach().float(), thresh_logits.detach().float(), *labels)
    check(
        abs(float(single) - reference["total"]) < 1e-4 * max(1.0, reference["total"]),
        "db_loss float32",
    )


def check_postprocess(torch, ops) -> None:
    from dbnet_fast.postprocess import DBPostProcessor

    prob = torch.full((2, 40, 60), 0.05)
    prob[0, 10:21, 10:46] = 0.9  # one word in image 0, none in image 1
    boxes, scores, counts = ops.db_boxes(prob)
    check(
        counts.tolist() == [1, 0] and boxes.shape == (1, 4, 2) and boxes.dtype == torch.float32,
        f"db_boxes: one box in image 0, none in image 1 (counts {counts.tolist()})",
    )
    x, y = boxes[0, :, 0], boxes[0, :, 1]
    check(abs(float(scores[0]) - 0.9) < 0.05, f"db_boxes score {float(scores[0]):.3f} ~ 0.9")
    check(
        float(x.min()) < 10
        and float(x.max()) > 45
        and float(y.min()) < 10
        and float(y.max()) > 20
        and float(x.min()) > 0
        and float(y.max()) < 40,
        f"db_boxes box {boxes[0].tolist()} holds the word, grown",
    )
    detections = DBPostProcessor()(prob.unsqueeze(1), [(80, 120), (80, 120)])
    check(
        [len(d) for d in detections] == [1, 0]
        and torch.allclose(detections[0].boxes, boxes * 2, atol=1e-3),
        "DBPostProcessor quads, rescaled to the original size",
    )


def check_predictor(torch) -> None:
    """The installed model code end to end: a PP-OCR-architecture detector (no
    torchvision needed) and, where a torchvision for this torch is installed, a
    small DBNet-R18 through DBPredictor; without one, building the R18 must fail
    with advice on what to install."""
    import importlib.util

    import numpy as np

    from dbnet_fast import DBPredictor
    from dbnet_fast.engine import build_model

    torch.manual_seed(0)
    images = [np.zeros((50, 70, 3), np.uint8), torch.zeros(3, 64, 64, dtype=torch.uint8)]
    models = {"ppocr-v4": lambda: build_model("ppocr-v4")}
    if importlib.util.find_spec("torchvision") is not None:
        models["resnet18"] = lambda: build_model("resnet18", inner_channels=32)
    else:
        try:
            build_model("resnet18")
            check(False, "DBNet-R18 without torchvision refused")
        except ImportError as error:
            check("torchvision" in str(error) and "pip install" in str(error),
                  f"DBNet-R18 without torchvision refused with advice ({error})")
    for name, make in models.items():
        found = DBPredictor(make(), device="cpu")(images)
        check(len(found) == 2 and all(d.boxes.shape[1:] == (4, 2) for d in found),
              f"DBPredictor ({name}) on two images of different sizes")


def check_other_torch_refused() -> None:
    code = (
        "import sys, torch; torch.__version__ = '1.13.1'\n"
        "try:\n    import dbnet_fast\nexcept ImportError as error:\n"
        "    print(error); sys.exit(3 if 'dbnet_fast._C' in sys.modules else 0)\n"
        "sys.exit(4)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    message = result.stdout.strip()
    print("  import under a fake torch 1.13.1 says:", message)
    check(
        result.returncode == 0
        and "but torch 1.13.1 is installed" in message
        and "/torch1.13/" in message,
        "another torch release is refused before the extension loads, with the wheel to install",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", required=True, help="the wheel's version, e.g. 0.1.0+cu130")
    parser.add_argument("--archs", help="the CUDA architectures the wheel was built for")
    args = parser.parse_args()

    import torch

    import dbnet_fast
    from dbnet_fast import ops

    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"numpy {__import__('numpy').__version__}"
    )
    check_build_info(dbnet_fast, torch, args.version, args.archs)
    check_binarize(torch, ops)
    maps = check_targets(torch, ops)
    check_loss(torch, ops, maps)
    check_postprocess(torch, ops)
    check_predictor(torch)
    check_other_torch_refused()
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
