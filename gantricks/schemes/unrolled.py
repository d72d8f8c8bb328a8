"""Unrolled GAN (Metz et al. 2016, arXiv:1611.02163) and its first-order cousin, a look-ahead D.

D trains as in the standard scheme. G's loss is computed against D after ``k`` further
D updates that are *not kept* (the paper's Eq. 6-10)::

    θ_D^0 = θ_D,    θ_D^{j+1} = θ_D^j - η · U(∇_θD L_D(θ_G, θ_D^j)),    G minimises L_G(θ_G, θ_D^K)

whose gradient has two terms (Eq. 12)::

    dL_G/dθ_G = ∂L_G(θ_G, θ_D^K)/∂θ_G  +  ∂L_G(θ_G, θ_D^K)/∂θ_D^K · dθ_D^K/dθ_G

``unrolled`` keeps both: θ_D^K depends on θ_G through the fake samples of the unroll
steps, so those carry grad to G and each step is built with ``create_graph``.
``lookahead`` keeps only the first: a copy of D trained k steps without a graph.
(A copy of D trained under ``no_grad`` is a look-ahead D, not Unrolled GAN; PROTOCOLS.md.)

Each unroll step is ``gan.discriminator_loss`` on a functional D (``torch.func.functional_call``
over a params dict), so every trick's D inputs, targets and D terms apply inside the
unroll too. D's parameters, buffers (batch-norm statistics, spectral-norm vectors) and
optimizer state are never written; trick state touched by the unroll is restored.

Choices, and where they come from (the reference is the authors' notebook,
github.com/poolio/unrolled_gan, "Unrolled GAN demo.ipynb"):

* ``optimizer="own"`` (default; with D's Adam, as the notebook): each unroll step is one step of
  D's own optimizer (``--optimizer-d``: Adam/AdamW, or plain SGD; others are refused when the GAN is
  built). With Adam, each step is D's own Adam, with D's learning rate, betas, eps and weight
  decay, starting from D's real Adam state (moments and step count), as the notebook's
  ``extract_update_dict`` does with Keras Adam's slots. The update is torch's Adam (eps outside
  the bias-corrected square root), so one unroll step equals one real D step exactly. ``"adam"``:
  the same, refused unless D's optimizer is Adam/AdamW. ``"sgd"``: plain
  gradient descent θ - η·∇, the paper's Eq. 7; D's Adam learning rate is usually far
  too small for it, so set ``lr``.
* ``simultaneous=True`` (default, as the notebook and the paper, where D's update is the
  first of the k unrolled steps): G's and D's updates are computed from the same state on
  one real and one fake batch. The unroll starts from D *before* its update, and its first
  step is D's real update (the same batches, the same Adam step), so G looks k steps past
  the D it plays against. ``False``: D is updated first, as in the alternating standard
  scheme, and the unroll starts from the updated D, so G sees k + 1 D steps past the D
  of its batch (this project's form before, kept as an option; BENCHMARKS.md §3's fast
  matrix ran it).
* ``fresh_data=False`` (default, as the notebook, where data and noise are graph tensors
  shared by the D step, every unroll step and G's loss): every unroll step sees the real
  batch D trains on and G's fake batch of this step. ``True``: each unroll step after the
  first draws a fresh real batch and fresh noise (the first is D's own update's batch when
  ``simultaneous``); G's loss still uses G's batch.
* ``saddle=False`` (default): G minimises its configured loss (and trick G terms)
  against θ_D^K. ``True``: G minimises minus D's whole loss at θ_D^K, the saddle
  objective f_K of Eq. 10 including the real-data term, which depends on θ_G through
  θ_D^K; with ``loss=minimax`` this is exactly the notebook's objective.

    gantricks train --data ring8 --scheme unrolled:k=5                 # Adam unroll, this step's batches
    gantricks train --data ring8 --scheme unrolled:k=5,optimizer=sgd,lr=0.01,fresh_data=true
    gt.GAN(G, D, z_dim=2, scheme="lookahead:k=5")                       # first-order, cheaper

Cost per step grows linearly in k (benchmarks/unrolled_timing.py): on two CPU cores with
PacGAN's MLPs one unroll step of ``unrolled`` costs about 1.5 standard steps, of
``lookahead`` about 0.5. The exact unroll needs D (and any trick's D term) to be twice
differentiable; where it is not, the first G step raises a ConfigError naming ``lookahead``.
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Callable, Literal, TypeVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ConfigError
from ..registry import schemes
from ..tricks.base import Trick
from .standard import Standard

if TYPE_CHECKING:
    from ..gan import GAN

UnrollOptimizer = Literal["sgd", "adam", "own"]
T = TypeVar("T")
_D_HOOKS = ("d_inputs", "targets", "d_terms")   # the trick hooks gan.discriminator_loss runs


# --- pure, differentiable optimizer steps -------------------------------------------------
def sgd_step(param: Tensor, grad: Tensor, lr: float) -> Tensor:
    """θ - η·∇, one plain gradient step (Metz et al. 2016, arXiv:1611.02163, Eq. 7)."""
    return param - lr * grad


def adam_step(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: int, lr: float,
              beta1: float, beta2: float, eps: float, weight_decay: float = 0.0, decoupled: bool = False
              ) -> tuple[Tensor, Tensor, Tensor]:
    """One ``torch.optim.Adam`` step as a pure function (Kingma & Ba 2015, arXiv:1412.6980, Alg. 1); ``step``
    counts from 1.

    Returns the new parameter and moments. Written with the same ops as torch's
    implementation so the values agree; differentiable everywhere, also where the
    second moment is 0 (a unit that never received a gradient).
    """
    if weight_decay:
        if decoupled:   # AdamW
            param = param * (1 - lr * weight_decay)
        else:
            grad = grad + weight_decay * param
    exp_avg = torch.lerp(exp_avg, grad, 1 - beta1)
    exp_avg_sq = torch.addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    denom = _sqrt_zero_safe(exp_avg_sq) / bias_correction2_sqrt + eps
    return torch.addcdiv(param, exp_avg, denom, value=-lr / bias_correction1), exp_avg, exp_avg_sq


def _sqrt_zero_safe(x: Tensor) -> Tensor:
    """sqrt(x) with gradient 0 instead of inf·0 = NaN where x == 0."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def functional_discriminator(D: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor]
                             ) -> Callable[[Tensor], Tensor]:
    """D as a function of the given parameters and buffers (Metz et al. 2016, arXiv:1611.02163: θ_D^k of
    Eq. 6-7); D's own tensors are not touched."""
    tensors = {**buffers, **params}
    return lambda x: functional_call(D, tensors, (x,))


UnrollUpdate = Literal["optimizer", "sgd"]
LossFn = Callable[[Callable[[Tensor], Tensor], Tensor, Tensor], Tensor]   # (D, real, fake) -> a scalar loss


def unrolled_discriminator(D: nn.Module, d_optimizer: torch.optim.Optimizer, loss_fn: LossFn, real: Tensor,
                           fake: Tensor, k: int, create_graph: bool = True, *, update: UnrollUpdate = "optimizer",
                           lr: float | None = None,
                           batches: Callable[[int], tuple[Tensor, Tensor]] | None = None,
                           reduce_grads: Callable[[list[Tensor]], list[Tensor]] | None = None
                           ) -> Callable[[Tensor], Tensor]:
    """D after ``k`` unrolled updates θ_D^{j+1} = θ_D^j - η·U(∇L_D), as a function (Metz et al. 2016,
    arXiv:1611.02163, Eq. 6-7); D, its buffers and ``d_optimizer``'s state are never written.

    Args:
        D: the discriminator; only the parameters ``d_optimizer`` updates are unrolled.
        d_optimizer: D's ``torch.optim.Adam``, ``AdamW`` or ``SGD`` (no momentum): its groups' settings
            and, for Adam, its moments and step count are where the unroll starts.
        loss_fn: D's loss ``(D, real, fake) -> scalar`` for a functional D.
        real, fake: the batches of every unroll step (``fake`` with G's graph, so G's loss against the
            result has both terms of Eq. 12).
        k: unroll steps (0: D's current parameters, detached).
        create_graph: differentiate through the updates (Unrolled GAN); False: a detached look-ahead D.
        update: ``optimizer`` steps with ``d_optimizer``'s rule; ``sgd`` with θ - η·∇ (Eq. 7).
        lr: the unroll's learning rate (default: each group's).
        batches: ``j -> (real, fake)`` of unroll step j, in place of ``real`` and ``fake``.
        reduce_grads: applied to each step's gradients (data parallel: their mean over the ranks).
    """
    if k < 0:
        raise ConfigError(f"the unroll needs k >= 0 steps, got {k}")
    trained = _optimized_parameters(D, d_optimizer)
    step_rule = _update_rule(d_optimizer, trained, update, lr)
    buffers = {n: b.clone() for n, b in D.named_buffers()}   # batch-norm stats move in the copies only
    params = {n: p.detach() for n, (p, _) in trained.items()}
    for j in range(k):
        real_j, fake_j = batches(j) if batches is not None else (real, fake)
        if not create_graph:
            fake_j = fake_j.detach()
        params = {n: p.requires_grad_() if not p.requires_grad else p for n, p in params.items()}
        d_total = loss_fn(functional_discriminator(D, params, buffers), real_j, fake_j)
        grads = torch.autograd.grad(d_total, list(params.values()), create_graph=create_graph, allow_unused=True)
        grads = [g if g is not None else torch.zeros_like(p) for p, g in zip(params.values(), grads)]
        if reduce_grads is not None:
            grads = reduce_grads(grads)
        with torch.set_grad_enabled(create_graph):
            params = step_rule({n: (p, g) for (n, p), g in zip(params.items(), grads)})
    if not create_graph:
        params = {n: p.detach() for n, p in params.items()}
    return functional_discriminator(D, params, buffers)


def unrolled_generator_loss(D: nn.Module, d_optimizer: torch.optim.Optimizer, d_loss_fn: LossFn,
                            g_loss_fn: LossFn, real: Tensor, fake: Tensor, k: int, create_graph: bool = True, *,
                            update: UnrollUpdate = "optimizer", lr: float | None = None,
                            batches: Callable[[int], tuple[Tensor, Tensor]] | None = None,
                            reduce_grads: Callable[[list[Tensor]], list[Tensor]] | None = None) -> Tensor:
    """G's loss against D after ``k`` unrolled updates, L_G(θ_G, θ_D^K) (Metz et al. 2016, arXiv:1611.02163,
    Eq. 10-12): with ``create_graph`` its gradient has both terms of Eq. 12, without it only the first.

    ``d_loss_fn`` and ``g_loss_fn`` take ``(D, real, fake)`` and return a scalar; ``fake`` is G's batch
    with its graph. The other arguments are :func:`unrolled_discriminator`'s.
    """
    D_k = unrolled_discriminator(D, d_optimizer, d_loss_fn, real, fake, k, create_graph, update=update, lr=lr,
                                 batches=batches, reduce_grads=reduce_grads)
    return g_loss_fn(D_k, real, fake)


def _update_rule(opt: torch.optim.Optimizer, trained: dict[str, tuple[Tensor, dict]], update: UnrollUpdate,
                 lr: float | None) -> Callable[[dict[str, tuple[Tensor, Tensor]]], dict[str, Tensor]]:
    """A function {name: (θ, ∇)} -> {name: θ'}, keeping its own optimizer state between calls."""
    if update not in ("optimizer", "sgd"):
        raise ConfigError(f"unroll update must be optimizer or sgd, got {update!r}")
    rates = {n: lr if lr is not None else group["lr"] for n, (_, group) in trained.items()}
    is_adam = isinstance(opt, (torch.optim.Adam, torch.optim.AdamW))
    if update == "optimizer" and not (is_adam or type(opt) is torch.optim.SGD):
        raise ConfigError(f"the unroll steps D's own optimizer, which must be torch.optim.SGD or Adam/AdamW "
                          f"(sgd or adam), got {type(opt).__name__}; unroll with update='sgd' (θ - lr·∇) instead")
    if update == "sgd" or not is_adam:
        if update == "optimizer" and any(g.get(key) for _, g in trained.values()
                                         for key in ("momentum", "weight_decay", "maximize")):
            raise ConfigError("the unroll of D's SGD supports neither momentum, weight_decay nor maximize; "
                              "unroll with update='sgd' (θ - lr·∇) or use plain SGD")
        return lambda pg: {n: sgd_step(p, g, rates[n]) for n, (p, g) in pg.items()}
    moments: dict[str, list] = {}
    for n, (p, group) in trained.items():
        if group.get("amsgrad") or group.get("maximize"):
            raise ConfigError("the Adam unroll supports neither amsgrad nor maximize")
        state = opt.state.get(p, {})
        zeros = torch.zeros_like(p, memory_format=torch.preserve_format)
        moments[n] = [int(state["step"]) if "step" in state else 0,
                      state.get("exp_avg", zeros).detach(), state.get("exp_avg_sq", zeros).detach()]
    decoupled = {n: isinstance(opt, torch.optim.AdamW) or bool(g.get("decoupled_weight_decay"))
                 for n, (_, g) in trained.items()}

    def adam(pg: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        out = {}
        for n, (p, g) in pg.items():
            group, (step, m, v) = trained[n][1], moments[n]
            beta1, beta2 = group["betas"]
            out[n], m, v = adam_step(p, g, m, v, step + 1, rates[n], beta1, beta2, group["eps"],
                                     group.get("weight_decay", 0.0), decoupled[n])
            moments[n] = [step + 1, m, v]
        return out
    return adam


# --- the schemes --------------------------------------------------------------------------------
@schemes.register("unrolled", paper="Metz et al. 2016, arXiv:1611.02163, Eq. 10-12",
                  summary="G's loss against D after k differentiable, discarded D steps (exact gradient)")
class Unrolled(Standard):
    """Unrolled GAN: G's gradient flows through ``k`` unrolled D updates (both terms of Eq. 12).

    Args:
        k: unroll steps (0: the standard scheme).
        optimizer: the unroll's update: ``own`` (default) D's own optimizer's rule from its real state
            (Adam/AdamW, or plain SGD), ``adam`` the same but refused unless D's optimizer is Adam/AdamW,
            ``sgd`` plain steps θ - lr·∇ whatever D's optimizer. Other optimizers (RMSprop, SGD with
            momentum) are refused when the GAN is built.
        fresh_data: draw a fresh real batch and fresh noise for each unroll step
            (default: reuse this step's batches, as the reference code).
        lr: the unroll's learning rate; None: D's.
        saddle: G minimises minus D's whole loss at θ_D^K (the paper's f_K) instead of its own loss.
        simultaneous: G's and D's updates from the same state, D's update being the first unroll
            step (the authors' form, default); False: D steps first and the unroll starts after it.
    """

    name = "unrolled"
    differentiable = True       # build the unroll with create_graph (False: lookahead)

    def __init__(self, k: int = 5, optimizer: UnrollOptimizer = "own", fresh_data: bool = False,
                 lr: float | None = None, saddle: bool = False, simultaneous: bool = True):
        super().__init__(simultaneous)
        if k < 0:
            raise ConfigError(f"scheme {self.name!r}: k must be >= 0, got {k}")
        if optimizer not in ("sgd", "adam", "own"):
            raise ConfigError(f"scheme {self.name!r}: optimizer must be sgd, adam or own, got {optimizer!r}")
        if lr is not None and not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"scheme {self.name!r}: lr must be a positive number, got {lr}")
        self.k, self.optimizer, self.fresh_data, self.lr, self.saddle = k, optimizer, fresh_data, lr, saddle

    def validate(self, gan: "GAN") -> None:
        if self.saddle:
            for trick in gan.tricks:
                if type(trick).g_terms is not Trick.g_terms:
                    raise ConfigError(f"scheme {self.name!r} with saddle=true makes G minimise minus D's loss, "
                                      f"which drops the G terms of trick {trick.name!r}; use saddle=false")

    def check_optimizers(self, gan: "GAN") -> None:
        """The unroll's update rule built once from D's optimizer, so that one it cannot step (RMSprop,
        SGD with momentum) is refused when the GAN is built, not at the first G step."""
        if self.k == 0:
            return
        opt = gan.optimizers["D"]
        if self.optimizer == "adam" and not isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)):
            raise ConfigError(f"scheme {self.name!r} with optimizer=adam unrolls D's Adam, but D's optimizer "
                              f"is {type(opt).__name__}; use optimizer=sgd")
        try:
            _update_rule(opt, _optimized_parameters(gan.D, opt), self._update(), self.lr)
        except ConfigError:
            settings = sorted({k for g in opt.param_groups for k in ("momentum", "weight_decay", "maximize",
                                                                     "amsgrad") if g.get(k)})
            got = type(opt).__name__ + (f" with {', '.join(settings)}" if settings else "")
            raise ConfigError(f"scheme {self.name!r} steps D's own optimizer in its unroll, which must be Adam, "
                              f"AdamW or plain SGD (no momentum), got {got}; use --optimizer-d adam, adamw or "
                              f"sgd, or {self.name}:optimizer=sgd (plain steps θ - lr·∇)") from None

    def _update(self) -> UnrollUpdate:
        return "sgd" if self.optimizer == "sgd" else "optimizer"

    def generator_update(self, gan: "GAN", real: Tensor, next_real: Callable[[], Tensor], logs: dict) -> Tensor:
        try:
            return super().generator_update(gan, real, next_real, logs)
        except NotImplementedError as err:   # G's backward needs D's second derivatives
            if not (self.differentiable and self.k > 0 and "derivative for" in str(err)):
                raise
            raise ConfigError(f"scheme {self.name!r} differentiates through D's gradient, but D or a trick's D "
                              f"term uses an op without a second derivative ({err}); use scheme 'lookahead'") from None

    def generator_loss(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor]
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """G's loss for ``fake`` against D after ``k`` unrolled updates (:func:`unrolled_generator_loss`
        with the GAN's D loss, every trick's hooks included)."""
        logs: dict[str, Tensor] = {}
        unroll_logs: dict[str, Tensor] = {}

        def g_loss(D_k: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
            if self.saddle:
                total = -gan.discriminator_loss(D_k, real, fake)[0]
                logs["g_loss"] = total.detach()
            else:
                total, g_logs = gan.generator_loss(D_k, fake, real)
                logs.update(g_logs)
            return total

        total = self._unrolling(gan, lambda: unrolled_generator_loss(
            gan.D, gan.optimizers["D"], self._d_loss(gan, unroll_logs), g_loss, real, fake, self.k,
            self.differentiable, **self._options(gan, fake, real, next_real)))
        return total, {**logs, **unroll_logs}

    def unroll(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor] | None = None
               ) -> tuple[Callable[[Tensor], Tensor], dict[str, Tensor]]:
        """D after ``k`` updates from its current state, as a function; D itself is unchanged."""
        logs: dict[str, Tensor] = {}
        D_k = self._unrolling(gan, lambda: unrolled_discriminator(
            gan.D, gan.optimizers["D"], self._d_loss(gan, logs), real, fake, self.k, self.differentiable,
            **self._options(gan, fake, real, next_real)))
        return D_k, logs

    @staticmethod
    def _d_loss(gan: "GAN", logs: dict[str, Tensor]) -> LossFn:
        """The GAN's whole D loss (every trick's hooks) for the unroll; logs the last one as ``unroll_d_loss``."""
        def d_loss(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
            total, _ = gan.discriminator_loss(D, real, fake)
            logs["unroll_d_loss"] = total.detach()
            return total
        return d_loss

    def _options(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor] | None) -> dict:
        """The keywords of :func:`unrolled_discriminator` this scheme's options set."""
        return dict(update=self._update(), lr=self.lr,
                    batches=lambda j: self._batch(gan, fake, real, next_real, first=j == 0),
                    # data parallel: the unroll steps with the global batch's D gradient, as D's real update does
                    reduce_grads=gan.world.mean_over_ranks)

    def _unrolling(self, gan: "GAN", run: Callable[[], T]) -> T:
        """``run()`` with the state of every trick with a D hook put back afterwards (e.g. a replay buffer
        the unroll pushes to)."""
        stateful = [t for t in gan.tricks if any(getattr(type(t), h) is not getattr(Trick, h) for h in _D_HOOKS)]
        saved = [copy.deepcopy(t.state_dict()) for t in stateful] if self.k else []
        try:
            return run()
        finally:
            for trick, state in zip(stateful, saved):
                trick.load_state_dict(state)

    def _batch(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor] | None,
               first: bool = False) -> tuple[Tensor, Tensor]:
        """The real and fake batch of one unroll step (the first is D's own update when simultaneous)."""
        if not self.fresh_data or (first and self.simultaneous):
            return real, fake
        if next_real is None:
            raise ConfigError(f"scheme {self.name!r} with fresh_data=true needs a source of real batches")
        real_j = next_real()
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            fake_j = gan.generate(real_j.shape[0])
        return real_j, fake_j


@schemes.register("lookahead", paper="Metz et al. 2016, arXiv:1611.02163, Eq. 12 without its second term",
                  summary="G's loss against a copy of D trained k steps without a graph (no second term)")
class Lookahead(Unrolled):
    """A look-ahead D: a copy of D trained ``k`` steps, detached; G's gradient keeps only the
    first term of Eq. 12. Cheaper than ``unrolled`` (no graph through the unroll). Same options."""

    name = "lookahead"
    differentiable = False


def _optimized_parameters(D: nn.Module, opt: torch.optim.Optimizer) -> dict[str, tuple[Tensor, dict]]:
    """D's parameters that its optimizer updates, by name, with their param group."""
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    return {n: (p, group_of[id(p)]) for n, p in D.named_parameters() if id(p) in group_of}
