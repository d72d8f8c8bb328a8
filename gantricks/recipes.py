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

# The Unrolled GAN paper's 2-D nets (the bench's collapse protocol; Metz et al. 2016, §3.1 and Appendix A:
# G 2x128 ReLU, D 1x128 ReLU on its input scaled by 1/4, all weights orthogonal with gain 0.8) and the nets of
# its authors' notebook, which differ (tanh, orthogonal init with gain 1.4, D of two layers).
COLLAPSE_G = "mlp:width=128,depth=2,activation=relu,batch_norm=false,init=orthogonal,init_gain=0.8"
COLLAPSE_D = "mlp:width=128,depth=1,activation=relu,maxout=1,init=orthogonal,init_gain=0.8,input_scale=0.25"
_NOTEBOOK = "width=128,depth=2,activation=tanh,init=orthogonal,init_gain=1.4"
# WGAN-GP's toy nets (gan_toy.py: three hidden ReLU layers of DIM = 512, no batch norm)
_TOY_G, _TOY_D = "mlp:width=512,depth=3,batch_norm=false", "mlp:width=512,depth=3,maxout=1,activation=relu"

RECIPES: dict[str, dict[str, Any]] = {
    "recommended": MADGAN_SHARP,
    "madgan-sharp": MADGAN_SHARP,
    "madgan-decay": MADGAN_DECAY,
    "unrolled-paper": {
        "generator": COLLAPSE_G, "discriminator": COLLAPSE_D, "z_dim": 256, "batch_size": 512, "loss": "minimax",
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.999, "scheme": "unrolled:k=10", "steps": 10_000,
    },
    "unrolled-notebook": {
        "generator": f"mlp:{_NOTEBOOK},batch_norm=false", "discriminator": f"mlp:{_NOTEBOOK},maxout=1",
        "z_dim": 256, "batch_size": 512, "lr_g": 1e-3, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.999,
        "loss": "minimax", "scheme": "unrolled:k=5", "steps": 25_000,
    },
    "wgan-gp-paper": {
        "generator": _TOY_G, "discriminator": _TOY_D, "z_dim": 2, "batch_size": 256,
        "loss": "wasserstein", "tricks": ["wgan-gp:weight=0.1"], "n_critic": 5,
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.9, "steps": 100_000,
    },
    "wgan-gp-paper-images": {
        "loss": "wasserstein", "tricks": ["wgan-gp"], "n_critic": 5,
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.9,
    },
    "dragan-paper": {
        "generator": _TOY_G, "discriminator": _TOY_D, "z_dim": 2, "batch_size": 256,
        "loss": "nonsaturating", "tricks": ["dragan:weight=10,target=1,c=0.5"],
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.999,
    },
    "dragan-paper-images": {
        "loss": "nonsaturating", "tricks": ["dragan:weight=10,target=1,c=0.5"],
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.999,
    },
    "pacgan-paper": {
        "generator": "mlp", "discriminator": "mlp", "z_dim": 2, "batch_size": 100,
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.8, "beta2": 0.999, "tricks": ["pacgan:m=2"], "steps": 400_000,
    },
}

# Where each recipe comes from (``gantricks list recipe`` prints it).
SOURCES: dict[str, str] = {
    "recommended": "ours: the best combination measured on the mixtures (BENCHMARKS.md §5)",
    "madgan-sharp": "ours (BENCHMARKS.md §5)",
    "madgan-decay": "ours (BENCHMARKS.md §5)",
    "unrolled-paper": "Metz et al. 2016, §3.1, Fig. 1 and Appendix A (2-D ring, 10 unrolling steps): the bench's "
                      "collapse protocol plus unrolling; run it on ring8:radius=2,std=0.02 for the paper's ring",
    "unrolled-notebook": "the authors' notebook, poolio/unrolled_gan 'Unrolled GAN demo.ipynb' (tanh nets, "
                         "orthogonal init 1.4, D lr 1e-4, G lr 1e-3, minimax loss, 25k iterations); for 2-D data",
    "wgan-gp-paper": "the authors' toy script, igul222/improved_wgan_training gan_toy.py (λ = 0.1, 3x512 ReLU "
                     "nets, Adam 1e-4 β (0.5, 0.9), batch 256, 5 critic steps, 100k G steps); for 2-D data",
    "wgan-gp-paper-images": "Gulrajani et al. 2017, Alg. 1 (λ = 10, Adam 1e-4 β (0, 0.9), 5 critic steps); for images",
    "dragan-paper": "penalty and optimizer from the authors' code (kodalinaveen3/DRAGAN: λ = 10, C = 0.5, Adam 1e-4 "
                    "β1 0.5), an MNIST script with no 2-D setup, on WGAN-GP's toy nets and batch; for 2-D data",
    "dragan-paper-images": "the authors' code, kodalinaveen3/DRAGAN (MNIST); for images",
    "pacgan-paper": "Lin et al. 2018, Table 1 and its code (PacGAN2: G 4x400 ReLU+BN, D 3x200 maxout-5 on packs of "
                    "2, Adam 1e-4 β1 0.8, batch 100, z 2; 400 epochs of 100k points = 400k steps); for 2-D data",
}


def first_names(table: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each name of ``table`` (recipes, or the bench's cells) -> the first name whose settings are equal
    to its own: itself, or the name it is a second name of (``madgan-sharp`` -> ``recommended``)."""
    out: dict[str, str] = {}
    for name, settings in table.items():
        out[name] = next((first for first in dict.fromkeys(out.values()) if table[first] == settings), name)
    return out
