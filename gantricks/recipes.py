"""Named recipes: combinations of tricks, schemes and settings, selected with ``--recipe``.

Each recipe is a dict of config overrides, applied on top of the protocol (bench) or the
config (``gantricks train --recipe NAME``). ``recommended`` is the one the README recommends;
BENCHMARKS.md has the measurements behind it and how far it is from the bar.
"""
from __future__ import annotations

from typing import Any

# The two candidates for ``recommended`` measured on the GPU machine (BENCHMARKS.md §5). Both use
# MAD-GAN's four generators with the diversity term (on grid25 it kept all 25 modes where a single G
# dropped 2-5) and a linear learning-rate decay over the second half. They differ in G:
# - madgan-sharp: G without batch norm at lr 1e-3 (on grid25 91 % high-quality samples at 10k
#   steps against 58 % with batch norm; but on ring8 it finds the modes late);
# - madgan-decay: the fast protocol's G (batch norm) at its lr 3e-4.
_FAST_D = "mlp:width=128,depth=3,maxout=1"
MADGAN_SHARP = {
    "generator": "mlp:width=128,depth=3,batch_norm=false", "discriminator": _FAST_D,
    "scheme": "madgan:generators=4,diversity=1",
    "lr_g": 1e-3, "lr_d": 1e-3, "beta1": 0.5, "beta2": 0.999, "lr_decay": "linear", "lr_decay_start": 0.5,
    "steps": 10_000,     # the better of the two lengths measured over 10 seeds (BENCHMARKS.md §5); --steps overrides it
}
MADGAN_DECAY = {
    "generator": "mlp:width=128,depth=3", "discriminator": _FAST_D,
    "scheme": "madgan:generators=4,diversity=1",
    "lr_g": 3e-4, "lr_d": 3e-4, "beta1": 0.5, "beta2": 0.999, "lr_decay": "linear", "lr_decay_start": 0.5,
}

RECIPES: dict[str, dict[str, Any]] = {
    "recommended": MADGAN_SHARP,
    "madgan-sharp": MADGAN_SHARP,
    "madgan-decay": MADGAN_DECAY,
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


def first_names(table: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each name of ``table`` (recipes, or the bench's cells) -> the first name whose settings are equal
    to its own: itself, or the name it is a second name of (``madgan-sharp`` -> ``recommended``)."""
    out: dict[str, str] = {}
    for name, settings in table.items():
        out[name] = next((first for first in dict.fromkeys(out.values()) if table[first] == settings), name)
    return out
