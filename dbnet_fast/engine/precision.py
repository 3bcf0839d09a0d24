"""Mixed precision that follows the hardware.

On CUDA ``--amp`` is float16 autocast (with a GradScaler in training). On the
CPU it is bfloat16 autocast, which is fast only where the CPU computes
bfloat16 natively (AVX512-BF16 or AMX-BF16, and oneDNN allowed to use them):
elsewhere oneDNN falls back to reference kernels that are tens of times slower
than float32 (one 3x3 convolution measured 49x slower on an AVX2-only CPU). So
a request for CPU autocast is honoured only where the CPU has native bfloat16
or a short measurement shows bfloat16 faster; otherwise it runs float32 and
says so once.
"""

from __future__ import annotations

import os
import time
import warnings

import torch

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below which it has no bfloat16 dot products.
_ONEDNN_ISAS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                             "AVX512_CORE_VNNI"}
_warned: set[str] = set()
_measured: dict[str, float] = {}


def cpu_features() -> dict:
    """What this CPU offers for mixed precision: torch's dispatched capability
    (e.g. ``"AVX2"``, ``"AVX512"``), the bfloat16 instruction sets, oneDNN's ISA cap
    and the conclusion ``native_bf16``."""
    info = torch._C._cpu._get_cpu_capability() if hasattr(torch._C, "_cpu") else {}
    cap = next((os.environ[v].strip().upper() for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
                if os.environ.get(v, "").strip()), None)
    has_bf16 = bool(info.get("avx512_bf16") or info.get("amx_bf16"))
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": bool(info.get("avx512_bf16")),
        "amx_bf16": bool(info.get("amx_bf16")),
        "onednn_max_cpu_isa": cap,
        "native_bf16": has_bf16 and cap not in _ONEDNN_ISAS_WITHOUT_BF16,
    }


def describe_cpu(features: dict | None = None) -> str:
    """One line for logs and reports, e.g. ``"AVX512, native bfloat16 (AVX512-BF16)"``."""
    f = cpu_features() if features is None else features
    sets = [name for name, key in (("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16"))
            if f[key]]
    text = f["capability"]
    if f["native_bf16"]:
        text += f", native bfloat16 ({' + '.join(sets)})"
    elif sets:
        text += f", {' + '.join(sets)} disabled by ONEDNN_MAX_CPU_ISA={f['onednn_max_cpu_isa']}"
    else:
        text += ", no native bfloat16 (no AVX512-BF16 or AMX)"
    return text


def bf16_speedup(repeats: int = 3) -> float:
    """float32 time over bfloat16-autocast time of one small convolution layer
    (forward and backward, the shapes of a DBNet stage), best of ``repeats``;
    measured once per process. Above 1, bfloat16 is faster here."""
    if "conv" not in _measured:
        generator = torch.Generator().manual_seed(0)
        conv = torch.nn.Conv2d(64, 64, 3, padding=1)
        x = torch.randn(2, 64, 32, 32, generator=generator, requires_grad=True)

        def best(enabled: bool) -> float:
            times = []
            for _ in range(repeats + 1):  # the first call of each is a warm-up
                began = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                    y = conv(x)
                y.float().sum().backward()
                times.append(time.perf_counter() - began)
            return min(times[1:])

        _measured["conv"] = best(False) / best(True)
    return _measured["conv"]


def cpu_bf16_is_fast() -> tuple[bool, str]:
    """Whether bfloat16 autocast is worth it on this CPU, and why."""
    features = cpu_features()
    if features["native_bf16"]:
        return True, describe_cpu(features)
    speedup = bf16_speedup()
    why = f"{describe_cpu(features)}; a bfloat16 convolution ran {speedup:.2f}x float32's speed"
    return speedup > 1.1, why


def resolve_amp(device: torch.device | str, amp: bool, what: str = "amp") -> bool:
    """Whether autocast really runs for a request ``amp`` on ``device``: as asked on
    CUDA; on the CPU only where bfloat16 is fast (:func:`cpu_bf16_is_fast`), else
    False with a warning (once per process and ``what``) that names the CPU."""
    if not amp or torch.device(device).type != "cpu":
        return bool(amp)
    fast, why = cpu_bf16_is_fast()
    if not fast and what not in _warned:
        _warned.add(what)
        warnings.warn(f"{what}: bfloat16 autocast was asked for, but this CPU computes it "
                      f"slowly ({why}); running in float32", RuntimeWarning, stacklevel=2)
    return fast


def autocast(device: torch.device, enabled: bool):
    """Mixed precision as the project uses it: float16 on CUDA, bfloat16 on the CPU.
    ``enabled`` is what :func:`resolve_amp` decided."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)
