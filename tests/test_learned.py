"""The gate before any verdict: did the network learn? Unit checks of the chance loss and the interval rule,
its error rate under "nothing learned" and its power on planted learning, simulated by a generator written here
(numpy, independent of the production code); then a real folder of images that cannot be learned."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from augsweep.learned import AVERAGE, chance_loss_of, check_learned
from tests.helpers import read_stores, report, sweep


def test_chance_loss_is_the_entropy_of_the_validation_classes():
    assert chance_loss_of(np.arange(100) % 10, 10) == pytest.approx(math.log(10))
    assert chance_loss_of([0, 1] * 50, 2) == pytest.approx(math.log(2))
    # 90/10: guessing the prior costs less than ln 2, so beating ln 2 would not show learning
    p = np.array([0.9, 0.1])
    assert chance_loss_of([0] * 90 + [1] * 10, 2) == pytest.approx(float(-(p * np.log(p)).sum()))
    assert chance_loss_of([], 3) == pytest.approx(math.log(3))


def simulated_table(rng, configs: int, seeds: int, mean_below_chance: float, chance: float, sd: float,
                    configs_learning: int | None = None) -> pd.DataFrame:
    """One sweep's (trial, repeat) rows: `configs` configurations (depth 2, switches of two augmentations and
    a third switch for more), each trained on `seeds` seed replicates; the first `configs_learning` (all by
    default) sit `mean_below_chance` below the chance loss, the rest at chance; seed noise sd `sd`, shared in
    part by every configuration of a replicate (correlated seeds)."""
    n_learning = configs if configs_learning is None else configs_learning
    rows = []
    shared = rng.normal(0, sd, seeds)
    for c in range(configs):
        switches = [(c >> b) & 1 for b in range(4)]
        for s in range(seeds):
            value = chance - (mean_below_chance if c < n_learning else 0.0) + 0.7 * shared[s] \
                + rng.normal(0, 0.7 * sd)
            rows.append({"trial": c, "block": s // 2, "repeat": s % 2, "depth": 2,
                         **{f"aug_{n}": bool(v) for n, v in zip("abcd", switches)}, "best_val_loss": value})
    return pd.DataFrame(rows)


def test_nothing_learned_is_rarely_called_learned():
    """A/A of the gate: every configuration at the chance loss (ln 2), seeds noisy and correlated; false
    'learned' in at most 5% of sweeps (400 sweeps: Monte-Carlo standard error about 1.1 points at 5%)."""
    rng = np.random.default_rng(7)
    false = sum(check_learned(simulated_table(rng, 16, 4, 0.0, math.log(2), 0.01), "abcd", math.log(2)).ok
                for _ in range(400))
    assert false / 400 <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400), false


def test_learning_is_found_with_few_seeds_and_when_only_some_configurations_learn():
    rng = np.random.default_rng(3)
    found = [check_learned(simulated_table(rng, 16, 4, 0.1, math.log(10), 0.02), "abcd", math.log(10)).ok
             for _ in range(100)]
    assert np.mean(found) >= 0.95
    # two of sixteen configurations learn (the others break the task): still learned, by those columns
    some = [check_learned(simulated_table(rng, 16, 8, 0.3, math.log(10), 0.02, configs_learning=2), "abcd",
                          math.log(10)) for _ in range(50)]
    assert np.mean([c.ok for c in some]) >= 0.95 and all(c.best != AVERAGE for c in some if c.ok)


def test_one_seed_replicate_falls_back_to_the_mean():
    rng = np.random.default_rng(0)
    table = simulated_table(rng, 4, 1, 0.2, math.log(2), 0.01)
    check = check_learned(table, "abcd", math.log(2))
    assert check.learned is None and check.ok
    at_chance = table.assign(best_val_loss=math.log(2) + 0.001)
    assert not check_learned(at_chance, "abcd", math.log(2)).ok


def write_noise_folder(root, per_class: int = 24, size: int = 8, seed: int = 0) -> None:
    """Two classes of pure noise: nothing in the pixels tells them apart, so no network can learn them."""
    rng = np.random.default_rng(seed)
    for cls in ("circle", "square"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.uniform(0, 1, (size, size, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")


def test_a_folder_that_cannot_be_learned_gets_no_verdict_no_export_no_model(tmp_path, write_experiment):
    write_noise_folder(tmp_path / "noise")
    path = write_experiment({
        "name": "noise", "dataset": {"source": "folder", "path": str(tmp_path / "noise"), "image_size": [8, 8],
                                     "validation_split": 0.5},
        "search_space": {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                       "rotation": {"factor": [0.05, 0.1]}}},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.001},
        # 3 trials: the first look comes after 2 (`runs.first_look`), before the whole budget.
        "trials": 3, "repeats": 2, "sampler": "random", "pruner": "none", "seed": 0})
    lines: list[str] = []
    sweep(path, tmp_path / "m", echo=lines.append)
    # the sweep says so at its first look, not only after the whole budget
    warned = [line for line in lines if line.startswith("warning: The network did not learn in the first")]
    assert len(warned) == 1, lines
    out, analysis = report(path, tmp_path / "m", tmp_path / "r")
    assert analysis.did_not_learn
    effects = pd.read_csv(out / "effects.csv")
    assert (effects["verdict"] == "undecided").all()
    md = (out / "report.md").read_text()
    answer = md.split("## Answer", 1)[1].split("\n\n")[1]
    assert answer.startswith("On `folder` (8x8)") and "The network did not learn" in answer and "ln 2 = 0.693" in answer
    assert "`train.epochs` (now 3)" in answer and "**negligible**" not in md and "**helps**" not in md
    assert not (out / "augmentation.py").exists() and not (out / "augmentation.keras").exists()
    client = read_stores(path, tmp_path / "m").client
    assert client.search_registered_models() == []
