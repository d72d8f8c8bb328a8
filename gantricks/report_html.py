"""A self-contained HTML page of a bench: the table, a scatter per cell, and metrics against step."""
from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .runlock import write_atomic  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img_file(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _evals(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            break
        if r.get("kind") == "eval" and "modes_covered" in r:
            out.append(r)
    return out


MIXTURE_CURVES = (("modes_covered", "modes covered"), ("high_quality_pct", "high quality %"),
                  ("reverse_kl", "reverse KL"))
IMAGE_CURVES = (("modes_covered", "modes covered"), ("kl_to_uniform", "KL to uniform"), ("fid", "FID (digit features)"))


def curves_figure(results: Sequence[dict], dataset: str, order: Sequence[str],
                  curves: Sequence[tuple[str, str]] = MIXTURE_CURVES) -> str | None:
    """Mean over seeds of each metric (``curves``: (key, title) pairs) against step, one line per cell."""
    series: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r["dataset"] != dataset or not r.get("run"):
            continue
        for e in _evals(Path(r["run"])):
            series[r["cell"]][e["step"]].append(e)
    if not series:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(13, 3.4), squeeze=False)
    axes = axes[0]
    for cell in order:
        if cell not in series:
            continue
        steps = sorted(series[cell])
        for ax, (key, _) in zip(axes, curves):
            pts = [(s, [float(e[key]) for e in series[cell][s] if e.get(key) is not None]) for s in steps]
            pts = [(s, sum(v) / len(v)) for s, v in pts if v]
            if pts:
                ax.plot(*zip(*pts), lw=1.2, label=cell)
    for ax, (key, title) in zip(axes, curves):
        ax.set_title(f"{dataset}: {title}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if "kl" in key:
            ax.set_yscale("symlog", linthresh=0.01)
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _png(fig)


def write_html(out: Path, title: str, intro: str, table_md: str, published_md: str,
               results: Sequence[dict], order: Sequence[str], datasets: Sequence[str] = ("ring8", "grid25"),
               curves: Sequence[tuple[str, str]] = MIXTURE_CURVES) -> Path:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}"
             ".cells{display:flex;flex-wrap:wrap;gap:10px}.cell{text-align:center;font-size:12px}"
             ".cell img{width:260px}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
             "<h2>Results (mean ± s.e. over seeds)</h2>", _md_table_to_html(table_md, "results"),
             "<h2>Published</h2>", _md_table_to_html(published_md, "published")]
    for ds in datasets:
        fig = curves_figure(results, ds, order, curves)
        if fig:
            parts.append(f"<h2>{ds}: metrics against training step</h2><img class='curves' alt='{ds} curves' "
                         f"src='{fig}'>")
    for ds in datasets:
        shots = []
        for cell in order:
            runs = sorted((r for r in results if r["cell"] == cell and r["dataset"] == ds and r.get("run")),
                          key=lambda r: r["seed"])
            for r in runs[:1]:
                pngs = sorted((Path(r["run"]) / "plots").glob("samples-*.png"))
                if pngs:
                    shots.append(f"<div class='cell'><img alt='{html.escape(cell)} {ds}' src='{_img_file(pngs[-1])}'>"
                                 f"<br>{html.escape(cell)} (seed {r['seed']})</div>")
        if shots:
            parts.append(f"<h2>{ds}: samples of each cell (final step)</h2><div class='cells'>{''.join(shots)}</div>")
    parts.append("</body></html>")
    path = out / "report.html"
    write_atomic(path, "\n".join(parts))
    return path


def _md_table_to_html(md: str, table_id: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in md.strip().splitlines() if line.strip()]
    rows = [r for r in rows if not all(set(c.strip()) <= {"-"} for c in r)]
    head, body = rows[0], rows[1:]
    out = [f"<table id='{table_id}'><thead><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
           + "</tr></thead><tbody>"]
    for r in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)
