"""report.html is self-contained and renders in a real headless browser: the table and every image."""
import json
import re
import shutil
import subprocess

import pytest
import torch

from gantricks import plots
from gantricks.bench import write_report
from gantricks.data import ring_centers

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _fake_bench(tmp_path):
    results = []
    for cell in ("baseline", "pacgan"):
        for seed in (0, 1):
            run = tmp_path / "runs" / cell / "ring8" / f"seed{seed}"
            (run / "plots").mkdir(parents=True)
            samples = ring_centers()[torch.randint(8, (200,))] + 0.02 * torch.randn(200, 2)
            plots.scatter(samples, run / "plots" / "samples-00000100.png", ring_centers(), title=cell)
            with (run / "metrics.jsonl").open("w") as f:
                for step in (50, 100):
                    f.write(json.dumps({"kind": "eval", "step": step, "modes_covered": 6 + seed,
                                        "high_quality_pct": 90.0, "reverse_kl": 0.1, "modes": 8}) + "\n")
            results.append({"cell": cell, "dataset": "ring8", "seed": seed, "steps": 100, "modes_covered": 6 + seed,
                            "high_quality_pct": 90.0 + seed, "reverse_kl": 0.1, "cpu_s": 1.0, "error": None,
                            "run": str(run)})
    write_report(tmp_path, results, ["baseline", "pacgan"])
    return tmp_path / "report.html"


def test_report_is_self_contained(tmp_path):
    page = _fake_bench(tmp_path).read_text()
    assert "<table id='results'>" in page and "6.5±0.5" in page            # mean ± s.e. of 6 and 7
    srcs = re.findall(r"src='([^']*)'", page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)   # curves + 2 scatters
    assert "PacGAN paper: PacGAN4" in page


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this machine (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    page = _fake_bench(tmp_path)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<script>
      window.addEventListener('load', () => {
        const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 100).length;
        const rows = document.querySelectorAll('#results tbody tr').length;
        document.body.setAttribute('data-probe', ok + '/' + document.images.length + ' images, ' + rows + ' rows');
      });</script></body>"""))
    out = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert match, out.stderr[-2000:]
    assert match.group(1) == "3/3 images, 2 rows"
