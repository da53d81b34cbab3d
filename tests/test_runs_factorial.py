"""`sampler: factorial` end to end on real stores: blocks of fresh seeds, a failure inside a block,
a sweep killed mid-block and resumed (it finishes the same blocks), and the design's bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from augsweep import augment
from augsweep.experiment import design, load_experiment
from augsweep.runs.blocks import ATTR_DESIGN, ATTR_STOPPED
from augsweep.training import data
from augsweep.training.data import load_dataset
from tests.helpers import ROOT, read_stores, report, run_cli, sweep, tiny_experiment, wait_for_study

# Two switches: a 4-run full factorial per block; 2 repeats per trial, so each block adds 2 seeds.
SPACE = {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}}}


def _factorial(**overrides) -> dict:
    return tiny_experiment(**{"name": "fact", "search_space": SPACE, "train": {"epochs": 1}, "trials": 8,
                              "repeats": 2, "sampler": "factorial", "stop": "budget", **overrides})


def _design_points(exp, blocks: int) -> dict[tuple[int, int], dict]:
    """(block, design point) -> params, regenerated from the pure design (what the sweep must have run)."""
    plan = design.plan_for(exp.search_space, exp.trials, sequential=exp.stop == "decided")
    return {(b, i): p for b in range(blocks)
            for i, p in enumerate(design.space_block(exp.search_space, plan, exp.seed, b))}


def _same_point(params: dict, point: dict) -> bool:
    """A trial's Optuna params are the design point's (a fixed depth is not a searched param)."""
    return params == {k: v for k, v in point.items() if k in params} and set(point) - set(params) <= {"depth"}


def _by_point(trials) -> dict[tuple[int, int], list]:
    out: dict[tuple[int, int], list] = {}
    for t in trials:
        out.setdefault((t.user_attrs["block"], t.user_attrs["design_point"]), []).append(t)
    return out


def test_blocks_run_every_design_point_with_fresh_seeds_and_a_failure_is_retried_in_its_block(
        tmp_path, write_experiment):
    calls = Counter()

    def flaky(params, seed):  # fails the first time it is built, works afterwards
        calls["built"] += 1
        if calls["built"] == 2:
            raise RuntimeError("planted failure inside a block")
        import keras

        return keras.layers.Identity()

    augment.register(augment.AugmentationSpec("flaky", {}, flaky))
    try:
        space = {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]}, "flaky": None}}  # 4 runs
        path = write_experiment(_factorial(name="flaky", search_space=space, trials=8, max_consecutive_failures=5))
        exp = load_experiment(path)
        outcome = sweep(exp, tmp_path / "m")
    finally:
        augment.unregister("flaky")
    view = read_stores(exp, tmp_path / "m")
    trials = view.trials
    assert outcome.finished == 8 and len(trials) == 9  # 2 blocks of 4, plus the one retry
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "planted failure inside a block" in failed[0].user_attrs["failure_reason"]
    points = _by_point(trials)
    expected = _design_points(exp, 2)
    assert set(points) == set(expected)  # every design point of both blocks, nothing else
    for key, ts in points.items():
        done = [t for t in ts if t.state.name == "COMPLETE"]
        assert len(done) == 1, key  # exactly one finished training per design point
        assert _same_point(done[0].params, expected[key])  # the retry kept its block, point and parameters
    retry = next(t for t in points[(failed[0].user_attrs["block"], failed[0].user_attrs["design_point"])]
                 if t.state.name == "COMPLETE")
    assert retry.system_attrs["failed_trial"] == failed[0].number
    # Block b trains with seed indices b*R + r: the repeats' seeds differ between blocks, agree within one;
    # the retry trains on fresh seeds of its own (a failure the seeds cause must not simply recur).
    seeds: dict[int, set] = {}
    fresh = set()
    for t in trials:
        if t.state.name == "COMPLETE":
            params = view.by_id[t.user_attrs["mlflow_run_id"]].data.params
            s = tuple(sorted((k, v) for k, v in params.items() if k.startswith("seeds_r")))
            assert len(s) == 2
            if t.user_attrs.get("seed_attempt"):
                assert t.number == retry.number and t.user_attrs["seed_attempt"] == 1
                fresh.add(s)
            else:
                seeds.setdefault(t.user_attrs["block"], set()).add(s)
    assert all(len(s) == 1 for s in seeds.values()) and len(set().union(*seeds.values())) == 2
    assert len(fresh) == 1 and not fresh & set().union(*seeds.values())
    recorded = view.study.user_attrs[ATTR_DESIGN]
    assert recorded["runs"] == 4 and recorded["block_size"] == 4 and recorded["max_blocks"] == 2


def _kill_after(proc, db, complete: int) -> None:
    wait_for_study(proc, db, "SELECT count(*) FROM trials WHERE state = 'COMPLETE'", at_least=complete)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_killed_mid_block_resumes_the_same_blocks(tmp_path, write_experiment, monkeypatch):
    path = write_experiment(_factorial(name="resume", trials=8, repeats=1, train={"epochs": 3}))
    mlruns = tmp_path / "m"
    # A kill between Optuna's ask and the trial's first write leaves a RUNNING trial with no process recorded,
    # which a rerun may only fail once its heartbeat grace has passed (60 s by default): shorten it here.
    monkeypatch.setenv("AUGSWEEP_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("AUGSWEEP_HEARTBEAT_GRACE", "3")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), str(path), "--mlruns", str(mlruns)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _kill_after(proc, mlruns / "optuna.db", complete=2)  # inside block 0 (4 points)
    exp = load_experiment(path)
    before = read_stores(exp, mlruns).trials
    assert {t.user_attrs["block"] for t in before} == {0}
    lines: list[str] = []
    outcome = sweep(exp, mlruns, echo=lines.append)  # the rerun
    assert outcome.finished == 8
    trials = read_stores(exp, mlruns).trials
    points = _by_point(trials)
    expected = _design_points(exp, 2)
    assert set(points) == set(expected)
    for key, ts in points.items():
        done = [t for t in ts if t.state.name == "COMPLETE"]
        assert len(done) == 1 and _same_point(done[0].params, expected[key]), key
    # The rerun finished block 0 from its queue (no second copy of block 0 was enqueued), then ran block 1.
    assert sum(1 for line in lines if line.startswith("block 1/")) == 0
    assert sum(1 for line in lines if line.startswith("block 2/")) == 1


def test_stop_decided_stops_at_the_cap_and_says_so(tmp_path, write_experiment):
    path = write_experiment(_factorial(name="decided", stop="decided", trials=8))
    exp = load_experiment(path)
    lines: list[str] = []
    outcome = sweep(exp, tmp_path / "m", echo=lines.append)
    study = read_stores(exp, tmp_path / "m").study
    looks = [line for line in lines if line.startswith("look ")]
    assert [line.split(":")[0] for line in looks] == [f"look {i}/2" for i in range(1, len(looks) + 1)]
    stopped = study.user_attrs[ATTR_STOPPED]
    assert outcome.finished == 4 * len(looks)  # one look per finished block, and no block after the stop
    if looks[-1].endswith("undecided none"):  # the last look decided everything: that is why it stopped
        assert stopped == f"every augmentation decided after block {len(looks)}"
    else:
        assert len(looks) == 2 and stopped == "cap of 2 blocks reached (trials: 8)"
    # A rerun of a stopped sweep trains nothing more.
    again = sweep(exp, tmp_path / "m")
    assert again.ran_now == 0 and again.finished == outcome.finished


@pytest.mark.parametrize("overrides,message", [
    ({"sampler": "tpe", "stop": "decided"}, ("stop: decided needs sampler: factorial", "sampler='tpe'")),
    ({"equivalence_margin": 0}, ("equivalence_margin", "0")),
    ({"equivalence_margin": -0.1}, ("equivalence_margin", "-0.1")),
    ({"trials": 3, "search_space": {"depth": 1, "augmentations": {
        "flip": None, "contrast": None, "brightness": None, "rotation": None}}}, ("trials=3", "8 runs")),
])
def test_bad_design_input_exits_2_naming_the_key(tmp_path, write_experiment, overrides, message):
    path = write_experiment(_factorial(**overrides))
    result = run_cli("sweep.py", path, "--mlruns", tmp_path / "m")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(m in lines[0] for m in message), lines
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_train_samples_is_a_stratified_seeded_subsample(tmp_path, write_experiment):
    path = write_experiment(tiny_experiment(dataset={"source": "digits", "image_size": [8, 8],
                                                     "train_samples": 200}))
    exp = load_experiment(path)
    a = load_dataset(exp.dataset, 0)
    data._CACHE.clear()  # a second, independent load
    b = load_dataset(exp.dataset, 0)
    assert len(a.x_train) == 200 and len(a.x_val) == 360  # validation stays whole
    counts = Counter(a.y_train.tolist())
    assert max(counts.values()) - min(counts.values()) <= 1  # stratified: 20 per class
    assert (a.x_train == b.x_train).all()
    bad = write_experiment(tiny_experiment(dataset={"source": "digits", "image_size": [8, 8],
                                                    "train_samples": 5000}), "bad.yaml")
    result = run_cli("sweep.py", bad, "--mlruns", tmp_path / "m")
    assert result.returncode == 2 and "dataset.train_samples: 5000" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("repeats", [1, 2])
def test_aa_near_identity_augmentations_never_help_or_hurt_on_real_trainings(tmp_path, write_experiment, repeats):
    # Trainings are deterministic given their seeds; augmentations of factor ~0.001 change almost nothing, so
    # within a seed the on/off difference is a tiny deterministic shift. Only seed-to-seed variation may
    # decide: never `helps`/`hurts`.
    space = {"depth": 1, "augmentations": {"contrast": {"factor": [0.001, 0.002]},
                                           "brightness": {"factor": [0.001, 0.002]}}}
    # Two seed replicates either way: 2 blocks x 1 repeat, or 1 block x 2 repeats.
    path = write_experiment(_factorial(name=f"aa{repeats}", search_space=space, repeats=repeats,
                                       trials=8 // repeats, train={"epochs": 2}))
    exp = load_experiment(path)
    sweep(exp, tmp_path / "m")
    out, _ = report(exp, tmp_path / "m", tmp_path / "r")
    effects = pd.read_csv(out / "effects.csv")
    assert len(effects) == 2 and not effects["verdict"].isin(["helps", "hurts"]).any(), effects.to_string()
