"""gan.step(diagnostics=False): the same training, the losses logged, the finite checks as exact."""
import copy

import pytest
import torch
from torch import nn

from gantricks.errors import NonFiniteError
from gantricks.gan import GAN, _nonfinite_flag


def _nets(width=16):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))
    D = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1), nn.Flatten(0))
    return G, D


def _real(step):
    return torch.randn(32, 2, generator=torch.Generator().manual_seed(step))


@pytest.mark.parametrize("loss", ["nonsaturating", "least-squares", "hinge"])
def test_without_diagnostics_the_same_training_and_the_losses_logged(loss):
    G, D = _nets()
    a = GAN(*copy.deepcopy((G, D)), z_dim=2, loss=loss, tricks=["r1"] if loss == "hinge" else ())
    b = GAN(*copy.deepcopy((G, D)), z_dim=2, loss=loss, tricks=["r1"] if loss == "hinge" else ())
    for step in range(5):
        torch.manual_seed(step)
        full = a.step(_real(step))
        torch.manual_seed(step)
        lean = b.step(_real(step), diagnostics=False)
        assert set(lean) < set(full)
        assert {k for k in full if k not in lean} == {"d_real", "d_fake", "d_acc_real", "d_acc_fake",
                                                        "grad_norm_d", "grad_norm_g"}
        assert {k: full[k] for k in lean} == lean
    for p, q in zip([*a.G.parameters(), *a.D.parameters()], [*b.G.parameters(), *b.D.parameters()]):
        assert torch.equal(p, q)


def test_the_next_step_diagnoses_again():
    gan = GAN(*_nets(), z_dim=2)
    gan.step(_real(0), diagnostics=False)
    assert "grad_norm_d" in gan.step(_real(1)) and gan.diagnosing


class _InfGradient(torch.autograd.Function):
    """Identity forward; an infinite gradient backward, while the loss stays finite."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


@pytest.mark.parametrize("diagnostics", [True, False])
def test_a_gradient_that_is_not_finite_is_reported_at_its_step(diagnostics):
    G, D = _nets()

    class Poisoned(nn.Module):
        def __init__(self):
            super().__init__()
            self.D, self.armed = D, False

        def forward(self, x):
            return _InfGradient.apply(self.D(x)) if self.armed else self.D(x)

    poisoned = Poisoned()
    gan = GAN(G, poisoned, z_dim=2)
    gan.step(_real(0), diagnostics=diagnostics)
    poisoned.armed = True
    with pytest.raises(NonFiniteError, match="non-finite D gradient at step 2"):
        gan.step(_real(1), diagnostics=diagnostics)


def test_the_fused_finite_flag_against_isfinite():
    """0 exactly when every gradient is finite, 1 otherwise; the gradients are left as they were (bitwise)."""
    gen = torch.Generator().manual_seed(0)
    for bad in [None, float("nan"), float("inf"), float("-inf")]:
        for where in (0, 1):
            grads = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen, dtype=torch.float64)]
            if bad is not None:
                grads[where].view(-1)[2] = bad
            before = [g.clone() for g in grads]
            flag = _nonfinite_flag(grads, torch.device("cpu"))
            assert float(flag) == (0.0 if all(bool(torch.isfinite(g).all()) for g in before) else 1.0)
            for g, h in zip(grads, before):
                assert torch.equal(g.nan_to_num(), h.nan_to_num())
    assert float(_nonfinite_flag([], torch.device("cpu"))) == 0.0


def test_the_targets_are_made_once_and_again_when_changed_in_place():
    """The (n,) targets are kept between steps (two fewer tensors a step); one that something filled in place
    is not handed out again: the next call gives ones and zeros, as a fresh tensor would be."""
    gan = GAN(*_nets(), z_dim=2)
    real_t, fake_t = gan.targets(8, 8, torch.device("cpu"))
    assert torch.equal(real_t, torch.ones(8)) and torch.equal(fake_t, torch.zeros(8))
    again, _ = gan.targets(8, 8, torch.device("cpu"))
    assert again is real_t                                  # kept
    real_t.fill_(0.9)                                       # e.g. a plugin loss smoothing in place
    fresh, fresh_fake = gan.targets(8, 8, torch.device("cpu"))
    assert torch.equal(fresh, torch.ones(8)) and torch.equal(fresh_fake, torch.zeros(8))
    assert torch.equal(gan.targets(5, 3, torch.device("cpu"))[1], torch.zeros(3))   # sizes apart


def test_targets_under_inference_mode_are_not_kept():
    """An inference tensor has no version counter: targets made under ``torch.inference_mode`` are not kept,
    and a step after it works."""
    gan = GAN(*_nets(), z_dim=2)
    with torch.inference_mode():
        real_t, _ = gan.targets(8, 8, torch.device("cpu"))
    assert torch.equal(real_t, torch.ones(8))
    gan.step(_real(0))
    assert torch.equal(gan.targets(8, 8, torch.device("cpu"))[0], torch.ones(8))
