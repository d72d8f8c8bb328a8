"""Published results to set beside ours (read from the papers; see PROTOCOLS.md).

These are the literature's numbers, kept only to print beside our measurements.
Each row: {dataset: (modes, high_quality_pct, reverse_kl)}; None where not reported.
"""
from __future__ import annotations

# PacGAN (Lin et al. 2018), Table 1: mean ± s.e. over 10 trials; (value, s.e.)
PACGAN_TABLE1 = {
    "GAN": {"ring8": ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)), "grid25": ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07))},
    "ALI": {"ring8": ((6.6, 0.3), (97.6, 0.4), (0.36, 0.04)), "grid25": ((24.1, 0.4), (95.7, 0.6), (0.14, 0.03))},
    "PacGAN2": {"ring8": ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)), "grid25": ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04))},
    "PacGAN3": {"ring8": ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)), "grid25": ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02))},
    "PacGAN4": {"ring8": ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02)), "grid25": ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01))},
}

# VEEGAN (Srivastava et al. 2017), Table 1, 5 runs: (modes, high-quality %); no KL reported
VEEGAN_TABLE1 = {
    "GAN": {"ring8": (1.0, 99.3), "grid25": (3.3, 0.5)},
    "Unrolled GAN (5 steps)": {"ring8": (7.6, 35.6), "grid25": (23.6, 16.0)},
    "VEEGAN": {"ring8": (8.0, 52.9), "grid25": (24.6, 40.0)},
}

# Stacked MNIST, 1,000 modes (PROTOCOLS.md): name -> ((modes, s.e.), (KL to uniform, s.e.)); s.e. None where
# the table gives none. VEEGAN Table 2 (its DCGAN and Unrolled GAN rows), PacGAN Table 2, EnGAN's table.
STACKED_MNIST = {
    "VEEGAN paper: DCGAN": ((99.0, None), (3.40, None)),
    "VEEGAN paper: Unrolled GAN": ((48.7, None), (4.32, None)),
    "VEEGAN paper: VEEGAN": ((150.0, None), (2.95, None)),
    "PacGAN paper: PacDCGAN2": ((1000.0, 0.0), (0.06, 0.003)),
    "EnGAN paper: EnGAN": ((1000.0, None), (0.0313, None)),
    "EnGAN paper: WGAN-GP": ((959.0, None), (0.7276, None)),
    # PacGAN Table 3, the harder setting: smaller discriminators
    "PacGAN paper, D=¼G: DCGAN": ((30.6, None), (5.99, None)),
    "PacGAN paper, D=¼G: Unrolled (5 steps)": ((236.4, None), (4.67, None)),
    "PacGAN paper, D=¼G: Unrolled (10 steps)": ((327.2, None), (4.66, None)),
    "PacGAN paper, D=¼G: PacDCGAN4": ((667.4, None), (1.81, None)),
    "PacGAN paper, D=½G: DCGAN": ((628.0, None), (2.58, None)),
    "PacGAN paper, D=½G: Unrolled (10 steps)": ((817.4, None), (1.43, None)),
    "PacGAN paper, D=½G: PacDCGAN3": ((866.6, None), (0.90, None)),
}
