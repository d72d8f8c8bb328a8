"""Minibatch discrimination (Salimans et al. 2016, arXiv:1606.03498, §3.2).

For features f(x_i) ∈ R^A of the N samples of a batch and a learned tensor
T ∈ R^{A×B×C}::

    M_i = f(x_i) · T ∈ R^{B×C}
    c_b(x_i, x_j) = exp(-‖M_{i,b} - M_{j,b}‖_L1)
    o(x_i)_b = Σ_j c_b(x_i, x_j)                              (Eq. in §3.2)

and ``[f(x_i), o(x_i)]`` goes on to D's next layer, so D can see how close a sample
is to the rest of its batch: a collapsed generator's batch is easy to spot.

Two forms (``form=``):

* ``authors`` (the default): as the authors' code (improved-gan, ``MinibatchLayer`` in
  ``mnist_svhn_cifar10/nn.py``). T is weight-normalised, T[:, b, c] = exp(s_bc) V[:, b, c] /
  ‖V[:, b, c]‖ with a learned log-scale s (B×C), and a learned bias β (B) is added:
  ``o(x_i)_b + β_b``. Both are set from data at the first forward in training (on D's
  first batch, real data under every scheme built in): each kernel's scale so that the
  batch's mean nearest-neighbour L1 distance ‖M_{i,b} - M_{j,b}‖ is 2, then β = minus the
  mean of o over the batch, so the feature starts centred and in its sensitive range. The
  flag ``initialized`` (a buffer, in the state dict) makes this happen once: a resumed run
  does not redo it. The initialisation runs under ``no_grad`` on the module's own
  parameters only; a call through ``torch.func.functional_call`` with other tensors (the
  unrolled scheme's copies of D) leaves it for the real D.
* ``simple``: T drawn N(0, ``init_std``²) and used as it is, no scale, no bias (this
  module's form before the authors' became the default).

Why the authors' form is the default: with T ~ N(0, 0.05²) the projections M are so small
that on the 2-D mixtures at initialisation the nearest-neighbour distance is ~0.001, every
c_b(x_i, x_j) ≈ 1 and o sits near its maximum (≈ 89 of 99 for a batch of 100): it barely
varies, and D learns nothing from it at first. After the data-dependent initialisation the
nearest neighbour contributes ≈ exp(-2) and o is centred (mean 0.56 before the bias, max 4.3,
on a ring8 batch with the fast protocol's D), so it responds from step 1. The other side of
it: on data in tight clusters (ring8's std is 0.01) the scale that puts nearest neighbours at
distance 2 is large, and so is D's input gradient through o: R1's gradient norm at the first
step is 64 (2.8 with ``form=simple``, 0.06 without the trick), and a gradient penalty
(r1, dragan, wgan-gp) dominates D's loss at first (it then shrinks the learned scale).
And it trains worse there: on ring8 with the fast protocol's nets and settings, 2,000 steps,
seeds 0 and 1, the authors' form covered 2 and 0 modes (high quality 3.4 % and 0 %) against 8 and 8
(29.7 % and 14.2 %) with ``form=simple``. With the scale set on the real clusters, a fake batch
that is not yet on them has every pair far apart, o ≈ 0 with no gradient, and D separates real from
fake by o alone (D's real logits 10-16 against -3 to -5 for fakes). BENCHMARKS.md's rows for this
trick were measured with the simple form (the only one then).

The paper's sum runs over all j, so each o(x_i)_b includes c_b(x_i, x_i) = 1, a
constant. The authors' code leaves j = i out (it adds a large number to the diagonal
distances); we follow the code by default (``include_self=False``: o counts the *other*
samples) and ``include_self=True`` gives the paper's formula.

Cost: the pairwise part is N²·B·C (1M pairs × 5 dimensions for batch 100 and the defaults). On the CPU it
runs in native code (``gantricks/native/closeness.cpp``, built with the system's C++ compiler at first use,
:mod:`gantricks.native`): each pair once per kernel (K is symmetric), its distance, exp and gradient terms
in vector registers; the forward keeps K (B, N, N) for the backward up to ``KEEP_KERNEL_BYTES``, and the
double backward (gradient penalties, the exact unrolled scheme) has its own native kernel. Elsewhere (a GPU,
no compiler, ``GANTRICKS_NATIVE=0``, kernel_dim above 64) the same function runs as torch ops: custom autograd
functions that never build the (B, C, N, N) differences (the forward accumulates the (B, N, N) exponents one
dimension at a time as |a - b| = a + b - 2 min(a, b) and takes exp2; the backward reduces Σ_j w_ij
sign(M_j - M_i) one dimension at a time in one scratch tensor), ~40 passes over (B, N, N) tensors per D call.
A ``gan.step`` on the fast protocol's nets (batch 100, ring8, one CPU thread)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/minibatch_cost.py --repeats 11 --steps 20 \
        --tricks minibatch-discrimination,minibatch-discrimination:form=simple,\
minibatch-discrimination@torch,minibatch-discrimination@zero

measured 3.96 ms CPU without the trick and 11.1 ms with it (x2.8; x2.7 with ``form=simple``), against
28.8 ms (x7.2) for the torch formulation, median of 11 interleaved repeats on a busy 2-core machine. What
bounds it: with the pairwise sums replaced by zeros (``@zero``) the step still costs x1.7 (the projection
to 100 × 5 kernels, a 128 × 500 matrix product per D call and two in its backward, and the weight norm),
and the native pairwise sums take ~1 ns per kernel and pair of samples (each pair once: 0.5M for batch
100) in the forward and as much in the backward on this CPU (AMD EPYC, AVX2): 4.2 ms of the step's 11.1.
With ``--scheme unrolled:k=2`` (double backward) 54 ms against 15 ms (x3.6; x9.3 as torch ops); on the
``collapse`` protocol's nets (batch 512: 26M pairs per D call) 100 ms against 5.6 ms (x18; x169 as torch
ops). BENCHMARKS.md §9d has the commands and the table.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..native import closeness as native_closeness
from .base import D_ARCH, Trick
from .common import register_trick, require
from .insert_features import insert_before

FORMS = ("authors", "simple")
INIT_DISTANCE = 2.0      # the authors' target for the mean nearest-neighbour L1 distance of each kernel
_LOG2E = 1.0 / math.log(2.0)
_MIN_EXPONENT = -64.0     # the kernel's floor: 2^-64 = 5.4e-20 (see _kernel)
# The native forward keeps K for the backward up to this size (batch 290 at 100 kernels): beyond it a fresh K per
# call costs more in page faults than recomputing it (measured at batch 512: 62 ms a forward against 11)
KEEP_KERNEL_BYTES = 32 * 2**20


# --- the pairwise kernel sums -----------------------------------------------------------------
def _l1_distances_reference(X: Tensor) -> Tensor:
    """Σ_c |X_{b,c,i} - X_{b,c,j}| as ``(B, N, N)`` for ``X`` ``(B, C, N)``, in differentiable ops,
    one (B, N, N) tensor per dimension c rather than a (B, C, N, N) one."""
    d = None
    for c in range(X.shape[1]):
        x = X[:, c]
        t = (x[:, :, None] - x[:, None, :]).abs()
        d = t if d is None else d + t
    return d


def _neg_log2_kernel(M: Tensor) -> Tensor:
    """-Σ_c |M_{i,b,c} - M_{j,b,c}| · log2(e) as ``(B, N, N)`` for ``M`` ``(N, B, C)``, no autograd.

    |a - b| = a + b - 2 min(a, b), so with u = 2a: -Σ_c |a_i - a_j| = Σ_c min(u_i, u_j) - (S_i + S_j) / 2,
    S = Σ_c u: two passes over (B, N, N) per dimension. Centring each (b, c) over the batch first
    (distances do not change) keeps the cancellation small."""
    U = M.permute(1, 2, 0)                                            # (B, C, N)
    U = (U - U.mean(dim=2, keepdim=True)).mul_(2 * _LOG2E).contiguous()
    half_sum = U.sum(dim=1).mul_(-0.5)                                # (B, N)
    acc = half_sum[:, :, None] + half_sum[:, None, :]
    tmp = _scratch(acc)
    for c in range(U.shape[1]):
        u = U[:, c]
        acc.add_(torch.minimum(u[:, :, None], u[:, None, :], out=tmp))
    return acc


def _kernel(M: Tensor, include_self: bool) -> Tensor:
    """exp(-‖M_ib - M_jb‖_1) as ``(B, N, N)``, its diagonal 1 (``include_self``) or 0.

    Exponents below -64 (distances above 44) are raised to -64: such a pair adds 5e-20 instead of
    less to o. Without a floor, exp2 is several times slower where its result underflows (3.5x measured
    on one CPU core for results below 2^-126); -64 rather than -126 also keeps the backward's products
    w = (g_i + g_j) K out of the denormal range, which some CPUs compute far more slowly."""
    K = _neg_log2_kernel(M).clamp_(min=_MIN_EXPONENT).exp2_()
    K.diagonal(dim1=1, dim2=2).fill_(1.0 if include_self else 0.0)   # exact: exp(0) = 1
    return K


_scratch_space = threading.local()


def _scratch(like: Tensor) -> Tensor:
    """A (B, N, N) work tensor like ``like``, kept between calls (per thread, the last shape only): a fresh
    4 MB tensor per call costs a CPU its page faults again. It never leaves the function that asks for it."""
    key = (like.shape, like.dtype, like.device)
    if getattr(_scratch_space, "key", None) != key:
        _scratch_space.key, _scratch_space.tensor = key, torch.empty_like(like)
    return _scratch_space.tensor


def _weighted_sign_sums(X: Tensor, W: Tensor) -> Tensor:
    """``(C, B, N)``: Σ_j W_ij sign(X_{b,c,j} - X_{b,c,i}) for X ``(B, C, N)`` and W ``(B, N, N)``, one
    dimension c at a time in the scratch tensor."""
    tmp = _scratch(W)
    out = torch.empty(X.shape[1], X.shape[0], X.shape[2], dtype=X.dtype, device=X.device)
    for c in range(X.shape[1]):
        x = X[:, c]
        torch.sub(x[:, None, :], x[:, :, None], out=tmp).sign_().mul_(W)
        torch.sum(tmp, dim=2, out=out[c])
    return out


def _pair_weights(K: Tensor, grad: Tensor, out: Tensor | None = None) -> Tensor:
    """w_ij = (g_i + g_j) K_ij ``(B, N, N)`` for the gradient of o ``(N, B)``; written over ``out`` if given."""
    g = grad.T.contiguous()
    both = torch.add(g[:, :, None], g[:, None, :], out=_scratch(K))
    return torch.mul(K, both, out=out) if out is not None else K * both


class _Closeness(torch.autograd.Function):
    """o ``(N, B)`` from M ``(N, B, C)``: o_ib = Σ_j exp(-‖M_ib - M_jb‖_1), j = i left out or not.

    Its gradient: the pair (i, j) enters o_i and o_j, so with w_ij = (g_i + g_j) K_ij,
    ∂L/∂M_ibc = -Σ_j w_ij sign(M_ibc - M_jbc) (the diagonal has sign 0)."""

    @staticmethod
    def forward(ctx, M: Tensor, include_self: bool) -> Tensor:
        K = _kernel(M, include_self)                                  # (B, N, N), symmetric
        o = K.sum(dim=2).T
        ctx.save_for_backward(M)
        ctx.include_self = include_self
        ctx.K = K if ctx.needs_input_grad[0] else None
        return o

    @staticmethod
    def backward(ctx, grad: Tensor):
        M, = ctx.saved_tensors
        K = ctx.K if ctx.K is not None else _kernel(M, ctx.include_self)
        ctx.K = None         # K goes to _ClosenessGrad or is overwritten by w here; another backward recomputes it
        if torch.is_grad_enabled():          # create_graph: the gradient must be differentiable
            return _ClosenessGrad.apply(M, grad, K), None
        X = M.permute(1, 2, 0).contiguous()                           # (B, C, N)
        return _weighted_sign_sums(X, _pair_weights(K, grad, out=K)).permute(2, 1, 0), None


class _ClosenessGrad(torch.autograd.Function):
    """The gradient of :class:`_Closeness`, F_ic = -Σ_j (g_i + g_j) K_ij s_ijc with s_ijc = sign(M_ic - M_jc)
    (per kernel b), as a function of M and g, for double backward (gradient penalties, exact unrolling).

    Its gradient, for an upstream H ``(N, B, C)``, with A_ij = Σ_c s_ijc (H_ic - H_jc) (s has derivative 0):
    ∂L/∂g_i = -Σ_j K_ij A_ij and ∂L/∂M_ic = Σ_j (g_i + g_j) K_ij A_ij s_ijc (K varies with M)."""

    @staticmethod
    def forward(ctx, M: Tensor, grad: Tensor, K: Tensor) -> Tensor:
        ctx.save_for_backward(M, grad, K)
        X = M.permute(1, 2, 0).contiguous()
        return _weighted_sign_sums(X, _pair_weights(K, grad)).permute(2, 1, 0)

    @staticmethod
    def backward(ctx, H: Tensor):
        M, grad, K = ctx.saved_tensors
        if torch.is_grad_enabled():          # a third derivative: autograd through the plain formula
            return _third_derivative(ctx, M, grad, H) + (None,)
        X = M.permute(1, 2, 0).contiguous()                           # (B, C, N)
        Hx = H.permute(1, 2, 0).contiguous()
        A = torch.zeros_like(K)
        s, dH = torch.empty_like(K), _scratch(K)
        for c in range(X.shape[1]):
            x, h = X[:, c], Hx[:, c]
            torch.sub(x[:, :, None], x[:, None, :], out=s).sign_()
            A.addcmul_(s, torch.sub(h[:, :, None], h[:, None, :], out=dH))
        KA = A.mul_(K)
        d_grad = KA.sum(dim=2).T.neg()
        d_M = _weighted_sign_sums(X, _pair_weights(KA, grad, out=KA)).neg_().permute(2, 1, 0)
        return d_M, d_grad, None


class _NativeCloseness(torch.autograd.Function):
    """:class:`_Closeness` by the native kernels (``gantricks/native/closeness.cpp``): the same function and
    derivatives, each pair of samples visited once per kernel. K, the (B, N, N) kernel matrix (as the torch
    formulation keeps it), is kept for the backward where it takes at most ``KEEP_KERNEL_BYTES`` (the backward
    then skips half its work); beyond that the backward recomputes it."""

    @staticmethod
    def forward(ctx, M: Tensor, include_self: bool) -> Tensor:
        keep = ctx.needs_input_grad[0] and math.prod(native_closeness.kernel_shape(M)) * M.element_size() \
            <= KEEP_KERNEL_BYTES
        o, K = native_closeness.forward(M, include_self, keep_kernel=keep)
        ctx.save_for_backward(M)
        ctx.K = K
        return o

    @staticmethod
    def backward(ctx, grad: Tensor):
        M, = ctx.saved_tensors
        K, ctx.K = ctx.K, None        # freed after its backward; a second backward (retain_graph) recomputes it
        if torch.is_grad_enabled():          # create_graph: the gradient must be differentiable
            return _NativeClosenessGrad.apply(M, grad, K), None
        d_M = native_closeness.backward(M, grad, K)
        native_closeness.release(K)          # for the next forward to reuse (the double backward's K is not)
        return d_M, None


class _NativeClosenessGrad(torch.autograd.Function):
    """:class:`_ClosenessGrad` by the native kernels (K: the forward's, or None)."""

    @staticmethod
    def forward(ctx, M: Tensor, grad: Tensor, K: Tensor | None) -> Tensor:
        ctx.save_for_backward(M, grad, K)
        return native_closeness.backward(M, grad, K)

    @staticmethod
    def backward(ctx, H: Tensor):
        M, grad, K = ctx.saved_tensors
        if torch.is_grad_enabled():          # a third derivative: autograd through the plain formula
            return _third_derivative(ctx, M, grad, H) + (None,)
        return native_closeness.double_backward(M, grad, H, K) + (None,)


def _third_derivative(ctx, M: Tensor, grad: Tensor, H: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """The vector-Jacobian product of the gradient under create_graph (a third derivative is on its way): autograd
    through the plain formula :func:`_closeness_grad_reference`."""
    wrt = [t for t, needed in zip((M, grad), ctx.needs_input_grad) if needed]
    with torch.enable_grad():
        got = iter(torch.autograd.grad(_closeness_grad_reference(M, grad), wrt, H, create_graph=True))
    return tuple(next(got) if needed else None for needed in ctx.needs_input_grad[:2])


def _closeness_grad_reference(M: Tensor, grad: Tensor) -> Tensor:
    """The gradient of :class:`_Closeness` in differentiable ops (its own gradient is the double
    backward): -Σ_j (g_i + g_j) exp(-d_ij) sign(M_ibc - M_jbc)."""
    X = M.permute(1, 2, 0)                                            # (B, C, N)
    K = torch.exp(-_l1_distances_reference(X))
    g = grad.T
    W = K * (g[:, :, None] + g[:, None, :])
    out = [-(W * (X[:, c, :, None] - X[:, c, None, :]).detach().sign()).sum(dim=2) for c in range(X.shape[1])]
    return torch.stack(out, dim=2).permute(1, 0, 2)                   # (N, B, C)


def kernel_closeness(M: Tensor, include_self: bool = False) -> Tensor:
    """o ``(N, B)`` for projections ``M`` ``(N, B, C)``: Σ_j exp(-‖M_ib - M_jb‖_L1), over j ≠ i unless
    ``include_self``. Computed in at least float32; differentiable twice. On CPU by the native kernels where
    they are built (:mod:`gantricks.native`), else by torch ops."""
    M = _at_least_fp32(M)
    if native_closeness.available_for(M):
        return _NativeCloseness.apply(M, include_self)
    return _Closeness.apply(M, include_self)


def minibatch_features(features: Tensor, T: Tensor, include_self: bool = False) -> Tensor:
    """Minibatch discrimination's o(x) ``(N, B)`` for features ``(N, A)`` and T ``(A, B, C)`` (Salimans et al.
    2016, arXiv:1606.03498, §3.2)."""
    A, B, C = T.shape
    M = (features @ T.reshape(A, B * C)).reshape(-1, B, C)
    return kernel_closeness(M, include_self)


def nearest_neighbour_distances(M: Tensor) -> Tensor:
    """``(N, B)``: each sample's L1 distance to its nearest other sample, per kernel."""
    with torch.no_grad():
        d = _l1_distances_reference(M.permute(1, 2, 0))
        d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        return d.min(dim=2).values.T


# --- the layer ---------------------------------------------------------------------------------
class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination layer (Salimans et al. 2016, arXiv:1606.03498, §3.2), ``(N, A) -> (N, A + B)``:
    the features with o(x) appended (module docstring: ``form``)."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5, include_self: bool = False,
                 init_std: float = 0.05, form: str = "authors"):
        super().__init__()
        require(form in FORMS, f"minibatch-discrimination: form must be one of {', '.join(FORMS)}, got {form!r}")
        self.include_self, self.form = include_self, form
        if form == "simple":
            self.T = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)
            return
        self.V = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)   # direction
        self.log_scale = nn.Parameter(torch.zeros(kernels, kernel_dim))
        self.bias = nn.Parameter(torch.full((kernels,), -1.0))         # the authors' value before the init
        self.register_buffer("initialized", torch.tensor(False))
        self._known_initialized = False      # a host copy, so that a GPU run reads the flag once
        self.register_load_state_dict_post_hook(_forget_known_initialized)

    def projection(self) -> Tensor:
        """T ``(A, B, C)``."""
        if self.form == "simple":
            return self.T
        return self.V * (self.log_scale.exp() * self.V.pow(2).sum(dim=0).rsqrt())

    def forward(self, x: Tensor) -> Tensor:
        if self.form == "simple":
            return torch.cat([x, minibatch_features(x, self.T, self.include_self).to(x.dtype)], dim=1)
        if self.training and self._needs_init():
            self.initialize(x)
        o = minibatch_features(x, self.projection(), self.include_self) + self.bias
        return torch.cat([x, o.to(x.dtype)], dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        saved = "simple" if prefix + "T" in state_dict else "authors" if prefix + "V" in state_dict else self.form
        if saved != self.form:     # e.g. a checkpoint from before the authors' form became the default
            error_msgs.append(f"minibatch-discrimination: the state was saved with form={saved}, this layer has "
                              f"form={self.form}; build it with minibatch-discrimination:form={saved}")
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _needs_init(self) -> bool:
        if self._known_initialized:
            return False
        if not isinstance(self.V, nn.Parameter):    # functional_call with other tensors: not our parameters
            return False
        self._known_initialized = bool(self.initialized)
        return not self._known_initialized

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """The authors' data-dependent initialisation on the batch ``x``: each kernel's scale so that the
        mean nearest-neighbour L1 distance is 2, then the bias to minus the mean feature. Needs two samples
        or more (else nothing happens); under torch.distributed the statistics are averaged over the ranks
        (a rank with a single sample takes the others')."""
        if x.shape[0] < 2 and not _distributed():
            return
        x, T = _at_least_fp32(x.detach()), _at_least_fp32(self.projection())
        A, B, C = T.shape
        M = (x.to(T.dtype) @ T.reshape(A, B * C)).reshape(-1, B, C)
        mean_nn = _mean_over_ranks(nearest_neighbour_distances(M).mean(dim=0))          # (B,)
        ok = torch.isfinite(mean_nn) & (mean_nn > 0)      # a kernel that sees no spread keeps its scale
        shift = torch.where(ok, torch.log(INIT_DISTANCE / mean_nn.clamp_min(1e-30)), torch.zeros_like(mean_nn))
        self.log_scale.add_(shift[:, None].to(self.log_scale.dtype))
        M = M * shift.exp()[None, :, None]
        o = _mean_over_ranks(kernel_closeness(M, self.include_self).mean(dim=0))
        self.bias.copy_(-o)
        self.initialized.fill_(True)
        self._known_initialized = True


def _forget_known_initialized(module: MinibatchDiscrimination, _keys) -> None:
    module._known_initialized = False        # read the loaded flag at the next forward


def _at_least_fp32(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _mean_over_ranks(t: Tensor) -> Tensor:
    """The mean over the ranks of the finite values (a rank without a nearest neighbour has inf)."""
    if not _distributed():
        return t
    finite = torch.isfinite(t)
    both = torch.stack([torch.where(finite, t, torch.zeros_like(t)), finite.to(t.dtype)])
    dist.all_reduce(both)
    return torch.where(both[1] > 0, both[0] / both[1].clamp_min(1), torch.full_like(t, float("inf")))


@register_trick("minibatch-discrimination", paper="Salimans et al. 2016, arXiv:1606.03498, §3.2",
                summary="D sees how close each sample is to the others of its batch (o(x) appended to its features)")
class MinibatchDiscriminationTrick(Trick):
    """Insert the minibatch-discrimination layer in front of D's layer ``layer`` (default: its head).

    Args:
        kernels: B, the number of closeness features appended.
        kernel_dim: C, the size of each kernel's projection.
        layer: name (from ``D.named_modules()``) of the Linear layer that receives the features.
        include_self: count c(x_i, x_i) = 1 in the sum, as the paper's formula (default: as its code).
        form: ``authors`` (weight-normalised T with a learned scale and bias, initialised from the first
            batch, as the authors' code; default) or ``simple`` (T ~ N(0, 0.05²), no scale or bias).
    """

    touches = (D_ARCH,)

    def __init__(self, kernels: int = 100, kernel_dim: int = 5, layer: str = "", include_self: bool = False,
                 form: str = "authors"):
        require(kernels >= 1 and kernel_dim >= 1,
                f"minibatch-discrimination: kernels and kernel_dim must be >= 1, got {kernels}, {kernel_dim}")
        require(form in FORMS, f"minibatch-discrimination: form must be one of {', '.join(FORMS)}, got {form!r}")
        self.kernels, self.kernel_dim, self.layer, self.include_self = kernels, kernel_dim, layer, include_self
        self.form = form

    def setup(self, gan) -> None:
        def make(name: str, target: nn.Module) -> tuple[nn.Module, int]:
            require(isinstance(target, nn.Linear), f"minibatch-discrimination works on flat features; layer "
                    f"{name!r} is a {type(target).__name__}: name a Linear layer with layer=")
            return MinibatchDiscrimination(target.in_features, self.kernels, self.kernel_dim,
                                           self.include_self, form=self.form), self.kernels
        insert_before(gan.D, self.layer, make, self.name)
