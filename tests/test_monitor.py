"""The monitor flags what it claims on constructed signals, and on real short runs."""
import math
import random

import numpy as np
import torch

from gantricks.monitor import REMEDIES, Monitor, pairwise_diversity


def _healthy(step, rng):
    return {"d_acc_real": 0.6 + 0.05 * rng.random(), "d_acc_fake": 0.6 + 0.05 * rng.random(),
            "d_real": 0.2 + 0.1 * rng.random(), "d_fake": -0.2 + 0.1 * rng.random(),
            "grad_norm_d": 1 + rng.random(), "grad_norm_g": 1 + rng.random(), "d_loss": 1.3, "g_loss": 0.8}


def _feed(monitor, steps, make, start=1):
    rng = random.Random(0)
    flags = []
    for s in range(start, start + steps):
        flags += monitor.observe_step(s, make(s, rng))
    return flags


def test_quiet_on_healthy_signals():
    assert _feed(Monitor(), 3000, _healthy) == []


def test_discriminator_wins_flagged_once_at_its_start():
    m = Monitor(window=100)
    _feed(m, 500, _healthy)

    def winning(s, rng):
        return {**_healthy(s, rng), "d_acc_real": 1.0, "d_acc_fake": 0.99}
    flags = _feed(m, 500, winning, start=501)
    assert [f.name for f in flags] == ["discriminator-wins"]
    assert 501 + 90 <= flags[0].step <= 501 + 100        # once the window is mostly winning
    assert "label-smoothing" in flags[0].message()


def test_divergence_on_exploding_gradients_and_nan():
    m = Monitor(window=50)
    _feed(m, 300, _healthy)
    flags = m.observe_step(301, {**_healthy(0, random.Random(1)), "grad_norm_d": 1e4})
    assert [f.name for f in flags] == ["divergence"] and "grad_norm_d" in flags[0].detail
    m2 = Monitor(window=50)
    flags = m2.observe_step(1, {"d_loss": math.nan, "g_loss": 1.0})
    assert flags and flags[0].name == "divergence" and flags[0].step == 1


def test_spikes_a_few_steps_apart_are_one_divergence_flag_and_a_later_one_is_another():
    """G's gradient spiking every 7 steps for 100 steps (as DRAGAN's toy run did, 36 flags in 500 steps before):
    one flag; it clears after a window without a spike; a spike after that is a new episode."""
    def spiky(s, rng):
        logs = _healthy(s, rng)
        if 301 <= s <= 400 and s % 7 == 0 or s == 700:
            logs["grad_norm_g"] = 1e4
        return logs

    m = Monitor(window=50)
    flags = [f for f in _feed(m, 800, spiky) if f.name == "divergence"]
    assert [f.step for f in flags] == [301 + (-301) % 7, 700]
    assert "divergence" not in m.active           # cleared 50 quiet steps after 700


def test_oscillation_of_the_gap_but_not_a_slow_drift():
    def swinging(s, rng):
        gap = 2 * math.sin(2 * math.pi * s / 400) + rng.gauss(0, 0.3)
        return {**_healthy(s, rng), "d_real": gap / 2, "d_fake": -gap / 2}

    def drifting(s, rng):
        return {**_healthy(s, rng), "d_real": s / 1000 + rng.gauss(0, 0.3), "d_fake": 0.0}
    assert "oscillation" in [f.name for f in _feed(Monitor(), 3000, swinging)]
    assert "oscillation" not in [f.name for f in _feed(Monitor(), 3000, drifting)]


def test_mode_collapse_and_mode_hopping_at_evaluation():
    real = torch.randn(500, 2)
    m = Monitor()
    metrics = {"modes_covered": 8, "modes": 8, "high_quality_pct": 90.0, "mode_counts": [100] * 8}
    assert m.observe_eval(1000, torch.randn(500, 2), real, metrics) == []
    collapsed = {"modes_covered": 2, "modes": 8, "high_quality_pct": 95.0, "mode_counts": [0] * 6 + [400, 400]}
    flags = m.observe_eval(2000, 0.01 * torch.randn(500, 2), real, collapsed)
    names = [f.name for f in flags]
    assert "mode-collapse" in names and "oscillation" in names      # and it hopped there from all 8
    assert collapsed["diversity_ratio"] < 0.05
    assert set(REMEDIES["mode-collapse"]) >= {"pacgan", "unrolled"}


def test_pairwise_diversity_against_a_loop():
    x = torch.randn(7, 3)
    ref = sum(float((x[i] - x[j]).norm()) for i in range(7) for j in range(7) if i != j) / 42
    assert abs(pairwise_diversity(x) - ref) < 1e-6 * ref


def test_a_partial_collapse_is_flagged_when_the_same_modes_stay_empty():
    """2 of 25 modes empty at two evaluations running, ~35 sharp samples expected in each: flagged at the
    second; an empty mode at one evaluation only, or where few samples are sharp, is not."""
    real = torch.randn(500, 2)
    spread = torch.randn(500, 2)

    def ev(counts):
        return {"modes_covered": sum(c > 0 for c in counts), "modes": len(counts), "high_quality_pct": 35.0,
                "mode_counts": counts}
    m = Monitor()
    assert m.observe_eval(1000, spread, real, ev([37] * 23 + [0, 0])) == []          # first time: may be chance
    assert m.observe_eval(2000, spread, real, ev([0, 0] + [40] * 23)) == []           # other modes empty now
    flags = m.observe_eval(3000, spread, real, ev([0, 0] + [38] * 23))
    assert [f.name for f in flags] == ["mode-collapse"]
    assert "2 of 25 modes" in flags[0].detail and flags[0].step == 3000
    assert m.observe_eval(4000, spread, real, ev([36] * 25)) == [] and "mode-collapse" not in m.active
    few = Monitor()      # 5 sharp samples a mode: an empty mode is no evidence
    for step in (1000, 2000, 3000):
        assert few.observe_eval(step, spread, real, ev([5] * 24 + [0])) == []


def test_diagnose_reads_an_evaluation_without_sharp_samples_and_one_of_stacked_mnist(tmp_path):
    """An evaluation with no high-quality sample stores its KL as "inf" (JSON has no infinity); Stacked
    MNIST evaluations have no high-quality column. diagnose prints both."""
    import json

    from gantricks.diagnose import diagnose

    for name, ev in (("ring", {"modes_covered": 0, "modes": 8, "high_quality_pct": 0.0, "reverse_kl": "inf"}),
                     ("stacked", {"modes_covered": 412, "modes": 1000, "kl_to_uniform": 1.2345, "fid": 77.0})):
        run = tmp_path / name
        run.mkdir()
        (run / "config.toml").write_text('data = "ring8"\n')
        records = [{"kind": "train", "step": s, "d_loss": 1.0, "g_loss": 1.0} for s in (50, 100)]
        records.append({"kind": "eval", "step": 100, **ev})
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        text, _ = diagnose(run)
        last = next((line for line in text.splitlines() if line.startswith("last evaluation")), "")
        assert last.startswith("last evaluation (step 100)"), text
        assert ("reverse KL inf" in last and "0.0% high quality" in last) if name == "ring" else \
            ("412/1000 modes" in last and "KL to uniform 1.234" in last and "FID 77.00" in last)


def test_a_partial_collapse_on_few_sharp_samples_is_flagged():
    """Issue 14's run: ring8, 2,500 samples an evaluation, under 1 % of them sharp (24), 2-3 of 8 modes
    covered, modes 1, 4 and 5 empty at both of two evaluations running. No mode can expect 20 sharp
    samples, yet three modes missed twice by 48 sharp samples is no accident (a chance of at most 0.003
    for a G still making them at half their share): flagged at the second evaluation, naming them."""
    from gantricks.monitor import partial_collapse_bound

    real, spread = torch.randn(500, 2), torch.randn(500, 2)

    def ev(counts):
        return {"modes_covered": sum(c > 0 for c in counts), "modes": 8, "samples": 2500,
                "high_quality_pct": 100 * sum(counts) / 2500, "mode_counts": counts}
    first, second = ev([8, 0, 8, 8, 0, 0, 0, 0]), ev([8, 0, 0, 0, 0, 0, 8, 8])
    assert first["high_quality_pct"] < 1 and second["high_quality_pct"] < 1
    m = Monitor()
    assert m.observe_eval(1000, spread, real, first) == []
    flags = m.observe_eval(2000, spread, real, second)
    assert [f.name for f in flags] == ["mode-collapse"]
    assert "3 of 8 modes (modes 1, 4, 5)" in flags[0].detail and "since the evaluation at step 1000" in flags[0].detail
    assert partial_collapse_bound(3, 8, 48) < 0.01
    # the same pattern on 5 sharp samples an evaluation is no evidence: not flagged
    few = Monitor()
    for step, counts in ((1000, [2, 0, 2, 1, 0, 0, 0, 0]), (2000, [2, 0, 0, 0, 0, 0, 2, 1])):
        assert few.observe_eval(step, spread, real, ev(counts)) == []
    # a mode made at half its share, empty twice by chance, among 8 covered ones: not flagged
    assert partial_collapse_bound(1, 8, 48) > 0.01


def test_the_partial_collapse_bound_against_simulation():
    """The bound is an upper bound: simulated evaluations of a G making every mode at half an even share
    or more leave m modes empty at both less often than it says."""
    from gantricks.monitor import partial_collapse_bound

    gen = torch.Generator().manual_seed(0)
    k, n, trials = 8, 24, 20000
    p = torch.tensor([0.5 / k] * 3 + [(1 - 1.5 / k) / 5] * 5)      # three modes at half their share
    empty = []
    for _ in range(2):
        draws = torch.multinomial(p, n * trials, replacement=True, generator=gen).view(trials, n)
        empty.append(torch.stack([(draws == j).sum(1) == 0 for j in range(k)], 1))
    both = (empty[0] & empty[1]).sum(1)
    for m in (1, 2, 3):
        assert (both >= m).float().mean().item() <= partial_collapse_bound(m, k, 2 * n) + 0.005


def test_diagnose_says_when_it_is_too_early_to_judge(tmp_path):
    import json

    from gantricks.diagnose import diagnose

    run = tmp_path / "run"
    run.mkdir()
    records = [{"kind": "train", "step": s, "d_loss": 1.0, "g_loss": 1.0} for s in (50, 100)]
    records.append({"kind": "eval", "step": 100, "modes_covered": 8, "modes": 8, "high_quality_pct": 50.0,
                    "diversity_ratio": 0.9})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text, _ = diagnose(run)
    assert "no flags" in text and "too early to judge collapse: 1 evaluation so far" in text
    assert "too early to judge a winning discriminator or oscillation: 100 steps logged" in text


def test_a_curve_of_one_point_is_drawn(tmp_path):
    """One evaluation is one point: it must show (a marker), not vanish as a line of no length."""
    import matplotlib.image

    from gantricks.plots import curves

    path = curves([{"step": 100, "modes_covered": 5}], ["modes_covered"], tmp_path / "one.png")
    img = matplotlib.image.imread(path)[..., :3]
    blue = np.array([0x1f, 0x77, 0xb4]) / 255        # matplotlib's first line colour
    assert (np.abs(img - blue).max(axis=2) < 0.1).sum() >= 4


def _every(k, make):
    """``make``'s logs with D's accuracies, mean logits and gradient norms on every ``k``-th step only, as
    ``gantricks train`` computes them (``diagnose_every``); the losses every step."""
    def sparse(s, rng):
        logs = make(s, rng)
        return logs if s % k == 0 else {key: logs[key] for key in ("d_loss", "g_loss")}
    return sparse


def test_the_step_rules_read_diagnostics_that_come_every_tenth_step():
    """Windows are in steps, not in values: the same flags, near the same steps, from a tenth of the values."""
    def winning(s, rng):
        logs = _healthy(s, rng)
        if s > 500:
            logs.update(d_acc_real=0.99, d_acc_fake=0.99)
        return logs
    for k in (1, 10):
        flags = [f for f in _feed(Monitor(window=100), 1000, _every(k, winning)) if f.name == "discriminator-wins"]
        assert len(flags) == 1 and 501 + 90 <= flags[0].step <= 501 + 100, (k, flags)
    assert _feed(Monitor(), 3000, _every(10, _healthy)) == []

    def swinging(s, rng):
        gap = 2 * math.sin(2 * math.pi * s / 400) + rng.gauss(0, 0.3)
        return {**_healthy(s, rng), "d_real": gap / 2, "d_fake": -gap / 2}

    def drifting(s, rng):
        return {**_healthy(s, rng), "d_real": s / 1000 + rng.gauss(0, 0.3), "d_fake": 0.0}
    assert "oscillation" in [f.name for f in _feed(Monitor(), 3000, _every(10, swinging))]
    assert "oscillation" not in [f.name for f in _feed(Monitor(), 3000, _every(10, drifting))]

    def exploding(s, rng):
        return {**_healthy(s, rng), "grad_norm_d": 1e4} if s == 700 else _healthy(s, rng)
    flags = [f for f in _feed(Monitor(window=50), 1000, _every(10, exploding)) if f.name == "divergence"]
    assert [f.step for f in flags] == [700]


def test_windows_of_every_step_values_are_as_before():
    """With a value every step the step windows hold what the count windows held: the flag of D winning is
    raised at the step where the mean over the last ``window`` steps first passes the threshold."""
    m = Monitor(window=100)
    accs = [0.6] * 500 + [0.99] * 200
    raised = None
    for s, a in enumerate(accs, start=1):
        if m.observe_step(s, {"d_acc_real": a, "d_acc_fake": a}) and raised is None:
            raised = s
    means = [sum(accs[max(0, s - 100):s]) / min(s, 100) for s in range(1, len(accs) + 1)]
    expected = next(s for s in range(100, len(accs) + 1) if means[s - 1] > 0.97)
    assert raised == expected


def test_a_rollback_to_earlier_steps_starts_the_step_windows_again():
    """``gantricks train`` rolls back to a checkpoint after a NaN and feeds the monitor steps it has seen: the
    windows start again there (no stale values out of order), and the rules still work after it."""
    def swinging(s, rng):
        gap = 2 * math.sin(2 * math.pi * s / 400) + rng.gauss(0, 0.3)
        return {**_healthy(s, rng), "d_real": gap / 2, "d_fake": -gap / 2}
    m = Monitor()
    assert _feed(m, 1500, _every(10, _healthy)) == []
    flags = _feed(m, 2500, _every(10, swinging), start=300)      # back to step 300, then on to 2,799
    assert "oscillation" in [f.name for f in flags]
    assert all(a[0] < b[0] for a, b in zip(m._gap, list(m._gap)[1:]))


def test_values_too_far_apart_for_a_swing_raise_nothing_and_warn_nothing():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _feed(Monitor(window=40), 3000, _every(1000, _healthy)) == []
