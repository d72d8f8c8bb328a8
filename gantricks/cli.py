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
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Sequence

from .config import TrainConfig, from_mapping, load_toml
from .errors import GantricksError, Stopped
from .registry import ALL, Spec

PROG = "gantricks"


def _field_help() -> dict[str, str]:
    """The one-line comment beside each TrainConfig field, used as its --help text."""
    src = inspect.getsource(TrainConfig)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.*)$", src, re.M)}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    helps = _field_help()
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):     # the defaults as declared (TrainConfig() would check them: torch)
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, "").replace("%", "%%")
        if f.name == "tricks":
            p.add_argument("--trick", dest="tricks", action="append", metavar="NAME[:k=v,...]",
                           help="add a trick (repeatable); " + text + " (default: none; `gantricks list trick`)")
        elif f.name == "imports":
            p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                           help="import a module first (repeatable): its tricks, schemes, nets, datasets, losses "
                                "register themselves; saved in the run's config, so eval, sample and --resume "
                                "import it too")
        elif hints[f.name] is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{text} (default: {_default(f)})")
        else:
            # choices are checked by the config (one line, exit 2), only listed here
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else ()
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(),
                           help=text + (f" (choices: {', '.join(map(str, choices))})" if choices else "")
                           + f" (default: {_default(f)})")


def _default(f) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _merge_tricks(base: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    """Tricks from the file plus those on the command line; a flag replaces the file's same-named trick."""
    extra_names = {Spec.parse(t).name for t in extra}
    return tuple(t for t in base if Spec.parse(t).name not in extra_names) + tuple(extra)


def cmd_list(args) -> int:
    catalog = _catalog()
    if args.kind and args.kind not in (*ALL, "recipe"):
        return _list_one(args.kind, catalog)
    kinds = [args.kind] if args.kind else [*ALL, "recipe"]
    for kind in kinds:
        if kind == "recipe":
            _list_recipes()
            continue
        print(f"{kind}s:" if not kind.endswith("s") else f"{kind}es:")
        for e in catalog[kind]:
            touches = f" [touches: {e['touches']}]" if e["touches"] else ""
            print(f"  {e['name']:26s} {e['summary']}{touches}" + (f"  ({e['paper']})" if e["paper"] else ""))
    return 0


def _catalog() -> dict[str, list[dict[str, Any]]]:
    """The registries as ``list`` prints them: from ``catalog.json`` where it stands for them (no torch
    to import), else from the registries themselves (:mod:`gantricks.catalog`)."""
    from . import catalog

    written = catalog.load()
    if written is not None:
        return written
    _import_all()
    return catalog.from_registries()


def _list_one(name: str, catalog: dict[str, list[dict[str, Any]]]) -> int:
    """``gantricks list NAME``: each component of that name with its options (type, default) and paper."""
    from .recipes import RECIPES

    found = [(kind, e) for kind, entries in catalog.items() for e in entries if e["name"] == name]
    if not found and name not in RECIPES:
        raise GantricksError(f"{name!r} is neither a kind ({', '.join([*ALL, 'recipe'])}) nor a component; "
                             f"`gantricks list` names them all")
    for kind, entry in found:
        print(f"{kind} {entry['name']}: {entry['summary']}" + (f"  ({entry['paper']})" if entry["paper"] else ""))
        if entry["touches"]:
            print(f"  touches: {entry['touches']}")
        options = entry["options"]
        if not options:
            print("  options: none")
        for key, type_name, default in options:
            print(f"  {key:22s} {type_name:14s} {default}")
        print(f"  use: {entry['name']}" + (f":{options[0][0]}=..." if options else ""))
    if name in RECIPES:
        print(f"recipe {name}: {_recipe_settings(RECIPES[name])}")
    return 0


def _recipe_settings(overrides: dict[str, Any]) -> str:
    """A recipe's settings as ``key=value ...``, a list as ``[a b]`` (the form a config's tricks string takes)."""
    return " ".join(f"{k}=[{' '.join(v)}]" if isinstance(v, (list, tuple)) else f"{k}={v}"
                    for k, v in overrides.items())


def _list_recipes() -> None:
    """Each recipe (``--recipe NAME``) with the settings it sets; a second name says whose it is."""
    from .recipes import RECIPES, SOURCES, first_names

    print("recipes:")
    for (name, overrides), first in zip(RECIPES.items(), first_names(RECIPES).values()):
        settings = f"= {first}" if first != name else _recipe_settings(overrides)
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
    if "imports" in explicit:       # added to the file's (and the resumed run's) modules
        explicit["imports"] = tuple(dict.fromkeys([*base.imports, *explicit["imports"]]))
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

    only = [c.strip() for c in args.only.split(",") if c.strip()] if args.only is not None else None
    if args.workers < 1:
        raise GantricksError(f"--workers must be >= 1, got {args.workers}")
    if not args.out.strip():
        raise GantricksError("--out is empty; name the bench folder")
    if args.protocol is not None and not args.protocol.strip():
        raise GantricksError("--protocol is empty; leave it out for the suite's default")
    run_bench(args.suite, args.seeds, args.steps, Path(args.out), workers=args.workers, only=only,
              protocol=args.protocol, device=args.device, settings=args.set or (), vectorize=args.vectorize)
    print((Path(args.out) / "report.md").read_text())
    return 0


def cmd_diagnose(args) -> int:
    from .diagnose import diagnose

    text, _ = diagnose(args.run)
    print(text)
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate, open_run

    if args.samples is not None and args.samples < 1:
        raise GantricksError(f"--samples must be >= 1, got {args.samples}")
    config, gan, sampler, state = open_run(args.run, device=args.device)
    samples = args.samples if args.samples is not None else config.eval_samples
    metrics, _ = evaluate(gan, sampler, samples, seed=args.seed)
    print(json.dumps({"step": int(state["step"]), **_public(metrics)}))
    return 0


SAMPLE_CHUNK = 10_000                 # samples made at a time by `gantricks sample` (gan.sample's default too)
IN_MEMORY_LIMIT = 256 * 2 ** 20       # bytes of samples .pt and .png may hold whole; .npy streams any number
PNG_LIMIT = 100_000                   # samples a .png may draw


def cmd_sample(args) -> int:
    import torch

    from . import plots
    from .train import open_run

    out = Path(args.out)
    if out.suffix not in (".npy", ".pt", ".png"):
        raise GantricksError(f"--out must end in .npy, .pt or .png, got {out.name!r}")
    if out.exists() and not args.overwrite:
        raise GantricksError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise GantricksError(f"--out {out} is a folder; give a file name ending in .npy, .pt or .png")
    labels = _labels_arg(args)
    if args.interpolate is None and args.steps is not None:
        raise GantricksError("--steps is the number of points of an interpolation; give --interpolate too")
    if args.n is None:
        args.n = INTERPOLATION_PATHS if args.interpolate else 2500
    if args.n < 1:
        raise GantricksError(f"-n must be >= 1, got {args.n}")
    if args.interpolate:
        if args.dropout:
            raise GantricksError("--dropout and --interpolate do not go together: dropout would move each "
                                 "point of a path at random")
        if args.n > MAX_PATHS:
            raise GantricksError(f"-n is the number of interpolation paths with --interpolate; at most {MAX_PATHS}")
    _, gan, sampler, _ = open_run(args.run, device=args.device)
    if labels is not None and gan.conditioning is None:
        raise GantricksError(f"--label/--labels asked for, but the run in {args.run} is not conditional "
                             f"(it was trained without labels)")
    if args.interpolate:
        return _write_interpolation(args, gan, sampler, out, labels)
    batches = gan.sample_batches(args.n, torch.Generator().manual_seed(args.seed), SAMPLE_CHUNK, labels=labels,
                                 dropout=args.dropout)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GantricksError(f"cannot create the folder of --out {out}: {err.strerror or err}") from None
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if out.suffix == ".npy":
            _stream_npy(batches, args.n, tmp)
        else:
            if out.suffix == ".png" and args.n > PNG_LIMIT:
                raise GantricksError(f"a plot of {args.n} samples would be unreadable (and slow); draw at most "
                                     f"{PNG_LIMIT}, or write .npy for any number")
            first = next(batches).cpu()
            size = first[:1].numel() * first.element_size() * args.n
            if size > IN_MEMORY_LIMIT:
                raise GantricksError(f"{args.n} samples take {size / 2 ** 20:.0f} MiB, too many to hold for "
                                     f"{out.suffix}; write .npy, which is written {SAMPLE_CHUNK} samples at a time")
            x = torch.cat([first, *(b.cpu() for b in batches)])
            if out.suffix == ".pt":
                torch.save(x, tmp)
            elif x.dim() == 2 and x.shape[1] == 2:
                plots.scatter(x, tmp.with_suffix(".png"), sampler.centers, title=f"{args.n} samples")
                tmp = tmp.with_suffix(".png")
            elif x.dim() == 4:
                tmp = tmp.with_suffix(".png")
                plots.image_grid(x, tmp)
            else:
                raise GantricksError(f"cannot draw samples of shape {tuple(x.shape[1:])} as PNG; use .npy or .pt")
        os.replace(tmp, out)      # whole or not at all: a killed command leaves no half file under --out
    except OSError as err:
        raise GantricksError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        for t in (tmp, tmp.with_suffix(".png")):
            if t.exists() and t != out:
                t.unlink()
    print(str(out))
    return 0


INTERPOLATION_PATHS = 8              # paths drawn by `gantricks sample --interpolate` unless -n says
MAX_PATHS = 256


def _labels_arg(args) -> "list[int] | None":
    """--label N or --labels A,B,C as a list of ints (checked against the run's classes later)."""
    if args.label is not None and args.labels is not None:
        raise GantricksError("give --label or --labels, not both")
    raw = args.labels if args.labels is not None else args.label
    if raw is None:
        return None
    try:
        values = [int(v) for v in str(raw).split(",") if v.strip()]
    except ValueError:
        raise GantricksError(f"labels must be integers separated by commas, got {raw!r}") from None
    if not values:
        raise GantricksError("--labels: give at least one label")
    return values


def _write_interpolation(args, gan, sampler, out: Path, labels) -> int:
    """``--interpolate``: ``-n`` paths of ``--steps`` points, as a PNG (an image grid, one path a row; a
    2-D path plot) or the tensor ``(n, steps, ...)`` in .npy / .pt."""
    import numpy as np
    import torch

    from . import plots

    steps = 8 if args.steps is None else args.steps
    x = gan.interpolate(args.n, steps, args.interpolate, torch.Generator().manual_seed(args.seed),
                        labels=labels).cpu()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npy":
            np.save(tmp, x.numpy())
        elif out.suffix == ".pt":
            torch.save(x, tmp)
        elif x.dim() == 3 and x.shape[2] == 2:
            plots.paths(x, tmp, sampler.centers, title=f"{args.interpolate}, {args.n} paths of {steps} points")
        elif x.dim() == 5:
            plots.image_grid(x.flatten(0, 1), tmp, nrow=steps)
        else:
            raise GantricksError(f"cannot draw an interpolation of samples of shape {tuple(x.shape[2:])} as PNG; "
                                 f"use .npy or .pt")
        os.replace(tmp, out)
    except OSError as err:
        raise GantricksError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(str(out))
    return 0


def _stream_npy(batches, n: int, path: Path) -> None:
    """Samples into a ``.npy`` file batch by batch: the header from the first, each written as made."""
    import numpy as np

    first = next(batches).cpu().numpy()
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(first.dtype),
                                                 "fortran_order": False, "shape": (n, *first.shape[1:])})
        f.write(np.ascontiguousarray(first).tobytes())
        for batch in batches:
            f.write(np.ascontiguousarray(batch.cpu().numpy()).tobytes())


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), overwrite=args.overwrite, steps=args.steps)


def _public(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "mode_counts"}


def _import_all() -> None:
    import gantricks  # noqa: F401  (registers every component)
    from .plugins import load_entry_points

    load_entry_points()     # installed packages' components (entry points), for `list` and every name


SEED_RANGE = (-2 ** 63, 2 ** 64)     # the seeds torch's generators take (Generator.manual_seed)


def _seed(text: str) -> int:
    """A ``--seed``: an integer torch's generators take, checked as the flag is read."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not SEED_RANGE[0] <= value < SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{value} is out of range; torch takes seeds from -2**63 to 2**64 - 1")
    return value


class _Parser(argparse.ArgumentParser):
    """Parse errors as one line, as every other error of the CLI (not four lines of usage above it)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{PROG}: error: {message}; see `{self.prog} --help`\n")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line (``warnings.formatwarning``), as the CLI's errors are: no file, line or source."""
    return f"{PROG}: warning: {' '.join(str(message).split())}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="GAN training tricks against instability and mode collapse.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every registered dataset, net, loss, trick, scheme and metric, and the recipes")
    p.add_argument("kind", nargs="?", metavar="KIND|NAME",
                   help=f"only this kind ({', '.join([*ALL, 'recipe'])}), or one component's options, their "
                        f"types and defaults, and its paper (e.g. r1)")
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
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell and dataset (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps of each run (default: the protocol's, 10,000 for collapse, else 20,000)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="runs trained at once, one CPU thread each (default: the CPU count, %(default)s)")
    p.add_argument("--only", help="comma-separated cells (default: all, a recipe known by two names once; `gantricks list` and the report name them)")
    p.add_argument("--protocol", default=None,
                   help="mixtures: pacgan (PacGAN's nets and optimizer, the default), fast (3x128 nets) or "
                        "collapse (the Unrolled GAN paper's 2-D setup, where the plain GAN collapses); "
                        "stacked-mnist: dcgan-small (DCGAN nets of width 32, the default), dcgan-small-d4 or "
                        "dcgan-small-d2 (D of 1/4 or 1/2 G's width: PacGAN's Table 3, where DCGAN collapses)")
    p.add_argument("--device", default="cpu", help="where each run trains: cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a config setting over every cell's own, e.g. --set lr_decay_start=0.25 (repeatable); "
                        "its runs are kept apart from those without it")
    p.add_argument("--vectorize", action="store_true",
                   help="train the seeds of a cell side by side as one batched model where the cell allows it (the "
                        "standard scheme, no tricks but label smoothing, the mlp nets, adam); other cells run alone, and the report "
                        "says which ran how")
    p.add_argument("--out", required=True, help="bench folder (results.jsonl, report.md, runs/); rerun to resume")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("diagnose", help="the flags a run raised, what to try, and plots of the signals")
    p.add_argument("run", help="run folder")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("eval", help="metrics of a run's newest checkpoint, as one JSON object")
    p.add_argument("run", help="run folder")
    p.add_argument("--samples", type=int, default=None, help="samples to draw (default: the run's eval_samples)")
    p.add_argument("--seed", type=_seed, default=1234, help="noise seed (default: %(default)s, as in training)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default: the run's)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="draw samples from a run: .npy, .pt or .png")
    p.add_argument("run", help="run folder")
    p.add_argument("-n", type=int, default=None,
                   help=f"samples (default: 2500); made {SAMPLE_CHUNK} at a time, so .npy takes any number; "
                        f"with --interpolate, the number of paths (default: {INTERPOLATION_PATHS})")
    p.add_argument("--label", default=None, metavar="K",
                   help="a conditional run: every sample of class K")
    p.add_argument("--labels", default=None, metavar="A,B,...",
                   help="a conditional run: the samples' classes, cycled over the samples (or paths)")
    p.add_argument("--dropout", action="store_true",
                   help="keep G's dropout layers on while sampling (dropout as noise, ganhacks / pix2pix)")
    p.add_argument("--interpolate", choices=("slerp", "lerp"), default=None,
                   help="draw -n paths between pairs of noise draws instead of samples: a PNG grid (one path a "
                        "row) for images, a path plot for 2-D data, or the tensor (n, steps, ...) in .npy/.pt")
    p.add_argument("--steps", type=int, default=None, help="points on each interpolation path (default: 8)")
    p.add_argument("--seed", type=_seed, default=0, help="noise seed (default: %(default)s)")
    p.add_argument("--out", required=True, help="file: .npy (streamed), .pt, or .png (a scatter or image grid)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default: the run's)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="a baseline and a trick on ring8, with a table and plots")
    p.add_argument("--out", default="runs/demo", help="demo folder (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the demo's own)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")
    p.set_defaults(func=cmd_demo)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is not cmd_list:     # list reads the catalog where it can, and imports nothing else
        _import_all()
    shown = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("default")
            warnings.formatwarning = _one_line_warning     # the CLI's output only; a library user's is untouched
            return args.func(args)
    except GantricksError as err:     # exit codes: errors.py (2 bad input, 3 non-finite, 128+N a signal)
        print(f"{PROG}: {'stopped' if isinstance(err, Stopped) else 'error'}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
