"""The ``gantricks`` command line: list, train, eval, sample, demo.

Every error caused by input prints one line on stderr and exits with status 2;
no traceback, and nothing already written is overwritten.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import typing
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from .config import TrainConfig, from_mapping, load_toml
from .errors import GantricksError
from .registry import ALL, Spec

PROG = "gantricks"


def _field_help() -> dict[str, str]:
    """The one-line comment beside each TrainConfig field, used as its --help text."""
    src = inspect.getsource(TrainConfig)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.*)$", src, re.M)}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    helps = _field_help()
    hints = typing.get_type_hints(TrainConfig)
    default = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "tricks":
            p.add_argument("--trick", dest="tricks", action="append", metavar="NAME[:k=v,...]",
                           help="add a trick (repeatable); " + helps.get(f.name, ""))
        elif hints[f.name] is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{helps.get(f.name, '')} (default: {getattr(default, f.name)})")
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(),
                           help=f"{helps.get(f.name, '')} (default: {getattr(default, f.name)})")


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _merge_tricks(base: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    """Tricks from the file plus those on the command line; a flag replaces the file's same-named trick."""
    extra_names = {Spec.parse(t).name for t in extra}
    return tuple(t for t in base if Spec.parse(t).name not in extra_names) + tuple(extra)


def cmd_list(args) -> int:
    kinds = [args.kind] if args.kind else [*ALL, "recipe"]
    _import_all()
    for kind in kinds:
        if kind == "recipe":
            _list_recipes()
            continue
        reg = ALL[kind]
        print(f"{reg.kind}s:" if not reg.kind.endswith("s") else f"{reg.kind}es:")
        for e in reg:
            touches = f" [touches: {e.touches}]" if e.touches else ""
            print(f"  {e.name:26s} {e.summary}{touches}" + (f"  ({e.paper})" if e.paper else ""))
    return 0


def _list_recipes() -> None:
    """Each recipe (``--recipe NAME``) with the settings it sets; a second name says whose it is."""
    from .recipes import RECIPES, SOURCES, first_names

    print("recipes:")
    for (name, overrides), first in zip(RECIPES.items(), first_names(RECIPES).values()):
        settings = f"= {first}" if first != name else " ".join(
            f"{k}=[{' '.join(v)}]" if isinstance(v, (list, tuple)) else f"{k}={v}" for k, v in overrides.items())
        print(f"  {name:26s} {settings}" + (f"  (source: {SOURCES[name]})" if first == name else ""))


def cmd_train(args) -> int:
    from .train import RunDir, train

    explicit = _explicit(args)
    if args.resume:
        run = RunDir(Path(args.out))
        if not run.config.exists():
            raise GantricksError(f"nothing to resume in {args.out} (no config.toml)")
        base = load_toml(run.config)
    else:
        base = load_toml(args.config) if args.config else TrainConfig()
        if args.recipe:
            base = apply_recipe(base, args.recipe)
    if "tricks" in explicit:
        explicit["tricks"] = _merge_tricks(base.tricks, explicit["tricks"])
    config = from_mapping(explicit, base, source="command line")
    final = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:     # under torchrun, one line from rank 0
        print(json.dumps(_public(final)))
    return 0


def apply_recipe(base: TrainConfig, name: str) -> TrainConfig:
    from .recipes import RECIPES

    if name not in RECIPES:
        raise GantricksError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES) or 'none yet'}")
    overrides = dict(RECIPES[name])
    if "tricks" in overrides:
        overrides["tricks"] = _merge_tricks(base.tricks, overrides["tricks"])
    return from_mapping(overrides, base, source=f"recipe {name!r}")


def cmd_bench(args) -> int:
    from .bench import run_bench

    only = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else None
    if args.workers < 1:
        raise GantricksError(f"--workers must be >= 1, got {args.workers}")
    run_bench(args.suite, args.seeds, args.steps, Path(args.out), workers=args.workers, only=only,
              protocol=args.protocol, device=args.device, settings=args.set or ())
    print((Path(args.out) / "report.md").read_text())
    return 0


def cmd_diagnose(args) -> int:
    from .diagnose import diagnose

    text, _ = diagnose(args.run)
    print(text)
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate, open_run

    config, gan, sampler, state = open_run(args.run, device=args.device)
    metrics, _ = evaluate(gan, sampler, args.samples or config.eval_samples, seed=args.seed)
    print(json.dumps({"step": int(state["step"]), **_public(metrics)}))
    return 0


def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from . import plots
    from .train import open_run

    out = Path(args.out)
    if out.suffix not in (".npy", ".pt", ".png"):
        raise GantricksError(f"--out must end in .npy, .pt or .png, got {out.name!r}")
    if out.exists() and not args.overwrite:
        raise GantricksError(f"{out} exists; pass --overwrite to replace it")
    if args.n < 1:
        raise GantricksError(f"-n must be >= 1, got {args.n}")
    _, gan, sampler, _ = open_run(args.run, device=args.device)
    x = gan.sample(args.n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, x.numpy())
    elif out.suffix == ".pt":
        torch.save(x, out)
    elif x.dim() == 2 and x.shape[1] == 2:
        plots.scatter(x, out, sampler.centers, title=f"{args.n} samples")
    elif hasattr(plots, "image_grid") and x.dim() == 4:
        plots.image_grid(x, out)
    else:
        raise GantricksError(f"cannot draw samples of shape {tuple(x.shape[1:])} as PNG; use .npy or .pt")
    print(str(out))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), overwrite=args.overwrite, steps=args.steps)


def _public(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "mode_counts"}


def _import_all() -> None:
    import gantricks  # noqa: F401  (registers every component)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="GAN training tricks against instability and mode collapse.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every registered dataset, net, loss, trick, scheme and metric, and the recipes")
    p.add_argument("kind", nargs="?", choices=[*ALL, "recipe"], help="only this kind")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a GAN; writes a run folder")
    p.add_argument("--config", help="TOML file with config keys (flags override it)")
    p.add_argument("--recipe", help="a named combination of tricks and settings (flags override it)")
    p.add_argument("--out", required=True, help="run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="the trick matrix: every cell on the mixtures over seeds; resumable")
    p.add_argument("--suite", default="mixtures",
                   help="mixtures (ring8 and grid25), ring8, grid25, or stacked-mnist (1,000 modes)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None,
                   help="G steps per run (default: the protocol's, 10,000 for collapse, else 20,000)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    p.add_argument("--only", help="comma-separated cells (default: all, a recipe known by two names once; `gantricks list` and the report name them)")
    p.add_argument("--protocol", default=None,
                   help="mixtures: pacgan (PacGAN's nets and optimizer, the default), fast (3x128 nets) or "
                        "collapse (the Unrolled GAN paper's 2-D setup, where the plain GAN collapses); "
                        "stacked-mnist: dcgan-small (DCGAN nets of width 32, the default)")
    p.add_argument("--device", default="cpu", help="where each run trains: cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a config setting over every cell's own, e.g. --set lr_decay_start=0.25 (repeatable); "
                        "its runs are kept apart from those without it")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("diagnose", help="the flags a run raised, what to try, and plots of the signals")
    p.add_argument("run")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("eval", help="metrics of a run's newest checkpoint, as one JSON object")
    p.add_argument("run")
    p.add_argument("--samples", type=int, default=None, help="samples to draw (default: the run's eval_samples)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="draw samples from a run: .npy, .pt or .png")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="a baseline and a trick on ring8, with a table and plots")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the demo's own)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _import_all()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("default")
            return args.func(args)
    except GantricksError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
