"""Optimizers by name or callable (``optimizer_g`` / ``optimizer_d``): API, config, CLI, resume, unrolled."""
import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

import gantricks as gt
from gantricks.checkpoint import load_latest, save_checkpoint
from gantricks.cli import main
from gantricks.config import TrainConfig, load_toml
from gantricks.errors import ConfigError
from gantricks.registry import optimizers
from gantricks.train import train

from _tricks_util import make_gan, ring_batch, single_thread  # noqa: F401  (autouse fixture)

TINY = dict(generator="mlp:width=8,depth=1", discriminator="mlp:width=8,depth=1,maxout=1", batch_size=16,
            eval_every=0, eval_samples=100, progress=False)
CLI_TINY = ["--generator", "mlp:width=8,depth=1", "--discriminator", "mlp:width=8,depth=1,maxout=1",
            "--batch-size", "16", "--eval-every", "0", "--eval-samples", "100", "--no-progress"]


def test_registry_holds_the_four():
    assert optimizers.names() == ["adam", "adamw", "rmsprop", "sgd"]
    assert gt.list_optimizers() == optimizers.names()


@pytest.mark.parametrize("spec, kind, settings", [
    ("adam", torch.optim.Adam, {"lr": 4e-4, "betas": (0.5, 0.999)}),            # the GAN's lr_d and betas
    ("adam:betas=0.0-0.9,lr=0.01", torch.optim.Adam, {"lr": 0.01, "betas": (0.0, 0.9)}),
    ("adamw:weight_decay=0.1", torch.optim.AdamW, {"lr": 4e-4, "betas": (0.5, 0.999), "weight_decay": 0.1}),
    ("sgd:lr=0.01", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0}),
    ("sgd:momentum=0.9", torch.optim.SGD, {"lr": 4e-4, "momentum": 0.9}),
    ("rmsprop:alpha=0.9", torch.optim.RMSprop, {"lr": 4e-4, "alpha": 0.9}),
])
def test_spec_sets_the_optimizer_and_its_rate(spec, kind, settings):
    gan = make_gan([], lr_g=1e-4, lr_d=4e-4, optimizer_d=spec)
    opt = gan.optimizers["D"]
    assert type(opt) is kind
    assert {k: opt.param_groups[0][k] for k in settings} == settings
    assert type(gan.optimizers["G"]) is torch.optim.Adam and gan.optimizers["G"].param_groups[0]["lr"] == 1e-4
    gan.step(ring_batch())


def test_sgd_step_is_torchs_sgd():
    """One D update of the GAN with sgd:lr=0.1 equals torch's SGD on the same loss, by hand."""
    gan = make_gan([], optimizer_d="sgd:lr=0.1")
    D0 = copy.deepcopy(gan.D)
    real = ring_batch()
    torch.manual_seed(5)
    fake = gan.generate(real.shape[0]).detach()
    loss, _ = gan.discriminator_loss(D0, real, fake)
    grads = torch.autograd.grad(loss, list(D0.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(D0.parameters(), grads)]
    torch.manual_seed(5)
    fake = gan.generate(real.shape[0]).detach()
    loss, _ = gan.discriminator_loss(gan.D, real, fake)
    gan.update("D", loss)
    for p, e in zip(gan.D.parameters(), expected):
        torch.testing.assert_close(p.detach(), e)


def test_callable_takes_the_parameters():
    seen = []

    def factory(params):
        params = list(params)
        seen.append(len(params))
        return torch.optim.SGD(params, lr=0.05, momentum=0.5)

    gan = make_gan([], optimizer_g=factory)
    assert type(gan.optimizers["G"]) is torch.optim.SGD and seen == [len(list(gan.G.parameters()))]
    gan.step(ring_batch())
    with pytest.raises(ConfigError, match="must return a torch.optim.Optimizer, got list"):
        make_gan([], optimizer_d=lambda params: list(params))


@pytest.mark.parametrize("spec, message", [
    ("lbfgs", "unknown optimizer 'lbfgs'; choose one of: adam, adamw, rmsprop, sgd"),
    ("sgd:beta1=0.5", "optimizer_d 'sgd' has no option 'beta1'"),
    ("sgd:lr=0", "lr must be a positive number"),
    ("adam:betas=0.5-1.5", "betas must be in"),
    ("rmsprop:momentum=x", "must be a number"),
])
def test_bad_specs_refused_in_the_config_and_the_api(spec, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(optimizer_d=spec)
    with pytest.raises(ConfigError, match=message):
        make_gan([], optimizer_d=spec)


def test_extra_nets_take_their_sides_optimizer():
    """MRGAN's encoder E is on G's side, its D_diffusion on D's."""
    G = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    gan = gt.GAN(G, D, z_dim=2, scheme="mdgan", lr_g=1e-4, lr_d=2e-4, data_shape=(2,),
                 optimizer_g="rmsprop", optimizer_d="sgd:momentum=0.5")
    kinds = {name: (type(o).__name__, o.param_groups[0]["lr"]) for name, o in gan.optimizers.items()}
    assert kinds == {"G": ("RMSprop", 1e-4), "E": ("RMSprop", 1e-4), "D": ("SGD", 2e-4),
                     "D_diffusion": ("SGD", 2e-4)}


def test_toml_table_and_saved_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('optimizer_d = { name = "sgd", lr = 0.01, momentum = 0.9 }\noptimizer_g = "adamw"\n')
    config = load_toml(path)
    assert (config.optimizer_d, config.optimizer_g) == ("sgd:lr=0.01,momentum=0.9", "adamw")


@pytest.mark.parametrize("old_checkpoint", [False, True])
def test_schedule_and_resume_exact_with_sgd_momentum_and_rmsprop(tmp_path, old_checkpoint):
    """The linear decay moves any optimizer's rate, and a run stopped at step 13 of 20 and resumed (from step 10) ends
    with the same weights and optimizer state as one run straight through (the decay starts at step 10)."""
    config = TrainConfig(steps=20, lr_g=2e-3, lr_d=1e-3, lr_decay="linear", lr_decay_start=0.5,
                         checkpoint_every=10, optimizer_g="rmsprop", optimizer_d="sgd:momentum=0.9", **TINY)
    seen = []
    train(config, tmp_path / "full", on_step=lambda gan, logs: seen.append(gan.optimizers["D"].param_groups[0]["lr"]))
    assert seen[5] == pytest.approx(1e-3) and seen[15] == pytest.approx(1e-3 * 5 / 10)
    def crash(gan, logs):
        if gan.step_count == 13:     # killed past the checkpoint of step 10, inside the decay
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "part", on_step=crash)
    assert load_latest(tmp_path / "part" / "checkpoints")[1]["step"] == 10
    if old_checkpoint:     # as written before the LambdaLR schedulers: the base rates in the param groups
        path, state = load_latest(tmp_path / "part" / "checkpoints")
        del state["gan"]["schedulers"]
        for opt in state["gan"]["optimizers"].values():
            for group in opt["param_groups"]:
                group["base_lr"] = group.pop("initial_lr")
        path.unlink()
        save_checkpoint(tmp_path / "part" / "checkpoints", 10, state)
    train(config, tmp_path / "part", resume=True)
    full, part = (load_latest(tmp_path / r / "checkpoints")[1]["gan"] for r in ("full", "part"))
    assert full["step"] == part["step"] == 20
    for name in ("G", "D"):
        for k, v in full["modules"][name].items():
            torch.testing.assert_close(part["modules"][name][k], v, rtol=0, atol=0)
    assert full["optimizers"]["D"]["param_groups"][0]["lr"] == part["optimizers"]["D"]["param_groups"][0]["lr"]
    momentum = [s["momentum_buffer"] for s in full["optimizers"]["D"]["state"].values()]
    assert momentum and all(torch.equal(a, s["momentum_buffer"]) for a, s in
                            zip(momentum, part["optimizers"]["D"]["state"].values()))


def test_cli_trains_with_sgd_saves_it_and_resume_keeps_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--steps", "4", "--optimizer-d", "sgd:lr=0.01", *CLI_TINY]) == 0
    assert load_toml(run / "config.toml").optimizer_d == "sgd:lr=0.01"
    assert main(["train", "--out", str(run), "--steps", "6", "--resume", *CLI_TINY]) == 0
    _, state = load_latest(run / "checkpoints")
    assert "momentum" in state["gan"]["optimizers"]["D"]["param_groups"][0] and state["step"] == 6
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--steps", "8", "--resume", "--optimizer-d", "adam", *CLI_TINY]) == 2
    assert "cannot change 'optimizer_d' when resuming" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["unrolled:k=2", "lookahead:k=2"])
@pytest.mark.parametrize("opt, refused", [("sgd:lr=0.01", False), ("adamw", False), ("rmsprop", True),
                                          ("sgd:momentum=0.9", True)])
def test_unrolled_steps_sgd_and_adam_refuses_others_at_build(spec, opt, refused):
    if refused:
        with pytest.raises(ConfigError, match="must be Adam, AdamW or plain SGD"):
            make_gan([], scheme=spec, optimizer_d=opt)      # built, not stepped
    else:
        make_gan([], scheme=spec, optimizer_d=opt).step(ring_batch())
    make_gan([], scheme=spec + ",optimizer=sgd,lr=0.1", optimizer_d=opt).step(ring_batch())   # plain steps: any


def test_unrolled_with_sgd_d_unrolls_torchs_sgd():
    """With D's plain SGD the default unroll (D's own optimizer) equals the explicit θ - lr·∇ unroll."""
    own, plain = (make_gan([], seed=1, scheme=s, optimizer_d="sgd:lr=0.05")
                  for s in ("lookahead:k=3", "lookahead:k=3,optimizer=sgd"))
    real = ring_batch()
    z = torch.randn(len(real), 2)
    outs = [gan.scheme.unroll(gan, gan.G(z), real)[0](real) for gan in (own, plain)]
    torch.testing.assert_close(outs[0], outs[1])


def test_cli_unrolled_rmsprop_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gantricks", "train", "--scheme", "unrolled:k=2", "--optimizer-d",
                        "rmsprop", "--out", str(tmp_path / "run"), "--steps", "2", *CLI_TINY],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "got RMSprop" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_adam_is_fused_where_torch_can_and_not_when_asked_not_to():
    from gantricks.optim import make_optimizer

    layer = nn.Linear(3, 2)
    assert make_optimizer("adam", layer.parameters(), 1e-3, (0.5, 0.9)).defaults["fused"] is True
    assert make_optimizer("adamw", layer.parameters(), 1e-3, (0.5, 0.9)).defaults["fused"] is True
    assert not make_optimizer("adam:fused=false", layer.parameters(), 1e-3, (0.5, 0.9)).defaults["fused"]
    ints = [torch.zeros(3, dtype=torch.long)]
    assert not make_optimizer("adam", ints, 1e-3, (0.5, 0.9)).defaults["fused"]      # torch's own choice there
    with pytest.raises(ConfigError, match="fused=true needs floating-point parameters"):
        make_optimizer("adam:fused=true", ints, 1e-3, (0.5, 0.9))


def test_fused_adam_is_adams_formula():
    """Three steps of the fused kernel against Kingma & Ba's Algorithm 1 written out."""
    from gantricks.optim import make_optimizer

    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 4))
    grads = [torch.randn(5, 4) for _ in range(3)]
    opt = make_optimizer("adam:eps=1e-6", [w], 1e-2, (0.5, 0.9))
    assert opt.defaults["fused"] is True
    ref, m, v = w.detach().clone(), torch.zeros(5, 4), torch.zeros(5, 4)
    for t, g in enumerate(grads, 1):
        w.grad = g.clone()
        opt.step()
        m, v = 0.5 * m + 0.5 * g, 0.9 * v + 0.1 * g * g
        ref -= 1e-2 * (m / (1 - 0.5 ** t)) / ((v / (1 - 0.9 ** t)).sqrt() + 1e-6)
    torch.testing.assert_close(w.detach(), ref, rtol=1e-6, atol=1e-7)


def test_a_train_run_with_fused_adam_resumes_exactly(tmp_path):
    """A run stopped and resumed equals the run done at once (the fused kernel's state in the checkpoint)."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(TrainConfig(steps=12, checkpoint_every=6, seed=3, **TINY), whole)
    train(TrainConfig(steps=6, checkpoint_every=6, seed=3, **TINY), split)
    train(TrainConfig(steps=12, checkpoint_every=6, seed=3, **TINY), split, resume=True)
    (_, a), (_, b) = load_latest(whole / "checkpoints"), load_latest(split / "checkpoints")
    assert a["gan"]["optimizers"]["D"]["param_groups"][0]["fused"] is True
    for name in ("G", "D"):
        for key, value in a["gan"]["modules"][name].items():
            assert torch.equal(value, b["gan"]["modules"][name][key]), (name, key)
