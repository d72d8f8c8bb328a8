"""From a :class:`TrainConfig` to data and a :class:`GAN`: the one place names become objects."""
from __future__ import annotations

import torch

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


def build_gan(config: TrainConfig, data_shape: tuple[int, ...]) -> GAN:
    """Seed, build G and D for ``data_shape`` by name, and compose the GAN."""
    torch.manual_seed(config.seed)
    tricks = build_tricks(config.tricks)
    d_shape = tuple(data_shape)
    for trick in tricks:   # e.g. PacGAN packs m samples: D's input grows
        d_shape = getattr(trick, "discriminator_input_shape", lambda s: s)(d_shape)
    scheme = schemes.build(config.scheme)   # it may ask for particular nets (MAD-GAN: D with k+1 outputs)
    G = nets.build(scheme.net_spec("generator", Spec.parse(config.generator)), role="generator",
                   data_shape=tuple(data_shape), z_dim=config.z_dim)
    D = nets.build(scheme.net_spec("discriminator", Spec.parse(config.discriminator)), role="discriminator",
                   data_shape=d_shape, z_dim=config.z_dim)
    return GAN(G, D, z_dim=config.z_dim, z_shape=getattr(G, "z_shape", None), loss=config.loss, scheme=scheme,
               tricks=tricks, lr_g=config.lr_g, lr_d=config.lr_d, betas=(config.beta1, config.beta2),
               optimizer_g=config.optimizer_g, optimizer_d=config.optimizer_d, n_critic=config.n_critic, device=resolve_device(config.device), data_shape=tuple(data_shape),
               precision=config.precision, compile=config.compile)
