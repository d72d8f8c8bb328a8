"""Data-parallel training over processes: ``torchrun --nproc_per_node N -m gantricks train ...``.

What each of N processes (ranks) does, and why it equals one process on the whole batch:

* **Data.** ``batch_size`` is the global batch. Every rank draws the same global batch
  from its own copy of the sampler (same seed, same state) and keeps its slice
  (:meth:`World.shard`); the sampler states stay equal on all ranks, so rank 0's
  checkpoint resumes every rank. The noise is drawn the same way: the global noise batch
  from the (equally seeded) torch RNG, then this rank's slice (``GAN.noise``). So N
  ranks on B/N samples each see exactly the samples one process sees on B.
* **Gradients.** After every backward, ``GAN.update`` averages the gradients (and the
  loss) over the ranks with one all-reduce of one flat buffer (:meth:`World.average_`)
  before the finite check and the optimizer step. That is what
  ``torch.nn.parallel.DistributedDataParallel`` does (an all-reduce mean of the
  gradients, bucketed), and with losses that are means over the batch the averaged
  gradient is the gradient of the global batch's loss.

  Why not wrap the nets in ``DistributedDataParallel``: DDP's reducer assumes one
  forward and then one backward of the wrapped module per iteration, with every
  parameter used or declared unused. A GAN step breaks each of those: D runs on the
  real and the fake batch separately (and on interpolates for a penalty), D is frozen
  during G's update, penalties and the unrolled scheme differentiate with
  ``torch.autograd.grad(create_graph=True)`` (DDP does not support double backward,
  and ``autograd.grad`` does not fire its reducer), and the unrolled scheme calls D
  through ``torch.func.functional_call``, which bypasses DDP's forward. Averaging the
  gradients in the one place every scheme steps an optimizer works for all schemes.
  ``tests/_ddp_worker.py`` checks that the average equals DDP's gradients on a net DDP can wrap.
* **Batch norm.** Without synchronisation each rank normalises with its shard's
  statistics (as with DDP); ``--sync-bn`` replaces batch-norm layers by
  :class:`SyncBatchNorm`, whose batch statistics are over the global batch, on any
  device (``torch.nn.SyncBatchNorm`` needs a GPU and has no double backward). Buffers
  (running statistics) are broadcast from rank 0 after every step, as DDP does before
  every forward, so all ranks hold the same state.
* **Files.** Only rank 0 writes metrics, TensorBoard, plots and checkpoints, evaluates
  and shows a progress bar; every rank loads the checkpoint on resume.

The data sources built in (fixed sets, mixtures) are seeded samplers, which is what lets
every rank draw the same global batch; a user's DataLoader must yield the same batches on
every rank (same seed, no per-rank shuffling) for the slices to partition one batch.

Terms that compare samples within a batch (minibatch discrimination, minibatch stddev,
EBGAN's pulling-away term, PacGAN packing, batch norm without ``--sync-bn``) see the
rank's shard only, as under DDP. Random draws other than the noise (interpolation
weights, instance noise) are per rank and not the same numbers a single process draws.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a data-parallel run (one process: rank 0 of 1).

    ``active``: launched by torchrun, with a process group; the collectives then run even
    for one process (so ``--nproc_per_node 1`` exercises the data-parallel code).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Tensor) -> Tensor:
        """This rank's contiguous slice (dim 0) of a global batch."""
        if self.size == 1:
            return batch
        n = batch.shape[0]
        if n % self.size:
            raise ConfigError(f"a batch of {n} cannot be split evenly over {self.size} processes; "
                              f"make batch_size a multiple of {self.size}")
        k = n // self.size
        return batch[self.rank * k:(self.rank + 1) * k]

    @torch.no_grad()
    def average_(self, tensors: Sequence[Tensor]) -> None:
        """Replace each tensor by its mean over the ranks, in place: one all-reduce per dtype."""
        def mean(flat: Tensor) -> None:
            dist.all_reduce(flat)
            flat.div_(self.size)
        self._flat_in_place(tensors, mean)

    def mean_over_ranks(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """The tensors' means over the ranks, differentiable (one all-reduce; a graph passes through it)."""
        tensors = list(tensors)
        if not self.active or not tensors:
            return tensors
        flat = sum_over_ranks(torch.cat([t.reshape(-1) for t in tensors])) / self.size
        return [part.view_as(t) for t, part in zip(tensors, flat.split([t.numel() for t in tensors]))]

    @torch.no_grad()
    def broadcast_(self, tensors: Iterable[Tensor], src: int = 0) -> None:
        """Overwrite the tensors with rank ``src``'s, in place (one broadcast per dtype)."""
        self._flat_in_place(tensors, lambda flat: dist.broadcast(flat, src))

    def _flat_in_place(self, tensors: Iterable[Tensor], collective) -> None:
        """Run ``collective`` on the tensors of each dtype flattened into one buffer, then copy back
        (one collective call per dtype instead of one per tensor)."""
        tensors = list(tensors)
        if not self.active or not tensors:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            collective(flat)
            for t, part in zip(group, flat.split([t.numel() for t in group])):
                t.copy_(part.view_as(t))

    def min_over_ranks(self, value: int) -> int:
        """The smallest ``value`` of all ranks (this one's without a process group)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.int64,
                         device=torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl"
                         else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = World()


def launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def init_from_env(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment: gloo for CPU, NCCL for CUDA.

    Under CUDA each rank takes the GPU of its ``LOCAL_RANK`` (``cuda`` then means that GPU).
    Without torchrun: :data:`SINGLE`, and nothing is initialised.
    """
    if not launched_by_torchrun():
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is not None and device.index != local_rank:
            raise ConfigError(f"under torchrun each process uses the GPU of its local rank; give device cuda, "
                              f"not {device}")
        torch.cuda.set_device(local_rank)
    elif device.type != "cpu":
        raise ConfigError(f"distributed training runs on cpu (gloo) or cuda (NCCL), not {device.type}")
    global _OWNED
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _OWNED = True
    return World(dist.get_rank(), dist.get_world_size(), local_rank, active=True)


_OWNED = False     # whether init_from_env created the process group (then shutdown destroys it)


def shutdown(world: World) -> None:
    """Leave the process group if :func:`init_from_env` created it (a caller's own group is left alone)."""
    global _OWNED
    if world.active and _OWNED and dist.is_initialized():
        dist.destroy_process_group()
        _OWNED = False


# --- batch norm over the global batch ----------------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """Σ over ranks, differentiable: the gradient of a sum over ranks is the sum of the ranks'
    gradients (again a sum over ranks, so it is twice differentiable too)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _SumOverRanks.apply(grad)


def sum_over_ranks(x: Tensor) -> Tensor:
    """All-reduce sum with autograd."""
    return _SumOverRanks.apply(x)


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training-mode statistics are over the global batch of all ranks.

    Per channel, the sums Σx and Σx² and the count are all-reduced in one differentiable
    collective (:func:`sum_over_ranks`, whose backward sums the ranks' gradients of the
    statistics, so each rank's input gets the global batch's gradient; twice
    differentiable, as penalties need). Eval mode, or a single
    process, is plain batch norm. Works for any input rank (B, C, ...) and any device.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected input of shape (B, C, ...), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()                    # statistics in fp32 also under bf16 autocast
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims),
                           xf.new_full((1,), x.numel() // channels)])
        total = sum_over_ranks(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = (1, channels) + (1,) * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every batch-norm layer replaced by :class:`SyncBatchNorm`, in place.

    The new layers hold the same parameter and buffer tensors, so optimizers built over
    the old parameters keep working and state-dict keys do not change.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats, device="meta")
            for key in ("weight", "bias"):
                setattr(sync, key, getattr(child, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                sync._buffers[key] = child._buffers.get(key)
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child)
    return module
