"""Every registered trick and scheme on image data: DCGAN nets at 8x8, two steps each.

Parametrized over the registries at collection time, so a trick or scheme added later is
run on images too. Catches code that assumes vector samples (2-D batches)."""
from __future__ import annotations

import pytest
import torch

from gantricks.build import build_gan
from gantricks.config import TrainConfig
from gantricks.registry import schemes as scheme_registry
from gantricks.registry import tricks as trick_registry

from _tricks_util import suitable_loss, single_thread  # noqa: F401  (autouse fixture)

SHAPE, BATCH, Z_DIM = (1, 8, 8), 12, 4          # 12: divisible by pacgan's m and minibatch-stddev's groups
NETS = {"generator": "dcgan:width=4", "discriminator": "dcgan:width=4"}
PAIRED_NETS = {"generator": "unet:width=4", "discriminator": "patchgan:n_layers=1,width=4"}


def image_batches(shape: tuple[int, ...] = SHAPE, seed: int = 0):
    """Synthetic images in [-1, 1]: smooth blobs, a fresh batch per call."""
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.tanh(2 * torch.randn(BATCH, *shape, generator=g))


def run_two_steps(config: TrainConfig, shape: tuple[int, ...]) -> dict[str, float]:
    gan = build_gan(config, shape)
    batches = image_batches(shape)
    for _ in range(2):
        logs = gan.step(batches)
    assert logs and all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    samples = gan.sample(5)
    assert samples.shape == (5, *shape) and torch.isfinite(samples).all()
    return logs


@pytest.mark.parametrize("name", trick_registry.names())
def test_every_trick_trains_on_images(name):
    config = TrainConfig(**NETS, loss=suitable_loss([name]), tricks=(name,), z_dim=Z_DIM, batch_size=BATCH)
    run_two_steps(config, SHAPE)


@pytest.mark.parametrize("name", scheme_registry.names())
def test_every_scheme_trains_on_images(name):
    nets, shape = NETS, SHAPE
    if name == "pix2pix":          # translation: image pairs in, an image-to-image G
        nets, shape = PAIRED_NETS, (2, 8, 8)
    run_two_steps(TrainConfig(**nets, scheme=name, z_dim=Z_DIM, batch_size=BATCH), shape)


@pytest.mark.parametrize("trick", ["minibatch-stddev", "spectral-norm", "r1"])
def test_patchgan_takes_tricks_that_rebuild_or_penalise_d(trick):
    """Image-specific tricks on the PatchGAN map of logits (B, 1, H', W')."""
    config = TrainConfig(**PAIRED_NETS, scheme="pix2pix", loss=suitable_loss([trick]), tricks=(trick,),
                         z_dim=Z_DIM, batch_size=BATCH)
    run_two_steps(config, (2, 8, 8))


def test_madgan_generators_share_the_first_layers_of_a_dcgan_generator():
    config = TrainConfig(**NETS, scheme="madgan:generators=3,share=1", z_dim=Z_DIM, batch_size=BATCH)
    logs = run_two_steps(config, SHAPE)
    gan = build_gan(config, SHAPE)
    first = gan.G.net[0]
    assert gan.modules["G1"].net[0].target is first and gan.modules["G2"].net[0].target is first
    own = [n for n, _ in gan.modules["G1"].named_parameters()]
    assert own and not any(n.startswith("net.0.") for n in own)
    assert "generator_similarity" in logs
