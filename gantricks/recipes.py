"""Named recipes: combinations of tricks, schemes and settings, selected with ``--recipe``.

Each recipe is a dict of config overrides, applied on top of the protocol (bench) or the
config (``gantricks train --recipe NAME``). ``recommended`` is the one the README recommends;
BENCHMARKS.md has the measurements behind it and how far it is from the bar.
"""
from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # Found on grid25 with the fast protocol (BENCHMARKS.md §5): batch norm in G blurs the modes
    # (without it, 91 % high-quality samples at 10k steps instead of 58 %); a higher learning rate
    # with a linear decay over the second half sharpens them; MAD-GAN's four generators with the
    # diversity term keep every mode (25 of 25, reverse KL 0.05, where G alone dropped 2-5 modes).
    "recommended": {
        "generator": "mlp:width=128,depth=3,batch_norm=false",
        "discriminator": "mlp:width=128,depth=3,maxout=1",
        "scheme": "madgan:generators=4,diversity=1",
        "lr_g": 1e-3, "lr_d": 1e-3, "beta1": 0.5, "beta2": 0.999,
        "lr_decay": "linear", "lr_decay_start": 0.5,
    },
    # WGAN-GP as its paper trains it (Gulrajani et al. 2017, Alg. 1): Wasserstein loss, λ = 10,
    # 5 critic steps per G step, Adam lr 1e-4 with β = (0, 0.9).
    "wgan-gp-paper": {
        "loss": "wasserstein", "tricks": ["wgan-gp"], "n_critic": 5,
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.9,
    },
    # DRAGAN as its authors' code trains it (Kodali et al. 2017): the non-saturating GAN loss, the
    # penalty with λ = 10, k = 1, C = 0.5, Adam lr 1e-4 β1 0.5.
    "dragan-paper": {
        "loss": "nonsaturating", "tricks": ["dragan:weight=10,target=1,c=0.5"],
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.999,
    },
}
