"""One small registry per kind of component, and the ``NAME:key=value,...`` spec syntax.

A registry maps a stable kebab-case name to a factory (a class or a function) with the
paper it comes from and a one-line summary. ``build`` checks the keyword arguments
against the factory's signature, converts strings from the command line to the
annotated types, and raises :class:`ConfigError` naming the valid choices.
"""
from __future__ import annotations

import importlib
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    paper: str = ""       # citation, e.g. "Miyato et al. 2018, arXiv:1802.05957"
    summary: str = ""     # one line: what it does
    touches: str = ""     # for tricks: the hooks it uses, e.g. "D architecture"

    def options(self) -> dict[str, inspect.Parameter]:
        return _keyword_params(self.factory)


class Registry:
    """Named factories of one kind (``losses``, ``tricks``, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        # (name, factory, touches) -> touches: what registering does for this kind (tricks: name, checks)
        self.prepare: Callable[[str, Any, str], str] | None = None

    def register(self, name: str, *, paper: str = "", summary: str = "", touches: str = ""):
        def decorator(factory):
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            doc = (inspect.getdoc(factory) or "").strip().splitlines()
            line = self.prepare(name, factory, touches) if self.prepare is not None else touches
            self._entries[name] = Entry(name, factory, paper, summary or (doc[0] if doc else ""), line)
            return factory
        return decorator

    def names(self) -> list[str]:
        _load_components()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:
            _load_components()      # not imported yet, or from an installed package's entry point
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            _load_components()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def build(self, spec: "str | Spec", *args, **extra) -> Any:
        """Build ``spec`` (a name, ``NAME:k=v,...`` or a :class:`Spec`) with its options.

        ``extra`` are arguments the caller supplies (not the user); they are passed
        only where the factory accepts them.
        """
        spec = Spec.parse(spec)
        entry = self.get(spec.name)
        params = entry.options()
        kwargs = coerce_options(f"{self.kind} {spec.name!r}", params, spec.options)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(entry.factory).parameters.values())
        for key, value in extra.items():
            if (key in params or accepts_any) and key not in kwargs:
                kwargs[key] = value
        try:
            return entry.factory(*args, **kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{self.kind} {spec.name!r}: {err}") from None


BUILTIN_MODULES = ("data", "losses", "metrics", "nets", "optim", "schemes", "tricks")   # register on import
_builtins_imported = False


def _load_components() -> None:
    """Import the built-in components (once; ``import gantricks`` does not, so that the CLI's ``--help``
    and ``list`` need no torch), then installed packages' entry points."""
    global _builtins_imported
    if not _builtins_imported:
        _builtins_imported = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"gantricks.{module}")
    from .plugins import load_entry_points     # here: plugins import gantricks, which imports this module

    load_entry_points()


@dataclass(frozen=True)
class Spec:
    """A component name with its options: ``label-smoothing:real=0.9``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def parse(value: "str | Spec | dict") -> "Spec":
        if isinstance(value, Spec):
            return value
        if isinstance(value, dict):  # a TOML table: {name = "r1", weight = 10}
            options = dict(value)
            if "name" not in options:
                raise ConfigError(f"a component table needs a 'name' key, got {sorted(options)}")
            return Spec(str(options.pop("name")), options)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"expected a component name like 'NAME' or 'NAME:key=value', got {value!r}")
        name, _, rest = value.strip().partition(":")
        options: dict[str, Any] = {}
        last = None
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, raw = item.partition("=")
            if not eq and last is not None:      # a list value: policy=color,translation,cutout
                options[last] += "," + item
                continue
            if not eq or not key.strip():
                raise ConfigError(f"bad option {item!r} in {value!r}; write key=value")
            last = key.strip().replace("-", "_")
            options[last] = raw.strip()
        return Spec(name.strip(), options)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in self.options.items())


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "-".join(str(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def _keyword_params(factory) -> dict[str, inspect.Parameter]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    hints = typing.get_type_hints(target)
    out = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.kind is p.POSITIONAL_ONLY:
            continue
        out[name] = p.replace(annotation=hints.get(name, p.annotation))
    return out


def coerce_options(owner: str, params: dict[str, inspect.Parameter], options: dict[str, Any]) -> dict[str, Any]:
    """Check option names against ``params`` and convert CLI strings to the annotated type."""
    out = {}
    for key, raw in options.items():
        if key not in params:
            valid = ", ".join(sorted(k for k, p in params.items() if p.default is not p.empty)) or "none"
            raise ConfigError(f"{owner} has no option {key!r}; its options are: {valid}")
        out[key] = coerce(f"{owner} option {key!r}", params[key].annotation, raw)
    return out


def coerce(what: str, annotation: Any, raw: Any) -> Any:
    """Convert ``raw`` (often a string) to ``annotation``; a clear ConfigError otherwise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return _literal(raw) if isinstance(raw, str) else raw
    if origin in (typing.Union, types.UnionType):
        if raw is None or (isinstance(raw, str) and raw.lower() == "none"):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(what, arg, raw)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{what}: bad value {raw!r}")
    if origin is typing.Literal:
        value = raw
        for choice in args:
            if str(choice) == str(raw):
                value = choice
        if value not in args:
            raise ConfigError(f"{what} must be one of {', '.join(map(str, args))}, got {raw!r}")
        return value
    if origin in (tuple, list):
        items = raw.replace("-", " ").replace("/", " ").replace(",", " ").split() if isinstance(raw, str) \
            else list(raw)
        inner = args[0] if args else Any
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"{what} needs {len(args)} values, got {raw!r}")
            return tuple(coerce(what, a, x) for a, x in zip(args, items))
        return origin(coerce(what, inner, x) for x in items)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{what} must be true or false, got {raw!r}")
    if annotation in (int, float, str):
        if isinstance(raw, bool) and annotation is not str:     # TOML true is no number (bool is an int in Python)
            kind = "an integer" if annotation is int else "a number"
            raise ConfigError(f"{what} must be {kind}, got {str(raw).lower()}")
        if annotation is int and isinstance(raw, float) and not raw.is_integer():
            raise ConfigError(f"{what} must be an integer, got {raw!r}")
        try:
            return annotation(raw)
        except (TypeError, ValueError):
            kind = {int: "an integer", float: "a number", str: "a string"}[annotation]
            raise ConfigError(f"{what} must be {kind}, got {raw!r}") from None
    return raw


def _literal(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


datasets = Registry("dataset")
nets = Registry("net")
losses = Registry("loss")
tricks = Registry("trick")
schemes = Registry("scheme")
metrics = Registry("metric")
optimizers = Registry("optimizer")

ALL = {"dataset": datasets, "net": nets, "loss": losses, "trick": tricks, "scheme": schemes, "metric": metrics,
       "optimizer": optimizers}
