"""PatchGAN, U-Net, the pix2pix scheme and the translation helpers."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import gantricks as gt
from gantricks.cli import main
from gantricks.errors import ConfigError
from gantricks.losses import get_loss
from gantricks.nets.patchgan import PatchDiscriminator, receptive_field, whole_image_layers
from gantricks.nets.unet import UNetGenerator
from gantricks.registry import datasets, nets
from gantricks.translation import edge_map, evaluate_translation, gradient_sharpness, laplacian_variance, \
    sobel_magnitude, split_pairs


def measured_receptive_field(D: torch.nn.Module, size: int) -> tuple[int, int, int]:
    """Rows and columns of input pixels whose change moves the centre cell of D's map, and the map size."""
    x = torch.randn(1, 2, size, size, dtype=torch.float64, requires_grad=True)
    out = D(x)
    h, w = out.shape[2:]
    out[0, 0, h // 2, w // 2].backward()
    hit = x.grad[0].abs().sum(0) > 0
    rows, cols = hit.any(1).nonzero().squeeze(1), hit.any(0).nonzero().squeeze(1)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1), h


@pytest.mark.parametrize("n_layers,size", [(0, 12), (1, 40), (2, 64), (3, 160)])
def test_patchgan_receptive_field_matches_input_gradients(n_layers, size):
    torch.manual_seed(0)
    D = PatchDiscriminator(2, n_layers, width=2, norm="none").double()
    rows, cols, out_size = measured_receptive_field(D, size)
    geometry = receptive_field(n_layers, size)
    assert (rows, cols) == (geometry.receptive_field, geometry.receptive_field)
    assert out_size == geometry.output_size
    assert geometry.receptive_field == {0: 1, 1: 16, 2: 34, 3: 70}[n_layers]   # pix2pix §4.4


def test_patchgan_geometry_at_256_and_image_gan():
    assert receptive_field(3, 256) == (70, 30)
    assert receptive_field(5).receptive_field == 286     # the paper's "ImageGAN" for 256x256
    assert whole_image_layers(28) == 2 and receptive_field(2).receptive_field >= 28 > receptive_field(1)[0]
    with pytest.raises(ConfigError, match="too small"):
        nets.build("patchgan:n_layers=4", role="discriminator", data_shape=(2, 28, 28))


def test_losses_average_patch_logits_with_per_sample_targets():
    logits = torch.randn(3, 1, 4, 5)
    fake = torch.randn(3, 1, 4, 5)
    real_t, fake_t = torch.tensor([0.9, 1.0, 0.8]), torch.tensor([0.0, 0.1, 0.0])
    per_cell = lambda l, t: -(t * F.logsigmoid(l) + (1 - t) * F.logsigmoid(-l))   # noqa: E731
    expected = per_cell(logits, real_t[:, None, None, None]).mean() + per_cell(fake, fake_t[:, None, None, None]).mean()
    torch.testing.assert_close(get_loss("nonsaturating").d(logits, fake, real_t, fake_t), expected)
    ls = 0.5 * ((logits - real_t[:, None, None, None]) ** 2).mean() + 0.5 * ((fake - fake_t[:, None, None, None]) ** 2).mean()
    torch.testing.assert_close(get_loss("least-squares").d(logits, fake, real_t, fake_t), ls)


@pytest.mark.parametrize("size,depth", [((28, 28), 2), ((32, 32), 5), ((16, 24), 3)])
def test_unet_maps_images_to_images(size, depth):
    G = UNetGenerator(3, 2, size, width=4)
    assert G.depth == depth
    assert G(torch.randn(2, 3, *size)).shape == (2, 2, *size)


def test_unet_skip_connections_carry_the_input():
    """The skips reach the output from the first layer: an input pixel's change moves the output near it
    even when the innermost features are cut off."""
    G = UNetGenerator(1, 1, (16, 16), width=4, norm="none", dropout=0.0).double()
    for p in G.up[G.depth - 1].parameters():     # silence the bottleneck path
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    G(x)[0, 0, 8, 8].backward()
    assert x.grad.abs().sum() > 0


def test_unet_paired_option_splits_channels():
    G = nets.build("unet:width=4", role="generator", data_shape=(4, 16, 16), paired=True)
    assert (G.in_channels, G.out_channels) == (2, 2)
    G = nets.build("unet:width=4", role="generator", data_shape=(4, 16, 16), paired=True, in_channels=1)
    assert (G.in_channels, G.out_channels) == (1, 3)
    with pytest.raises(ConfigError):
        nets.build("unet", role="discriminator", data_shape=(4, 16, 16))


def tiny_pix2pix(l1: float = 100.0, n_layers: int = 1) -> gt.GAN:
    torch.manual_seed(0)
    G = UNetGenerator(1, 1, (16, 16), width=4, norm="none", dropout=0.0)
    D = PatchDiscriminator(2, n_layers, width=4, norm="none")
    return gt.GAN(G, D, z_dim=1, scheme=f"pix2pix:l1={l1}", data_shape=(2, 16, 16))


def test_pix2pix_generator_objective_equals_the_hand_formula():
    gan = tiny_pix2pix(l1=100.0)
    pairs = torch.rand(4, 2, 16, 16) * 2 - 1
    a, b = pairs[:, :1], pairs[:, 1:]
    fake = gan.G(a)
    total, logs = gan.scheme.generator_objective(gan, gan.D, a, fake, b, pairs)
    logits = gan.D(torch.cat([a, fake], dim=1))          # (4, 1, 2, 2): one logit per patch
    assert logits.shape[2:] == (receptive_field(1, 16).output_size,) * 2
    expected = -F.logsigmoid(logits).mean() + 100.0 * (fake - b).abs().mean()
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(logs["g_l1"], (fake - b).abs().mean().detach())


def test_pix2pix_halves_the_discriminator_objective():
    grads = {}
    for halve in (True, False):
        gan = tiny_pix2pix()
        gan.scheme.halve_d = halve
        pairs = torch.rand(4, 2, 16, 16) * 2 - 1
        fake = gan.G(pairs[:, :1]).detach()
        loss, _ = gan.discriminator_loss(gan.D, pairs, torch.cat([pairs[:, :1], fake], 1))
        gan.update("D", 0.5 * loss if halve else loss)   # what the step does
        grads[halve] = gan.D.head.weight.grad.clone()
    torch.testing.assert_close(grads[True], 0.5 * grads[False])


def test_pix2pix_learns_the_edges2mnist_task():
    """A few dozen steps bring the held-out L1 well below that of the untrained G."""
    data = datasets.build("edges2mnist:limit=256", seed=0)
    test = datasets.build("edges2mnist:part=test,limit=64", seed=0).data
    torch.manual_seed(0)
    G = UNetGenerator(1, 1, (28, 28), width=8, dropout=0.0)
    gan = gt.GAN(G, PatchDiscriminator(2, 1, width=8), z_dim=1, scheme="pix2pix", lr_g=2e-3, lr_d=2e-4,
                 data_shape=(2, 28, 28))
    before, _ = evaluate_translation(G, test)
    for _ in range(40):
        logs = gan.step(lambda: data(16))
    after, outputs = evaluate_translation(G, test)
    assert outputs.shape == (64, 1, 28, 28)
    assert after["l1"] < 0.6 * before["l1"], (before, after)
    assert {"g_l1", "d_loss", "g_adv"} <= set(logs)


def test_pix2pix_trains_from_the_cli_with_default_nets(tmp_path, capsys):
    rc = main(["train", "--data", "edges2mnist:limit=32", "--scheme", "pix2pix:l1=100",
               "--generator", "unet:width=4", "--discriminator", "patchgan:n_layers=1,width=4", "--batch-size", "8",
               "--steps", "2", "--eval-samples", "8", "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    from gantricks.train import open_run
    _, gan, _, _ = open_run(tmp_path / "run")
    assert gan.sample(5).shape == (5, 2, 28, 28)        # pairs (A, G(A)), from the checkpointed inputs


def test_pix2pix_refuses_unpaired_data_and_a_noise_generator():
    G = UNetGenerator(1, 1, (16, 16), width=4)
    with pytest.raises(ConfigError, match="pairs"):
        gt.GAN(G, PatchDiscriminator(1, 1, width=4), z_dim=1, scheme="pix2pix", data_shape=(1, 16, 16))
    dcgan_g = nets.build("dcgan:width=4", role="generator", data_shape=(1, 16, 16), z_dim=4)
    with pytest.raises(ConfigError, match="needs G to translate inputs"):
        gt.GAN(dcgan_g, PatchDiscriminator(2, 1, width=4), z_dim=4, scheme="pix2pix", data_shape=(2, 16, 16))
    with pytest.raises(ConfigError, match="takes no noise"):
        gt.GAN(G, PatchDiscriminator(1, 1, width=4), z_dim=4, data_shape=(1, 16, 16)).step(torch.zeros(4, 1, 16, 16))


# --- translation helpers ---------------------------------------------------------------------------
def test_sobel_matches_a_loop_and_edges_mark_a_step():
    x = torch.rand(2, 1, 6, 7)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")[:, 0]
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    expected = torch.zeros(2, 1, 6, 7)
    for b in range(2):
        for i in range(6):
            for j in range(7):
                win = padded[b, i:i + 3, j:j + 3]
                expected[b, 0, i, j] = ((win * kx).sum() ** 2 + (win * kx.T).sum() ** 2).sqrt()
    torch.testing.assert_close(sobel_magnitude(x), expected)
    square = -torch.ones(1, 1, 10, 10)
    square[..., 3:7, 3:7] = 1
    edges = edge_map(square)
    assert edges[0, 0, 5, 5] == -1 and edges[0, 0, 0, 0] == -1     # flat inside and outside
    assert edges[0, 0, 3, 5] == 1 and edges[0, 0, 2, 5] == 1       # both sides of the boundary


def test_sharpness_falls_with_blur():
    images = datasets.build("mnist5k:limit=32").data
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert gradient_sharpness(blurred).mean() < 0.8 * gradient_sharpness(images).mean()
    assert laplacian_variance(blurred).mean() < 0.5 * laplacian_variance(images).mean()


def test_evaluate_translation_of_identity_is_perfect():
    pairs = torch.cat([torch.zeros(4, 1, 8, 8), torch.rand(4, 1, 8, 8)], 1)
    a, b = split_pairs(pairs)
    metrics, outputs = evaluate_translation(lambda x: b[: len(x)], pairs)
    assert metrics == {"l1": 0.0, "sharpness": 1.0, "laplacian_ratio": 1.0}
    torch.testing.assert_close(outputs, b)
