"""Data-parallel training: torchrun with 2 CPU processes (gloo) against one process on the whole batch.

The torchrun tests start processes (~10 s each on two cores); deselect them with
``-m "not distributed"``. They run in ``make test``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gantricks.checkpoint import load_checkpoint
from gantricks.config import TrainConfig
from gantricks.distributed import World, convert_sync_batchnorm, SyncBatchNorm
from gantricks.errors import ConfigError
from gantricks.train import train

HERE = Path(__file__).parent
# no batch norm: a Linear bias before batch norm has a zero gradient in exact arithmetic, and Adam turns
# the float noise of that zero into a step of ±lr, different between 1 and 2 processes (the sync-bn layer
# is checked on its own, in _ddp_worker.py)
CLI = ["--data", "ring8:train_points=1000", "--generator", "mlp:width=16,depth=2,batch_norm=false",
       "--discriminator", "mlp:width=16,depth=2", "--batch-size", "8", "--checkpoint-every", "1", "--eval-every",
       "0", "--eval-samples", "50", "--log-every", "1", "--no-progress"]


def _torchrun(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _config(steps: int) -> TrainConfig:
    keys = CLI[::2]
    values = {k.lstrip("-").replace("-", "_"): v for k, v in zip(keys, CLI[1::2]) if k != "--no-progress"}
    return TrainConfig(**{k: (int(v) if v.isdigit() else v) for k, v in values.items()}, steps=steps,
                       keep_checkpoints=5, progress=False)


def _modules(run: Path, step: int) -> dict:
    return load_checkpoint(run / "checkpoints" / f"step-{step:08d}.pt")["gan"]["modules"]


def _assert_same_nets(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        for key, value in want[name].items():
            torch.testing.assert_close(got[name][key], value, atol=1e-6, rtol=1e-5, msg=f"{name}.{key}")


def test_shard_splits_the_global_batch_evenly():
    batch = torch.arange(12).view(6, 2)
    halves = [World(rank, 2).shard(batch) for rank in range(2)]
    torch.testing.assert_close(torch.cat(halves), batch)
    assert halves[1][0, 0] == 6
    with pytest.raises(ConfigError, match="multiple of 4"):
        World(0, 4).shard(batch)


def test_sync_batchnorm_is_batchnorm_in_one_process_and_keeps_the_tensors():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    params = [id(p) for p in net.parameters()]
    keys = list(net.state_dict())
    x = torch.randn(6, 3)
    want = net(x)
    convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm)
    assert [id(p) for p in net.parameters()] == params and list(net.state_dict()) == keys
    torch.testing.assert_close(net(x), want)


@pytest.mark.distributed
def test_every_scheme_data_parallel_equals_one_process_on_the_whole_batch():
    r = _torchrun(str(HERE / "_ddp_worker.py"))
    oks = [line for line in r.stdout.splitlines() if line.startswith("ok ")]
    assert len(oks) == 11, r.stdout       # DDP, sync-bn, 9 scheme/trick cases


@pytest.mark.distributed
def test_torchrun_train_equals_one_process_and_resumes(tmp_path):
    # one DDP step on 2 x (B/2) against one process on B; then resume under DDP to step 3
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    r = _torchrun("-m", "gantricks", "train", *CLI, "--steps", "1", "--out", str(ddp))
    assert len([line for line in r.stdout.splitlines() if line.startswith("{")]) == 1   # rank 0 prints
    train(_config(3), single)
    _assert_same_nets(_modules(ddp, 1), _modules(single, 1))
    _torchrun("-m", "gantricks", "train", "--resume", "--out", str(ddp), "--steps", "3", "--no-progress")
    _assert_same_nets(_modules(ddp, 3), _modules(single, 3))
    records = [json.loads(line) for line in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]   # rank 0 alone writes
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == [f"step-{s:08d}.pt" for s in (1, 2, 3)]
