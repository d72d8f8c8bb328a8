"""Adaptive discriminator augmentation, ADA (Karras et al. 2020, arXiv:2006.06676, §2-3).

Every input of D, real and fake, in D's and G's passes, goes through a pipeline of differentiable
transforms, each applied to each sample with probability ``p``. ``p`` is tuned from the overfitting
heuristic of §3,

    r_t = E[sign(D(x_real))]      (over the D steps since the last adjustment),

every ``interval`` (4) D steps:  p ← clip(p + sign(r_t - target) · B·interval / (kimg·1000), 0, 1),
so that p can go from 0 to 1 in ``kimg`` thousand real images (500k in the paper), target 0.6.
(The authors' code clamps p only below; a probability above 1 applies every op, as 1 does.)

The ops, chosen for digits (no flip, no 90° rotation or arbitrary rotation: they turn a 6 into a 9 or a
digit into none; these would "leak" into G, §2): ADA's ``xint`` (integer translation of up to 1/8 of the
size, mirrored border), isotropic scaling by 2^N(0, 0.2²) (bilinear, mirrored border), brightness
+N(0, 0.2²) and contrast ·2^N(0, 0.5²), ADA's ranges. Each is applied when its uniform draw is below p.
``p``, the sign sums and the step count are part of the checkpoint, so a resumed run is exact.
"""
from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F

from .base import StepContext, Trick
from .common import register_trick, require
from .diffaugment import translate

ADA_OPS = ("translation", "scale", "brightness", "contrast")


def ada_p_update(p: "Tensor | float", signs_mean: "Tensor | float", target: float, batch_size: int, interval: int,
                 kimg: float) -> "Tensor | float":
    """ADA's adjustment (Karras et al. 2020, arXiv:2006.06676, §3): p + sign(r_t - target)·B·interval/(kimg·1000),
    clipped to [0, 1]; ``signs_mean`` is r_t = E[sign(D(x_real))] over the interval."""
    step = batch_size * interval / (kimg * 1000)
    if isinstance(p, Tensor) or isinstance(signs_mean, Tensor):
        return (torch.as_tensor(p) + torch.sign(torch.as_tensor(signs_mean) - target) * step).clamp(0.0, 1.0)
    sign = (signs_mean > target) - (signs_mean < target)
    return min(1.0, max(0.0, p + sign * step))


def scale(x: Tensor, factor: Tensor) -> Tensor:
    """Each image ``(B, C, H, W)`` zoomed by ``factor[b]`` about its centre (bilinear, mirrored border)."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    inverse = 1.0 / factor.to(x)
    theta[:, 0, 0] = inverse
    theta[:, 1, 1] = inverse
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def draw_ada(shape, p: "Tensor | float", generator: torch.Generator | None = None, device=None) -> dict[str, Tensor]:
    """One batch's draws for :func:`ada_augment`: each op's parameter, set to the identity where the op's
    uniform draw is not below ``p`` (Karras et al. 2020, arXiv:2006.06676, App. B ranges: shifts of up to 1/8 of the size, scale 2^N(0, 0.2²),
    brightness N(0, 0.2²), contrast 2^N(0, 0.5²))."""
    b, _, h, w = shape
    kw = dict(generator=generator, device=device)
    p = torch.as_tensor(p, device=device)
    on = {op: torch.rand(b, **kw) < p for op in ADA_OPS}
    sh, sw = max(1, round(h / 8)), max(1, round(w / 8))
    shift_h = torch.randint(-sh, sh + 1, (b,), **kw)
    shift_w = torch.randint(-sw, sw + 1, (b,), **kw)
    zeros = torch.zeros(b, dtype=torch.long, device=device)
    return {"shift_h": torch.where(on["translation"], shift_h, zeros),
            "shift_w": torch.where(on["translation"], shift_w, zeros),
            "scale": torch.where(on["scale"], torch.exp2(0.2 * torch.randn(b, **kw)), 1.0),
            "brightness": torch.where(on["brightness"], 0.2 * torch.randn(b, **kw), 0.0),
            "contrast": torch.where(on["contrast"], torch.exp2(0.5 * torch.randn(b, **kw)), 1.0)}


def ada_augment(x: Tensor, draws: dict[str, Tensor]) -> Tensor:
    """ADA's pipeline (Karras et al. 2020, arXiv:2006.06676, §2, App. B) for digits, with ``draws``
    (:func:`draw_ada`): translation, scaling, then brightness (+b) and contrast (·c, about 0, the middle of the
    [-1, 1] range), as ADA orders geometry before colour. Differentiable in ``x``."""
    x = translate(x, draws["shift_h"], draws["shift_w"], padding="reflect")
    if bool((draws["scale"] != 1).any()):
        x = scale(x, draws["scale"])
    view = (-1, *[1] * (x.dim() - 1))
    return (x + draws["brightness"].view(view).to(x)) * draws["contrast"].view(view).to(x)


@register_trick("ada", paper="Karras et al. 2020, arXiv:2006.06676, §2-3 (ADA)",
                summary="augment D's inputs with probability p, tuned so that E[sign D(real)] stays at target")
class ADA(Trick):
    """Adaptive augmentation of D's inputs: ``p`` starts at ``p`` (0) and follows :func:`ada_p_update`
    every ``interval`` D steps, at a speed of ``kimg`` thousand images from 0 to 1."""

    order = 30   # as diffaugment: on single samples, before packing and noise
    needs_images = True

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0):
        require(0 < target < 1, f"trick 'ada': target must be in (0, 1), got {target}")
        require(interval >= 1, f"trick 'ada': interval must be >= 1, got {interval}")
        require(kimg > 0, f"trick 'ada': kimg must be > 0, got {kimg}")
        require(0 <= p <= 1, f"trick 'ada': p must be in [0, 1], got {p}")
        self.target, self.interval, self.kimg = float(target), int(interval), float(kimg)
        self.p = torch.tensor(float(p))
        self.signs = torch.zeros(())       # sum of sign(D(real)) since the last adjustment
        self.count = torch.zeros(())       # how many real outputs that sum holds
        self.d_steps = 0                   # D steps since the last adjustment

    def validate(self, gan) -> None:
        super().validate(gan)
        require(gan.loss.name != "wasserstein", "trick 'ada' reads sign(D(real)), which a Wasserstein critic's "
                "output does not have (any offset is free); use nonsaturating, minimax, hinge or least-squares")
        require(getattr(gan.scheme, "name", "") not in ("ebgan", "madgan"), f"trick 'ada' reads sign(D(real)) as a "
                f"real/fake logit; scheme {gan.scheme.name!r}'s D outputs are not one")

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan, phase: str) -> tuple[Tensor | None, Tensor]:
        p = self.p.to(fake.device)
        aug = lambda x: ada_augment(x, draw_ada(x.shape, p, device=x.device))   # noqa: E731
        return (None if real is None else aug(real)), aug(fake)

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        """No loss term: reads D's real outputs for r_t and adjusts p every ``interval`` D steps (on the
        device: no host sync)."""
        threshold = 0.5 if ctx.gan.loss.name == "least-squares" else 0.0   # where D says "real"
        logits = ctx.real_logits.detach().flatten()
        self.signs = self.signs.to(logits.device) + torch.sign(logits - threshold).sum()
        self.count = self.count.to(logits.device) + logits.numel()
        self.d_steps += 1
        self.p = self.p.to(logits.device)
        if self.d_steps >= self.interval:
            r_t = self.signs / self.count
            batch = ctx.real.shape[0] * ctx.gan.world.size
            self.p = ada_p_update(self.p, r_t, self.target, batch, self.interval, self.kimg)
            ctx.logs["ada_rt"] = r_t
            self.signs, self.count, self.d_steps = torch.zeros_like(self.signs), torch.zeros_like(self.count), 0
        ctx.logs["ada_p"] = self.p
        return {}

    def state_dict(self) -> dict:
        return {"p": self.p.clone(), "signs": self.signs.clone(), "count": self.count.clone(),
                "d_steps": self.d_steps}

    def load_state_dict(self, state: dict) -> None:
        if "p" in state:
            self.p, self.signs, self.count = state["p"].clone(), state["signs"].clone(), state["count"].clone()
            self.d_steps = int(state["d_steps"])
