"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, CPU).

Each rank checks, against references it computes itself in one process on the whole batch:

1. every scheme: one data-parallel ``gan.step`` on its half of the batch gives the same G
   and D (and extra nets) as one single-process step on the whole batch;
2. ``World.average_`` gives the gradients ``DistributedDataParallel`` gives;
3. ``SyncBatchNorm`` on the halves equals ``nn.BatchNorm`` on the whole batch: outputs,
   input and parameter gradients, running statistics; also on 4-D inputs.

Prints ``ok`` lines and exits 1 at the first mismatch.
"""
from __future__ import annotations

import copy
import sys

import torch
import torch.distributed as dist
from torch import nn

import gantricks as gt
from gantricks.distributed import SINGLE, World, convert_sync_batchnorm
from gantricks.registry import nets as registry

B = 8
SCHEMES = [("standard", ()), ("standard", ("r1",)), ("unrolled:k=2", ()), ("unrolled:k=2", ("r1",)),
           ("lookahead:k=2", ()), ("madgan:generators=2", ()), ("mrgan", ()), ("mdgan", ()),
           ("ebgan:pt_weight=0", ())]   # the pulling-away term compares samples across the batch: not data parallel


def nets(scheme: str):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    if scheme.startswith("ebgan"):
        D = registry.build("autoencoder", role="discriminator", data_shape=(2,), z_dim=2, width=16, depth=1)
    else:
        outputs = 3 if scheme.startswith("madgan") else 1
        D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, outputs))
    return G, D


def build(scheme: str, tricks: tuple[str, ...], world: World) -> gt.GAN:
    G, D = nets(scheme)
    torch.manual_seed(1)             # schemes that build nets (MRGAN's encoder) draw from the torch RNG
    loss = "nonsaturating"
    gan = gt.GAN(G, D, z_dim=2, scheme=scheme, tricks=tricks, loss=loss, data_shape=(2,), lr_g=1e-2, lr_d=1e-2)
    if world.active:
        gan.distribute(world)
    return gan


def check_close(what: str, got: torch.Tensor, want: torch.Tensor, atol: float = 1e-6) -> None:
    if not torch.allclose(got, want, atol=atol, rtol=1e-5):
        print(f"rank {dist.get_rank()}: MISMATCH {what}: max diff {(got - want).abs().max().item():.3g}", flush=True)
        sys.exit(1)


def check_schemes(world: World) -> None:
    real = torch.randn(B, 2, generator=torch.Generator().manual_seed(5))
    for scheme, tricks in SCHEMES:
        single, parallel = build(scheme, tricks, SINGLE), build(scheme, tricks, world)
        for step in range(2):
            torch.manual_seed(100 + step)
            single.step(real)
            torch.manual_seed(100 + step)
            parallel.step(world.shard(real))
        for name, module in single.modules.items():
            for (key, want), got in zip(module.state_dict().items(), parallel.modules[name].state_dict().values()):
                check_close(f"{scheme} {name}.{key}", got, want, atol=1e-5)   # lr 1e-2: 0.1 % of a step
        if world.is_main:
            print(f"ok scheme {scheme} {' '.join(tricks)}: 2 steps on 2x{B // 2} == 1x{B}", flush=True)


def check_against_ddp(world: World) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(B, 3, generator=torch.Generator().manual_seed(2))
    ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(net))
    ddp(world.shard(x)).square().mean().backward()
    ours = copy.deepcopy(net)
    ours(world.shard(x)).square().mean().backward()
    world.average_([p.grad for p in ours.parameters()])
    for a, b in zip(ours.parameters(), ddp.module.parameters()):
        check_close("gradient vs DDP", a.grad, b.grad)
    if world.is_main:
        print("ok World.average_ == DistributedDataParallel gradients", flush=True)


def check_sync_batchnorm(world: World) -> None:
    for shape, bn in (((B, 4), nn.BatchNorm1d(4)), ((B, 4, 3, 3), nn.BatchNorm2d(4))):
        torch.manual_seed(0)
        ref = nn.Sequential(bn, nn.Tanh())
        with torch.no_grad():
            ref[0].weight.uniform_(0.5, 1.5)
            ref[0].bias.uniform_(-0.5, 0.5)
        synced = convert_sync_batchnorm(copy.deepcopy(ref))
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(3)) * 2 + 1
        x_ref, x_mine = x.clone().requires_grad_(), world.shard(x).clone().requires_grad_()
        out_ref, out = ref(x_ref), synced(x_mine)
        check_close("sync-bn output", out, world.shard(out_ref), atol=1e-5)
        out_ref.square().mean().backward()
        out.square().mean().backward()          # this rank's loss: the mean over its half
        world.average_([p.grad for p in synced.parameters()])
        for a, b in zip(synced.parameters(), ref.parameters()):
            check_close("sync-bn parameter gradient", a.grad, b.grad, atol=1e-5)
        # the sum over ranks of the halves' mean losses is world.size times the whole batch's mean loss
        check_close("sync-bn input gradient", x_mine.grad, world.size * world.shard(x_ref.grad), atol=1e-6)
        for key in ("running_mean", "running_var"):
            check_close(f"sync-bn {key}", getattr(synced[0], key), getattr(ref[0], key), atol=1e-6)
    if world.is_main:
        print("ok SyncBatchNorm on 2 halves == BatchNorm on the whole batch (1-D and 2-D)", flush=True)


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    world = World(dist.get_rank(), dist.get_world_size(), active=True)
    try:
        check_against_ddp(world)
        check_sync_batchnorm(world)
        check_schemes(world)
        dist.barrier()         # no rank tears gloo down while the other still talks to it (seen: SIGABRT)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
