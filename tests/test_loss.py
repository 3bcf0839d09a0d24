"""db_loss against the float64 reference: terms, gradients, OHEM edge cases
(no positives, no negatives, nothing masked in, ties), precision, torch.compile
and the op checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CUDA, DEVICES, GPUS, on
from dbnet_fast.ops import db_loss
from dbnet_fast.reference import db_loss_reference

TERMS = ("total", "bce", "dice", "l1")


def make_batch(gen, shape=(2, 1, 48, 64), *, positive=0.2, masked_out=0.1, spread=15.0,
               dtype=torch.float32):
    """Logits uniform in +-spread, binary shrink map and masks, a threshold map in [0.3, 0.7]."""
    def rand():
        return torch.rand(shape, generator=gen, dtype=torch.float64)

    xp = ((rand() * 2 - 1) * spread).to(dtype)
    xt = ((rand() * 2 - 1) * spread).to(dtype)
    gt = (rand() < positive).float()
    mask = (rand() >= masked_out).float()
    thresh_map = (rand() * 0.4 + 0.3).float()
    thresh_mask = (rand() < 0.5).float()
    return xp, xt, gt, mask, thresh_map, thresh_mask


def run(batch, device, **kwargs):
    xp, xt, *targets = batch
    xp = xp.detach().to(device, copy=True).requires_grad_(True)
    xt = xt.detach().to(device, copy=True).requires_grad_(True)
    targets = [t.to(device) for t in targets]
    total, terms = db_loss(xp, xt, *targets, **kwargs)
    grad_xp, grad_xt = torch.autograd.grad(total, (xp, xt))
    values = {"total": total, **terms}
    return {k: float(v.detach()) for k, v in values.items()}, grad_xp, grad_xt


def boundary(batch, ohem_ratio=3.0):
    """Pixels whose float64 loss is within 1e-5 relative of the OHEM threshold: float32
    may order them differently from float64, which moves them in or out of the selection."""
    xp, _, gt, mask, _, _ = (t.detach().double().numpy().reshape(-1) for t in batch)
    loss = np.logaddexp(0.0, xp) - gt * xp
    negative = (gt <= 0.5) & (mask > 0.5)
    count = min(int(negative.sum()), int(np.floor((gt * mask > 0.5).sum() * ohem_ratio)))
    if count == 0:
        return np.zeros_like(loss, dtype=bool)
    tau = np.sort(loss[negative])[::-1][count - 1]
    return negative & (np.abs(loss - tau) <= 1e-5 * abs(tau))


def assert_grad_close(got, want, exclude, rtol, what):
    got = got.detach().cpu().double().numpy().reshape(-1)
    want = want.reshape(-1)
    keep = ~exclude
    scale = np.abs(want).max() if want.size else 0.0
    err = np.abs(got - want)[keep]
    bad = err > rtol * np.abs(want[keep]) + rtol * scale
    assert not bad.any(), f"{what}: {bad.sum()} elements off, worst {err.max():.3g} (scale {scale:.3g})"


def assert_terms_close(got, want, rtol, what=""):
    for name in TERMS:
        assert got[name] == pytest.approx(want[name], rel=rtol, abs=1e-7), f"{what} {name}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(positive=0.02),                 # few positives: OHEM keeps 3x as many negatives
        dict(positive=0.6),                  # OHEM keeps every negative
        dict(positive=0.0),                  # no positives: no negatives kept
        dict(positive=1.0),                  # no negatives
        dict(masked_out=1.0),                # nothing inside the mask
        dict(spread=1e4),                    # saturated logits
        dict(spread=0.01),                   # everything near 1/2
    ],
    ids=["default", "few-positives", "many-positives", "no-positives", "no-negatives",
         "all-masked-out", "huge-logits", "tiny-logits"],
)
def test_matches_float64_reference(gen, device, case):
    batch = make_batch(gen, **case)
    got, grad_xp, grad_xt = run(batch, device)
    want, want_xp, want_xt = db_loss_reference(*batch)
    assert_terms_close(got, want, 1e-5)
    exclude = boundary(batch)
    assert_grad_close(grad_xp, want_xp, exclude, 1e-5, "grad prob_logits")
    assert_grad_close(grad_xt, want_xt, np.zeros_like(exclude), 1e-5, "grad thresh_logits")
    assert np.isfinite(list(got.values())).all()
    assert torch.isfinite(grad_xp).all() and torch.isfinite(grad_xt).all()


@pytest.mark.parametrize("device", DEVICES)
def test_ties_share_the_gradient_evenly(gen, device):
    """Many negatives with exactly the same loss straddle the k-th value."""
    xp, xt, gt, mask, tm, tmask = make_batch(gen, (1, 1, 20, 30), positive=0.1)
    negative = (gt <= 0.5) & (mask > 0.5)
    tied = negative & (torch.rand(xp.shape, generator=gen) < 0.6)
    xp = torch.where(tied, torch.tensor(1.25), xp)
    xt = torch.where(tied, torch.tensor(-0.5), xt)  # the same Dice gradient too
    batch = (xp, xt, gt, mask, tm, tmask)
    got, grad_xp, _ = run(batch, device)
    want, want_xp, _ = db_loss_reference(*batch)
    assert_terms_close(got, want, 1e-5)
    assert_grad_close(grad_xp, want_xp, np.zeros(xp.numel(), dtype=bool), 1e-5, "grad")
    tied_grads = grad_xp.detach().cpu()[tied]
    assert torch.all(tied_grads == tied_grads[0]), "tied pixels must get the same gradient"


@pytest.mark.parametrize("device", DEVICES)
def test_all_equal_losses_and_weights(gen, device):
    xp = torch.zeros(1, 1, 8, 8)
    xt = torch.zeros(1, 1, 8, 8)
    gt = torch.zeros(1, 1, 8, 8)
    gt[..., :2, :] = 1
    ones = torch.ones(1, 1, 8, 8)
    batch = (xp, xt, gt, ones, ones * 0.5, ones)
    kwargs = dict(k=10.0, bce_weight=2.0, dice_weight=0.5, l1_weight=3.0, ohem_ratio=1.5, eps=1e-4)
    got, grad_xp, grad_xt = run(batch, device, **kwargs)
    want, want_xp, want_xt = db_loss_reference(*batch, **kwargs)
    assert_terms_close(got, want, 1e-5)
    assert_grad_close(grad_xp, want_xp, np.zeros(64, dtype=bool), 1e-5, "grad prob")
    assert_grad_close(grad_xt, want_xt, np.zeros(64, dtype=bool), 1e-5, "grad thresh")


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_of_each_term(gen, device):
    batch = make_batch(gen, (1, 1, 16, 16))
    xp, xt, *targets = (t.to(device) for t in batch)
    xp.requires_grad_(True)
    xt.requires_grad_(True)
    total, terms = db_loss(xp, xt, *targets)
    upstream = (0.5, 2.0, -1.0, 3.0)
    combined = upstream[0] * total + upstream[1] * terms["bce"] + upstream[2] * terms["dice"] + \
        upstream[3] * terms["l1"]
    grad_xp, grad_xt = torch.autograd.grad(combined, (xp, xt))
    _, want_xp, want_xt = db_loss_reference(*batch, grad_terms=upstream)
    exclude = boundary(batch)
    assert_grad_close(grad_xp, want_xp, exclude, 1e-5, "grad prob")
    assert_grad_close(grad_xt, want_xt, np.zeros_like(exclude), 1e-5, "grad thresh")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logits_compute_in_float32(gen, device, dtype):
    batch = make_batch(gen, dtype=dtype, spread=8.0)
    got, grad_xp, grad_xt = run(batch, device)
    assert grad_xp.dtype == grad_xt.dtype == dtype
    want, want_xp, want_xt = db_loss_reference(*batch)  # on the same (rounded) logits
    assert_terms_close(got, want, 1e-5)
    rtol = 1e-2  # the gradients are stored in the 16-bit type
    assert_grad_close(grad_xp, want_xp, boundary(batch), rtol, "grad prob")
    assert_grad_close(grad_xt, want_xt, np.zeros(grad_xt.numel(), dtype=bool), rtol, "grad thresh")


@pytest.mark.parametrize("device", DEVICES)
def test_float64_logits_and_gradcheck(gen, device):
    batch = make_batch(gen, (1, 1, 5, 7), positive=0.3, masked_out=0.2, spread=4.0,
                       dtype=torch.float64)
    xp, xt, *targets = (t.to(device) for t in batch)
    targets = [t.double() for t in targets]
    got, grad_xp, _ = run((xp, xt, *targets), device)
    want, want_xp, _ = db_loss_reference(xp, xt, *targets)
    assert_terms_close(got, want, 1e-7)
    xp.requires_grad_(True)
    xt.requires_grad_(True)

    def loss(a, b):
        total, terms = db_loss(a, b, *targets, k=5.0)
        return total, terms["bce"], terms["dice"], terms["l1"]

    assert torch.autograd.gradcheck(loss, (xp, xt), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_no_nan_for_extreme_finite_logits(device):
    shape = (1, 1, 6, 6)
    values = torch.tensor([1e4, -1e4, 0.0, 88.0, -88.0, 104.0])
    xp = values.repeat(6).reshape(shape)
    xt = values.flip(0).repeat(6).reshape(shape)
    gt = (torch.arange(36).reshape(shape) % 3 == 0).float()
    ones = torch.ones(shape)
    got, grad_xp, grad_xt = run((xp, xt, gt, ones, ones * 0.5, ones), device)
    assert np.isfinite(list(got.values())).all()
    assert torch.isfinite(grad_xp).all() and torch.isfinite(grad_xt).all()
    want, _, _ = db_loss_reference(xp, xt, gt, ones, ones * 0.5, ones)
    assert_terms_close(got, want, 1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_logits_give_nan_loss(device):
    xp = torch.zeros(1, 4, 4)
    xp[0, 1, 1] = float("nan")
    ones = torch.ones(1, 4, 4)
    gt = torch.zeros(1, 4, 4)
    gt[0, 0, :] = 1
    total, terms = db_loss(xp.to(device), xp.to(device), gt.to(device), ones.to(device),
                           ones.to(device) * 0.5, ones.to(device))
    assert total.isnan() and terms["bce"].isnan()


@pytest.mark.parametrize("device", DEVICES)
def test_layouts_and_label_dtypes(gen, device):
    """(B, H, W) maps, non-contiguous logits, bool and uint8 labels."""
    xp, xt, gt, mask, tm, tmask = make_batch(gen, (2, 1, 24, 20))
    want = run((xp, xt, gt, mask, tm, tmask), device)[0]
    squeezed = [t[:, 0] for t in (xp, xt, gt, mask, tm, tmask)]
    assert run(squeezed, device)[0] == pytest.approx(want, rel=1e-6)
    transposed = [t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in (xp, xt)]
    assert run((*transposed, gt, mask, tm, tmask), device)[0] == pytest.approx(want, rel=1e-6)
    labels = (gt.bool(), mask.to(torch.uint8), tm, tmask.bool())
    assert run((xp, xt, *labels), device)[0] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_maps(device):
    empty = torch.zeros(0, 1, 8, 8, device=device)
    total, terms = db_loss(empty, empty, empty, empty, empty, empty)
    assert float(terms["bce"]) == 0.0 and float(terms["l1"]) == 0.0
    assert float(terms["dice"]) == pytest.approx(1.0)


def test_results_do_not_depend_on_thread_count(gen):
    batch = make_batch(gen, (4, 1, 160, 160))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(batch, "cpu")
        torch.set_num_threads(max(2, before))
        many = run(batch, "cpu")
    finally:
        torch.set_num_threads(before)
    assert one[0] == many[0]
    assert torch.equal(one[1], many[1]) and torch.equal(one[2], many[2])


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(gen, device):
    for shape in [(2, 1, 8, 8), (1, 5, 3)]:
        xp, xt, *targets = (t.to(device) for t in make_batch(gen, shape))
        xp.requires_grad_(True)
        xt.requires_grad_(True)
        args = (xp, xt, *targets, 50.0, 5.0, 1.0, 10.0, 3.0, 1e-6)
        torch.library.opcheck(torch.ops.dbnet_fast.db_loss.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(gen, device):
    def step(xp, xt, gt, mask, tm, tmask):
        total, terms = db_loss(xp * 1.0, xt, gt, mask, tm, tmask)
        return total + 0.0 * terms["dice"]

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    batch = [t.to(device) for t in make_batch(gen, (2, 1, 32, 32))]
    xp, xt = batch[0].requires_grad_(True), batch[1].requires_grad_(True)
    loss = compiled(xp, xt, *batch[2:])
    grads = torch.autograd.grad(loss, (xp, xt))
    want = step(xp, xt, *batch[2:])
    want_grads = torch.autograd.grad(want, (xp, xt))
    torch.testing.assert_close(loss, want)
    for got, expected in zip(grads, want_grads):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_cpu_and_cuda_agree(gen, gpu, dtype):
    batch = make_batch(gen, (3, 1, 96, 80), dtype=dtype)
    if dtype == torch.float64:
        batch = (*batch[:2], *(t.double() for t in batch[2:]))
    cpu = run(batch, "cpu")
    with on(gpu):
        device = run(batch, gpu)
    assert device[0] == pytest.approx(cpu[0], rel=1e-6)
    exclude = boundary(batch)
    for a, b in zip(cpu[1:], device[1:]):
        assert_grad_close(b, a.double().numpy(), exclude, 1e-5, "cpu vs cuda")


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pixel_math_gives_the_cpu_bits(gen, gpu, dtype):
    """Each pixel's loss (the keys of the OHEM selection) is the CPU's bit for
    bit: one element function, no contraction into fused multiply-adds on
    either side (DESIGN.md section 6)."""
    xp, xt, *targets = make_batch(gen, (2, 1, 64, 48), dtype=dtype)
    args = (50.0, 5.0, 1.0, 10.0, 3.0, 1e-6)
    _, cpu_keys, _ = torch.ops.dbnet_fast.db_loss.default(xp, xt, *targets, *args)
    with on(gpu):
        _, keys, _ = torch.ops.dbnet_fast.db_loss.default(xp.to(gpu), xt.to(gpu), *(t.to(gpu) for t in targets),
                                                          *args)
    assert torch.equal(keys.cpu(), cpu_keys)


@CUDA
@pytest.mark.cuda
def test_cuda_graph_capture(gen):
    """No host synchronisation: the whole loss and its backward replay in a CUDA graph."""
    batch = [t.cuda() for t in make_batch(gen, (2, 1, 64, 64))]
    xp = batch[0].clone().requires_grad_(True)
    xt = batch[1].clone().requires_grad_(True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm-up outside the graph
            total, _ = db_loss(xp, xt, *batch[2:])
            total.backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    xp.grad = None
    with torch.cuda.graph(graph):
        total, _ = db_loss(xp, xt, *batch[2:])
        total.backward()
    graph.replay()
    torch.cuda.synchronize()
    want, want_xp, _ = db_loss_reference(batch[0], batch[1], *batch[2:])
    assert float(total) == pytest.approx(want["total"], rel=1e-5)


# --- bad input -----------------------------------------------------------------


def test_bad_arguments_are_named():
    x = torch.zeros(1, 4, 4)
    with pytest.raises(TypeError, match="prob_logits must be a float16"):
        db_loss(x.long(), x, x, x, x, x)
    with pytest.raises(TypeError, match="prob_logits and thresh_logits must have the same dtype"):
        db_loss(x, x.double(), x, x, x, x)
    with pytest.raises(ValueError, match=r"thresh_map must have the shape of prob_logits \(1, 4, 4\)"):
        db_loss(x, x, x, x, torch.zeros(1, 4, 5), x)
    with pytest.raises(TypeError, match="shrink_mask must be a torch.Tensor"):
        db_loss(x, x, x, np.zeros((1, 4, 4)), x, x)
    with pytest.raises(TypeError, match="shrink_map must be a real tensor"):
        db_loss(x, x, x.to(torch.complex64), x, x, x)
    with pytest.raises(ValueError, match="ohem_ratio must be >= 0"):
        db_loss(x, x, x, x, x, x, ohem_ratio=-1.0)
    with pytest.raises(ValueError, match="k must be finite"):
        db_loss(x, x, x, x, x, x, k=float("nan"))
    with pytest.raises(ValueError, match="thresh_mask must be on the device of prob_logits"):
        db_loss(x, x, x, x, x, x.to("meta"))
