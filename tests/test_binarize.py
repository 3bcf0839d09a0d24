"""db_binarize against the float64 reference, its gradients, edge cases,
torch.compile and the op checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES, GPUS, on
from dbnet_fast.ops import db_binarize
from dbnet_fast.ops import _checks
from dbnet_fast.reference import db_binarize_grad_reference, db_binarize_reference

SUBNORMAL_STEP = 2.0**-149  # spacing of float32 below the smallest normal number
B_ERR = 4 * 2.0**-24  # absolute error of a float32 B: four half-spacings just below 1


def random_maps(gen, shape, spread=1.0, dtype=torch.float32):
    """P and T in [0, 1], with some pixels exactly 0 or 1, some with P close to T,
    and (spread > 1) some far outside [0, 1] so that |k (P - T)| reaches ~1e4."""
    p = torch.rand(shape, generator=gen, dtype=torch.float64)
    t = torch.rand(shape, generator=gen, dtype=torch.float64)
    pick = torch.rand(shape, generator=gen)
    p = torch.where(pick < 0.05, 0.0, torch.where(pick > 0.95, 1.0, p))
    t = torch.where((pick > 0.05) & (pick < 0.1), 1.0, t)
    close = (pick > 0.1) & (pick < 0.3)
    t = torch.where(close, p + (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5) * 0.02, t)
    far = (pick > 0.3) & (pick < 0.4)
    p = torch.where(far, (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5) * 2 * spread, p)
    return p.to(dtype), t.to(dtype)


def forward_and_grads(p, t, g, k):
    p = p.detach().clone().requires_grad_(True)
    t = t.detach().clone().requires_grad_(True)
    out = db_binarize(p, t, k)
    grad_p, grad_t = torch.autograd.grad(out, (p, t), g)
    return out.detach(), grad_p, grad_t


def assert_relative(got, want, rtol, atol, what):
    got = got.detach().cpu().double().numpy()
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want) + atol
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} elements off; worst got {got[bad][:5]} "
        f"want {want[bad][:5]}"
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k, spread", [(50.0, 1.0), (50.0, 200.0), (1e4, 1.0), (0.37, 1.0), (-50.0, 5.0)])
def test_float32_matches_float64_reference(gen, device, k, spread):
    p, t = random_maps(gen, (3, 1, 67, 45), spread)
    g = torch.randn(p.shape, generator=gen)
    out, grad_p, grad_t = forward_and_grads(p.to(device), t.to(device), g.to(device), k)
    want = db_binarize_reference(p, t, k)
    # Relative in the normal range; subnormal results are exact to their spacing.
    assert_relative(out, want, 1e-6, 2 * SUBNORMAL_STEP, "forward")
    want_p, want_t = db_binarize_grad_reference(p, t, g, k)
    # The gradient comes from the stored float32 B (as torch.sigmoid's backward
    # does): besides 1e-6 relative it carries B's own error, a few ulp of 1
    # (B_ERR), times |g k|; where B rounds to 1 it is 0.
    atol = np.abs(g.double().numpy()) * abs(k) * B_ERR
    assert_relative(grad_p, want_p, 1e-6, atol, "grad prob")
    assert_relative(grad_t, want_t, 1e-6, atol, "grad thresh")


@pytest.mark.parametrize("device", DEVICES)
def test_backward_kernel_arithmetic_from_saved_output(gen, device):
    """Given the saved B, the backward is g k B (1 - B) to float32 rounding."""
    p, t = random_maps(gen, (2, 300), 3.0)
    g = torch.randn(p.shape, generator=gen)
    out, grad_p, grad_t = forward_and_grads(p.to(device), t.to(device), g.to(device), 50.0)
    b = out.cpu().double().numpy()
    want = g.double().numpy() * 50.0 * b * (1 - b)
    assert_relative(grad_p, want, 1e-6, 2 * SUBNORMAL_STEP, "grad prob")
    assert torch.equal(grad_t, -grad_p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_within_twice_torch_error(gen, device, dtype):
    k = 50.0
    p, t = random_maps(gen, (4, 1, 64, 64), 1.0, dtype)
    g = torch.randn(p.shape, generator=gen).to(dtype)
    p, t, g = p.to(device), t.to(device), g.to(device)
    out, grad_p, grad_t = forward_and_grads(p, t, g, k)
    assert out.dtype == grad_p.dtype == grad_t.dtype == dtype

    pt, tt = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
    torch_out = torch.sigmoid(k * (pt - tt))
    torch_grad_p, torch_grad_t = torch.autograd.grad(torch_out, (pt, tt), g)

    want = db_binarize_reference(p, t, k)
    want_p, want_t = db_binarize_grad_reference(p, t, g, k)

    def max_err(x, ref):
        return np.abs(x.detach().cpu().double().numpy() - ref).max()

    for ours, theirs, ref, what in [
        (out, torch_out, want, "forward"),
        (grad_p, torch_grad_p, want_p, "grad prob"),
        (grad_t, torch_grad_t, want_t, "grad thresh"),
    ]:
        assert max_err(ours, ref) <= 2 * max_err(theirs, ref), what
        assert torch.isfinite(ours).all(), what


@pytest.mark.parametrize("device", DEVICES)
def test_float64_matches_reference(gen, device):
    p, t = random_maps(gen, (5, 77), 10.0, torch.float64)
    g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
    out, grad_p, grad_t = forward_and_grads(p.to(device), t.to(device), g.to(device), 50.0)
    assert_relative(out, db_binarize_reference(p, t, 50.0), 1e-13, 1e-300, "forward")
    want_p, want_t = db_binarize_grad_reference(p, t, g, 50.0)
    assert_relative(grad_p, want_p, 1e-12, np.abs(g.numpy()) * 50 * 4 * 2.0**-53, "grad prob")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_no_nan_or_inf_for_finite_inputs(device, dtype):
    info = torch.finfo(dtype)
    values = torch.tensor(
        [0.0, 1.0, -1.0, info.max, -info.max, info.tiny, -info.tiny, info.eps, 0.5, 1e4 * info.eps],
        dtype=dtype,
    )
    p, t = torch.meshgrid(values, values, indexing="ij")
    p, t = p.contiguous().to(device), t.contiguous().to(device)
    for k in (50.0, 1e4, -50.0, 0.0, 1e30, 1e-30):
        g = torch.ones_like(p)
        out, grad_p, grad_t = forward_and_grads(p, t, g, k if k < 1e29 else 1.0)
        assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all(), k
        assert torch.isfinite(grad_p).all() and torch.isfinite(grad_t).all(), k
        with torch.no_grad():
            out = db_binarize(p, t, k)
        assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all(), k
    assert (db_binarize(p, t, 0.0) == 0.5).all()


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates_and_infinities_saturate(device):
    p = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5], device=device)
    t = torch.tensor([0.5, 0.5, 0.5, float("nan")], device=device)
    out = db_binarize(p, t)
    assert out[0].isnan() and out[3].isnan()
    assert out[1] == 1.0 and out[2] == 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make",
    [
        lambda x: x.transpose(-1, -2),
        lambda x: x[..., ::3],
        lambda x: x[:, :, 1:, 2:],
        lambda x: x.contiguous(memory_format=torch.channels_last),
        lambda x: x.expand(3, 4, *x.shape[2:]) if x.shape[1] == 1 else x,
    ],
    ids=["transposed", "strided", "offset", "channels_last", "expanded"],
)
def test_non_contiguous_inputs(gen, device, make):
    base_p = torch.rand(3, 1, 37, 41, generator=gen)
    base_t = torch.rand(3, 1, 37, 41, generator=gen)
    p, t = make(base_p.to(device)), make(base_t.to(device))
    p.requires_grad_(True)
    t.requires_grad_(True)
    out = db_binarize(p, t)
    want = db_binarize(p.detach().contiguous(), t.detach().contiguous())
    assert out.shape == p.shape and out.is_contiguous()
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    g = torch.randn(out.shape, generator=gen).to(device)
    grad_p, grad_t = torch.autograd.grad(out, (p, t), g.transpose(-1, -2).contiguous().transpose(-1, -2))
    b = want.double()
    torch.testing.assert_close(grad_p.double(), g.double() * 50 * b * (1 - b), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad_t, -grad_p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (0, 3, 5), (7,), (2, 33), (1, 1, 1, 1, 9), (70001,)])
def test_shapes(gen, device, shape):
    p = torch.rand(shape, generator=gen).to(device).requires_grad_(True)
    t = torch.rand(shape, generator=gen).to(device).requires_grad_(True)
    out = db_binarize(p, t)
    assert out.shape == torch.Size(shape)
    assert_relative(out, db_binarize_reference(p, t), 1e-6, 2 * SUBNORMAL_STEP, "forward")
    out.sum().backward()
    assert p.grad.shape == torch.Size(shape) and t.grad.shape == torch.Size(shape)


def test_thread_count_does_not_change_results(gen):
    p, t = random_maps(gen, (4, 1, 200, 200))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = db_binarize(p, t)
        torch.set_num_threads(max(2, before))
        many = db_binarize(p, t)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)


def test_gradcheck_and_gradgradcheck(gen):
    p = torch.rand(3, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    for k in (5.0, 50.0):
        assert torch.autograd.gradcheck(lambda a, b: db_binarize(a, b, k), (p, t))
        assert torch.autograd.gradgradcheck(lambda a, b: db_binarize(a, b, k), (p, t))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(gen, device, dtype):
    for shape in [(2, 1, 8, 8), (5,), ()]:
        p = torch.rand(shape, generator=gen).to(device, dtype).requires_grad_(True)
        t = torch.rand(shape, generator=gen).to(device, dtype).requires_grad_(True)
        torch.library.opcheck(torch.ops.dbnet_fast.db_binarize.default, (p, t, 50.0))
        g = torch.rand(shape, generator=gen).to(device, dtype).requires_grad_(True)
        b = torch.rand(shape, generator=gen).to(device, dtype).requires_grad_(True)
        torch.library.opcheck(torch.ops.dbnet_fast.db_binarize_backward.default, (g, b, 50.0))
    p = torch.rand(4, 6, generator=gen).to(device, dtype).t().requires_grad_(True)
    torch.library.opcheck(torch.ops.dbnet_fast.db_binarize.default, (p, p.detach().clone(), 3.0))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(gen, device):
    def step(p, t, g):
        out = db_binarize(p, t, 50.0) * 2.0
        return (out * g).sum()

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, dynamic=True)
    for shape in [(2, 1, 32, 48), (3, 1, 40, 24)]:
        p = torch.rand(shape, generator=gen).to(device).requires_grad_(True)
        t = torch.rand(shape, generator=gen).to(device).requires_grad_(True)
        g = torch.randn(shape, generator=gen).to(device)
        loss = compiled(p, t, g)
        grads = torch.autograd.grad(loss, (p, t))
        want_loss = step(p, t, g)
        want_grads = torch.autograd.grad(want_loss, (p, t))
        # the compiled sum may add the terms in another order: a float32 sum of n
        # terms is then within about log2(n) ulp of the sum of their magnitudes
        with torch.no_grad():
            magnitude = float((db_binarize(p, t, 50.0) * 2.0 * g).abs().sum())
        torch.testing.assert_close(loss, want_loss, rtol=0, atol=2e-6 * magnitude)
        for got, want in zip(grads, want_grads):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cpu_and_cuda_agree(gen, gpu, dtype):
    """The same bits: one element function, no contraction into fused multiply-adds
    on either side (DESIGN.md section 6); float64 uses the device's exp (an ulp)."""
    p, t = random_maps(gen, (3, 1, 129, 67), 50.0, dtype)
    g = torch.randn(p.shape, generator=gen).to(dtype)
    cpu = forward_and_grads(p, t, g, 50.0)
    with on(gpu):
        device = forward_and_grads(p.to(gpu), t.to(gpu), g.to(gpu), 50.0)
    for a, b in zip(cpu, device):
        if dtype == torch.float64:
            torch.testing.assert_close(b.cpu(), a, rtol=1e-13, atol=1e-300)
        else:
            assert torch.equal(b.cpu(), a)


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_misaligned_storage_takes_the_scalar_kernels(gen, gpu, dtype):
    """A contiguous view one element into its storage is not 16-byte aligned, so
    the scalar kernels run (a non-contiguous view would be copied into an
    aligned buffer first); the vector ones run on the aligned view."""
    shape = (3, 1, 29, 31)
    n = 3 * 29 * 31
    flat = [torch.rand(n + 1, generator=gen).to(dtype) for _ in range(3)]

    def run(p, t, g):  # (as forward_and_grads, on the views themselves)
        p, t = p.requires_grad_(True), t.requires_grad_(True)
        out = db_binarize(p, t)
        return out.detach(), *torch.autograd.grad(out, (p, t), g)

    for start, vectorised in [(1, False), (0, True)]:
        want = run(*(f[start:start + n].view(shape) for f in flat))
        with on(gpu) as record:
            views = [f.to(gpu)[start:start + n].view(shape) for f in flat]
            assert all(v.is_contiguous() for v in views)
            assert (views[0].data_ptr() % 16 == 0) == vectorised
            got = run(*views)
        for a, b in zip(want, got):
            torch.testing.assert_close(b.cpu(), a, rtol=1e-13 if dtype == torch.float64 else 0, atol=0)
        if record is not None:  # the emulation tells which kernels ran
            kernels = [launch["kernel"] for launch in record()["launches"]]
            suffix = "true>" if vectorised else "false>"
            assert kernels == [f"forward_kernel<scalar_t, {suffix}", f"backward_kernel<scalar_t, {suffix}"], kernels


# --- bad input -----------------------------------------------------------------


def test_integer_and_bool_tensors_are_rejected():
    x = torch.rand(3)
    with pytest.raises(TypeError, match="prob must be a float16, bfloat16, float32 or float64"):
        db_binarize(torch.ones(3, dtype=torch.int64), x)
    with pytest.raises(TypeError, match="thresh must be"):
        db_binarize(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="prob must be a torch.Tensor"):
        db_binarize([0.5, 0.2], x)


def test_mismatched_inputs_are_rejected():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match=r"prob and thresh must have the same shape.*\(2, 3\) and \(3, 2\)"):
        db_binarize(x, torch.rand(3, 2))
    with pytest.raises(ValueError, match="same shape"):
        db_binarize(x, torch.rand(1, 3))  # no broadcasting
    with pytest.raises(TypeError, match="prob and thresh must have the same dtype"):
        db_binarize(x, x.double())
    with pytest.raises(ValueError, match="prob and thresh must be on the same device"):
        db_binarize(x, x.to("meta"))


@pytest.mark.parametrize("k", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_k_is_rejected(k):
    with pytest.raises(ValueError, match="k must be finite"):
        db_binarize(torch.rand(3), torch.rand(3), k)


@pytest.mark.parametrize("k", [True, "50", torch.tensor(50.0), None])
def test_non_number_k_is_rejected(k):
    with pytest.raises(TypeError, match="k must be a real number"):
        db_binarize(torch.rand(3), torch.rand(3), k)


def test_numpy_scalar_k_is_accepted():
    torch.testing.assert_close(db_binarize(torch.rand(3), torch.rand(3), np.float32(50)).shape, torch.Size([3]))


def test_cuda_tensor_with_cpu_only_build_says_so(monkeypatch):
    monkeypatch.setitem(_checks.BUILD_INFO, "with_cuda", False)
    with pytest.raises(RuntimeError, match="prob is on cuda, but dbnet_fast was built without CUDA"):
        _checks.check_device("db_binarize", "prob", torch.device("cuda"))


def test_unsupported_devices_are_rejected():
    with pytest.raises(ValueError, match="only CPU and CUDA"):
        _checks.check_device("db_binarize", "prob", torch.device("xpu"))


def test_native_entry_points_check_what_they_index():
    """A call that bypasses the Python checks still gets an error, not a crash."""
    from dbnet_fast.ops._native import _C

    with pytest.raises(RuntimeError, match="same shape"):
        _C.binarize_forward(torch.rand(3), torch.rand(4), 50.0)
    with pytest.raises(RuntimeError, match="floating-point"):
        _C.binarize_forward(torch.ones(3, dtype=torch.int32), torch.ones(3, dtype=torch.int32), 50.0)
    with pytest.raises(RuntimeError, match="same dtype"):
        _C.binarize_backward(torch.rand(3), torch.rand(3).double(), 50.0)
