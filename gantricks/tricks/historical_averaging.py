"""Historical averaging (Salimans et al. 2016, arXiv:1606.03498, §3.3).

Each player's cost gains ``‖θ − (1/t) Σ_{i=1}^{t} θ[i]‖²``, the squared distance of its parameters from
their average over the past steps. The paper draws it from fictitious play: a penalty on moving away from
the average pulls a pair of players that orbit an equilibrium (where gradient descent cycles) towards it.
The paper gives no weight; the default 0.1 is where the Dirac GAN (Mescheder et al. 2018, §2.2) converges in
the behaviour test, not a tuned value for networks.
Applied to G and D (``networks``), each with its own running mean, scaled by ``weight``. The mean starts at
the initial parameters and takes each step's parameters after the step (a cumulative mean); it and its
count are in the checkpoint, so a resumed run continues the same average.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from .base import StepContext, Trick
from .common import register_trick, require


def historical_average_penalty(params: Iterable[Tensor], averages: Iterable[Tensor]) -> Tensor:
    """``Σ ‖θ − θ̄‖²`` over matching parameter and average tensors (Salimans et al. 2016, §3.3)."""
    terms = [(p - a).pow(2).sum() for p, a in zip(params, averages)]
    require(bool(terms), "historical averaging: the network has no trainable parameter")
    return torch.stack(terms).sum()


@torch.no_grad()
def update_running_mean(averages: Iterable[Tensor], params: Iterable[Tensor], count: int) -> None:
    """The mean of ``count`` past values becomes the mean of ``count + 1``: ``θ̄ += (θ − θ̄) / (count + 1)``
    (the average of historical averaging, Salimans et al. 2016, arXiv:1606.03498, §3.3)."""
    for a, p in zip(averages, params):
        a.add_(p.detach() - a, alpha=1.0 / (count + 1))


@register_trick("historical-averaging", paper="Salimans et al. 2016, arXiv:1606.03498, §3.3",
                summary="penalty weight*||theta - mean of past theta||^2 on G and D (fictitious play)")
class HistoricalAveraging(Trick):
    """``weight`` · ‖θ − θ̄‖² added to the losses of ``networks`` (``both``, ``G`` or ``D``)."""

    def __init__(self, weight: float = 0.1, networks: str = "both"):
        require(weight > 0, f"trick 'historical-averaging': weight must be positive, got {weight}")
        require(networks in ("both", "G", "D"),
                f"trick 'historical-averaging': networks must be both, G or D, got {networks!r}")
        self.weight, self.networks = float(weight), networks
        self.roles = ("G", "D") if networks == "both" else (networks,)
        self.count = 0
        self.averages: dict[str, dict[str, Tensor]] = {}
        self._gan = None

    def setup(self, gan) -> None:
        self._gan = gan

    def _params(self, role: str) -> dict[str, nn.Parameter]:
        # every parameter, also while the net is frozen for the other side's step (its penalty is then a
        # constant); one the user froze for good never moves from its mean, so adds nothing
        return dict(self._gan.modules[role].named_parameters())

    def _started(self) -> None:
        # taken on first use, after every trick's setup (spectral norm renames D's weights)
        if not self.averages:
            self.averages = {r: {n: p.detach().clone() for n, p in self._params(r).items()} for r in self.roles}
            self.count = 1

    def _penalty(self, role: str) -> Tensor:
        self._started()
        params = self._params(role)
        return self.weight * historical_average_penalty(params.values(),
                                                        (self.averages[role][n] for n in params))

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        return {"d_hist_avg": self._penalty("D")} if "D" in self.roles else {}

    def g_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        return {"g_hist_avg": self._penalty("G")} if "G" in self.roles else {}

    def after_step(self, gan) -> None:
        self._started()
        for role in self.roles:
            params = self._params(role)
            update_running_mean((self.averages[role][n] for n in params), params.values(), self.count)
        self.count += 1

    def state_dict(self) -> dict:
        self._started()
        return {"count": self.count, "averages": {r: dict(a) for r, a in self.averages.items()}}

    def load_state_dict(self, state: dict) -> None:
        if "averages" in state:
            self._started()
            for role, values in state["averages"].items():
                for name, value in values.items():
                    self.averages[role][name].copy_(value)
            self.count = int(state["count"])
