"""The GAN object: the user's G and D, a loss, a scheme and tricks, composed once.

>>> gan = GAN(generator=G, discriminator=D, z_dim=2, loss="hinge", tricks=["spectral-norm"])
>>> logs = gan.step(real_batch)     # one round of D and G updates
>>> x = gan.sample(64)
"""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
import operator
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .distributed import SINGLE, World, convert_sync_batchnorm
from .errors import ConfigError, NonFiniteError
from .losses import Loss, get_loss
from .optim import OptimizerSpec, check_optimizer_spec, make_optimizer
from .registry import Spec, schemes, tricks as trick_registry
from .schemes.base import Scheme
from .conditional import Conditioning, ConditionalSpec, check_labels, refuse_unconditional_parts
from .tricks.base import StepContext, Trick, check_trick, refuse_conflicts


def build_tricks(specs: "Iterable[Any] | str") -> list[Trick]:
    """Tricks from names, specs or objects; one name alone (``"spectral-norm"``) is one trick, not letters."""
    if isinstance(specs, (str, dict, Spec, Trick)):
        specs = [specs]
    out = []
    for spec in specs:
        trick = spec if isinstance(spec, Trick) else trick_registry.build(spec)
        check_trick(trick)
        out.append(trick)
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"trick {dupes[0]!r} given more than once")
    return out


class GAN:
    """A generator, a discriminator, their optimizers, a loss, a scheme and tricks.

    Args:
        generator, discriminator: any ``nn.Module`` s. G maps noise of shape
            ``(B, *z_shape)`` to samples; D maps samples to logits ``(B, ...)``.
        z_dim: noise size; read from ``generator.z_dim`` when left out.
        z_shape: full noise shape per sample (e.g. ``(128, 1, 1)`` for a conv G);
            defaults to ``(z_dim,)``.
        loss: a registered loss name (``gantricks list``) or a :class:`Loss`.
        scheme: ``NAME[:key=value,...]`` of a registered scheme, or a :class:`Scheme`.
        tricks: names/specs of registered tricks, or :class:`Trick` objects.
        lr_g, lr_d: learning rates (TTUR: set them apart).
        betas: Adam betas for both optimizers.
        optimizer_g, optimizer_d: ``adam`` (default), ``adamw``, ``sgd`` or ``rmsprop`` with options
            (``"sgd:momentum=0.9"``), or a callable taking the parameters and returning a torch optimizer;
            the spec's ``lr`` (and Adam's ``betas``) over ``lr_g`` / ``lr_d`` (and ``betas``). A scheme's
            extra nets take D's when their name starts with "D", else G's (:mod:`gantricks.optim`).
        n_critic: D updates per G update.
        device: where the models live; defaults to where G's parameters are.
        data_shape: shape of one real sample, for schemes that build extra nets.
        check_finite: stop with :class:`NonFiniteError` at the first NaN/inf loss or gradient. The
            check is read with the logs (:meth:`step`: once per step; :meth:`read`: once per batch of
            deferred steps): a step whose D update went non-finite has run its G update too when the
            error is raised.
        precision: ``fp32``, or ``bf16``: G's and D's forward passes under bfloat16 autocast
            (weights, optimizer state and gradients stay fp32; penalties' input gradients are fp32).
        compile: ``torch.compile`` each net's forward (``nn.Module.compile``: state-dict keys unchanged).
        conditional: ``concat``, ``projection`` or ``acgan`` (``acgan:weight=1.0``): a class-conditional GAN
            (:mod:`gantricks.conditional`) whose G is called ``G(z, y)`` and D ``D(x, y)``; real batches are
            then ``(x, y)`` pairs. None (default): unconditional.
        num_classes: the number of classes of a conditional GAN (labels ``0..num_classes-1``).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, z_dim: int | None = None, *,
                 loss: "str | Loss" = "nonsaturating", scheme: "str | Spec | Scheme" = "standard",
                 tricks: Sequence[Any] = (), lr_g: float = 1e-4, lr_d: float = 1e-4,
                 betas: tuple[float, float] = (0.5, 0.999), n_critic: int = 1,
                 optimizer_g: OptimizerSpec = "adam", optimizer_d: OptimizerSpec = "adam",
                 z_shape: tuple[int, ...] | None = None, device: "str | torch.device | None" = None,
                 data_shape: tuple[int, ...] | None = None, check_finite: bool = True,
                 precision: str = "fp32", compile: bool = False, conditional: "str | None" = None,
                 num_classes: int | None = None):
        if not isinstance(generator, nn.Module) or not isinstance(discriminator, nn.Module):
            raise ConfigError("generator and discriminator must be torch.nn.Module instances")
        if z_dim is None:
            z_dim = getattr(generator, "z_dim", None)
            if z_dim is None and z_shape is None:
                raise ConfigError("give z_dim, or a generator with a `z_dim` attribute")
        for name, value in (("z_dim", z_dim), *((f"z_shape[{i}]", v) for i, v in enumerate(z_shape or ()))):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.z_shape = tuple(z_shape) if z_shape is not None else (int(z_dim),)
        self.z_dim = int(z_dim) if z_dim is not None else self.z_shape[0]
        if n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}")
        for name, lr in (("lr_g", lr_g), ("lr_d", lr_d)):
            if not lr > 0:
                raise ConfigError(f"{name} must be positive, got {lr}")
        self.device = torch.device(device) if device is not None else _module_device(generator)
        self.n_critic = n_critic
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        self.lr = {"G": lr_g, "D": lr_d}
        self.betas = tuple(betas)
        self.optimizer_specs: dict[str, OptimizerSpec] = {"G": optimizer_g, "D": optimizer_d}
        for side, spec in self.optimizer_specs.items():
            check_optimizer_spec(spec, f"optimizer_{side.lower()}")
        self.check_finite = check_finite
        self.precision = check_precision(precision, self.device)
        self.world: World = SINGLE          # set by distribute() in a data-parallel run
        self._pending: list[tuple[str, Tensor]] = []   # finite checks of this step's updates, read once per step
        self.diagnosing = True          # this step logs D's accuracies, logit means and gradient norms
        self._parameter_lists: dict[str, tuple[nn.Module, list[nn.Parameter]]] = {}    # see _parameters_of
        self._constants: dict[tuple, Tensor] = {}       # see _filled
        self.loss = get_loss(loss)
        self.scheme: Scheme = scheme if isinstance(scheme, Scheme) else schemes.build(scheme)
        self.tricks: list[Trick] = build_tricks(tricks)
        self.modules: dict[str, nn.Module] = {"G": generator.to(self.device), "D": discriminator.to(self.device)}
        self.step_count = 0
        spec = ConditionalSpec.parse(conditional)
        self.conditioning: Conditioning | None = Conditioning(spec, num_classes) if spec else None
        if spec is None and num_classes is not None:
            raise ConfigError("num_classes is for a conditional GAN; set conditional too")
        refuse_conflicts(self.tricks)
        if self.conditioning is not None:
            refuse_unconditional_parts(self)
        for trick in self.tricks:
            trick.validate(self)
        self.scheme.validate(self)
        for trick in self.tricks:          # architecture first: optimizers see the final parameters
            trick.setup(self)
        self.scheme.setup(self)
        # one optimizer per trainable module; a scheme's extra nets (an encoder, a second D)
        # get D's optimizer and learning rate when their name starts with "D", else G's
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            name: self.make_optimizer(name, m)
            for name, m in self.modules.items() if any(p.requires_grad for p in m.parameters())}
        self.scheme.check_optimizers(self)
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}    # schedule_lr sets them
        # hook order is fixed at build time, not re-sorted every step (e.g. label-flip after smoothing)
        self._target_tricks = sorted((t for t in self.tricks if type(t).targets is not Trick.targets),
                                     key=lambda t: t.order)
        self._d_input_tricks = sorted((t for t in self.tricks if type(t).d_inputs is not Trick.d_inputs),
                                      key=lambda t: t.order)
        self._sample_shape = self._check_shapes()
        if compile:
            for module in self.modules.values():
                module.compile()

    def _check_shapes(self) -> tuple[int, ...] | None:
        """One dry forward of G and D (eval mode, no grad, the RNG put back): a G that does not take
        noise of ``z_shape``, makes samples of another shape than ``data_shape``, or a D that does not
        take them is refused here with a line naming the side, not at the first step with torch's
        shape error. Returns the shape of one sample (checked against the real batches)."""
        if not getattr(self.scheme, "takes_noise", True):     # pix2pix: G translates images (it checks them)
            return self.data_shape
        G, D = self.G, self.D
        modes = {m: m.training for m in (G, D)}
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        z = torch.randn(2, *self.z_shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                for m in modes:
                    m.eval()
                y = torch.zeros(2, dtype=torch.long, device=self.device)
                try:
                    fake = G(z) if self.conditioning is None else G(z, y)
                except ConfigError:
                    raise
                except Exception as err:
                    raise ConfigError(f"the generator does not take noise of shape (batch, "
                                      f"{', '.join(map(str, self.z_shape))}) (z_dim={self.z_dim}): "
                                      f"{_first_line(err)}; set z_dim to G's input size") from None
                if not isinstance(fake, Tensor) or fake.dim() < 2 or fake.shape[0] != 2:
                    raise ConfigError(f"the generator must return a tensor (batch, ...) of samples, got "
                                      f"{tuple(fake.shape) if isinstance(fake, Tensor) else type(fake).__name__}"
                                      f" for a batch of 2")
                shape = tuple(fake.shape[1:])
                if self.data_shape is not None and shape != self.data_shape:
                    raise ConfigError(f"the generator makes samples of shape {shape}, but the data's samples have "
                                      f"shape {self.data_shape}; change G's output to fit the data")
                packers = [t for t in self.tricks if hasattr(t, "discriminator_input_shape")]
                d_shape = shape
                for t in packers:     # D sees packed inputs (pacgan): probe it with one of their shape
                    d_shape = tuple(t.discriminator_input_shape(d_shape))
                try:
                    d_in = fake if not packers else torch.zeros(2, *d_shape, dtype=fake.dtype, device=fake.device)
                    logits = D(d_in) if self.conditioning is None else D(d_in, y)
                except ConfigError:
                    raise
                except Exception as err:
                    if packers:
                        names = ", ".join(repr(t.name) for t in packers)
                        raise ConfigError(f"trick {names} feeds D inputs of shape (batch, "
                                          f"{', '.join(map(str, d_shape))}) made from G's samples of shape {shape}; "
                                          f"D failed on them ({_first_line(err)}); build D for that input") from None
                    raise ConfigError(f"the discriminator does not take the generator's samples of shape {shape}: "
                                      f"{_first_line(err)}; change D's input to fit G's output") from None
                if not isinstance(logits, Tensor) or logits.dim() < 1 or logits.shape[0] != 2:
                    raise ConfigError(f"the discriminator must return one output per sample (batch, ...), got "
                                      f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}"
                                      f" for a batch of 2")
                if self.conditioning is not None and self.conditioning.mode == "acgan" \
                        and tuple(logits.shape[1:]) != (1 + self.conditioning.num_classes,):
                    raise ConfigError(f"an AC-GAN discriminator returns (batch, 1 + num_classes) = (batch, "
                                      f"{1 + self.conditioning.num_classes}): the adversarial logit, then the class "
                                      f"logits; got {tuple(logits.shape)}")
        finally:
            for m, was in modes.items():
                m.train(was)
        return shape

    def _checked(self, next_real: Callable[[], Tensor]) -> Callable[[], Tensor]:
        """``next_real`` whose batches must have G's sample shape: a batch of another width is named here."""
        shape = self._sample_shape if getattr(self.scheme, "takes_noise", True) else None
        if self.conditioning is not None or shape is not None:
            next_real = self._labels_split(next_real)
        if shape is None:
            return next_real

        def checked() -> Tensor:
            batch = next_real()
            if tuple(batch.shape[1:]) != shape:
                raise ConfigError(f"a real batch of shape {tuple(batch.shape)} does not fit the generator's "
                                  f"samples of shape {shape}: each real sample must have shape {shape}")
            return batch
        return checked

    def _labels_split(self, next_real: Callable[[], Any]) -> Callable[[], Tensor]:
        """``next_real`` returning the samples alone: a conditional GAN takes ``(x, y)`` pairs and keeps y as
        the current real labels; an unconditional one refuses pairs (labels would be silently dropped)."""
        cond = self.conditioning

        def split() -> Tensor:
            batch = next_real()
            labelled = isinstance(batch, (tuple, list))
            if cond is None:
                if labelled:
                    raise ConfigError("real batches are (x, y) pairs, but this GAN is not conditional; pass the "
                                      "samples alone, or build the GAN with conditional=...")
                return batch
            if not labelled or len(batch) != 2:
                raise ConfigError("a conditional GAN takes real batches as (x, y) pairs: samples and their labels")
            x, y = batch
            if not isinstance(y, Tensor) or y.dim() != 1 or len(y) != len(x):
                raise ConfigError(f"the labels of a real batch of {len(x)} must be a tensor ({len(x)},), got "
                                  f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
            # range checked where it is free (CPU); on a GPU the check would wait for the device every step
            cond.real_labels = check_labels(y, cond.num_classes) if y.device.type == "cpu" else y.long()
            return x
        return split

    # --- parts ---------------------------------------------------------------------
    @property
    def G(self) -> nn.Module:
        return self.modules["G"]

    @property
    def D(self) -> nn.Module:
        return self.modules["D"]

    def make_optimizer(self, name: str, module: nn.Module) -> torch.optim.Optimizer:
        """The optimizer of ``modules[name]``: G's or D's spec (by the name's first letter), with its rate."""
        side = name if name in self.optimizer_specs else ("D" if name.startswith("D") else "G")
        return make_optimizer(self.optimizer_specs[side], module.parameters(), self.lr.get(name, self.lr[side]),
                              self.betas, what=f"optimizer_{side.lower()}")

    def trick(self, name: str) -> Trick | None:
        return next((t for t in self.tricks if t.name == name), None)

    @property
    def sampling_generator(self) -> nn.Module:
        """The G used for samples and evaluation: an EMA copy where the ema trick is on."""
        for trick in self.tricks:
            g = getattr(trick, "sampling_generator", None)
            if g is not None:
                return g
        return self.G

    # --- pieces of a step, for schemes ---------------------------------------------
    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` noise vectors. In a data-parallel run (``n`` per rank) every rank draws the global
        batch of ``n * world.size`` and keeps its slice, so the ranks together draw what one process does."""
        if generator is not None:   # drawn on the CPU (a CPU generator), then moved: the same numbers anywhere
            return torch.randn(n, *self.z_shape, generator=generator).to(self.device)
        if self.world.size > 1:
            z = torch.randn(n * self.world.size, *self.z_shape, device=self.device)
            return z[self.world.rank * n:(self.world.rank + 1) * n]
        return torch.randn(n, *self.z_shape, device=self.device)

    def generate(self, n: int, generator_module: nn.Module | None = None) -> Tensor:
        G = generator_module or self.G
        if self.conditioning is None:
            return G(self.noise(n))
        z = self.noise(n)       # the noise first: a conditional run draws z as an unconditional one does
        self.conditioning.fake_labels = self.draw_labels(n)
        return G(z, self.conditioning.fake_labels)

    def draw_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` labels for fakes, uniform over the classes (drawn as :meth:`noise` is, per rank)."""
        k = self.conditioning.num_classes
        if generator is not None:
            return torch.randint(k, (n,), generator=generator).to(self.device)
        y = torch.randint(k, (n * self.world.size,), device=self.device)
        return y[self.world.rank * n:(self.world.rank + 1) * n]

    def d_inputs(self, real: Tensor | None, fake: Tensor, phase: str) -> tuple[Tensor | None, Tensor]:
        for trick in self._d_input_tricks:
            real, fake = trick.d_inputs(real, fake, self, phase)
        return real, fake

    def targets(self, n_real: int, n_fake: int, device) -> tuple[Tensor, Tensor]:
        real_t, fake_t = self._filled(1.0, n_real, device), self._filled(0.0, n_fake, device)
        for trick in self._target_tricks:
            real_t, fake_t = trick.targets(real_t, fake_t, self)
        return real_t, fake_t

    def discriminator_loss(self, D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor
                           ) -> tuple[Tensor, dict[str, Tensor]]:
        """D's total loss on a real and a (detached) fake batch, with every trick's terms."""
        real_in, fake_in = self.d_inputs(real, fake, "D")
        cond = self.conditioning
        if cond is None:
            real_logits, fake_logits = _at_least_fp32(D(real_in)), _at_least_fp32(D(fake_in))
        else:     # D(x, y): real batches with their labels, fakes with those G was asked for
            (real_logits, real_cls), (fake_logits, fake_cls) = (cond.outputs(D, real_in, cond.real_labels),
                                                                cond.outputs(D, fake_in, cond.fake_labels))
            real_logits, fake_logits = _at_least_fp32(real_logits), _at_least_fp32(fake_logits)
        real_t, fake_t = self.targets(real_logits.shape[0], fake_logits.shape[0], real_logits.device)
        terms = {"d_adv": self.loss.d(real_logits, fake_logits, real_t, fake_t)}
        if cond is not None:
            terms.update(cond.d_terms(real_cls, fake_cls))
            D = cond.bind(D, cond.real_labels)     # penalties see D on real labels (R1, DRAGAN; WGAN-GP's mixes)
        tricks_logs: dict[str, Tensor] = {}
        if self.tricks:       # (the context costs a few microseconds a step: made only where a trick reads it)
            ctx = StepContext(self, D, real, fake, real_in, fake_in, real_logits, fake_logits, "D")
            for trick in self.tricks:
                terms.update(trick.d_terms(ctx))
            tricks_logs = ctx.logs
        if not self.diagnosing:
            return _total(terms, tricks_logs, "d_loss")
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        logs = {"d_real": real_logits.mean(), "d_fake": fake_logits.mean(),      # the mean of a bool: no .float()
                "d_acc_real": torch.mean(real_logits > self._threshold, dtype=real_logits.dtype),
                "d_acc_fake": torch.mean(fake_logits < self._threshold, dtype=fake_logits.dtype), **tricks_logs}
        return _total(terms, logs, "d_loss")

    @property
    def _threshold(self) -> float:
        return 0.5 if self.loss.name == "least-squares" else 0.0

    def generator_loss(self, D: Callable[[Tensor], Tensor], fake: Tensor, real: Tensor | None = None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """G's total loss for a fake batch (with grad), with every trick's terms."""
        _, fake_in = self.d_inputs(None, fake, "G")
        cond = self.conditioning
        if cond is None:
            fake_logits = _at_least_fp32(D(fake_in))
        else:
            fake_logits, fake_cls = cond.outputs(D, fake_in, cond.fake_labels)
            fake_logits = _at_least_fp32(fake_logits)
            D = cond.bind(D, cond.fake_labels)
        real_t = self._filled(1.0, fake_logits.shape[0], fake_logits.device)
        terms = {} if any(t.replaces_g_loss for t in self.tricks) else {"g_adv": self.loss.g(fake_logits, real_t)}
        if cond is not None:
            terms.update(cond.g_terms(fake_cls))
        tricks_logs: dict[str, Tensor] = {}
        if self.tricks:
            ctx = StepContext(self, D, real, fake, None, fake_in, None, fake_logits, "G")
            for trick in self.tricks:
                terms.update(trick.g_terms(ctx))
            tricks_logs = ctx.logs
        if not terms:
            names = ", ".join(repr(t.name) for t in self.tricks if t.replaces_g_loss)
            raise ConfigError(f"G has no loss at step {self.step_count}: trick {names} replaces the adversarial G "
                              f"loss (replaces_g_loss) but its g_terms returned no term; return at least one")
        return _total(terms, tricks_logs, "g_loss")

    def update(self, name: "str | Sequence[str]", loss: Tensor, logs: dict | None = None) -> None:
        """Backward ``loss`` into the parameters of ``modules[name]`` and step its optimizer.

        ``name`` may be several module names: one backward, then every one of their
        optimizers steps (a loss two nets minimise together, e.g. MRGAN's G and encoder);
        the logged gradient norm is over all of them, under the first name.
        """
        names = (name,) if isinstance(name, str) else tuple(name)
        opts = [self.optimizers[n] for n in names]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        with self._autocast(False):   # backward outside autocast, as torch advises
            loss.backward()
        grads = [p.grad for opt in opts for group in opt.param_groups for p in group["params"]
                 if p.grad is not None]
        loss = loss.detach()
        if self.world.active:     # data parallel: the ranks' mean gradient (see distributed.py)
            loss = loss.reshape(1).clone()
            self.world.average_(grads + [loss])
            loss = loss[0]
        on_loss, on_grad = _check_names(names)
        if self.check_finite and not (logs is not None and self.diagnosing):
            # no norm to log: one fused finite check, a quarter of the norm's cost (no host sync here)
            self._pending.append((on_loss, loss, False))
            self._pending.append((on_grad, _nonfinite_flag(grads, self.device), True))
        elif self.check_finite or logs is not None:
            # one fused norm over all gradients (as clip_grad_norm_); no host sync here
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads \
                else torch.zeros((), device=self.device)
            if self.check_finite:
                self._pending.append((on_loss, loss, False))
                self._pending.append((on_grad, norm, False))
            if logs is not None:
                logs[f"grad_norm_{names[0].lower()}"] = norm
        for opt in opts:
            opt.step()

    def _filled(self, value: float, n: int, device) -> Tensor:
        """``(n,)`` of ``value`` (the targets), made once per size and device: two fewer tensors a step. One
        that something changed in place (a trick's or a loss's ``fill_``: its version counter moved) is made again;
        a write that bypasses the counter (``.data``, a numpy view) would not be seen: targets are not to be written."""
        if torch.is_inference_mode_enabled():    # an inference tensor has no version counter to watch: not kept
            return torch.full((n,), value, device=device)
        key = (value, n, device, torch.get_default_dtype())
        t = self._constants.get(key)
        if t is None or t._version:
            t = self._constants[key] = torch.full((n,), value, device=device)
        return t

    @contextlib.contextmanager
    def frozen(self, *names: str) -> Iterator[None]:
        """Turn off ``requires_grad`` of these modules' parameters (G's step needs no D grads)."""
        params = [p for n in names for p in self._parameters_of(n) if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def _parameters_of(self, name: str) -> list[nn.Parameter]:
        """``modules[name]``'s parameters, listed once per module object (walking its sub-modules each
        step cost as much as the freezing itself on small nets)."""
        module = self.modules[name]
        cached = self._parameter_lists.get(name)
        if cached is None or cached[0] is not module:
            cached = self._parameter_lists[name] = (module, list(module.parameters()))
        return cached[1]

    # --- the public step and sampling ----------------------------------------------
    def step(self, real: "Tensor | Iterator[Tensor] | Callable[[], Tensor]", diagnostics: bool = True
             ) -> dict[str, float]:
        """One round of the scheme (``n_critic`` D updates and a G update); a dict of floats.

        ``real`` is a batch, an iterator of batches or a function returning one. With a
        single batch every D update of the round reuses it (fresh noise each time).
        ``diagnostics=False`` logs the losses only, not D's accuracies and mean logits nor the
        gradient norms: on small nets those cost a few percent of a step. The finite checks are
        the same either way (a fused check of the gradients stands in for their norm).
        A net not in training mode is put in it (``train()``); a sub-module you put in eval mode
        inside a training net (e.g. a frozen batch norm) stays so.
        """
        [(_, values)] = self.read([self._scheme_step(real, diagnostics)])   # a NaN stops here, before the tricks see it
        self._after_step()
        return values

    def step_deferred(self, real: "Tensor | Iterator[Tensor] | Callable[[], Tensor]", diagnostics: bool = True
                      ) -> "StepLogs":
        """:meth:`step` without reading its logs: they stay where they were computed.

        On a GPU each read of a device number waits for the device to finish, and the host
        then idles it while it queues the next step's kernels; a loop that reads the logs of
        many steps at once with :meth:`read` keeps the device busy (``gantricks train``
        reads them every ``read_every`` steps). The finite checks are read with them, so a
        NaN is reported at its own step, but only when read: the steps after it have run by then,
        and the tricks' ``after_step`` (e.g. EMA of G) has seen the NaN step. ``gantricks train``
        then stops or rolls back to a checkpoint, which is written only after a read.
        """
        pending = self._scheme_step(real, diagnostics)
        self._after_step()
        return pending

    def _scheme_step(self, real: "Tensor | Iterator[Tensor] | Callable[[], Tensor]", diagnostics: bool = True
                     ) -> "StepLogs":
        next_real = self._checked(_as_next(real, self.device))
        for scheduler in self.schedulers.values():    # this step's rate: base · factor(step_count)
            while scheduler.last_epoch < self.step_count:
                scheduler.step()
        for module in self.modules.values():
            if not module.training:     # (walking a net's sub-modules each step costs ~1 % of a small net's step)
                module.train()
        self._pending = []
        self.diagnosing = diagnostics
        try:
            with self._autocast(True):
                logs = self.scheme.step(self, next_real)
        finally:
            self.diagnosing = True
        self.step_count += 1
        pending = StepLogs(self.step_count, logs, self._pending)
        self._pending = []
        return pending

    def _after_step(self) -> None:
        for trick in self.tricks:
            trick.after_step(self)
        if self.world.active:     # e.g. batch-norm statistics of unsynchronised shards: rank 0's, as DDP
            self.world.broadcast_(b for m in self.modules.values() for b in m.buffers())

    def read(self, steps: "Sequence[StepLogs]") -> Iterator[tuple[int, dict[str, float]]]:
        """``(step, logs as floats)`` for each of ``steps``, in order, from one transfer off the device.
        Raises :class:`NonFiniteError` at the first step whose loss or gradient was not finite,
        after yielding the steps before it."""
        flat = [t for s in steps for t in s.tensors()]
        if self.device.type == "cpu":     # reading a CPU tensor is free; stacking them is not
            numbers = [t.item() for t in flat]
        else:                             # elsewhere each read waits for the device: read them all at once
            numbers = torch.stack([t.detach().reshape(()).float() for t in flat]).tolist() if flat else []
        at = 0
        for s in steps:
            values, checks, at = s.floats(numbers, at)
            for what, x, flag in checks:
                if (x != 0.0) if flag else not math.isfinite(x):
                    raise NonFiniteError(s.step, what)
            yield s.step, values

    def _autocast(self, enabled: bool) -> contextlib.AbstractContextManager:
        """bf16 autocast on (forward passes) or off (backward), or nothing at fp32."""
        if self.precision != "bf16":
            return _NO_AUTOCAST
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 10_000, *,
               labels: "Tensor | Sequence[int] | int | None" = None, dropout: bool = False) -> Tensor:
        """``n`` samples from G in eval mode (the EMA copy where the ema trick is on), drawn ``batch_size``
        at a time (:meth:`sample_batches`), so that only the result is held whole.

        ``labels`` (a conditional GAN): the class of each sample — one label for all, or a list that
        cycles over the ``n`` samples; None draws them uniformly. ``dropout``: G's dropout layers stay
        on while sampling (ganhacks / pix2pix: dropout as G's noise "at both training and test time");
        the g-dropout trick turns it on unless built with ``sampling=false``."""
        out = list(self.sample_batches(n, generator, batch_size, labels=labels, dropout=dropout))
        return torch.cat(out) if out else torch.empty(0, *(self._sample_shape or ()), device=self.device)

    def sample_batches(self, n: int, generator: torch.Generator | None = None, batch_size: int = 10_000, *,
                       labels: "Tensor | Sequence[int] | int | None" = None, dropout: bool = False
                       ) -> Iterator[Tensor]:
        """``n`` samples as batches of at most ``batch_size``, each made when asked for: memory bounded by
        one batch whatever ``n`` (``gantricks sample`` streams them to its file). The same seed gives
        the same samples as :meth:`sample` with the same ``batch_size``."""
        for name, value, least in (("n", n, 0), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ConfigError(f"sample: {name} must be an integer >= {least}, got {value!r}")
        labels = self._asked_labels(labels, int(n))
        dropout = dropout or any(getattr(t, "sample_with_dropout", False) for t in self.tricks)   # g-dropout
        if dropout:
            check_has_dropout(self.sampling_generator)
        return self._batches(int(n), generator, int(batch_size), labels, dropout)   # checked now, made when iterated

    def _batches(self, n: int, generator: torch.Generator | None, batch_size: int,
                 labels: Tensor | None = None, dropout: bool = False) -> Iterator[Tensor]:
        for i in range(0, n, batch_size):
            with self._sampling(), dropout_on(self.sampling_generator, dropout):
                z = self.noise(min(batch_size, n - i), generator)
                rng = _seeded_from(generator, self.device) if dropout else contextlib.nullcontext()
                y = None
                if self.conditioning is not None:
                    y = labels[i:i + len(z)].to(self.device) if labels is not None \
                        else self.draw_labels(len(z), generator)
                with rng:    # dropout's masks from ``generator`` too: the same seed, the same samples
                    batch = self._from_noise(z, y)
            yield batch

    @contextlib.contextmanager
    def _sampling(self) -> Iterator[None]:
        """The sampling G in eval mode without gradients inside; its own mode again after."""
        g = self.sampling_generator
        was_training = g.training
        g.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            g.train(was_training)

    def _asked_labels(self, labels: "Tensor | Sequence[int] | int | None", n: int) -> Tensor | None:
        """``labels`` asked of :meth:`sample` or :meth:`interpolate`, checked, as ``n`` labels (None: none asked)."""
        if labels is None:
            return None
        if self.conditioning is None:
            raise ConfigError("labels asked for, but this GAN is not conditional (it was trained without labels)")
        return check_labels(labels, self.conditioning.num_classes, n)

    def _from_noise(self, z: Tensor, y: Tensor | None) -> Tensor:
        """Samples of the sampling G for noise ``z`` (and labels ``y`` of a conditional GAN)."""
        return self.scheme.generate(self, z) if y is None else self.sampling_generator(z, y)

    def interpolate(self, n: int, steps: int = 8, method: str = "slerp", generator: torch.Generator | None = None,
                    *, labels: "Tensor | Sequence[int] | int | None" = None) -> Tensor:
        """``(n, steps, *sample shape)``: for each of ``n`` pairs of noise draws, G's samples along the
        path between them (:func:`gantricks.interpolate.interpolation_path`, ``slerp`` or ``lerp``), in
        eval mode. A conditional GAN keeps one label along each path (``labels`` as in :meth:`sample`)."""
        from .interpolate import interpolation_path

        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigError(f"interpolate: n must be an integer >= 1, got {n!r}")
        asked = self._asked_labels(labels, int(n))
        a, b = self.noise(n, generator), self.noise(n, generator)
        z = interpolation_path(a, b, steps, method).flatten(0, 1)          # (n·steps, *z_shape)
        y = None
        if self.conditioning is not None:
            y = asked.to(self.device) if asked is not None else self.draw_labels(n, generator)
            y = y.repeat_interleave(steps)
        with self._sampling():
            out = self._from_noise(z, y)
        return out.reshape(n, steps, *out.shape[1:])

    # --- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"modules": {k: m.state_dict() for k, m in self.modules.items()},
                 "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                 "tricks": {t.name: t.state_dict() for t in self.tricks},
                 "scheme": self.scheme.state_dict(), "step": self.step_count,
                 "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                 "rng": {"torch": torch.get_rng_state()}}
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict, restore_rng: bool = True) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for t in self.tricks:
            t.load_state_dict(state["tricks"].get(t.name, {}))
        self.scheme.load_state_dict(state.get("scheme", {}))
        self.step_count = int(state["step"])
        for k, scheduler in self.schedulers.items():
            if k in state.get("schedulers", {}):
                scheduler.load_state_dict(state["schedulers"][k])
            else:     # a checkpoint from before the schedulers: its base rates were kept in the param groups
                scheduler.load_state_dict({
                    **scheduler.state_dict(), "last_epoch": max(self.step_count - 1, 0),
                    "_step_count": self.step_count + 1,     # it has stepped: torch need not warn of the order
                    "base_lrs": [g.get("base_lr", g["lr"]) for g in scheduler.optimizer.param_groups]})
        if restore_rng:
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)

    def distribute(self, world: World, sync_batchnorm: bool = False) -> None:
        """Take part in a data-parallel run as ``world`` says (see :mod:`gantricks.distributed`).

        Rank 0's parameters and buffers are copied to every rank; with ``sync_batchnorm``
        batch-norm layers normalise with the global batch's statistics.
        """
        if sync_batchnorm:
            for module in self.modules.values():
                convert_sync_batchnorm(module)
        self.world = world
        world.broadcast_(t for m in self.modules.values() for t in (*m.parameters(), *m.buffers()))

    def set_learning_rates(self, scale: float) -> None:
        """Scale every learning rate for good (a rollback halves them), the schedule's base too."""
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] *= scale
        for scheduler in self.schedulers.values():
            scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]

    def schedule_lr(self, factor: Callable[[int], float]) -> None:
        """Every optimizer's rate becomes its base rate times ``factor(step)`` at each step: one
        ``torch.optim.lr_scheduler.LambdaLR`` per optimizer, stepped at the start of each :meth:`step`
        (the step after ``step_count`` steps uses ``factor(step_count)``). Call it
        before the first step (a resumed run: before :meth:`load_state_dict`, which restores the
        schedulers' state, so the schedule continues exactly)."""
        if self.step_count:
            raise ConfigError("schedule_lr: set the schedule before the first step (or before load_state_dict)")
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, factor) for k, opt in self.optimizers.items()}


class StepLogs:
    """One step's logs and finite checks, still on the device (:meth:`GAN.step_deferred`)."""

    __slots__ = ("step", "logs", "checks")

    def __init__(self, step: int, logs: dict[str, Any], checks: list[tuple[str, Tensor, bool]]):
        """``checks``: ``(what, value, flag)``; a value must be finite, a flag (:func:`_nonfinite_flag`) 0."""
        self.step, self.logs, self.checks = step, logs, checks

    def tensors(self) -> list[Tensor]:
        return [v for v in self.logs.values() if isinstance(v, Tensor)] + [t for _, t, _ in self.checks]

    def floats(self, numbers: Sequence[float], at: int
               ) -> tuple[dict[str, float], list[tuple[str, float, bool]], int]:
        """This step's logs and checks from ``numbers[at:]`` (as :meth:`tensors` ordered them)."""
        values = {}
        for k, v in self.logs.items():
            if isinstance(v, Tensor):
                values[k], at = numbers[at], at + 1
            else:
                values[k] = float(v)
        checks = [(what, numbers[at + i], flag) for i, (what, _, flag) in enumerate(self.checks)]
        return values, checks, at + len(self.checks)


_NO_AUTOCAST = contextlib.nullcontext()       # stateless: one for every fp32 pass


@functools.lru_cache(maxsize=None)
def _check_names(names: tuple[str, ...]) -> tuple[str, str]:
    """What a non-finite loss and gradient of an update of ``names`` are called ("D loss", "G+E gradient")."""
    what = "+".join(names)
    return f"{what} loss", f"{what} gradient"


@functools.lru_cache(maxsize=None)
def _one(device: torch.device) -> Tensor:
    return torch.ones((), device=device)


def _nonfinite_flag(grads: list[Tensor], device: torch.device) -> Tensor:
    """A scalar that is 0 exactly when every tensor of ``grads`` is finite, else 1: AMP's fused check (which
    multiplies them by 1, leaving them as they are) sets the flag, one per device, summed."""
    found = torch.zeros((), device=device)
    if not grads:
        return found
    devices = {g.device for g in grads}
    if devices == {found.device}:    # one device, the usual case: one fused call, nothing to add up
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, _one(found.device))
        return found
    for where in devices:
        group = [g for g in grads if g.device == where]
        flag = torch.zeros((), device=where)
        torch._amp_foreach_non_finite_check_and_unscale_(group, flag, _one(where))
        found = found + flag.to(device)
    return found


def check_has_dropout(G: nn.Module) -> None:
    """:class:`ConfigError` unless ``G`` has a dropout layer (what sampling with dropout turns on)."""
    if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in G.modules()):
        raise ConfigError("sampling with dropout asked for, but G has no dropout layer; build G with dropout "
                          "(e.g. mlp:dropout=0.5, dcgan:dropout=0.5) or add the g-dropout trick")


@contextlib.contextmanager
def dropout_on(G: nn.Module, on: bool = True) -> Iterator[None]:
    """G's dropout layers in training mode (dropping units) inside, whatever G's own mode; as before after."""
    layers = [m for m in G.modules() if isinstance(m, nn.modules.dropout._DropoutNd)] if on else []
    modes = [m.training for m in layers]
    for m in layers:
        m.train()
    try:
        yield
    finally:
        for m, was in zip(layers, modes):
            m.train(was)


def _seeded_from(generator: torch.Generator | None, device: torch.device) -> contextlib.AbstractContextManager:
    """The global RNG seeded from ``generator`` inside, and put back after (nothing without a generator)."""
    if generator is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def forked() -> Iterator[None]:
        seed = int(torch.randint(2 ** 62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield
    return forked()


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` if ``device`` can run it (bf16 autocast: CPU, CUDA with bf16 support, MPS where torch has it)."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}")
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision bf16 asked for, but {torch.cuda.get_device_name(device)} has no bfloat16")
        available = getattr(torch.amp, "is_autocast_available", lambda kind: kind in ("cpu", "cuda"))
        if not available(device.type):
            raise ConfigError(f"precision bf16 asked for, but torch has no autocast for {device.type}")
    return precision


def _at_least_fp32(logits: Tensor) -> Tensor:
    """Logits for the losses in fp32 when bf16 autocast made them bf16 (fp64 stays fp64)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def _total(terms: dict[str, Tensor], logs: dict[str, Tensor], name: str) -> tuple[Tensor, dict[str, Tensor]]:
    if len(terms) == 1:        # the total is the one term: one detached tensor logged under both names
        [(key, total)] = terms.items()
        detached = total.detach()
        return total, {**logs, key: detached, name: detached}
    total = functools.reduce(operator.add, terms.values())   # not sum(): 0 + t would add a node to the graph
    logs = {**logs, **{k: v.detach() for k, v in terms.items()}, name: total.detach()}
    return total, logs


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _module_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _to(batch: Any, device: torch.device) -> Any:
    """A batch, or an ``(x, y)`` pair of a conditional GAN, on ``device``."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if not isinstance(batch, Tensor):
        raise ConfigError(f"real batches must be tensors (or (x, y) pairs of tensors), got {type(batch).__name__}")
    return batch.to(device)


def _as_next(real: Any, device: torch.device) -> Callable[[], Tensor]:
    if isinstance(real, (Tensor, tuple, list)):
        batch = _to(real, device)
        return lambda: batch
    if callable(real):
        return lambda: _to(real(), device)
    if isinstance(real, Iterator):
        return lambda: _to(next(real), device)
    raise ConfigError(f"gan.step takes a tensor, an iterator of tensors or a function, got {type(real).__name__}")


