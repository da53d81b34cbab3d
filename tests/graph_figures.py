"""The figures docs/method.md quotes for the default's design, with their Monte-Carlo standard errors:
`PYTHONPATH=. .venv/bin/python -m tests.graph_figures` (about a minute on one core). Same generator and driver
as tests/test_verdicts_graph.py, more sweeps."""

from __future__ import annotations

import math

import numpy as np

from tests import resv_sweeps as gen
from tests.sweep_driver import Driver
from tests.test_verdicts_graph import CONDITIONS, DEPTH, S, false_reports

N = 3000


def rate(x: np.ndarray) -> str:
    p = float(np.mean(x))
    return f"{100 * p:5.2f}% ± {100 * math.sqrt(max(p * (1 - p), 1e-12) / len(x)):.2f}"


def main() -> None:
    conditions = dict(CONDITIONS)
    conditions["skewed seed effect, sd 0.008, margin 0.02"] = ({"sd": 0.008, "skew": (1, 0.1, 0.09, -0.01)},
                                                               0.02, False)
    conditions["three-way 0.0125, sd 0.008, margin 0.02, assumed away"] = ({"sd": 0.008, "three_way": 0.0125},
                                                                           0.02, True)
    print(f"A/A: % of {N} null reports with any false verdict on any table (at any look taken)")
    for i, (name, (kwargs, margin, assume)) in enumerate(conditions.items()):
        d = Driver(S, DEPTH, repeats=4, looks=2, margin=margin, assume_no_higher=assume)
        o = d.run(gen.sweeps(np.random.default_rng(900 + i), N, **kwargs))
        truth = gen.truths(three_way=kwargs.get("three_way", 0.0), three=kwargs.get("three", (0, 1, 2)))
        print(f"  {name:<60} {rate(false_reports(o, d, truth, margin))}")
    for sd in (0.008, 0.02):
        d = Driver(S, DEPTH, repeats=4, looks=2, margin=0.05)
        c = d.run(gen.sweeps(np.random.default_rng(950), N, sd=sd, effects=(0.05, 0, 0, -0.05)))["final"]["effects"]
        print(f"power, +0.05 and -0.05 both decided right, sd {sd}: {rate((c[:, 0] == 2) & (c[:, 3] == 1))}")
    for sd, margin in ((0.02, 0.05), (0.008, 0.02)):
        d = Driver(S, DEPTH, repeats=4, looks=2, margin=margin)
        o = d.run(gen.sweeps(np.random.default_rng(960), N, sd=sd, effects=(-0.05, 0.03, 0.0, 0.01)))
        c = o["final"]["effects"]
        small = [np.isin(c[:, j], (2, 3)) if abs(t) < margin else (c[:, j] == (1 if t < 0 else 2))
                 for j, t in enumerate((-0.05, 0.03, 0.0, 0.01))]
        small[2] = c[:, 2] == 3
        strict = (c[:, 0] == 1) & (c[:, 1] == 2) & (c[:, 2] == 3) & (c[:, 3] == 3)
        print(f"decisiveness -0.05/+0.03/0/+0.01, sd {sd}, margin {margin}: all four right {rate(np.all(small, 0))}"
              f" (strict helps/hurts/negligible/negligible {rate(strict)}); blocks run {o['taken'].mean():.2f}")


def offnominal() -> None:
    """The off-nominal suite's conditions (full factorial, one depth, margin 0.02), counted as its test counts."""
    from tests import offnominal as gen_full
    from tests.test_verdicts_offnominal import CONDITIONS as FULL
    from tests.test_verdicts_offnominal import sequential_all

    print(f"Off-nominal, 16-run full factorial, margin 0.02: % of {N} null reports with a false helps/hurts")
    for i, (name, (kwargs, true)) in enumerate(FULL.items()):
        o = sequential_all(gen_full.sweeps(np.random.default_rng(800 + i), N, **kwargs))
        null = [a not in true for a in gen_full.AUGS]
        false = o["seen"][:, null].any(axis=1)
        if not kwargs.get("interaction"):
            false |= o["seen_pairs"].any(axis=1) | o["seen_cond"].any(axis=1)
        if not (true or kwargs.get("interaction") or kwargs.get("dose") or kwargs.get("conditional")):
            false |= o["seen_configurations"].any(axis=1)
        if o["seen_divergence"] is not None and not kwargs.get("diverge_with"):
            false |= o["seen_divergence"].any(axis=1)
        print(f"  {name:<60} {rate(false)}")


if __name__ == "__main__":
    offnominal()
    main()
