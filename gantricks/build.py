"""From a :class:`TrainConfig` to data and a :class:`GAN`: the one place names become objects."""
from __future__ import annotations

import torch

from .conditional import ConditionalSpec, conditional_nets
from .config import TrainConfig
from .data.sources import Sampler
from .errors import ConfigError
from .gan import GAN, build_tricks
from .registry import Spec, datasets, nets, schemes


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA device is available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' asked for, but MPS is not available")
    return device


def build_data(config: TrainConfig) -> Sampler:
    return datasets.build(config.data, seed=config.seed)


def build_gan(config: TrainConfig, data_shape: tuple[int, ...], num_classes: int | None = None) -> GAN:
    """Seed, build G and D for ``data_shape`` by name, and compose the GAN. A conditional config needs
    the data's ``num_classes`` (None: the data have no labels, refused)."""
    torch.manual_seed(config.seed)
    tricks = build_tricks(config.tricks)
    d_shape = tuple(data_shape)
    for trick in tricks:   # e.g. PacGAN packs m samples: D's input grows
        d_shape = getattr(trick, "discriminator_input_shape", lambda s: s)(d_shape)
    scheme = schemes.build(config.scheme)   # it may ask for particular nets (MAD-GAN: D with k+1 outputs)
    g_spec = scheme.net_spec("generator", Spec.parse(config.generator))
    d_spec = scheme.net_spec("discriminator", Spec.parse(config.discriminator))

    def make_g(z_in: int):
        return nets.build(g_spec, role="generator", data_shape=tuple(data_shape), z_dim=z_in)

    def make_d(in_shape: tuple[int, ...]):
        return nets.build(d_spec, role="discriminator", data_shape=tuple(in_shape), z_dim=config.z_dim)

    cond = ConditionalSpec.parse(config.conditional)
    if cond is None:
        G, D = make_g(config.z_dim), make_d(d_shape)
    elif num_classes is None:
        raise ConfigError(f"conditional {cond.mode!r} needs labelled data, and dataset "
                          f"{Spec.parse(config.data).name!r} has no labels; use mnist5k, mnist-idx, image-folder "
                          f"with one folder per class, stacked-mnist, ring8 or grid25")
    else:
        G, D = conditional_nets(make_g, make_d, cond, num_classes, config.z_dim, d_shape)
    return GAN(G, D, z_dim=config.z_dim, z_shape=getattr(G, "z_shape", None), loss=config.loss, scheme=scheme,
               tricks=tricks, lr_g=config.lr_g, lr_d=config.lr_d, betas=(config.beta1, config.beta2),
               optimizer_g=config.optimizer_g, optimizer_d=config.optimizer_d, n_critic=config.n_critic,
               device=resolve_device(config.device), data_shape=tuple(data_shape),
               precision=config.precision, compile=config.compile, conditional=cond,
               num_classes=num_classes if cond is not None else None)
