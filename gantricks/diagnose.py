"""``gantricks diagnose RUN_DIR``: the flags a run raised, what to try, and a plot of the signals."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import jsonl, plots
from .config import load_toml
from .errors import ConfigError
from .monitor import REMEDIES, Monitor
from .train import RunDir

SIGNALS = ["d_acc_real", "d_acc_fake", "d_gap", "grad_norm_d", "grad_norm_g", "d_loss", "g_loss"]
EVAL_SIGNALS = ["diversity_ratio", "modes_covered", "high_quality_pct", "fid", "d_overfit"]
OVERFIT_SIGNALS = ["d_seen", "d_heldout", "d_fake_eval"]      # D's mean output on each set, at evaluations
NUMBERS = {"train": [*SIGNALS, "d_real", "d_fake"], "eval": [*EVAL_SIGNALS, *OVERFIT_SIGNALS, "d_overfit"]}


def _too_early(evaluations: int, steps: int) -> list[str]:
    """What the monitor could not judge yet: a missing flag there is no evidence of health."""
    notes = []
    if evaluations < 2:
        notes.append(f"too early to judge collapse: {evaluations} evaluation{'s' if evaluations != 1 else ''} so "
                     f"far, and a partial collapse or mode hopping needs two running (more steps, or a smaller "
                     f"eval_every)")
    window = Monitor.window
    if steps < window:
        notes.append(f"too early to judge a winning discriminator or oscillation: {steps} steps logged, the "
                     f"monitor's window is {window}")
    return notes


def _checked(run: RunDir) -> list[dict[str, Any]]:
    """The run's records with what diagnose reads of them checked, and the non-finite numbers stored as
    strings made floats: a :class:`ConfigError` naming the file and line of a record gantricks would not
    have written, not a traceback from the middle of the report."""
    out = []
    for number, r in run.numbered_records():
        kind = r.get("kind")
        if kind not in ("train", "eval", "flag"):
            out.append(r)
            continue
        where = f"{run.metrics}, line {number}: {'an' if kind == 'eval' else 'a'} {kind} record"
        if isinstance(r.get("step"), bool) or not isinstance(r.get("step"), int):
            raise ConfigError(f"{where} without an integer 'step' (got {r.get('step')!r})")
        if kind == "flag" and not (isinstance(r.get("flag"), str) and "detail" in r):
            raise ConfigError(f"{where} without its 'flag' name or its 'detail'")
        if kind == "eval" and "modes_covered" in r and "modes" not in r:
            raise ConfigError(f"{where} with 'modes_covered' but no 'modes'")
        if kind == "eval" and r.get("d_heldout") is not None and any(r.get(k) is None for k in OVERFIT_SIGNALS):
            raise ConfigError(f"{where} with 'd_heldout' but not all of {', '.join(OVERFIT_SIGNALS)}")
        for key in NUMBERS.get(kind, ()):
            value = jsonl.number(r.get(key))
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where} whose {key!r} is {value!r}, not a number")
            if value is not r.get(key):
                r = {**r, key: value}
        out.append(r)
    return out


def diagnose(root: "str | Path") -> tuple[str, Path]:
    """A plain-text diagnosis of the run in ``root`` and the path of its signals plot."""
    run = RunDir(Path(root))
    if run.config.exists():
        load_toml(run.config)     # imports the run's modules (plugins), as eval and sample do
    if not run.metrics.exists():
        raise ConfigError(f"{root} has no metrics.jsonl; is it a gantricks run folder?")
    records = _checked(run)
    train = [dict(r, d_gap=r["d_real"] - r["d_fake"]) if None not in (r.get("d_real"), r.get("d_fake")) else r
             for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    flags = [r for r in records if r.get("kind") == "flag"]
    last = train[-1]["step"] if train else 0
    lines = [f"run {run.root}: {last} steps logged, {len(evals)} evaluations, {len(flags)} flags"]
    for f in flags:
        lines.append(f"  step {f['step']:>7}  {f['flag']:<19} {f['detail']}")
    if flags:
        lines.append("what to try:")
        remedies: dict[str, Any] = {}     # a flag this version does not know: the remedies its record gives
        for f in flags:
            remedies.setdefault(f["flag"], REMEDIES.get(f["flag"]) or f.get("remedies"))
        for name, tries in remedies.items():
            known = isinstance(tries, list) and tries
            lines.append(f"  {name}: " + (", ".join(map(str, tries)) if known else "(a flag this version of "
                                          "gantricks does not know, with no remedies in its record)"))
    else:
        lines.append("  no flags: no collapse, winning discriminator, divergence, oscillation or overfitting D was seen")
    lines += [f"  {note}" for note in _too_early(len(evals), last)]
    if evals and "modes_covered" in evals[-1]:
        e = evals[-1]
        parts = [f"{e['modes_covered']}/{e['modes']} modes"]
        for key, label, fmt in (("high_quality_pct", "% high quality", ".1f"), ("reverse_kl", "reverse KL ", ".3f"),
                                ("kl_to_uniform", "KL to uniform ", ".3f"), ("fid", "FID ", ".2f")):
            if key in e and e[key] is not None:   # "inf" is stored as a string (JSON has no infinity)
                value = format(e[key], fmt) if isinstance(e[key], (int, float)) else str(e[key])
                parts.append(f"{value}{label}" if label.startswith("%") else f"{label}{value}")
        lines.append(f"last evaluation (step {e['step']}): " + ", ".join(parts))
    if run.plots.exists() and not run.plots.is_dir():
        raise ConfigError(f"{run.plots} is a file, not the run's plots folder, where diagnose draws its plots")
    try:
        run.plots.mkdir(parents=True, exist_ok=True)
        path = plots.curves(train, SIGNALS, run.plots / "diagnosis.png", title=f"{run.root.name}: training signals",
                            marks=[(f["step"], f["flag"]) for f in flags])
        if evals:
            plots.curves(evals, EVAL_SIGNALS, run.plots / "diagnosis-eval.png", title=f"{run.root.name}: evaluations",
                         marks=[(f["step"], f["flag"]) for f in flags])
        overfit = [e for e in evals if e.get("d_heldout") is not None]
        extra = [run.plots / "diagnosis-eval.png"] if evals else []
        if overfit:     # Karras et al. 2020, Fig. 1: D's outputs on training, held-out and fake images
            e = overfit[-1]
            share = f"{e['d_overfit']:.0%} of the way to the fakes" if e.get("d_overfit") is not None else \
                "D does not rank training images above fakes"
            lines.append(f"D's output (step {e['step']}): training images {e['d_seen']:.2f}, held-out "
                         f"{e['d_heldout']:.2f}, fakes {e['d_fake_eval']:.2f} (held-out: {share})")
            extra.append(plots.overlaid(overfit, OVERFIT_SIGNALS, run.plots / "diagnosis-overfit.png",
                                        title=f"{run.root.name}: D's output on training, held-out and fake images",
                                        marks=[(f["step"], f["flag"]) for f in flags if f["flag"] ==
                                               "discriminator-overfits"], ylabel="mean D output"))
    except OSError as err:     # a read-only run folder, a full disk
        raise ConfigError(f"cannot write the plots of {run.root}: {err.strerror or err}"
                          + (f": {err.filename}" if err.filename else "")) from None
    lines.append(f"plots: {path}" + "".join(f", {p}" for p in extra))
    return "\n".join(lines), path
