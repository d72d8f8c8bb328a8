"""The training loop and the run folder. The loop knows nothing of any technique:
it calls ``gan.step_deferred`` and records the logs it returns, read off the device every
``read_every`` steps (:meth:`GAN.read`).

A run folder holds::

    config.toml        the resolved config
    metrics.jsonl      one JSON object per logged step ("kind": "train") or evaluation ("kind": "eval")
    tb/                TensorBoard event files
    plots/             sample scatters (2D data) and metric curves
    checkpoints/       step-NNNNNNNN.pt, the newest few (NAME.rejected: one that could not be loaded)
    .lock              held (flock) by the process training in the folder; it names that process's pid
"""
from __future__ import annotations

import functools
import json
import math
import re
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import jsonl, plots
from .build import build_data, build_gan, resolve_device
from .checkpoint import list_checkpoints, load_latest, save_checkpoint
from .config import TrainConfig, load_toml, to_toml
from .data.sources import Sampler
from .distributed import init_from_env, shutdown
from .errors import CheckpointError, ConfigError, GantricksError, NonFiniteError, Stopped
from .gan import GAN, StepLogs
from .conditional import balanced_labels
from .metrics import mixture_coverage
from .metrics.conditional import conditional_metrics
from .metrics.images import dataset_image_metrics
from .metrics.overfit import gan_overfit_metrics
from .monitor import Monitor
from .runlock import LOCK_NAME, RunLock, is_temporary, write_atomic
from .stopping import StopRequest

EVAL_SEED = 1234                      # evaluations draw noise from their own generator
MAX_ROLLBACKS = 3
READ_EVERY = 32                       # steps between reads of the logs off a GPU (see GAN.step_deferred)
EVAL_CURVES = ("modes_covered", "high_quality_pct", "reverse_kl", "kl_to_uniform", "fid", "kid", "precision",
               "recall", "density", "coverage", "class_accuracy", "intra_fid", "own_mode_pct")     # eval metrics drawn in plots/metrics.png, where present
RESUME_MAY_CHANGE = {"steps", "progress", "eval_every", "log_every", "checkpoint_every", "keep_checkpoints",
                     "device", "on_nonfinite", "precision", "compile", "sync_bn", "read_every",
                     "diagnose_every", "sample_plots", "threads"}


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    def records(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``, one JSON object a line (none when there is no file)."""
        return [record for _, record in self.numbered_records()]

    def numbered_records(self) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`records` with each one's line number (:func:`gantricks.jsonl.read`: a last line cut by a kill
        is dropped; any other line that is not a JSON object is a :class:`ConfigError` naming file and line)."""
        return jsonl.read(self.metrics, "each line must be one JSON object (only a last line cut by a kill is "
                                        "skipped)")

    def truncate_records(self, step: int) -> None:
        """Drop records written after ``step`` (by a run killed after its last checkpoint)."""
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        write_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in kept))


def evaluate(gan: GAN, sampler: Sampler, n: int, seed: int = EVAL_SEED, batch_size: int = 64
             ) -> tuple[dict[str, Any], torch.Tensor]:
    """Metrics of ``n`` samples drawn with a fixed noise seed (training RNG untouched); a conditional GAN's
    samples are of every class in turn (:func:`~gantricks.conditional.balanced_labels`); where the data keeps
    held-out images, D's outputs on them (:mod:`gantricks.metrics.overfit`, D in batches of ``batch_size``)."""
    labels = balanced_labels(n, gan.conditioning.num_classes) if gan.conditioning is not None else None
    on_device = gan.sample(n, generator=torch.Generator().manual_seed(seed), labels=labels)
    samples = on_device.cpu()
    out: dict[str, Any] = {}
    if labels is not None:            # class accuracy, intra-FID, within-class diversity, own mode
        out.update(conditional_metrics(on_device, labels, sampler))
    if sampler.centers is not None:
        out.update(mixture_coverage(samples.flatten(1), sampler.centers, sampler.std))
    elif samples.dim() == 4:          # images: Stacked MNIST modes, FID, KID, PRDC where a feature space fits
        out.update(dataset_image_metrics(on_device, sampler))
    out.update(gan_overfit_metrics(gan, sampler, on_device, batch_size))
    if not torch.isfinite(samples).all():
        out["nonfinite_samples"] = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
    return out, samples


def open_run(root: "str | Path", device: str | None = None) -> tuple[TrainConfig, GAN, Sampler, dict]:
    """Rebuild a run's GAN and data from its folder and load its newest whole checkpoint."""
    run = RunDir(Path(root))
    if not run.config.exists():
        raise ConfigError(f"{root} is not a gantricks run folder (no config.toml)")
    config = load_toml(run.config)
    if device is not None:
        config = config.replace(device=device)
    checkpoint, state = load_latest(run.checkpoints)
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape, getattr(sampler, "num_classes", None))
    _load_gan(gan, state, checkpoint, run.config, restore_rng=False)
    return config, gan, sampler, state


def _load_gan(gan: GAN, state: dict, checkpoint: Path, config: Path, restore_rng: bool = True) -> None:
    """Load a checkpoint's ``gan`` entry: a :class:`CheckpointError` in one line, not torch's thirty, when it
    does not fit the nets that ``config`` describes (a config edited after training, or another run's file)."""
    try:
        gan.load_state_dict(state["gan"], restore_rng=restore_rng)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        why = f"it has no {err.args[0]!r} entry" if isinstance(err, KeyError) and err.args else \
            " ".join(str(err).split()) or type(err).__name__
        raise CheckpointError(f"checkpoint {checkpoint} does not fit the nets {config} describes "
                              f"({why if len(why) <= 200 else why[:200] + '...'}); was the config changed "
                              f"after training?") from None


def train(config: TrainConfig | None, out: "str | Path", *, resume: bool = False, overwrite: bool = False,
          data: Sampler | None = None, on_step: Callable[[GAN, dict], None] | None = None) -> dict[str, Any]:
    """Train as ``config`` says, writing the run folder ``out``; returns the final evaluation.

    With ``resume`` the run continues from its newest whole checkpoint; ``config`` may
    then be None (the saved one) or differ from the saved one only in ``steps``,
    logging, checkpointing and device fields.

    The folder is locked for the run (:mod:`gantricks.runlock`): a second process is refused.
    A new run that fails before its first step leaves nothing behind, and ``overwrite``
    clears the old run only once the new one is built. SIGTERM or SIGINT writes a
    checkpoint at the current step and raises :class:`Stopped` (a second signal exits at once).

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1) the run is data parallel: each process
    trains on its slice of every batch, and rank 0 alone writes the folder
    (:mod:`gantricks.distributed`).
    """
    run = RunDir(Path(out))
    if resume:
        if not run.config.exists():
            raise ConfigError(f"nothing to resume in {out} (no config.toml)")
        config = _resumed_config(load_toml(run.config), config or load_toml(run.config))
    elif config is None:
        raise ConfigError("a new run needs a config")
    world = init_from_env(resolve_device(config.device))
    lock, made, threads, ours, old_run = None, [], torch.get_num_threads(), False, False
    trained = {"steps": 0}            # steps this process has trained (a failure before the first cleans up)
    try:
        if config.batch_size % world.size:
            raise ConfigError(f"batch_size {config.batch_size} is the global batch and must split evenly over "
                              f"{world.size} processes")
        if world.is_main:
            if not resume:
                _refuse_file(run)
                made = _missing_dirs(run.root)
            lock = RunLock.acquire(run.root)     # first: a live run is named as such, whatever else is there
            try:
                old_run = _check_claim(run, overwrite) if not resume else False
            except GantricksError:
                lock.release(remove=lock.created)
                for d in made:
                    d.rmdir()
                raise
            lock.write_pid()
            ours = not resume and not old_run        # every entry the folder will hold is this run's
        world.barrier()               # no rank starts while rank 0 may still be clearing the folder
        if config.threads and resolve_device(config.device).type == "cpu":
            torch.set_num_threads(config.threads)
        state = None
        if resume and list_checkpoints(run.checkpoints):
            checkpoint, state = load_latest(run.checkpoints, set_aside=world.is_main)
            if int(state["step"]) > config.steps:
                raise ConfigError(f"the run in {out} is already at step {int(state['step'])}; --steps "
                                  f"{config.steps} would end before it (steps counts from the start of the "
                                  f"run); give more steps to continue it")
        sampler = data if data is not None else build_data(config)
        gan = build_gan(config, sampler.shape, getattr(sampler, "num_classes", None))
        if config.lr_decay != "none":
            gan.schedule_lr(functools.partial(lr_factor, config))
        _check_batch(config, gan, world.size)
        if world.active:
            gan.distribute(world, sync_batchnorm=config.sync_bn)
        if state is not None:         # every rank loads the same checkpoint
            _load_gan(gan, state, checkpoint, run.config)
            sampler.load_state_dict(state["sampler"])
        if world.is_main:
            if resume:
                run.truncate_records(gan.step_count)
            elif old_run:
                _clear(run)           # the old run goes only now that the new one is built
                ours = True
            write_atomic(run.config, to_toml(config))
        final = _loop(config, run, gan, sampler, on_step, trained,
                      elapsed=state.get("elapsed") if state is not None else None,
                      monitor_state=state.get("monitor") if state is not None else None)
        world.barrier()
        return final
    except BaseException:
        if world.is_main and ours and trained["steps"] == 0:
            _remove_unstarted(run, made, lock)
        raise
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(threads)
        shutdown(world)


def lr_factor(config: TrainConfig, step: int) -> float:
    """The learning-rate multiplier for the step after ``step`` steps: 1, then linear to 0 from
    ``lr_decay_start`` of the run (pix2pix and CycleGAN decay this way over their second half).
    Late steps then move G less, which sharpens its samples (BENCHMARKS.md measures it)."""
    if config.lr_decay == "none":
        return 1.0
    t, start = step / config.steps, config.lr_decay_start
    return 1.0 if t < start else max(0.0, (1.0 - t) / (1.0 - start))


def _loop(config: TrainConfig, run: RunDir, gan: GAN, sampler: Sampler, on_step,
          trained: dict | None = None, elapsed: dict | None = None,
          monitor_state: dict | None = None) -> dict[str, Any]:
    """The training loop. ``elapsed`` is the CPU and wall time a resumed run had spent before its checkpoint
    (``{"cpu_s", "wall_s"}``, kept in every checkpoint): the clocks of its evaluations continue from them, so a
    run's ``cpu_s`` is its whole cost however often it was stopped. ``monitor_state`` is the monitor's state
    at that checkpoint (:meth:`Monitor.state_dict`), so the resumed run flags what the uninterrupted one would."""
    from torch.utils.tensorboard import SummaryWriter

    main = gan.world.is_main          # in a data-parallel run only rank 0 logs, evaluates and saves
    trained = trained if trained is not None else {"steps": 0}
    writer = SummaryWriter(str(run.tb), purge_step=gan.step_count + 1 if gan.step_count else None) if main \
        else _Silent()
    bar = _progress(config, gan.step_count, run.root.name, config.progress and main)
    if gan.conditioning is None:
        next_real = lambda: gan.world.shard(sampler(config.batch_size))  # noqa: E731  (the global batch, this rank's slice)
    else:     # (x, y) pairs: the batch and its labels, each sliced the same way
        next_real = lambda: tuple(map(gan.world.shard, sampler.labelled(config.batch_size)))  # noqa: E731
    monitor = Monitor()
    if monitor_state is not None:
        try:
            monitor.load_state_dict(monitor_state)
        except ValueError as err:     # a checkpoint from elsewhere: the flags start afresh, the training does not
            warnings.warn(f"the checkpoint's monitor state was not used: {err}", stacklevel=2)
    rollbacks, final, last_eval, logs = 0, {}, {}, {}
    read_every = _read_every(config, gan, on_step)
    pending: list[StepLogs] = []
    log = run.metrics.open("a") if main else _Silent()

    def emit(flags, step: int) -> None:
        for flag in flags:
            log.write(json.dumps(flag.to_record()) + "\n")
            writer.add_text("flags", flag.message(), step)
            if config.progress:
                bar.write(f"gantricks: {flag.message()}")

    def take(steps: list[StepLogs], hold: int | None = None) -> list:
        """Read these steps' logs: the callback, the monitor, the records (a step's record before its
        flags). The flags of step ``hold`` are returned instead, to follow its evaluation's record."""
        nonlocal logs
        held = []
        for at, logs in gan.read(steps):
            if on_step is not None:
                on_step(gan, logs)
            if main:
                flags = monitor.observe_step(at, logs)
                if at % config.log_every == 0:
                    _record(log, writer, "train", at, logs)
                if at == hold:
                    held = flags
                else:
                    emit(flags, at)
        return held

    def save(step: int) -> Path:
        log.flush()
        spent = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0}
        return save_checkpoint(run.checkpoints, step, {"gan": gan.state_dict(), "sampler": sampler.state_dict(),
                                                       "step": step, "config": config.to_dict(), "elapsed": spent,
                                                       "monitor": monitor.state_dict()},
                               keep=config.keep_checkpoints)

    t0 = time.perf_counter() - _seconds(elapsed, "wall_s")
    cpu0 = time.process_time() - _seconds(elapsed, "cpu_s")
    if main and gan.step_count >= config.steps:   # resumed at its end (stopped after its last checkpoint was
        # written, before its result was read): its result is its last evaluation, already recorded (with the
        # non-finite numbers that JSON holds as strings made numbers again)
        last_eval = next(({k: jsonl.number(v) for k, v in r.items()
                           if k not in ("kind", "step")} for r in reversed(run.records())
                          if r.get("kind") == "eval" and r.get("step") == gan.step_count), {})
    stop = StopRequest(enabled=not gan.world.active)   # under torchrun, torchrun owns the signals
    try:
        stop.install()
        while gan.step_count < config.steps:
            if stop.signum is not None:   # asked to stop: read what is pending, save, and say where
                done, pending = pending, []
                take(done)
                path = save(gan.step_count) if main else None
                raise Stopped(stop.signum, f"stopped by {signal.Signals(stop.signum).name} at step "
                              f"{gan.step_count}" + (f"; checkpoint {path.name} written, continue with "
                                                     f"--resume" if path else ""))
            diagnosed = config.diagnosed(gan.step_count + 1)
            pending.append(gan.step_deferred(next_real, diagnostics=diagnosed) if trained["steps"]
                           else _first_step(gan, next_real, config, diagnosed))
            trained["steps"] += 1
            step = gan.step_count
            is_last = step == config.steps
            evaluating = is_last or (config.eval_every and step % config.eval_every == 0)
            saving = is_last or (config.checkpoint_every and step % config.checkpoint_every == 0)
            if len(pending) < read_every and not evaluating and not saving:
                continue
            done, pending = pending, []
            try:
                flags = take(done, hold=step if evaluating else None)
            except NonFiniteError as err:
                if config.on_nonfinite != "rollback" or rollbacks >= MAX_ROLLBACKS \
                        or not list_checkpoints(run.checkpoints):
                    raise NonFiniteError(err.step, err.what, _rollback_note(run, rollbacks)) from None
                rollbacks += 1
                log.close()
                _rollback(run, gan, sampler, err, main)     # rewrites metrics.jsonl up to the checkpoint
                log = run.metrics.open("a") if main else _Silent()
                bar.n = gan.step_count
                continue
            if not main:
                bar.update(len(done))
                continue
            if evaluating:
                last_eval, samples = evaluate(gan, sampler, config.eval_samples, batch_size=config.batch_size)
                flags += monitor.observe_eval(step, samples, sampler.reference(len(samples)), last_eval)
                last_eval["wall_s"] = round(time.perf_counter() - t0, 3)
                last_eval["cpu_s"] = round(time.process_time() - cpu0, 3)
                _record(log, writer, "eval", step, last_eval)
                if is_last or config.sample_plots == "every":
                    _plot_samples(run, writer, step, samples, sampler, last_eval)
                emit(flags, step)
            if saving:
                save(step)
            if is_last or step % config.log_every < len(done):     # a logged step was read
                bar.set_postfix(_postfix(logs, last_eval), refresh=False)
            bar.update(len(done))        # after the postfix: the line shows this step's values
        final = {"step": gan.step_count, **last_eval}
    finally:
        stop.restore()
        if pending and main:          # stopped by something else (an error, Ctrl-C): keep what the steps logged
            try:
                take(pending)
            except Exception:         # a NaN among them, or a device that can no longer be read
                pass
        log.close()
        bar.close()
        writer.close()
    if main:
        finish_plots(run)
    return final


def _seconds(elapsed: Any, key: str) -> float:
    """A clock's seconds from a checkpoint's ``elapsed`` (0 when the checkpoint predates it or holds no number)."""
    value = elapsed.get(key) if isinstance(elapsed, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else 0.0


def finish_plots(run: RunDir) -> None:
    """The curves of a finished run: its losses and its evaluations' metrics (``plots/*.png``)."""
    records = run.records()
    plots.curves([r for r in records if r.get("kind") == "train"], ["d_loss", "g_loss", "d_real", "d_fake",
                 "grad_norm_d", "grad_norm_g"], _mkdir(run.plots) / "losses.png", title=run.root.name)
    evals = [r for r in records if r.get("kind") == "eval"]
    curve_keys = [k for k in EVAL_CURVES if evals and k in evals[-1]]
    if curve_keys:
        plots.curves(evals, curve_keys, run.plots / "metrics.png", title=run.root.name)


def _read_every(config: TrainConfig, gan: GAN, on_step) -> int:
    """Steps between reads of the logs off the device (also before every evaluation and checkpoint).
    Each read waits for the device, so a GPU run reads them in batches; a callback needs each step's.
    Data-parallel ranks agree on the smallest, so a NaN stops (or rolls back) all of them at one step."""
    every = 1 if on_step is not None else config.read_every or default_read_every(gan.device)
    return gan.world.min_over_ranks(every)


def default_read_every(device: torch.device) -> int:
    """``read_every`` 0: every step on a CPU, where a read is free; every ``READ_EVERY`` elsewhere."""
    return 1 if device.type == "cpu" else READ_EVERY


def _plot_samples(run: RunDir, writer, step: int, samples, sampler: Sampler, last_eval: dict) -> None:
    """A scatter of 2D samples over the modes, or a grid of images (PNG and TensorBoard)."""
    if samples.dim() == 2 and samples.shape[1] == 2:
        plots.scatter(samples, _mkdir(run.plots) / f"samples-{step:08d}.png", sampler.centers,
                      title=_title(step, last_eval))
    elif samples.dim() == 4:
        grid = plots.grid_array(samples[:64])      # one grid for the PNG and TensorBoard
        plots.save_grid(grid, _mkdir(run.plots) / f"samples-{step:08d}.png")
        writer.add_image("samples", grid, step, dataformats="HWC")


def _record(log, writer, kind: str, step: int, values: dict[str, Any]) -> None:
    clean = {k: jsonl.word(v) for k, v in values.items()}
    log.write(json.dumps({"kind": kind, "step": step, **clean}) + "\n")
    log.flush()                        # readable live, by `gantricks diagnose` or a tail
    for k, v in values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            writer.add_scalar(f"{kind}/{k}", v, step)


def _postfix(logs: dict, last_eval: dict) -> dict[str, str]:
    out = {k: f"{logs[k]:.3f}" for k in ("d_loss", "g_loss") if k in logs}
    if "kl_to_uniform" in last_eval:
        out.update(modes=f"{last_eval['modes_covered']}/{last_eval['modes']}", kl=f"{last_eval['kl_to_uniform']:.3f}")
    elif "modes_covered" in last_eval:
        out.update(modes=f"{last_eval['modes_covered']}/{last_eval['modes']}",
                   hq=f"{last_eval['high_quality_pct']:.1f}%", kl=f"{last_eval['reverse_kl']:.3f}")
    if "fid" in last_eval:
        out["fid"] = f"{last_eval['fid']:.2f}"
    return out


def _title(step: int, ev: dict) -> str:
    if "modes_covered" not in ev:
        return f"step {step}"
    return (f"step {step}: {ev['modes_covered']}/{ev['modes']} modes, "
            f"{ev['high_quality_pct']:.1f}% HQ, KL {ev['reverse_kl']:.3f}")


def _rollback(run: RunDir, gan: GAN, sampler: Sampler, err: NonFiniteError, main: bool = True) -> None:
    path, state = load_latest(run.checkpoints)
    gan.load_state_dict(state["gan"])
    sampler.load_state_dict(state["sampler"])
    gan.set_learning_rates(0.5)
    if main:
        run.truncate_records(gan.step_count)
        print(f"gantricks: {err}; rolled back to {path.name} and halved the learning rates", flush=True)


class _Silent:
    """Stands in for the metrics file and TensorBoard writer on ranks other than 0: every call does nothing."""

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _rollback_note(run: RunDir, rollbacks: int) -> str:
    ckpts = list_checkpoints(run.checkpoints)
    note = f"; last good checkpoint kept: {ckpts[-1]}" if ckpts else "; no checkpoint was written before it"
    return note + (f" (after {rollbacks} rollbacks)" if rollbacks else "")


def _resumed_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """``given`` when it differs from the saved config only in fields that may change on resume."""
    saved_d, given_d = saved.to_dict(), given.to_dict()
    for key in saved_d:
        if saved_d[key] != given_d[key] and key not in RESUME_MAY_CHANGE:
            raise ConfigError(f"cannot change {key!r} when resuming (saved: {saved_d[key]!r}, "
                              f"given: {given_d[key]!r}); start a new run folder instead")
    return given


def _check_claim(run: RunDir, overwrite: bool) -> bool:
    """Refuse ``--out`` unless it is new, empty, or (with ``overwrite``) a gantricks run folder;
    True when it holds an old run, to clear once the new one is built.

    Nothing that is not a run folder is ever replaced: not a file, not a folder of someone's work.
    """
    _refuse_file(run)
    # a new run killed before it wrote its config leaves at most its lock and its config's temporary file
    if run.root.is_dir() and any(p.name != LOCK_NAME and not is_temporary(p.name) for p in run.root.iterdir()):
        if not overwrite:
            raise ConfigError(f"run folder {run.root} already exists; pass --resume to continue it "
                              f"or --overwrite to replace it")
        if not run.config.exists() and not list_checkpoints(run.checkpoints):
            raise ConfigError(f"{run.root} is not a gantricks run folder; refusing to overwrite it")
        return True
    return False


def _refuse_file(run: RunDir) -> None:
    if run.root.exists() and not run.root.is_dir():
        raise ConfigError(f"--out {run.root} is a file, not a run folder; refusing to replace it "
                          f"(choose another --out)")


def _clear(run: RunDir) -> None:
    """Empty a run folder being overwritten, keeping the lock this process holds on it."""
    for p in run.root.iterdir():
        if p.name != LOCK_NAME:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _missing_dirs(root: Path) -> list[Path]:
    """``root`` and those of its parents that do not exist yet, deepest first: what this run creates."""
    missing = []
    for p in [root, *root.parents]:
        if p.exists():
            break
        missing.append(p)
    return missing


def _remove_unstarted(run: RunDir, made: list[Path], lock: RunLock) -> None:
    """A new run that failed before its first step: remove what it wrote, so the same command can be
    run again without --overwrite. Its folder's entries are all its own (the folder was new, empty, or
    a run being overwritten); folders it created go too, others stay."""
    try:
        for p in run.root.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()
        lock.release(remove=True)
        for d in made:
            d.rmdir()
    except OSError:
        pass


def _check_batch(config: TrainConfig, gan: GAN, world_size: int) -> None:
    """Batch norm cannot normalise over one sample: say so before the first step fails inside torch."""
    per_rank = config.batch_size // world_size
    if per_rank < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                            for net in gan.modules.values() for m in net.modules()):
        raise ConfigError(f"batch_size {config.batch_size} gives {per_rank} sample per process, but the nets have "
                          f"batch norm, which needs 2 or more; use a larger --batch-size or nets without batch norm")


def _first_step(gan: GAN, next_real, config: TrainConfig, diagnostics: bool) -> StepLogs:
    """The first step of this process, where a batch too large for memory shows: one line naming the
    setting instead of torch's allocation traceback. Any other error passes through as it is (shapes
    and batch norm are checked before; what is left would be a bug to read in full)."""
    try:
        return gan.step_deferred(next_real, diagnostics=diagnostics)
    except (RuntimeError, MemoryError) as err:
        text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        if not (isinstance(err, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
            raise
        asked = re.search(r"allocate (\d+) bytes", text)
        what = f"a step asked for {int(asked.group(1)) / 2 ** 30:.1f} GiB" if asked else text[:200]
        raise ConfigError(f"not enough memory for one training step at batch_size {config.batch_size} "
                          f"({what}); use a smaller --batch-size") from None


class _Lines:
    """Progress as plain lines, about 20 a run, for a log file: a terminal's \\r updates would make
    one huge line there. Stands in for tqdm (``update``, ``set_postfix``, ``write``, ``n``)."""

    def __init__(self, total: int, initial: int, desc: str, out=None):
        self.total, self.n, self.desc, self.out = total, initial, desc, out or sys.stderr
        self.every = max(1, total // 20)
        self._next = (initial // self.every + 1) * self.every
        self._postfix: dict[str, str] = {}
        self._postfix_step = initial

    def update(self, k: int = 1) -> None:
        self.n += k
        if self._postfix_step is None:     # set just before this update: this step's values
            self._postfix_step = self.n
        if self.n >= self._next or self.n >= self.total:
            self._next = (self.n // self.every + 1) * self.every
            extra = " ".join(f"{key}={value}" for key, value in self._postfix.items())
            if extra and self._postfix_step < self.n:     # values of an earlier logged step: say which
                extra += f" (logged at step {self._postfix_step})"
            self.write(f"{self.desc}: step {self.n}/{self.total}" + (f" {extra}" if extra else ""))

    def set_postfix(self, values: dict, refresh: bool = False) -> None:
        self._postfix, self._postfix_step = dict(values), None

    def write(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


def _progress(config: TrainConfig, initial: int, desc: str, enabled: bool):
    """A tqdm bar on a terminal, plain lines when stderr is a file, nothing when disabled."""
    from tqdm.auto import tqdm

    if enabled and not sys.stderr.isatty():
        return _Lines(config.steps, initial, desc)
    return tqdm(total=config.steps, initial=initial, disable=not enabled, dynamic_ncols=True, desc=desc, unit="step")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
