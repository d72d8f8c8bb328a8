"""Image nets: shapes for several sizes and channel counts, feature/head protocol, training through the CLI."""
from __future__ import annotations

import json

import pytest
import torch

import gantricks as gt
from gantricks.cli import main
from gantricks.errors import ConfigError
from gantricks.registry import nets

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8), (2, 16, 24), (1, 5, 5)]


@pytest.mark.parametrize("name", ["dcgan", "resnet-sn"])
@pytest.mark.parametrize("shape", SHAPES)
def test_generator_and_discriminator_shapes(name, shape):
    G = nets.build(f"{name}:width=4", role="generator", data_shape=shape, z_dim=7)
    D = nets.build(f"{name}:width=4", role="discriminator", data_shape=shape, z_dim=7)
    x = G(torch.randn(3, 7))
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1          # tanh output
    assert D(x).shape == (3,)
    feats = D.features(x)
    assert feats.dim() == 2 and feats.shape[1] == D.head.in_features


@pytest.mark.parametrize("name", ["dcgan", "resnet-sn"])
def test_discriminator_outputs_option(name):
    D = nets.build(f"{name}:width=4,outputs=5", role="discriminator", data_shape=(1, 16, 16))
    assert D(torch.randn(2, 1, 16, 16)).shape == (2, 5)


def test_dcgan_layout_follows_the_paper_at_64():
    G = nets.build("dcgan", role="generator", data_shape=(3, 64, 64), z_dim=100)
    D = nets.build("dcgan", role="discriminator", data_shape=(3, 64, 64))
    assert G.start == (512, 4, 4)       # project and reshape to 4x4x1024/2 with width 64 ... 64 channels last
    convs = [m for m in D.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert not isinstance(D.features[1], torch.nn.BatchNorm2d)   # no batch norm on D's input layer
    G28 = nets.build("dcgan", role="generator", data_shape=(1, 28, 28), z_dim=100)
    assert G28.start == (128, 7, 7)


def test_dcgan_without_batch_norm_has_none():
    for role in ("generator", "discriminator"):
        net = nets.build("dcgan:batch_norm=false,width=4", role=role, data_shape=(1, 16, 16), z_dim=3)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_resnet_sn_option_normalises_discriminator():
    D = nets.build("resnet-sn:width=4,sn=true", role="discriminator", data_shape=(3, 8, 8))
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight")
               for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_image_nets_refuse_vector_data():
    with pytest.raises(ConfigError, match="images"):
        nets.build("dcgan", role="generator", data_shape=(2,), z_dim=2)


@pytest.mark.parametrize("name", ["dcgan", "resnet-sn"])
def test_image_gan_trains_through_the_cli(tmp_path, capsys, name):
    rc = main(["train", "--data", "mnist5k:limit=64", "--generator", f"{name}:width=4",
               "--discriminator", f"{name}:width=4", "--z-dim", "8", "--batch-size", "8", "--steps", "2",
               "--eval-samples", "16", "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["step"] == 2


def test_patchgan_as_an_unconditional_discriminator(tmp_path, capsys):
    """A map of patch logits (B, 1, H', W') through the standard scheme: the loss averages the patches."""
    rc = main(["train", "--data", "mnist5k:limit=64", "--generator", "dcgan:width=4",
               "--discriminator", "patchgan:n_layers=1,width=4", "--trick", "label-smoothing", "--z-dim", "8",
               "--batch-size", "8", "--steps", "2", "--eval-samples", "16", "--out", str(tmp_path / "run"),
               "--no-progress"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
