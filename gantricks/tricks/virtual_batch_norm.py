"""Virtual batch normalization in G (Salimans et al. 2016, arXiv:1606.03498, §3.4).

Batch norm makes each sample depend on the others in its batch. VBN normalises each example with the
statistics of a *reference batch*, chosen once at the start of training and kept, together with the
example itself: per channel,

    μ = (x̄ + N·μ_ref) / (N + 1),   E[x²] = (x̄² + N·E_ref[x²]) / (N + 1),   σ² = E[x²] − μ²,

(x̄ the example's own mean over its spatial positions, N the reference batch's size), the statistics of
the set {reference batch, x}. The reference batch is run through G before every batch (its own
activations normalised by its own statistics), which doubles G's forward cost; the paper uses VBN in
G only for that reason. An example's output then depends on it and the reference batch alone, in
training and in sampling.

The trick swaps G's batch norms for :class:`VirtualBatchNorm` (a G without batch norm gets one before
each hidden activation) and runs G through :class:`ReferenceBatchGenerator`, whose reference noise
(and labels, for a conditional G) are buffers: drawn once from ``seed``, saved in checkpoints.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import G_ARCH, Trick
from .common import register_trick, require

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)


def virtual_batch_stats(x: Tensor, ref_mean: Tensor, ref_meansq: Tensor, n_ref: int) -> tuple[Tensor, Tensor]:
    """Per-example (mean, variance) over {reference batch, the example} (Salimans et al. 2016, §3.4):
    ``x`` ``(B, C, ...)``; ``ref_mean`` / ``ref_meansq`` the reference batch's per-channel E[x], E[x²]
    ``(1, C, 1...)``; each example and each reference example weighs 1/(N+1)."""
    dims = tuple(range(2, x.dim()))
    own_mean = x.mean(dims, keepdim=True) if dims else x
    own_meansq = x.pow(2).mean(dims, keepdim=True) if dims else x.pow(2)
    w = 1.0 / (n_ref + 1)
    mean = w * own_mean + (1 - w) * ref_mean
    meansq = w * own_meansq + (1 - w) * ref_meansq
    return mean, (meansq - mean.pow(2)).clamp_min(0)


class VirtualBatchNorm(nn.Module):
    """VBN (Salimans et al. 2016, arXiv:1606.03498, §3.4) over the channels (dim 1) of ``(B, C, ...)`` inputs,
    with a learned per-channel gain and bias.

    Call it first on the reference batch with ``reference = True`` (it keeps that batch's statistics and
    normalises the batch by them), then on any batch: each example is normalised by
    :func:`virtual_batch_stats`. :class:`ReferenceBatchGenerator` does both."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.reference = False
        self._ref: tuple[Tensor, Tensor, int] | None = None

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        if self.reference:
            dims = (0, *range(2, x.dim()))
            mean, meansq = x.mean(dims, keepdim=True), x.pow(2).mean(dims, keepdim=True)
            self._ref = (mean, meansq, len(x))
            var = (meansq - mean.pow(2)).clamp_min(0)
        else:
            if self._ref is None:
                raise ConfigError("virtual batch norm ran before its reference batch; run the net through "
                                  "ReferenceBatchGenerator (the virtual-batch-norm trick does)")
            mean, var = virtual_batch_stats(x, *self._ref)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class ReferenceBatchGenerator(nn.Module):
    """G whose :class:`VirtualBatchNorm` layers (Salimans et al. 2016, §3.4) normalise with a fixed reference
    batch: each call runs
    ``generator`` on the reference noise (``reference_labels`` too, for a conditional G) first, then on
    the input. Arguments after ``z`` (a conditional G's labels) pass through."""

    def __init__(self, generator: nn.Module, reference_noise: Tensor, reference_labels: Tensor | None = None):
        super().__init__()
        self.generator = generator
        self.register_buffer("reference_noise", reference_noise)
        self.register_buffer("reference_labels", reference_labels)
        for name in ("z_dim", "z_shape", "num_classes"):
            if hasattr(generator, name):
                setattr(self, name, getattr(generator, name))

    def forward(self, z: Tensor, *args) -> Tensor:
        layers = [m for m in self.generator.modules() if isinstance(m, VirtualBatchNorm)]
        for m in layers:
            m.reference = True
        try:
            ref_args = (self.reference_labels,) if args else ()
            self.generator(self.reference_noise.to(z.dtype), *ref_args)
        finally:
            for m in layers:
                m.reference = False
        out = self.generator(z, *args)
        for m in layers:
            m._ref = None       # no graph kept between calls
        return out


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def use_virtual_batch_norm(G: nn.Module, probe) -> int:
    """Swap ``G``'s batch norms for :class:`VirtualBatchNorm` (Salimans et al. 2016, §3.4; their gain and bias
    kept); a G without
    batch norm gets one before each hidden activation, sized by ``probe()`` (a dry run of G).
    Returns the number of VBN layers."""
    norms = [(n, m) for n, m in G.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for name, m in norms:
        vbn = VirtualBatchNorm(m.num_features, m.eps)
        if m.affine:
            with torch.no_grad():
                vbn.weight.copy_(m.weight)
                vbn.bias.copy_(m.bias)
        _set(G, name, vbn.to(m.weight.device if m.affine else next(G.parameters()).device))
    if norms:
        return len(norms)
    acts = [(n, m) for n, m in G.named_modules() if isinstance(m, ACTIVATIONS)]
    widths: dict[str, int] = {}
    def recorder(name: str):
        def record(module: nn.Module, args: tuple) -> None:     # returns None: the input passes unchanged
            widths.setdefault(name, args[0].shape[1])
        return record

    hooks = [m.register_forward_pre_hook(recorder(n)) for n, m in acts]
    try:
        probe()
    finally:
        for h in hooks:
            h.remove()
    device = next(G.parameters()).device
    for name, m in acts:
        if name in widths:
            _set(G, name, nn.Sequential(VirtualBatchNorm(widths[name]).to(device), m))
    return len(widths)


@register_trick("virtual-batch-norm", paper="Salimans et al. 2016, arXiv:1606.03498, §3.4",
                summary="G's batch norms use a reference batch fixed at the start plus the example itself")
class VirtualBatchNormTrick(Trick):
    """VBN in G with a reference batch of ``size`` noise draws (from ``seed``)."""

    touches = (G_ARCH,)

    def __init__(self, size: int = 64, seed: int = 0):
        require(size >= 1, f"trick 'virtual-batch-norm': size must be >= 1, got {size}")
        self.size, self.seed = int(size), int(seed)

    def setup(self, gan) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(self.size, *gan.z_shape, generator=gen).to(gan.device)
        labels = None
        if gan.conditioning is not None:
            labels = (torch.arange(self.size) % gan.conditioning.num_classes).to(gan.device)
        G = gan.modules["G"]

        def probe() -> None:
            was = G.training
            G.eval()
            with torch.no_grad():
                G(noise[:2], *((labels[:2],) if labels is not None else ()))
            G.train(was)

        if use_virtual_batch_norm(G, probe) == 0:
            raise ConfigError("trick 'virtual-batch-norm': G has neither batch norm nor a hidden activation "
                              "to put a virtual batch norm before")
        gan.modules["G"] = ReferenceBatchGenerator(G, noise, labels)
