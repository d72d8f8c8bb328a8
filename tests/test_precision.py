"""bf16 mixed precision (``precision="bf16"``): autocast forwards, fp32 weights, fp32 penalties.

Tolerances: bf16 keeps 8 bits of mantissa, a relative rounding of 2^-8 ≈ 0.4 % per op; values
that pass through bf16 forwards are compared with fp32 to 3 %, the cosine of G's unrolled
gradient to 0.99. Penalties' input gradients run in fp32 and must match fp32 to float precision.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import gantricks as gt
from gantricks.config import from_mapping
from gantricks.errors import ConfigError
from gantricks.schemes.unrolled import Unrolled
from gantricks.tricks.penalties import input_gradient
from gantricks.tricks.r1 import r1_penalty

from conftest import tiny_nets


def _dtypes_seen(module: nn.Module) -> list[torch.dtype]:
    seen = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    return seen


def test_bf16_step_runs_forwards_in_bf16_and_keeps_fp32_weights():
    G, D = tiny_nets()
    seen = _dtypes_seen(D)
    gan = gt.GAN(G, D, z_dim=2, precision="bf16", tricks=["r1"])
    real = torch.randn(32, 2)
    for _ in range(3):
        logs = gan.step(real)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert torch.bfloat16 in seen                          # D's training forwards ran in bf16 ...
    assert torch.float32 in seen                           # ... and the R1 pass in fp32
    assert all(p.dtype == torch.float32 for m in gan.modules.values() for p in m.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in gan.optimizers["D"].state.values())


def test_penalty_under_bf16_autocast_equals_fp32():
    _, D = tiny_nets()
    real = torch.randn(16, 2)
    want, want_norms = r1_penalty(D, real)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_norms = r1_penalty(D, real)
        naive = torch.autograd.grad(D(real.requires_grad_()).sum(), real)[0]   # the bf16 pass it replaces
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got_norms, want_norms, rtol=1e-6, atol=1e-7)
    # the bf16 gradient is off by bf16 rounding, far beyond fp32's, which is why the penalty avoids it
    assert (naive - input_gradient(D, real)).abs().max() > 1e-5


def test_bf16_step_logs_match_fp32_within_bf16_tolerance():
    real = torch.randn(64, 2)
    out = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        G, D = tiny_nets()
        gan = gt.GAN(G, D, z_dim=2, precision=precision, tricks=["wgan-gp"], loss="wasserstein")
        torch.manual_seed(1)
        out[precision] = gan.step(real)
    for key in ("d_real", "d_fake", "d_wgan_gp", "wgan_gp_grad_norm", "g_loss"):
        assert out["bf16"][key] == pytest.approx(out["fp32"][key], rel=0.03, abs=1e-3), key


def test_unrolled_gradient_under_bf16_is_close_to_fp32():
    torch.manual_seed(0)
    G, D = tiny_nets()
    scheme = Unrolled(k=3)
    gan = gt.GAN(G, D, z_dim=2, scheme=scheme, lr_d=0.05)
    real, z = torch.randn(32, 2), torch.randn(32, 2)
    gan.step(real)
    params = list(gan.G.parameters())

    def grad() -> torch.Tensor:
        loss = scheme.generator_loss(gan, gan.G(z), real, lambda: real)[0]
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
    want = grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = grad()
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.99
    assert (got.norm() / want.norm()).item() == pytest.approx(1.0, abs=0.05)


def test_bad_precision_is_refused():
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        gt.GAN(G, D, z_dim=2, precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        from_mapping({"precision": "fp8"})
