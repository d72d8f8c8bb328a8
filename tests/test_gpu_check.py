"""benchmarks/gpu_check.py on the CPU (--quick): every part runs and writes its results (the CUDA
paths are the same code with another device)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.distributed
def test_gpu_check_runs_every_part_on_cpu(tmp_path):
    import gpu_check

    results = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    assert results["errors"] == {}
    assert {r["model"] for r in results["overhead"]} == {"mlp64", "mlp128", "ring-mlp", "dcgan"}   # overhead.py's own
    assert all(r["ratio"] > 0 for r in results["overhead"])
    assert results["ddp"]["agree"] and results["ddp"]["max_abs_param_diff"] < 1e-4   # torchrun 1 process == plain
    assert all(r["steps_per_s"] > 0 for r in results["throughput"])
    assert len(results["unrolled"]["schemes"]["unrolled"]["wall_ms"]) == 3
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved) >= {"overhead", "ddp", "throughput", "unrolled", "environment"}
    assert "throughput ring-mlp fp32" in (tmp_path / "results.md").read_text()


def test_gpu_check_records_a_failing_part_and_goes_on(tmp_path, monkeypatch):
    import gpu_check

    def broken(args, device):
        raise RuntimeError("part broke")
    monkeypatch.setitem(gpu_check.__dict__, "part_unrolled", broken)
    results = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path), "--parts", "unrolled",
                              "throughput"])
    assert "part broke" in results["errors"]["unrolled"] and len(results["throughput"]) == 2
    assert "unrolled FAILED" in (tmp_path / "results.md").read_text()
