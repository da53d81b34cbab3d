"""`--workers auto`: how many, and the same answer as one worker (byte for byte), with the same tags.

The sweeps are real `sweep.py` processes (each worker a fresh interpreter that pins one CPU thread per
training), so the comparison covers what a user gets from `make sweep` with WORKERS=1 and WORKERS=auto.
"""

from __future__ import annotations

import pytest

from augsweep.runs.workers import auto_workers, usable_cores
from tests.bench_smoke import run_bench
from tests.helpers import learning_experiment, read_stores, run_in_process

# One switch at one depth: a factorial block of two design points, so `auto` starts exactly two workers on any
# machine of two cores or more (no more than a block's trials can run at once), and two blocks of fresh seeds
# (four trials): two workers share four trials, so a worker trains a trial after another in the same process.
# A factorial sweep runs whole blocks (a budget of three trials runs the first block only), so four is the least.
SPACE = {"depth": [1], "augmentations": {"flip": {"mode": "horizontal"}}}
TRIALS = 4
PROCESS_TAGS = ("device", "dtype_policy", "deterministic", "backend", "training_threads")


def test_auto_is_one_worker_per_core_plus_one_on_cpu_capped_by_memory_and_what_can_run_at_once():
    assert auto_workers(cap=32, cores=2, gpus=[], ram_gib=24) == (3, "one per CPU core plus one (2 cores)")
    n, rule = auto_workers(cap=3, cores=16, gpus=[], ram_gib=64)
    assert n == 3 and rule.endswith("at most the 3 trials that can run at once")
    assert auto_workers(cap=8, cores=1, gpus=[], ram_gib=24)[0] == 1  # one core: one process, no spawn
    n, rule = auto_workers(cap=64, cores=16, gpus=[], ram_gib=7.0)
    assert n == 4 and "at most 4 in 7 GiB of available memory" in rule


def test_auto_fills_every_round_of_a_factorial_block():
    # 16 points on 3 workers leave one training alone at each block's end: 4 run 4 full rounds
    n, rule = auto_workers(cap=16, cores=2, gpus=[], ram_gib=24, block=16)
    assert n == 4 and rule.endswith("raised to 4 so that each round of a 16-point block is full")
    assert auto_workers(cap=15, cores=2, gpus=[], ram_gib=24, block=15)[0] == 3  # 3 divides 15 already
    assert auto_workers(cap=7, cores=2, gpus=[], ram_gib=24, block=7)[0] == 3  # no divisor within 2x the cores
    assert auto_workers(cap=16, cores=2, gpus=[], ram_gib=5.0, block=16)[0] == 3  # memory still bounds it
    assert auto_workers(cap=16, cores=1, gpus=[], ram_gib=24, block=16)[0] == 1  # one core: one process


def test_auto_on_gpus_packs_by_free_memory_one_per_core_at_most():
    n, rule = auto_workers(cap=64, cores=16, gpus=["0"], free_gib=[139.0], ram_gib=128)
    assert n == 16 and "1 GPU(s)" in rule  # 69 would fit in memory; the 16 cores bound it
    assert auto_workers(cap=64, cores=16, gpus=["0", "1"], free_gib=[3.0, 5.0], ram_gib=128)[0] == 3  # 1 + 2
    assert auto_workers(cap=64, cores=16, gpus=["0"], free_gib=[0.5], ram_gib=128)[0] == 1  # at least one per GPU


def test_workers_rejects_anything_but_a_count_or_auto(tmp_path):
    out = run_in_process("sweep.py", "experiments/default.yaml", "--mlruns", tmp_path / "m", "--workers", "many")
    assert out.returncode == 2
    assert "--workers must be an integer in [1, " in out.stderr and "or auto. Received: 'many'" in out.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_effects_csv_is_byte_identical_between_one_worker_and_auto(tmp_path, write_experiment):
    """The claim is about real processes: driven through bench/parallel.py (run as `__main__` in this process
    rather than in an interpreter of its own), which runs both sides as real sweep.py processes (`auto` spawns a fresh
    interpreter per worker), writes each side's report through report.py's entry function and compares their
    effects.csv; this test is also that benchmark's smoke run.
    Two blocks of the 2-point plan (one switch, one depth, a fresh seed per block) give `auto` two workers sharing
    four trials, so some worker trains a trial after another in one process. What a worker could change shows at
    full precision: every trial's loss is compared exactly (float equality) between the sides, a stronger test
    than effects.csv's six decimals (each augmentation's effect is computed from every trial's loss, so one trial
    trained differently changes it there too). A worker's trial is then reproduced exactly. 45-60 s on two
    shared cores because it starts three interpreters that load TensorFlow (one worker's sweep, auto's two workers)
    besides auto's launcher, and trains nine times (four trials a side, then the reproduced one)."""
    path = write_experiment(learning_experiment(
        name="parallel", search_space=SPACE, sampler="factorial", trials=TRIALS, repeats=1, stop="budget"))
    workers = "auto" if usable_cores() >= 2 else "2"  # auto on a 1-core machine is one worker: force two
    sides = tmp_path / "sides"
    out = run_bench("parallel.py", "--experiment", path, "--trials", TRIALS, "--workers", f"1,{workers}",
                    "--keep", sides)
    assert out["code"] == 0, out["stdout"][-2000:] + out["stderr"][-2000:]
    assert "effects.csv byte-identical across sides: yes" in out["stdout"]
    one, auto = ((sides / f"report-0-{x}" / "effects.csv").read_bytes() for x in ("1", workers))
    assert one == auto
    assert len(one.splitlines()) >= 2  # a header and the augmentation's row: not two empty files
    tags, losses, trainers = {}, {}, {}
    for label, folder in (("one", "mlruns-0-1"), ("auto", f"mlruns-0-{workers}")):
        view = read_stores(path, sides / folder)
        parent = [r for r in view.runs if r.data.tags.get("kind") == "sweep"]
        assert len(parent) == 1 and parent[0].info.status == "FINISHED"
        tags[label] = parent[0].data.tags
        trial_tags = {(r.data.tags["deterministic"], r.data.tags["device"], r.data.tags["training_threads"])
                      for r in view.trial_runs}
        assert trial_tags == {("true", tags[label]["device"], "1")}
        assert len(view.trial_runs) == TRIALS
        losses[label] = {(t.user_attrs["block"], t.user_attrs["design_point"], tuple(sorted(t.params.items()))):
                         t.value for t in view.trials}
        trainers[label] = [(w["pid"], w["start"]) for w in (t.user_attrs["worker"] for t in view.trials)]
    assert len(losses["one"]) == TRIALS and losses["one"] == losses["auto"]  # every trial's loss, bit for bit
    assert len(set(trainers["one"])) == 1 and len(set(trainers["auto"])) <= 2
    assert max(trainers["auto"].count(w) for w in trainers["auto"]) >= 2  # a worker trained after another trial
    assert {k: tags["one"][k] for k in PROCESS_TAGS} == {k: tags["auto"][k] for k in PROCESS_TAGS}
    assert tags["one"]["deterministic"] == "true" and tags["one"]["training_threads"] == "1"
    assert tags["one"]["workers"] == "1" and tags["auto"]["workers"] == "2"
    # a worker's trial, retrained on the thread count its run records, is exact (in this process through the same
    # entry point; a fresh process's reproduce is tests/test_runs_reproduce.py's claim)
    rep = run_in_process("sweep.py", path, "--mlruns", sides / f"mlruns-0-{workers}", "--reproduce", "0")
    assert rep.returncode == 0 and "the original ran deterministically): match" in rep.stdout, rep.stdout[-1500:]
