"""Minibatch discrimination's pairwise sums: the native kernels (gantricks/native/closeness.cpp) and the torch
formulation, each against an explicit loop over the pairs of samples, against each other, and their build."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

import gantricks.native as native
from gantricks.native import closeness as native_closeness
from gantricks.tricks import minibatch_discrimination as md

FLOOR = -64 * math.log(2)          # the kernel's floor on the exponent: exp(-d) >= 2^-64


def loop_closeness(M: torch.Tensor, include_self: bool) -> torch.Tensor:
    """o_ib = Σ_{j≠i} exp(max(-Σ_c |M_ibc - M_jbc|, -64 ln 2)) (+1 for j = i with include_self), one pair at a time,
    in differentiable scalar ops (autograd of it is the reference for the derivatives)."""
    N, B, C = M.shape
    rows = []
    for i in range(N):
        row = []
        for b in range(B):
            total = torch.ones((), dtype=M.dtype) if include_self else torch.zeros((), dtype=M.dtype)
            for j in range(N):
                if j != i:
                    distance = sum((M[i, b, c] - M[j, b, c]).abs() for c in range(C))
                    total = total + torch.exp(torch.clamp(-distance, min=FLOOR))
            row.append(total)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def loop_gradient(M: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """∂(Σ g·o)/∂M written out pair by pair: -Σ_j (g_ib + g_jb) K_ij sign(M_ibc - M_jbc)."""
    N, B, C = M.shape
    out = torch.zeros_like(M)
    for i in range(N):
        for j in range(N):
            for b in range(B):
                if j == i:
                    continue
                K = math.exp(max(-float((M[i, b] - M[j, b]).abs().sum()), FLOOR))
                for c in range(C):
                    out[i, b, c] -= (g[i, b] + g[j, b]) * K * torch.sign(M[i, b, c] - M[j, b, c])
    return out


IMPLEMENTATIONS = {"native": md._NativeCloseness.apply, "torch": md._Closeness.apply}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def closeness(request):
    if request.param == "native" and not native_closeness.available_for(torch.zeros(2, 1, 1)):
        pytest.skip(f"no native kernels here: {native.build_error('closeness') or 'no C++ compiler'}")
    return IMPLEMENTATIONS[request.param]


def spread(N: int, B: int, C: int, dtype=torch.float64, scale: float = 0.7) -> torch.Tensor:
    return (torch.randn(N, B, C, dtype=dtype) * scale).requires_grad_()


# --- against the loop over pairs ---------------------------------------------------------------
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("N,B,C", [(1, 2, 3), (2, 1, 1), (7, 3, 4), (9, 2, 5), (17, 2, 2), (10, 1, 11)])
def test_forward_and_gradient_equal_the_loop_over_pairs(closeness, N, B, C, include_self):
    """Batch sizes around the vector width (the native kernels pad and mask the rows), kernel dims up to 8
    (compiled for each) and above (the generic loop)."""
    M = spread(N, B, C)
    g = torch.randn(N, B, dtype=torch.float64)
    torch.testing.assert_close(closeness(M, include_self), loop_closeness(M.detach(), include_self))
    got = torch.autograd.grad((closeness(M, include_self) * g).sum(), M)[0]
    torch.testing.assert_close(got, loop_gradient(M.detach(), g))


def test_pairs_beyond_the_floor_count_2_to_the_minus_64(closeness):
    M = torch.tensor([[[0.0]], [[10.0]], [[100.0]]], dtype=torch.float64)       # distances 10, 90, 100
    expected = torch.tensor([[math.exp(-10) + 2.0 ** -64], [math.exp(-10) + 2.0 ** -64], [2 * 2.0 ** -64]],
                            dtype=torch.float64)
    torch.testing.assert_close(closeness(M, False), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("include_self", [False, True])
def test_second_derivative_equals_autograd_through_the_loop(closeness, include_self):
    """The gradient under create_graph (gradient penalties, exact unrolling), differentiated again, against
    autograd's second derivative of the loop; and gradgradcheck (finite differences of the first derivative)."""
    M = spread(6, 2, 3)
    g, h = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)
    M_ref = M.detach().clone().requires_grad_()
    first = torch.autograd.grad((closeness(M, include_self) * g).sum(), M, create_graph=True)[0]
    first_ref = torch.autograd.grad((loop_closeness(M_ref, include_self) * g).sum(), M_ref, create_graph=True)[0]
    torch.testing.assert_close(first, first_ref)
    torch.testing.assert_close(torch.autograd.grad((first * h).sum(), M)[0],
                               torch.autograd.grad((first_ref * h).sum(), M_ref)[0])
    # the second derivative with respect to the upstream gradient too (g enters the double backward)
    g_var, g_ref = g.clone().requires_grad_(), g.clone().requires_grad_()
    first = torch.autograd.grad((closeness(M, include_self) * g_var).sum(), M, create_graph=True)[0]
    first_ref = torch.autograd.grad((loop_closeness(M_ref, include_self) * g_ref).sum(), M_ref, create_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad((first * h).sum(), g_var)[0],
                               torch.autograd.grad((first_ref * h).sum(), g_ref)[0])
    assert torch.autograd.gradgradcheck(lambda v: closeness(v, include_self), (spread(5, 2, 3),))


def test_third_derivative_equals_autograd_through_the_loop(closeness):
    M = spread(5, 2, 2)
    M_ref = M.detach().clone().requires_grad_()
    g, h = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, 2, dtype=torch.float64)

    def third(f, m):
        first = torch.autograd.grad((f(m) * g).sum(), m, create_graph=True)[0]
        second = torch.autograd.grad((first * h).sum(), m, create_graph=True)[0]
        return torch.autograd.grad(second.pow(2).sum(), m)[0]
    torch.testing.assert_close(third(lambda m: closeness(m, False), M),
                               third(lambda m: loop_closeness(m, False), M_ref))


# --- the native kernels against the torch formulation, at a training batch's size --------------
def native_only():
    if not native_closeness.available_for(torch.zeros(2, 1, 1)):
        pytest.skip(f"no native kernels here: {native.build_error('closeness') or 'no C++ compiler'}")


@pytest.mark.parametrize("N,B,C", [(100, 100, 5), (61, 100, 5), (37, 20, 12)])
def test_native_equals_the_torch_formulation_in_float32(N, B, C):
    """The fast protocol's batch (100 samples, 100 kernels of 5), an odd batch, and a kernel_dim above 8 (the
    generic loop): forward, backward with K kept and recomputed, and the double backward, float32 against
    the torch formulation within float tolerance (both against float64)."""
    native_only()
    M = torch.randn(N, B, C) * 0.7
    g, h = torch.randn(N, B), torch.randn(N, B, C)
    exact = md._Closeness.apply(M.double(), False)
    for o in (native_closeness.forward(M, False)[0], md._Closeness.apply(M, False)):
        torch.testing.assert_close(o.double(), exact, rtol=2e-6, atol=2e-6)
    o, K = native_closeness.forward(M, False, keep_kernel=True)
    Md = M.double().requires_grad_()
    grad_exact = torch.autograd.grad((md._Closeness.apply(Md, False) * g.double()).sum(), Md)[0]
    for grad in (native_closeness.backward(M, g), native_closeness.backward(M, g, K)):
        torch.testing.assert_close(grad.double(), grad_exact, rtol=2e-5, atol=2e-5)
    ctx = type("Ctx", (), {"saved_tensors": (M.double(), g.double(), md._kernel(M.double(), False)),
                           "needs_input_grad": (True, True, False)})
    with torch.no_grad():
        d_M_exact, d_g_exact, _ = md._ClosenessGrad.backward(ctx, h.double())
    for d_M, d_g in (native_closeness.double_backward(M, g, h), native_closeness.double_backward(M, g, h, K)):
        torch.testing.assert_close(d_M.double(), d_M_exact, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(d_g.double(), d_g_exact, rtol=1e-4, atol=1e-4)


def test_native_threads_give_the_same_sums():
    native_only()
    M, g = torch.randn(40, 16, 5), torch.randn(40, 16)
    one = native_closeness.forward(M, False)[0], native_closeness.backward(M, g)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = native_closeness.forward(M, False)[0], native_closeness.backward(M, g)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)          # each kernel b is one thread's, summed in the same order


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("N", [1, 6])
def test_non_finite_projections_give_what_the_torch_formulation_gives(bad, N):
    """A NaN or inf in a kernel's projections: its o and gradients are NaN (the torch formulation's centring
    spreads it; the native kernels leave such a kernel out of the pair loops and write NaN); other kernels
    are untouched. With one sample there is no pair: o is its constant and the gradient 0."""
    native_only()
    M, g = torch.randn(N, 3, 2, dtype=torch.float64), torch.randn(N, 3, dtype=torch.float64)
    M[0, 1, 0] = bad
    results = []
    for apply in (md._NativeCloseness.apply, md._Closeness.apply):
        m = M.clone().requires_grad_()
        o = apply(m, False)
        results.append((o, torch.autograd.grad((o * g).sum(), m)[0]))
    (o, grad), (o_ref, grad_ref) = results
    torch.testing.assert_close(o, o_ref, equal_nan=True)
    torch.testing.assert_close(grad, grad_ref, equal_nan=True)
    if N > 1:
        assert o[:, 1].isnan().all() and o[:, [0, 2]].isfinite().all()
    else:
        assert o.isfinite().all() and grad.eq(0).all()


def test_kept_kernels_of_two_batches_in_flight_and_a_retained_graph():
    """D's step: the real and the fake batch's forwards before one backward (two kept K at once, given back
    for reuse); a retained graph's second backward (its K was given back: recomputed)."""
    native_only()
    real, fake = (torch.randn(30, 8, 5) * 0.5).requires_grad_(), (torch.randn(30, 8, 5) * 0.5).requires_grad_()
    g = torch.randn(30, 8)

    def both(apply, retain=False):
        loss = (apply(real, False) * g).sum() - (apply(fake, False) * g).sum()
        return torch.autograd.grad(loss, (real, fake), retain_graph=retain), loss

    expected, _ = both(md._Closeness.apply)
    for _ in range(2):                              # the second time on buffers the first gave back
        got, _ = both(md._NativeCloseness.apply)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)
    loss = (md._NativeCloseness.apply(real, False) * g).sum()
    first = torch.autograd.grad(loss, real, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(loss, real)[0], first)


# --- which implementation runs, and the build ---------------------------------------------------
def test_kernel_closeness_takes_the_native_kernels_on_cpu_unless_switched_off(monkeypatch):
    native_only()
    M = torch.randn(5, 2, 3, requires_grad=True)
    assert type(md.kernel_closeness(M).grad_fn).__name__ == "_NativeClosenessBackward"
    assert type(md.kernel_closeness(torch.randn(5, 2, 65, requires_grad=True)).grad_fn).__name__ == \
        "_ClosenessBackward"                        # a kernel_dim above the compiled limit
    monkeypatch.setenv("GANTRICKS_NATIVE", "0")
    assert type(md.kernel_closeness(M).grad_fn).__name__ == "_ClosenessBackward"


def test_a_failing_compiler_warns_once_and_leaves_the_torch_formulation(monkeypatch, tmp_path):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path))         # nothing built there yet
    monkeypatch.setenv("CXX", "false")                           # a "compiler" that always fails
    monkeypatch.setattr(native, "_built", {})
    monkeypatch.setattr(native, "_errors", {})
    with pytest.warns(UserWarning, match="native closeness kernels could not be built"):
        assert native.library("closeness") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.library("closeness") is None            # once: the failure is remembered
    assert "false" in native.build_error("closeness")


def test_the_library_is_built_into_the_cache_and_loaded_from_it(monkeypatch, tmp_path):
    if native.compiler() is None:
        pytest.skip("no C++ compiler here")
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_built", {})
    lib = native.library("closeness")
    assert lib is not None, native.build_error("closeness")
    built = list((tmp_path / "native").glob("closeness-*.so"))
    assert len(built) == 1 and lib.closeness_abi_version() == 2
    monkeypatch.setattr(native, "_built", {})
    assert native.library("closeness") is not None and list((tmp_path / "native").glob("*")) == built


def test_a_compiler_without_openmp_gets_a_build_without_it_and_the_next_process_loads_that(monkeypatch, tmp_path):
    if native.compiler() is None:
        pytest.skip("no C++ compiler here")
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_OPENMP", ("-fno-such-openmp-flag",))     # as a compiler without OpenMP
    monkeypatch.setattr(native, "_built", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")                           # falling back is not a failure
        assert native.library("closeness") is not None
    compiles = []
    original = native._compile
    monkeypatch.setattr(native, "_compile", lambda *args: compiles.append(args) or original(*args))
    monkeypatch.setattr(native, "_built", {})
    assert native.library("closeness") is not None and compiles == []      # the build there is loaded at once


@pytest.mark.parametrize("scheme", ["standard", "unrolled:k=2"])
def test_a_gan_trains_the_same_with_the_native_kernels_and_the_torch_formulation(monkeypatch, scheme):
    """A few steps of a GAN with the trick (the authors' form: its data-dependent initialisation included; the
    unrolled scheme differentiates D's gradient), once per implementation from the same seed: the same D."""
    native_only()
    from conftest import tiny_nets

    import gantricks as gt

    def train(native_on: bool) -> list[torch.Tensor]:
        monkeypatch.setenv("GANTRICKS_NATIVE", "1" if native_on else "0")
        torch.manual_seed(3)
        gan = gt.GAN(*tiny_nets(width=16), z_dim=2, tricks=["minibatch-discrimination:kernels=7"], scheme=scheme)
        for _ in range(4):
            gan.step(torch.randn(24, 2))
        layer = gan.D[4][0]
        assert bool(layer.initialized)
        return [p.detach().clone() for p in gan.D.parameters()]

    for a, b in zip(train(True), train(False)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
