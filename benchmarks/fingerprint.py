"""A bench run's trajectory fingerprint: its logged losses and its evaluations over the first steps, and the
machine it ran on. Two trees or two machines that train the same run alike print the same fingerprint.

    python benchmarks/fingerprint.py runs/fp/now --cell baseline --dataset ring8 --seed 0 --stop 600 \
        --json runs/fp/now.json
    PYTHONPATH=OLD_TREE python benchmarks/fingerprint.py runs/fp/old --stop 600 --json runs/fp/old.json
    python benchmarks/fingerprint.py --compare runs/fp/now.json runs/fp/old.json

The run is configured exactly as ``gantricks bench`` configures the cell's run of ``--steps`` steps (its
evaluation, logging and checkpoint schedule included) on one torch thread, and stopped after ``--stop`` steps,
so its records are the first ``--stop`` steps of the bench's run. The script reads only ``bench.Job`` and
``train``, so it also runs against older trees of the library (BENCHMARKS.md §13 used it back to 2026-11-28).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What decides how the CPU kernels round: torch's build, the vector ISA ATen uses, and the CPU. (As
    ``gantricks.bench.machine``, kept here so that the script also runs on trees from before it.)"""
    import torch

    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": model}


def fingerprint(out: Path, cell: str = "baseline", dataset: str = "ring8", seed: int = 0, steps: int = 5000,
                stop: int = 600, protocol: str = "fast", every: int = 50,
                settings: dict[str, str] | None = None) -> dict[str, Any]:
    """Train the bench's run of ``cell`` for ``stop`` of its ``steps`` steps into ``out``; its fingerprint.
    ``settings`` (config keys, as the bench's ``--set``) apply over the cell's own."""
    import torch

    from gantricks import bench
    from gantricks.config import from_mapping
    from gantricks.train import train

    torch.set_num_threads(1)                            # as the bench's workers
    table = bench.cells()
    if cell not in table:
        raise SystemExit(f"unknown cell {cell!r}; cells are: {', '.join(table)}")
    fields = {f.name for f in dataclasses.fields(bench.Job)}
    given = dict(cell=cell, dataset=dataset, seed=seed, steps=steps, overrides=table[cell], out=str(out),
                 protocol=protocol)
    job = bench.Job(**{k: v for k, v in given.items() if k in fields})    # older trees lack some fields
    config = from_mapping({**(settings or {}), "steps": stop}, job.config(), source="fingerprint")
    train(config, out, overwrite=True)
    records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: [r["d_loss"], r["g_loss"]] for r in records
              if r.get("kind") == "train" and r["step"] % every == 0}
    evals = [{k: r.get(k) for k in ("step", "modes_covered", "high_quality_pct", "reverse_kl")}
             for r in records if r.get("kind") == "eval"]
    return {"run": given | {"stop": stop, "settings": settings or {}}, "machine": machine(), "losses": losses,
            "evals": evals}


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The first logged step at which two fingerprints' losses differ, or that they agree."""
    la, lb = ({int(k): v for k, v in f["losses"].items()} for f in (a, b))
    common = sorted(set(la) & set(lb))
    if not common:
        return "no logged step in common"
    for step in common:
        if la[step] != lb[step]:
            rel = max(abs(x - y) / max(abs(x), abs(y), 1e-30) for x, y in zip(la[step], lb[step]))
            return (f"first differ at step {step}: d_loss/g_loss {la[step]} against {lb[step]} "
                    f"(relative {rel:.1e}); equal before")
    same_evals = [e for e in a["evals"] if e in b["evals"]]
    return f"equal at all {len(common)} common logged steps (to step {common[-1]}); {len(same_evals)} equal evaluations"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, nargs="?", help="run folder to write (overwritten)")
    p.add_argument("--cell", default="baseline")
    p.add_argument("--dataset", default="ring8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=5000, help="the bench run's length (sets its schedules)")
    p.add_argument("--stop", type=int, default=600, help="steps actually trained")
    p.add_argument("--protocol", default="fast")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config keys over the cell's, e.g. optimizer_g=adam:fused=false")
    p.add_argument("--every", type=int, default=50, help="keep the losses of every N-th step")
    p.add_argument("--json", type=Path, help="also write the fingerprint here")
    p.add_argument("--compare", type=Path, nargs=2, metavar="JSON", help="compare two written fingerprints")
    args = p.parse_args(argv)
    if args.compare:
        try:
            a, b = (json.loads(path.read_text()) for path in args.compare)
        except (OSError, json.JSONDecodeError) as err:
            p.error(f"--compare: {err}")
        print(first_difference(a, b))
        return
    if args.out is None:
        p.error("give a run folder, or --compare A.json B.json")
    if not 0 < args.stop <= args.steps:
        p.error("--stop must be in 1..--steps")
    settings = dict(item.split("=", 1) for item in args.set if "=" in item)
    if len(settings) != len(args.set):
        p.error("--set takes KEY=VALUE")
    from gantricks.errors import GantricksError

    try:
        fp = fingerprint(args.out, args.cell, args.dataset, args.seed, args.steps, args.stop, args.protocol,
                         args.every, settings)
    except GantricksError as err:         # a bad setting, a folder that is not a run of ours: one line
        p.error(str(err))
    text = json.dumps(fp)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
