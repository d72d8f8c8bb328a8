"""The training config: a typed, frozen dataclass read from TOML and command-line flags.

Validated once, at the edge: unknown keys, wrong types and out-of-range values
raise :class:`ConfigError` with one line saying what is wrong.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .plugins import import_modules
from .registry import Spec, coerce

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    data: str = "ring8"                 # dataset, NAME[:key=value,...] (gantricks list)
    generator: str = "mlp"              # generator net, NAME[:key=value,...]
    discriminator: str = "mlp"          # discriminator net, NAME[:key=value,...]
    loss: str = "nonsaturating"         # adversarial loss
    scheme: str = "standard"            # training scheme, NAME[:key=value,...]
    tricks: tuple[str, ...] = ()        # tricks, each NAME[:key=value,...]
    conditional: str = "none"           # none, or a class-conditional GAN on labelled data: concat|projection|acgan[:g=embed|cbn,weight=1.0]
    z_dim: int = 2                      # noise dimension (PacGAN 2D: 2)
    batch_size: int = 100               # real samples per D update
    steps: int = 5000                   # G updates in the whole run (resume counts from the start)
    lr_g: float = 1e-4                  # G learning rate (unless optimizer_g sets lr)
    lr_d: float = 1e-4                  # D learning rate (unless optimizer_d sets lr); set apart from lr_g for TTUR
    beta1: float = 0.8                  # Adam beta1 (PacGAN 2D: 0.8)
    beta2: float = 0.999                # Adam beta2
    optimizer_g: str = "adam"           # G's optimizer, NAME[:key=value,...]: adam, adamw, sgd, rmsprop
    optimizer_d: str = "adam"           # D's optimizer, e.g. sgd:lr=0.01,momentum=0.9 (gantricks list optimizer)
    lr_decay: Literal["none", "linear"] = "none"   # linear: both learning rates fall linearly to 0 over the run's end
    lr_decay_start: float = 0.5         # fraction of the steps after which the linear decay begins
    n_critic: int = 1                   # D updates per G update
    seed: int = 0                       # seeds models, noise and data
    eval_every: int = 1000              # steps between evaluations (0: only at the end)
    eval_samples: int = 2500            # samples per evaluation (PacGAN: 2500)
    log_every: int = 50                 # steps between lines of metrics.jsonl
    diagnose_every: int = 10            # steps between D's accuracies, mean logits and grad norms (+ logged steps)
    read_every: int = 0                 # steps between reads of the logs off the device (0: 1 on a CPU, 32 on a GPU)
    checkpoint_every: int = 1000        # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 3           # newest checkpoints kept on disk
    sample_plots: Literal["every", "last"] = "every"   # sample plots at every evaluation, or at the last only
    device: str = "cpu"                 # cpu, cuda, cuda:N, mps or auto
    precision: Literal["fp32", "bf16"] = "fp32"   # bf16: forward passes of G and D under bfloat16 autocast
    compile: bool = False               # torch.compile G's and D's forward passes
    sync_bn: bool = False               # under torchrun: batch-norm statistics over the global batch of all processes
    on_nonfinite: Literal["stop", "rollback"] = "stop"   # NaN/inf: stop, or reload the last checkpoint at half the lr
    progress: bool = True               # show a progress bar (plain lines when stderr is not a terminal)
    threads: int = 1                    # CPU threads for torch (0: torch's default, one per core); 1 is fastest for small nets
    imports: tuple[str, ...] = ()       # modules to import first: they register a user's components (plugins)

    def __post_init__(self):
        import_modules(self.imports)     # first: the names below may be the modules' components
        for f in fields(self):       # a bool is an int to Python, never a count to a user
            if f.type in ("int", "float", int, float) and isinstance(getattr(self, f.name), bool):
                raise ConfigError(f"{f.name} must be a number, got {getattr(self, f.name)}")
        for name in ("z_dim", "batch_size", "steps", "n_critic", "eval_samples", "log_every", "diagnose_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lr_decay_start < 1:
            raise ConfigError(f"lr_decay_start must be in [0, 1), got {self.lr_decay_start}")
        for name in ("eval_every", "checkpoint_every", "read_every", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"{name} must be a positive number, got {v}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("data", "generator", "discriminator", "loss", "scheme"):
            Spec.parse(getattr(self, name))
        from .optim import check_optimizer_spec     # here: optim imports torch, the CLI's --help need not

        for name in ("optimizer_g", "optimizer_d"):
            check_optimizer_spec(getattr(self, name), name)
        for t in self.tricks:
            Spec.parse(t)
        from .conditional import ConditionalSpec
        ConditionalSpec.parse(self.conditional)

    def diagnosed(self, step: int) -> bool:
        """Whether ``step`` computes D's accuracies, mean logits and the gradient norms: every ``diagnose_every``
        steps, every logged step and the last (the losses and the finite checks come at every step)."""
        return step % self.diagnose_every == 0 or step % self.log_every == 0 or step == self.steps

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}




def from_mapping(values: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """A config from ``values`` (TOML or CLI); unknown keys and wrong types are refused."""
    hints = typing.get_type_hints(TrainConfig)
    valid = {f.name for f in fields(TrainConfig)}
    changes = {}
    for key, raw in values.items():
        key_norm = key.replace("-", "_")
        if key_norm not in valid:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(sorted(valid))}")
        if key_norm == "imports" and isinstance(raw, str):
            raw = [raw]
        if key_norm == "tricks":
            if isinstance(raw, str) and raw.strip().startswith("[") and raw.strip().endswith("]"):
                raw = raw.strip()[1:-1].split()         # the form `gantricks list` prints: [NAME:k=v NAME2]
                if any(t.endswith(",") for t in raw):
                    raise ConfigError(f"{source}: 'tricks' {values[key]!r}: separate the tricks in [...] with spaces")
            elif isinstance(raw, (str, dict)):
                raw = [raw]
            raw = tuple(str(Spec.parse(t)) for t in raw)
        elif key_norm in ("data", "generator", "discriminator", "scheme", "optimizer_g", "optimizer_d", "conditional") \
                and isinstance(raw, dict):
            raw = str(Spec.parse(raw))
        changes[key_norm] = coerce(f"{source}: {key!r}", hints[key_norm], raw)
    return dataclasses.replace(base or TrainConfig(), **changes)


def load_toml(path: "str | Path", base: TrainConfig | None = None) -> TrainConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {err.start}); TOML files are UTF-8") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"malformed TOML in {path}: {err}") from None
    return from_mapping(values, base, source=str(path))


def to_toml(config: TrainConfig) -> str:
    lines = ["# gantricks run config (resolved)"]
    for key, value in config.to_dict().items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


