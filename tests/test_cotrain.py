"""Co-training (`runs.cotrain`, `--members N` above a trial's repeats): queued design points of a block train in the
trial's program and are replayed later, and Optuna, MLflow and the report see exactly what one-at-a-time gives."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import yaml

from augsweep.runs.sweep import run_sweep
from augsweep.stores.study import resolve_stores
from augsweep.training import group, train
from tests.helpers import (
    ROOT,
    experiment,
    failing_augmentation,
    learning_experiment,
    read_stores,
    report,
    reproduce,
    tiny_experiment,
)

pytestmark = pytest.mark.slow  # real trainings or stores: make test and CI run them, make test-fast does not

# Depth crossed with a switch: a 4-run full factorial per block (8 trainings with its 2 replicates), with networks of
# two depths in one program.
SPACE = {"depth": {"low": 1, "high": 2}, "augmentations": {"flip": {"mode": ["horizontal"]}}}


def _factorial(**overrides) -> dict:
    return learning_experiment(**{"name": "cotrain", "search_space": SPACE, "train": {"epochs": 2}, "trials": 4,
                                  "repeats": 2, "sampler": "factorial", "stop": "budget",
                                  **overrides})


@pytest.fixture
def counted(monkeypatch):
    """Counts the trainings that ran: lone ones and the members of each program (the real ones, only counted)."""
    seen = Counter()
    lone, grouped = train.run, group.run_group

    def run(*args, **kwargs):
        seen["lone"] += 1
        return lone(*args, **kwargs)

    def run_group(members, *args, **kwargs):
        seen["programs"] += 1
        seen["members"] += len(members)
        return grouped(members, *args, **kwargs)

    monkeypatch.setattr(train, "run", run)
    monkeypatch.setattr(group, "run_group", run_group)
    return seen


def _stored(path, mlruns) -> list:
    """Every trial's state, value, parameters and repeat summaries, and every metric of its run at every epoch."""
    view = read_stores(path, mlruns)
    out = [(t.number, t.state.name, t.value, t.params, t.user_attrs.get("repeats")) for t in view.trials]
    for run in sorted(view.trial_runs, key=lambda r: int(r.data.tags["trial"])):
        out.append(sorted((k, v) for k, v in run.data.metrics.items() if k != "trial_seconds"))
        out += [[(m.step, m.value) for m in view.client.get_metric_history(run.info.run_id, key)]
                for key in sorted(run.data.metrics) if key.startswith("repeat")]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The factorial experiment swept one training at a time (the reference path) and reported: its experiment
    file, its stored trials and curves (`_stored`), its trial values and its effects.csv."""
    tmp = tmp_path_factory.mktemp("reference")
    path = tmp / "cotrain.yaml"
    path.write_text(yaml.safe_dump(_factorial()))
    exp = experiment(path)
    run_sweep(exp, resolve_stores(exp, tmp / "m1"), members=1, echo=lambda line: None)
    report(path, tmp / "m1", tmp / "r1")
    view = read_stores(path, tmp / "m1")
    return {"path": path, "stored": _stored(path, tmp / "m1"), "values": np.array([t.value for t in view.trials]),
            "effects": (tmp / "r1" / "effects.csv").read_bytes()}


def _verdicts(effects_csv: bytes) -> list[str]:
    rows = effects_csv.decode().splitlines()
    return [r.split(",")[0] + ":" + r.split(",")[7] for r in rows[1:]]


def test_cotrained_sweep_equals_one_at_a_time_trains_each_point_once_and_reproduces_exactly(
        reference, tmp_path, counted):
    path = reference["path"]
    exp = experiment(path)
    counted.clear()  # the reference sweep's lone trainings, when it ran just now
    run_sweep(exp, resolve_stores(exp, tmp_path / "m8"), members=8, echo=lambda line: None)
    trained = dict(counted)
    report(path, tmp_path / "m8", tmp_path / "r8")
    # The first trial's program trained the whole block (4 points x 2 replicates); every other trial replayed.
    assert trained == {"programs": 1, "members": 8}, trained
    view = read_stores(path, tmp_path / "m8")
    tags = [r.data.tags for r in sorted(view.trial_runs, key=lambda r: int(r.data.tags["trial"]))]
    assert tags[0]["cotrain_cache"] == "co-trained 3, replayed 0, dropped unused 0"
    assert tags[0]["cotrained"].startswith("trained with 3 ") and all(
        t["cotrained"].startswith("replayed") and t["members"] == "8" for t in tags[1:])
    assert _stored(path, tmp_path / "m8") == reference["stored"]  # values, parameters, repeat summaries, curves
    assert (tmp_path / "r8" / "effects.csv").read_bytes() == reference["effects"]  # byte for byte
    depth = {t.number: t.params["depth"] for t in view.trials}
    other = next(n for n in sorted(depth) if depth[n] != depth[0])  # replayed, and of the other depth
    for target in ("0", str(other)):  # the program's own trial and one replayed from it, retrained one at a time
        done = reproduce(path, tmp_path / "m8", target)
        assert done.ok and done.worst == 0, (target, done.worst)


def test_a_failure_while_cotraining_fails_only_the_trial_and_leaves_no_run_open(write_experiment, tmp_path):
    # The second network built with it fails: inside the first trial's program. What is checked is which trials
    # and runs end how, not what they learned: the smallest data and one epoch.
    with failing_augmentation("flaky", "planted failure while co-training"):
        space = {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]}, "flaky": None}}  # 4 runs
        path = write_experiment(tiny_experiment(
            name="flakyco", search_space=space, trials=4, repeats=2, sampler="factorial", stop="budget",
            max_consecutive_failures=5, train={"epochs": 1},
            dataset={"source": "synthetic", "image_size": [8, 8], "samples": 32}))
        exp = experiment(path)
        run_sweep(exp, resolve_stores(exp, tmp_path / "m"), members=8, echo=lambda line: None)
    view = read_stores(exp, tmp_path / "m")
    states = Counter(t.state.name for t in view.trials)
    assert states == {"COMPLETE": 4, "FAIL": 1}, states  # the failed trial's retry completed; the rest unharmed
    failed = next(t for t in view.trials if t.state.name == "FAIL")
    assert failed.number == 0 and "planted failure while co-training" in failed.user_attrs["failure_reason"]
    assert {r.info.status for r in view.trial_runs} <= {"FINISHED", "FAILED", "KILLED"}
    assert len(view.trial_runs) == 5


def test_members_of_different_configurations_and_depths_equal_their_trainings_alone():
    """One program of three members, each of another configuration (depth 1 and 2, other augmentations) and its
    own seeds; members of one configuration side by side: tests/test_group_training.py."""
    from augsweep import runtime
    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import sweep_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training.data import load_dataset

    runtime.setup(True, False)
    digits = load_dataset(DatasetConfig("digits", (8, 8), train_samples=64, val_samples=64), 0)
    settings = TrainConfig(epochs=2, batch_size=16, learning_rate=0.01)
    flip, contrast = ("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.3),))
    configs = [TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01),
               TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01, augmentations=(flip, contrast)),
               TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01, augmentations=(contrast,))]
    members = [group.Member(c, digits, sweep_seeds(0, r)) for r, c in enumerate(configs)]
    alone = []
    for m in members:
        result = train.run(m.config, m.dataset, settings, m.seeds)
        alone.append((result.history, [w.copy() for w in result.model.get_weights()]))
    results, _ = group.run_group(members, settings)
    for (history, weights), member in zip(alone, results):
        assert member.history.equals(history)
        assert all(np.array_equal(a, b) for a, b in zip(weights, member.model.get_weights()))


def test_the_cache_drops_points_started_elsewhere_and_stays_within_its_bounds():
    import pandas as pd

    from augsweep.experiment.seeding import sweep_seeds
    from augsweep.runs.cotrain import CoTrainCache, SavedModel, Trained
    from augsweep.runs.repeat import RepeatOutcome

    def entry(number, size=0):
        history = pd.DataFrame({"repeat": [0], "epoch": [0], "val_loss": [1.0]})
        done = RepeatOutcome(sweep_seeds(0, 0), history, SavedModel(b"x" * size), "model", "false", "accuracy")
        return Trained(number, [done], members=4, points=2)

    cache = CoTrainCache(max_entries=2, max_bytes=10_000)
    for n in (1, 2, 3):
        cache.put(("k", n), entry(n))
    assert [e.number for e in cache.entries.values()] == [2, 3] and cache.wasted == 1  # the oldest went first
    cache.drop_except({3})  # trial 2 was started by another process: its copy here is never used
    assert cache.take(("k", 2)) is None and cache.take(("k", 3)).number == 3
    cache.put(("k", 4), entry(4, size=20_000))  # alone above the byte bound: not kept
    assert not cache.entries and (cache.trained, cache.replayed, cache.wasted) == (4, 1, 3)


def test_members_auto_trains_each_depth_as_one_stacked_program_in_one_process(reference, tmp_path, monkeypatch):
    """`--members auto` on TensorFlow: a block's points of one depth in one stacked program, one worker process
    (a second would pop the points the first one's program trains) and, with a core to spare, the other depth's
    program in a helper process beside it; every run tagged with its engine; the values within rounding of one at
    a time (1e-5 over these epochs), the same verdicts, a replayed trial reproduced exactly through the engine."""
    from augsweep import runtime, verbs
    from augsweep.training import stacked

    programs = []
    real = stacked.run_stacked

    def run_stacked(members, *args, **kwargs):
        programs.append(sorted({m.config.depth for m in members}) + [len(members)])
        return real(members, *args, **kwargs)

    monkeypatch.setattr(stacked, "run_stacked", run_stacked)
    path = reference["path"]
    done = verbs.sweep(path, mlruns=tmp_path / "mauto", workers="auto", members="auto", echo=lambda line: None)
    assert done.workers == 1 and "--members auto" in done.rule
    view = read_stores(path, tmp_path / "mauto")
    report(path, tmp_path / "mauto", tmp_path / "rauto")
    assert {r.data.tags.get("engine") for r in view.trial_runs} == {"stacked"}
    beside = {int(r.data.tags["trial"]) for r in view.trial_runs if r.data.tags["cotrained"].endswith("helper process")}
    if runtime.usable_cores() >= 2:  # a core to spare: the other depth's program trains in a helper process
        assert len(programs) == 1 and programs[0][1] == 4, programs  # here: 2 points x 2 replicates of one depth
        assert len(beside) == 2 and {t.params["depth"] for t in view.trials if t.number in beside} == \
            {3 - programs[0][0]}
    else:
        assert programs == [[1, 4], [2, 4]] or programs == [[2, 4], [1, 4]], programs
        assert not beside
    assert np.allclose(reference["values"], [t.value for t in view.trials], rtol=0, atol=1e-5)
    assert _verdicts((tmp_path / "rauto" / "effects.csv").read_bytes()) == _verdicts(reference["effects"])
    replayed = next(int(r.data.tags["trial"]) for r in view.trial_runs if r.data.tags["cotrained"].startswith("replay"))
    check = reproduce(path, tmp_path / "mauto", str(replayed))
    assert check.ok and check.worst == 0.0


def test_a_program_holds_only_the_design_points_whose_data_copies_fit():
    from augsweep.runs import cotrain
    from augsweep.training.data import Dataset

    def data(n):  # n float32 images of 64x64x3 for training and for validation
        x, y = np.zeros((n, 64, 64, 3), np.float32), np.zeros(n, np.int64)
        return Dataset(x, y, x, y, ("a", "b"), "synthetic")

    small = [data(8)] * 4
    assert cotrain.points_that_fit(small, 16) == 16
    big = [data(2000)] * 4  # about 197 MB a replicate, 787 MB a design point
    per_point = 4 * 2 * (2000 * 64 * 64 * 3 * 4 + 2000 * 8)
    assert cotrain.points_that_fit(big, 16) == cotrain.PROGRAM_DATA_BYTES // per_point == 2
    assert cotrain.points_that_fit([data(20000)] * 4, 16) == 1  # never fewer than the trial's own



def test_a_helper_process_trains_queued_points_exactly_as_this_process_would(write_experiment):
    """`runs.sidecar`: points trained in the helper process equal the same program trained here bit for bit (it is
    set up as this process is), arrive in the cache under their keys, and a job that fails costs only its points."""
    from augsweep import runtime
    from augsweep.experiment import DatasetConfig
    from augsweep.experiment.seeding import point_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.runs import cotrain
    from augsweep.runs.sidecar import Sidecar
    from augsweep.training.data import load_dataset

    runtime.setup(True, False)  # a no-op for the threads where an earlier test of this process used TensorFlow
    digits = load_dataset(DatasetConfig("digits", (8, 8), train_samples=64, val_samples=64), 0)
    exp = experiment(write_experiment(learning_experiment(train={"epochs": 2, "batch_size": 16})))
    contrast = ("contrast", (("factor", 0.3),))
    configs = [TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01),
               TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01, augmentations=(contrast,))]
    points = [cotrain.Point(n, c, point_seeds(0, 0, 2, 0), [digits, digits]) for n, c in enumerate(configs, 5)]
    here = cotrain.train_for_later(points, exp, "stacked")
    cache = cotrain.CoTrainCache()
    helper = Sidecar(cache, True, False, pin_threads=runtime.training_threads_tag() == "1")  # as the sweep sets it
    try:
        helper.submit(points, [("k", p.number) for p in points], exp, "stacked")
        assert cache.holds(5) and cache.holds(6) and not cache.entries  # pending: never co-trained twice
        helper.collect(wait_for=6)
        assert not cache.pending and [e.number for e in cache.entries.values()] == [5, 6]
        for mine, theirs in zip(here, (cache.take(("k", 5)), cache.take(("k", 6)))):
            assert theirs.beside and not mine.beside and (theirs.members, theirs.points) == (4, 2)
            for a, b in zip(mine.outcomes, theirs.outcomes):
                assert a.history.equals(b.history) and a.engine == b.engine == "stacked"
                assert (a.model is None) == (b.model is None)
        cut = replace(digits, x_train=digits.x_train[:, :4])
        bad = [cotrain.Point(7, configs[0], point_seeds(0, 0, 2, 0), [digits, cut])]
        helper.submit(bad, [("k", 7)], exp, "stacked")  # members of two image sizes: the program fails there
        helper.collect(wait_for=7)
        assert not cache.pending and not cache.entries and len(helper.errors) == 1 and not helper.broken
        assert helper.trouble().startswith("1 job(s) failed, the last: ")
    finally:
        helper.close()
    assert helper.process is None


HELPER_HOST = r'''
import sys

from augsweep.experiment import DatasetConfig, load_experiment
from augsweep.experiment.seeding import point_seeds
from augsweep.experiment.space import TrialConfig
from augsweep.runs import cotrain
from augsweep.runs.sidecar import Sidecar
from augsweep.training.data import load_dataset

if __name__ == "__main__":  # the helper starts a fresh interpreter (spawn), which imports this file again
    # The sweep process's stand-in submits and waits; it never trains, so it needs no TensorFlow of its own (the
    # helper sets itself up as a sweep process would).
    digits = load_dataset(DatasetConfig("digits", (8, 8), train_samples=64, val_samples=64), 0)
    exp = load_experiment(sys.argv[1])
    points = [cotrain.Point(n, TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01),
                            point_seeds(0, n, 2, 0), [digits, digits]) for n in range(2)]
    helper = Sidecar(cotrain.CoTrainCache(), True, False)
    helper.submit(points, [("k", 0), ("k", 1)], exp, "stacked")
    print(helper.process.pid, flush=True)
    sys.stdin.read()  # killed here, the job still training in the helper
'''


def test_a_helper_process_ends_by_itself_when_the_sweep_process_is_killed(write_experiment, tmp_path):
    """kill -9 of the sweep process leaves no helper computing: it ends at its next epoch."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = write_experiment(learning_experiment(train={"epochs": 5000, "batch_size": 16}))
    host = tmp_path / "host.py"
    host.write_text(HELPER_HOST)
    proc = subprocess.Popen([sys.executable, str(host), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    helper = int(proc.stdout.readline())
    # Killed while the helper still starts: it then reads the job already sent and starts the 5,000 epochs.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{helper}/stat").read().split()[2] == "Z":
            break  # ended, waiting for init to reap it
        time.sleep(0.2)
    else:
        os.kill(helper, signal.SIGKILL)
        raise AssertionError("the helper process outlived its sweep process by 60 s")


def test_a_helper_process_is_used_only_where_it_can_help(write_experiment, monkeypatch):
    """`sidecar_helps`: `--members auto` co-training on a CPU under TensorFlow, with a core and a process's memory
    to spare; never on a GPU, another backend, an explicit member count, one core or too little memory."""
    from augsweep import runtime
    from augsweep.runs.sidecar import sidecar_helps
    from augsweep.runtime import RunEnv

    exp = experiment(write_experiment(_factorial()))
    cpu = RunEnv("tensorflow", "CPU: x86_64 (2 cores), no GPU found", "float32", True, "1")
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert sidecar_helps(exp, cpu, 64, "auto", ram_gib=8.0)
    assert sidecar_helps(exp, cpu, 64, "auto", ram_gib=None)  # no /proc/meminfo: not a reason to refuse
    assert not sidecar_helps(exp, cpu, 64, "auto", ram_gib=2.0)  # two processes need 3 GiB
    assert not sidecar_helps(exp, cpu, 64, "branches", ram_gib=8.0)  # an explicit --members N: branches
    assert not sidecar_helps(exp, cpu, exp.repeats, "auto", ram_gib=8.0)  # no queued points co-trained
    assert not sidecar_helps(exp, replace(cpu, device="GPU: H100 (x1)"), 64, "auto", ram_gib=8.0)
    assert not sidecar_helps(exp, replace(cpu, backend="jax"), 64, "auto", ram_gib=8.0)
    assert sidecar_helps(exp, replace(cpu, training_threads="default"), 64, "auto", ram_gib=8.0)
    assert not sidecar_helps(exp, replace(cpu, training_threads="3"), 64, "auto", ram_gib=8.0)  # set by hand
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    assert not sidecar_helps(exp, cpu, 64, "auto", ram_gib=8.0)
