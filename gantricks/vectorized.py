"""Seeds side by side: the runs of one bench cell that differ only in their seed, trained as one batched model.

On small nets a step is bound by per-operation overhead more than by arithmetic, so ``S`` seeds whose
parameters are stacked along a leading dimension (``torch.func.stack_module_state``) and whose nets run
under ``torch.func.vmap`` cost far less than ``S`` runs one after another. Each seed keeps its own random
streams, so its run is the run it would be alone, to float tolerance (``tests/test_vectorized.py``):

* its nets are built as ``gantricks train`` builds them (:func:`build_gan` after ``torch.manual_seed(seed)``),
  and its noise is drawn from a generator that continues the global stream from there, as its own run does;
* its data comes from its own sampler (its seed);
* Adam is elementwise, so one Adam over the stacked parameters is each seed's Adam; each seed's loss is
  its own mean, and the gradient of their sum is each seed's gradient.

Each seed gets its own run folder, as ``gantricks train`` writes it (``config.toml``, ``metrics.jsonl`` with
the same train and eval records and the monitor's flags, checkpoints, the final sample plot and curves;
no TensorBoard events), so ``gantricks eval``, ``sample`` and ``train --resume`` work on it, and the bench
resumes a killed seed on its own from its checkpoint. Asked to stop (SIGTERM, Ctrl-C), every seed still training
writes its checkpoint at the step reached, as its run alone would, and :class:`Stopped` is raised; each seed then
continues alone with ``train --resume`` (the bench does so on its next run). A seed whose loss or gradient goes
non-finite stops there with :class:`NonFiniteError` (its result line says so); the others go on.

What can run this way (:func:`why_not`): the standard scheme (alternating, any ``n_critic``), no tricks but
one-sided label smoothing,
the built-in ``mlp`` nets, any registered loss, Adam without options, no learning-rate decay, fp32.
Anything else (a trick that mixes samples across the batch, a scheme with its own step, ...) runs as
separate runs; the bench's report says which ran how.
"""
from __future__ import annotations

import copy
import signal
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .build import build_data, build_gan
from .checkpoint import checkpoint_path, save_checkpoint
from .config import TrainConfig, to_toml
from .errors import ConfigError, NonFiniteError, Stopped
from .gan import GAN
from .monitor import Monitor
from .optim import make_optimizer
from .registry import Spec
from .runlock import RunLock, write_atomic
from .stopping import StopRequest
from .train import RunDir, _plot_samples, _record, _Silent, evaluate, finish_plots

NETS = ("mlp",)
# tricks whose only hook is a rule on D's targets that draws no random numbers: the seeds' GANs apply them
# to the (B,) targets, which are the same for every seed
TARGET_RULES = ("label-smoothing",)
LOG_KEYS = ("grad_norm_d", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_adv", "d_loss",
            "grad_norm_g", "g_adv", "g_loss")           # the standard scheme's logs, in its order
LOSS_KEYS = ("d_adv", "d_loss", "g_adv", "g_loss")   # logged at every step; the rest on diagnosed steps
CHECKS = (("D loss", "d_loss"), ("D gradient", "grad_norm_d"), ("G loss", "g_loss"), ("G gradient", "grad_norm_g"))


def why_not(config: TrainConfig) -> str | None:
    """Why ``config``'s seeds cannot be trained side by side, or None when they can."""
    scheme = Spec.parse(config.scheme)
    if scheme.name != "standard" or scheme.options:
        return f"scheme {config.scheme!r} (only the standard scheme, without options)"
    other = [Spec.parse(t).name for t in config.tricks if Spec.parse(t).name not in TARGET_RULES]
    if other:
        return f"trick {other[0]!r} (of the tricks only {', '.join(TARGET_RULES)} is batched yet)"
    for role in ("generator", "discriminator"):
        if Spec.parse(getattr(config, role)).name not in NETS:
            return f"{role} {getattr(config, role)!r} (only the built-in {', '.join(NETS)} nets)"
    for side in ("optimizer_g", "optimizer_d"):
        if getattr(config, side) != "adam":
            return f"{side} {getattr(config, side)!r} (only adam without options)"
    if config.lr_decay != "none":
        return f"lr_decay {config.lr_decay!r}"
    if config.precision != "fp32" or config.compile:
        return "bf16 or compile"
    if config.on_nonfinite != "stop":
        return "on_nonfinite rollback"
    if config.imports:
        return "imported modules"
    return None


class StackedNet:
    """``S`` copies of one architecture with their own parameters and buffers, as one batched callable:
    input ``(S, B, ...)``, output ``(S, B, ...)``; batch norm keeps each seed's statistics."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.template = copy.deepcopy(modules[0]).to("meta").train()
        self.params, self.buffers = stack_module_state(list(modules))
        call = lambda p, b, x: functional_call(self.template, (p, b), (x,))  # noqa: E731
        self._forward = vmap(call, randomness="error")

    def __call__(self, x: Tensor) -> Tensor:
        return self._forward(self.params, self.buffers, x)

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def state_of(self, i: int) -> dict[str, Tensor]:
        """Seed ``i``'s ``state_dict`` (parameters and buffers)."""
        return {k: v[i].detach().clone() for k, v in {**self.params, **self.buffers}.items()}


def seed_optimizer_state(optimizer: torch.optim.Optimizer, i: int) -> dict:
    """Seed ``i``'s share of an optimizer over stacked parameters, as its own optimizer's ``state_dict``."""
    state = optimizer.state_dict()
    per = {k: {name: (v[i].clone() if isinstance(v, Tensor) and v.dim() > 0 else
                      v.clone() if isinstance(v, Tensor) else v) for name, v in s.items()}
           for k, s in state["state"].items()}
    return {"state": per, "param_groups": copy.deepcopy(state["param_groups"])}


def _norms(params: list[Tensor]) -> Tensor:
    """Each seed's gradient norm over ``params`` (stacked along dim 0): ``(S,)``."""
    grads = [p.grad for p in params if p.grad is not None]
    per = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
    return torch.linalg.vector_norm(per, dim=0)


class SeedStack:
    """The runs of ``configs`` (equal but for their seeds) as one batched training."""

    def __init__(self, configs: Sequence[TrainConfig]):
        base = configs[0].replace(seed=0)
        if any(c.replace(seed=0) != base for c in configs):
            raise ConfigError("seeds side by side: the configs must differ only in their seed")
        reason = why_not(configs[0])
        if reason is not None:
            raise ConfigError(f"seeds side by side cannot run {reason}")
        self.configs = list(configs)
        self.samplers, self.gans, self.noise = [], [], []
        for config in configs:
            sampler = build_data(config)
            gan: GAN = build_gan(config, sampler.shape)     # torch.manual_seed(seed), then the nets
            stream = torch.Generator()
            stream.set_state(torch.get_rng_state())      # where the run's own noise would start
            self.samplers.append(sampler), self.gans.append(gan), self.noise.append(stream)
        first = self.gans[0]
        self.device, self.loss, self.z_shape = first.device, first.loss, first.z_shape
        self.G = StackedNet([g.G for g in self.gans])
        self.D = StackedNet([g.D for g in self.gans])
        c = configs[0]
        # Adam as each seed's own (make_optimizer: the same kernel, fused or not, as a run alone)
        self.opt_g = make_optimizer("adam", self.G.parameters(), c.lr_g, (c.beta1, c.beta2))
        self.opt_d = make_optimizer("adam", self.D.parameters(), c.lr_d, (c.beta1, c.beta2))
        self._loss_d = vmap(self.loss.d, in_dims=(0, 0, None, None))
        self._loss_g = vmap(self.loss.g, in_dims=(0, None))
        self.threshold = first._threshold
        self.step_count = 0

    @property
    def seeds(self) -> int:
        return len(self.gans)

    def _real(self) -> Tensor:
        return torch.stack([s(self.configs[0].batch_size) for s in self.samplers]).to(self.device)

    def _z(self, n: int) -> Tensor:
        return torch.stack([torch.randn(n, *self.z_shape, generator=g) for g in self.noise]).to(self.device)

    def step(self) -> dict[str, Tensor]:
        """One step of every seed (``n_critic`` D updates, then G's on fresh noise, D frozen): logs ``(S,)``."""
        logs: dict[str, Tensor] = {}
        for _ in range(self.configs[0].n_critic):
            real = self._real()
            n = real.shape[1]
            with torch.no_grad():
                fake = self.G(self._z(n))
            real_logits, fake_logits = self.D(real), self.D(fake)
            real_t, fake_t = self.gans[0].targets(n, n, self.device)     # with the target rules (TARGET_RULES)
            d_adv = self._loss_d(real_logits, fake_logits, real_t, fake_t)
            self.opt_d.zero_grad(set_to_none=True)
            d_adv.sum().backward()
            logs["grad_norm_d"] = _norms(self.D.parameters())
            self.opt_d.step()
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            logs.update(d_real=real_logits.flatten(1).mean(1), d_fake=fake_logits.flatten(1).mean(1),
                        d_acc_real=(real_logits > self.threshold).flatten(1).float().mean(1),
                        d_acc_fake=(fake_logits < self.threshold).flatten(1).float().mean(1),
                        d_adv=d_adv.detach(), d_loss=d_adv.detach())
        d_params = self.D.parameters()
        for p in d_params:
            p.requires_grad_(False)
        try:
            fake_logits = self.D(self.G(self._z(n)))
            g_adv = self._loss_g(fake_logits, torch.ones(n, device=self.device))
            self.opt_g.zero_grad(set_to_none=True)
            g_adv.sum().backward()
        finally:
            for p in d_params:
                p.requires_grad_(True)
        logs["grad_norm_g"] = _norms(self.G.parameters())
        self.opt_g.step()
        logs.update(g_adv=g_adv.detach(), g_loss=g_adv.detach())
        self.step_count += 1
        return {k: logs[k] for k in LOG_KEYS}

    def seed_gan(self, i: int) -> GAN:
        """Seed ``i``'s own :class:`GAN`, holding its slice of the stacked state (for evaluations and checkpoints)."""
        gan = self.gans[i]
        gan.G.load_state_dict(self.G.state_of(i))
        gan.D.load_state_dict(self.D.state_of(i))
        gan.optimizers["G"].load_state_dict(seed_optimizer_state(self.opt_g, i))
        gan.optimizers["D"].load_state_dict(seed_optimizer_state(self.opt_d, i))
        gan.step_count = self.step_count
        return gan

    def seed_state(self, i: int) -> dict[str, Any]:
        """Seed ``i``'s checkpoint, as its own run writes it (its noise stream's state as the torch RNG)."""
        gan = self.seed_gan(i)
        state = gan.state_dict()
        state["rng"] = {"torch": self.noise[i].get_state()}
        return {"gan": state, "sampler": self.samplers[i].state_dict(), "step": self.step_count,
                "config": self.configs[i].to_dict()}


def train_side_by_side(configs: Sequence[TrainConfig], outs: Sequence["str | Path"]) -> list[dict[str, Any]]:
    """Train the runs of ``configs`` (one per seed) side by side into the fresh run folders ``outs``.

    Returns per seed ``{"final": the last evaluation, "error": None or the message, "cpu_s", "wall_s"}``
    (the CPU and wall seconds of the whole batch divided among the seeds)."""
    runs = [RunDir(Path(o)) for o in outs]
    for run in runs:
        if run.root.exists() and any(run.root.iterdir()):
            raise ConfigError(f"{run.root} is not empty; seeds side by side start fresh runs only")
    cpu0, t0 = time.process_time(), time.perf_counter()
    locks = []
    try:
        for run in runs:
            run.root.mkdir(parents=True, exist_ok=True)
            locks.append(RunLock.acquire(run.root))
            locks[-1].write_pid()
        stack = SeedStack(configs)
        for run, config in zip(runs, configs):
            write_atomic(run.config, to_toml(config))
        return _loop(stack, runs, cpu0, t0)
    finally:
        for lock in locks:
            lock.release()


def _loop(stack: SeedStack, runs: list[RunDir], cpu0: float, t0: float) -> list[dict[str, Any]]:
    config, n = stack.configs[0], stack.seeds
    monitors = [Monitor() for _ in range(n)]
    logs_files = [run.metrics.open("a") for run in runs]
    writer = _Silent()
    errors: list[str | None] = [None] * n
    finals: list[dict[str, Any]] = [{} for _ in range(n)]
    saved = -1                               # the step of the last checkpoints written

    def save(i: int, step: int) -> Path:
        logs_files[i].flush()
        spent = {"cpu_s": (time.process_time() - cpu0) / n, "wall_s": (time.perf_counter() - t0) / n}
        return save_checkpoint(runs[i].checkpoints, step, {**stack.seed_state(i), "elapsed": spent,
                                                           "monitor": monitors[i].state_dict()},
                               keep=config.keep_checkpoints)

    stop = StopRequest()
    try:
        stop.install()
        while stack.step_count < config.steps:
            if stop.signum is not None:      # asked to stop: each seed still training saves where it is
                step = stack.step_count
                live = [i for i in range(n) if errors[i] is None]
                if step != saved:
                    for i in live:
                        save(i, step)
                raise Stopped(stop.signum, f"stopped by {signal.Signals(stop.signum).name} at step {step}; "
                              f"checkpoint {checkpoint_path('.', step).name} written for each of the {len(live)} "
                              f"seeds trained side by side, each continues alone with --resume")
            values = stack.step()
            step = stack.step_count
            table = torch.stack(list(values.values())).tolist()         # one read: (keys, seeds)
            is_last = step == config.steps
            evaluating = is_last or (config.eval_every and step % config.eval_every == 0)
            saving = is_last or (config.checkpoint_every and step % config.checkpoint_every == 0)
            for i in range(n):
                if errors[i] is not None:
                    continue
                logs = {k: table[j][i] for j, k in enumerate(values)}
                bad = next((what for what, k in CHECKS if not _finite(logs[k])), None)
                if bad is not None:
                    errors[i] = f"NonFiniteError: {NonFiniteError(step, bad)}"
                    continue
                # the monitor reads what it reads in the seed's run alone: D's accuracies, mean logits and the
                # gradient norms on train's diagnosed steps only (they are computed here every step)
                flags = monitors[i].observe_step(step, logs if config.diagnosed(step) else
                                                 {k: logs[k] for k in LOSS_KEYS})
                if step % config.log_every == 0:
                    _record(logs_files[i], writer, "train", step, logs)
                if evaluating:
                    gan = stack.seed_gan(i)
                    last_eval, samples = evaluate(gan, stack.samplers[i], config.eval_samples)
                    flags += monitors[i].observe_eval(step, samples,
                                                      stack.samplers[i].reference(len(samples)), last_eval)
                    last_eval["wall_s"] = round((time.perf_counter() - t0) / n, 3)
                    last_eval["cpu_s"] = round((time.process_time() - cpu0) / n, 3)
                    _record(logs_files[i], writer, "eval", step, last_eval)
                    if is_last or config.sample_plots == "every":
                        _plot_samples(runs[i], writer, step, samples, stack.samplers[i], last_eval)
                    finals[i] = {"step": step, **last_eval}
                for flag in flags:
                    logs_files[i].write(_json(flag.to_record()) + "\n")
                if saving:
                    save(i, step)
            if saving:
                saved = step
    finally:
        stop.restore()
        for f in logs_files:
            f.close()
    for run, error in zip(runs, errors):
        if error is None:
            finish_plots(run)
    cpu, wall = (time.process_time() - cpu0) / n, (time.perf_counter() - t0) / n
    return [{"final": final if error is None else {}, "error": error, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
            for final, error in zip(finals, errors)]


def _finite(x: float) -> bool:
    return x == x and x not in (float("inf"), float("-inf"))


def _json(record: dict) -> str:
    import json
    return json.dumps(record)
