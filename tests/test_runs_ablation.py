"""Ablations end to end: real training, real MLflow store read back, resume, report, reproduce."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from augsweep.experiment import ConfigError, load_experiment
from augsweep.report.sweep_analysis import EFFECT_COLUMNS
from augsweep.stores.records import KIND_ABLATION as KIND_PARENT
from augsweep.stores.records import KIND_ABLATION_RUN as KIND_RUN
from augsweep.stores.tracking import tracking_uri_for
from tests.helpers import ablate, report, reproduce, run_in_process, sweep, tiny_experiment

BASE = {"depth": 1, "augmentations": {"flip": {"mode": "horizontal"}, "contrast": {"factor": 0.3}}}


def ablation_experiment(**overrides) -> dict:
    """3-class synthetic at 8x8 (48 images), 2 seeds x 1 epoch, base flip+contrast (the search space's two
    augmentations)."""
    exp = tiny_experiment(
        name="tiny-ablation",
        dataset={"source": "synthetic", "image_size": [8, 8], "samples": 48, "classes": 3},
        search_space={"depth": {"low": 1, "high": 2}, "augmentations": {
            "flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}}},
        train={"epochs": 1, "batch_size": 32, "learning_rate": 0.003},
        ablation={"repeats": 2, "base": BASE},
    )
    exp.update(overrides)
    return exp


def children(client, parent_id):
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exp_ids, f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def ablate_members(path_or_exp, mlruns, members="auto", echo=lambda line: None, repeats=None):
    """`run_ablation` on the embedded stores under `mlruns`, `members` trainings per program (`--members`)."""
    from augsweep.runs.ablation import run_ablation
    from augsweep.stores.study import resolve_stores

    exp = path_or_exp if not isinstance(path_or_exp, (str, Path)) else load_experiment(path_or_exp)
    return run_ablation(exp, resolve_stores(exp, mlruns), repeats=repeats, echo=echo, members=members)


def interrupted_after(n: int, members, exp, mlruns) -> list[str]:
    """Run the ablation with `members`, Ctrl-C after its n-th training's line; its lines."""
    lines = []

    def stop(line):
        lines.append(line)
        if sum(x.startswith("[") for x in lines) == n:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ablate_members(exp, mlruns, members, echo=stop)
    return lines


def by_pair(runs) -> dict:
    return {(r.data.tags["variant_key"], r.data.tags["seed_index"]): r for r in runs}


def test_ablation_end_to_end_resume_report_and_reproduce(write_experiment, tmp_path):
    """Two ablations of the same file, each interrupted by Ctrl-C and resumed with another `--members`: A trains one
    at a time (`1`) until Ctrl-C after its third training, then resumes with `auto` (the 9 missing pairs as one
    stacked program); B trains `auto` (all 12 as one stacked program, Ctrl-C while the ninth run ends), then resumes
    with `1` (the 3 missing). So 6 of the 12 (variant, seed) pairs (base's, a leave-one-out's, both baselines')
    are trained once stacked and once one at a time, and agree within the stacked engine's stated tolerance (1e-5,
    training.stacked) on every logged number; the other 6 trained stacked in programs of 9 and of 12 and agree bit
    for bit (a member's numbers do not depend on the program it trains in). The ablation's id ignores `members`.
    Then A's report, and `--reproduce` of a variant with a seed of each engine, exact."""
    path = write_experiment(ablation_experiment())
    exp = load_experiment(path)
    a, b = tmp_path / "a", tmp_path / "b"
    interrupted_after(3, 1, exp, a)
    client = MlflowClient(tracking_uri_for(a))
    parent = client.search_runs([client.get_experiment_by_name("tiny-ablation").experiment_id],
                                f"tags.kind = '{KIND_PARENT}'")[0]
    assert parent.info.status == "KILLED"
    # A run left RUNNING by a killed process (kill -9 gives no chance to close it) is closed at resume.
    stale = client.create_run(parent.info.experiment_id, tags={
        "mlflow.parentRunId": parent.info.run_id, "kind": KIND_RUN, "variants": "none", "variant_key": "x",
        "seed_index": "0"}).info.run_id

    lines = []
    outcome = ablate_members(exp, a, "auto", echo=lines.append)
    assert outcome.parent_run_id == parent.info.run_id  # the same ablation continued, whatever `members` is now
    assert "1 stacked program of 9" in lines[0] and "--members auto" in lines[0]
    distinct = 6  # 8 variants; base-flip == none+contrast and base-contrast == none+flip
    assert outcome.trained_now == distinct * 2 - 3 and outcome.failed == 0
    assert client.get_run(stale).info.status == "KILLED"
    runs = [r for r in children(client, parent.info.run_id) if r.info.run_id != stale]
    assert len(runs) == distinct * 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    # Each run says which engine computed it: three one at a time (no tag), nine stacked.
    assert sorted(r.data.tags.get("engine", "keras") for r in runs) == ["keras"] * 3 + ["stacked"] * 9
    assert {r.data.tags["members"] for r in runs} == {"1", "9"}
    # Same seeds for every variant (common random numbers), the same metric names as sweep trials.
    for seed in ("0", "1"):
        assert len({r.data.params[f"seeds_r{seed}"] for r in runs if r.data.tags["seed_index"] == seed}) == 1
    for one in runs:  # alone and stacked alike: curves, evaluation, artifacts
        assert {"val_loss", "loss", "best_val_loss", "final_loss", "class_val_loss/bus", "class_val_accuracy/car"} \
            <= set(one.data.metrics)
    one = next(r for r in runs if r.data.tags.get("engine") == "stacked" and r.data.tags["variant"] != "none")
    assert {a.path for a in client.list_artifacts(one.info.run_id)} >= {
        "history.csv", "per_class.csv", "learning_curves.png", "augmentation_preview.png"}
    none = [r for r in runs if r.data.tags["variant"] == "none"]
    assert all({"affinity/flip", "affinity/contrast"} <= set(r.data.metrics) for r in none)

    # Rerunning trains nothing, with either `members`.
    assert ablate_members(exp, a, 1).trained_now == 0

    # B: Ctrl-C while the stacked program's runs end leaves none RUNNING; `--members 1` resumes it.
    interrupted_after(9, "auto", exp, b)
    client_b = MlflowClient(tracking_uri_for(b))
    parent_b = client_b.search_runs([client_b.get_experiment_by_name("tiny-ablation").experiment_id],
                                    f"tags.kind = '{KIND_PARENT}'")[0]
    killed = children(client_b, parent_b.info.run_id)
    assert sorted(r.info.status for r in killed) == ["FINISHED"] * 9 + ["KILLED"] * 3
    assert parent_b.info.status == "KILLED" and parent_b.data.tags["ablation_id"] == parent.data.tags["ablation_id"]
    assert ablate_members(exp, b, 1).trained_now == 3
    finished_b = [r for r in children(client_b, parent_b.info.run_id) if r.info.status == "FINISHED"]
    assert sorted(r.data.tags.get("engine", "keras") for r in finished_b) == ["keras"] * 3 + ["stacked"] * 9
    mine, theirs = by_pair(runs), by_pair(finished_b)
    assert mine.keys() == theirs.keys()
    engines = sorted((run.data.tags.get("engine", "keras"), theirs[pair].data.tags.get("engine", "keras"))
                     for pair, run in mine.items())
    assert engines == [("keras", "stacked")] * 3 + [("stacked", "keras")] * 3 + [("stacked", "stacked")] * 6
    for pair, run in mine.items():
        other = theirs[pair]
        assert run.data.params == other.data.params
        assert run.data.metrics.keys() == other.data.metrics.keys()
        both = run.data.tags.get("engine") == other.data.tags.get("engine") == "stacked"
        for key, value in run.data.metrics.items():
            if key != "trial_seconds":  # stacked in both: bit for bit; else within the engine's tolerance
                assert abs(value - other.data.metrics[key]) <= (0 if both else 1e-5), (pair, key, value,
                                                                                     other.data.metrics[key])

    out, analysis = report(exp, a, tmp_path / "report")
    assert analysis is None  # no sweep in these stores: the report is the ablation's alone
    effects = pd.read_csv(out / "effects.csv")
    assert list(effects.columns) == EFFECT_COLUMNS
    assert set(effects["source"]) == {"ablation"}
    assert sorted(zip(effects["augmentation"], effects["comparison"])) == [
        ("contrast", "add-one-in"), ("contrast", "leave-one-out"), ("flip", "add-one-in"),
        ("flip", "leave-one-out")]
    assert (effects["n_with"] == 2).all()
    md = (out / "report.md").read_text()
    for heading in ("Answer (paired ablation)", "side by side", "Baselines", "Per-class effects",
                    "Affinity and diversity", "Learning curves per variant"):
        assert heading in md
    for name in ("randaugment", "trivialaugment", "none", "base"):
        assert f"| {name} " in md
    assert "most hurt" in md and "| bus " in md and "| truck " in md
    assert (out / "affinity_diversity.png").stat().st_size > 0 and (out / "ablation_curves.png").exists()

    # `augsweep reproduce` of the variant whose r0 trained one at a time and r1 stacked: each seed retrained
    # through its own engine with its logged seeds, exactly.
    engines = {}
    for r in runs:
        engines.setdefault(r.data.tags["variant"], {})[r.data.tags["seed_index"]] = r.data.tags.get("engine", "keras")
    mixed = [v for v, e in engines.items() if e == {"0": "keras", "1": "stacked"}]
    assert len(mixed) == 1
    result = run_in_process("reproduce", path, mixed[0], "--mlruns", a)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("    r")]
    assert len(rows) == 2 and all(float(diff) == 0.0 for *_, diff in rows), result.stdout  # 2 seeds x 1 epoch
    with pytest.raises(ConfigError, match="no finished ablation run of variant 'base-rotation'"):
        reproduce(exp, a, "base-rotation")


def test_ablation_without_a_sweep_or_a_base_is_a_clear_error(write_experiment, tmp_path):
    exp = ablation_experiment()
    exp["ablation"] = {"repeats": 2}
    path = write_experiment(exp)
    with pytest.raises(ConfigError, match=r"no completed trial.*ablation\.base"):
        ablate(load_experiment(path), tmp_path / "mlruns")
    assert not (tmp_path / "mlruns").exists()  # nothing half-written


def test_ablation_cli_flags_are_checked(write_experiment, tmp_path):
    from augsweep.cli import sweep_arguments

    path = write_experiment(ablation_experiment())
    result = run_in_process("sweep.py", path, "--repeats", "3")
    assert result.returncode == 2 and "--repeats is only used with --ablation" in result.stderr
    result = run_in_process("sweep.py", path, "--ablation", "--reproduce", "base")
    assert result.returncode == 2 and "not allowed with" in result.stderr
    # `--members` of an ablation: auto or a count, as the sweep's; anything else exits 2 with one line, before any
    # store is written.
    assert sweep_arguments([str(path), "--members", "auto"], "ablate").members == "auto"
    assert sweep_arguments([str(path), "--ablation", "--members", "4"]).members == 4
    for bad, said in (("0", "--members must be an integer in [1, 1024] or auto. Received: '0'"),
                      ("many", "--members must be an integer in [1, 1024] or auto. Received: 'many'"),
                      ("2.5", "--members must be an integer in [1, 1024] or auto. Received: '2.5'")):
        result = run_in_process("ablate", path, "--members", bad, "--mlruns", tmp_path / "m")
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = run_in_process("sweep.py", path, "--reproduce", "base", "--members", "2")
    assert result.returncode == 2 and "--members is only used by a sweep or an ablation" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("base, message", [
    ({"depth": 9}, "ablation.base.depth must be in [1, 3]"),  # 8x8 images: at most 3 halvings
    ({"depth": 1, "augmentations": {"rotation": {"factor": [0.1, 0.2]}}}, "must be a single value"),
    ({"depth": 1, "augmentations": {"blur": {}}}, "ablation.base.augmentations.blur is not a known augmentation"),
    ({"augmentations": {}}, "ablation.base.depth is required"),
    ("best-of-all", "ablation.base must be `best` or a mapping"),
])
def test_ablation_base_is_validated(write_experiment, base, message):
    exp = ablation_experiment()
    exp["ablation"] = {"base": base}
    with pytest.raises(ConfigError) as err:
        load_experiment(write_experiment(exp))
    assert message in str(err.value) and "exp.yaml" in str(err.value)


@pytest.mark.slow
def test_ablation_base_best_uses_the_sweeps_best_trial(write_experiment, tmp_path):
    exp = ablation_experiment(trials=4, repeats=1, sampler="grid", train={"epochs": 2, "batch_size": 32,
                                                                           "learning_rate": 0.003})
    exp["search_space"] = {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                         "contrast": {"factor": [0.1, 0.5]}}}
    exp["ablation"] = {"repeats": 1, "base": "best", "baselines": False}
    path = write_experiment(exp)
    mlruns = tmp_path / "mlruns"
    sweep(load_experiment(path), mlruns, echo=lambda line: None)
    study = optuna.load_study(study_name="tiny-ablation", storage=f"sqlite:///{mlruns / 'optuna.db'}")
    outcome = ablate_members(load_experiment(path), mlruns, "auto")
    assert outcome.base_source.startswith(f"best completed trial t{study.best_trial.number:02d}")
    assert outcome.variants[0].config.flat(["flip", "contrast"]) == study.best_trial.user_attrs["config"]
    assert [v.name for v in outcome.variants][-1].startswith("none+")  # no baselines when switched off
    out, analysis = report(load_experiment(path), mlruns, tmp_path / "report")
    effects = pd.read_csv(out / "effects.csv")
    assert set(effects["source"]) == {"sweep", "ablation"}
    md = (out / "report.md").read_text()
    # The paired ablation is the answer; the sweep's estimates follow as the wider view.
    assert md.index("## Answer (paired ablation)") < md.index("## Sweep: effects across all trials")

    # --reproduce TRIAL through the command line's entry function: the logged and the new curve agree to 1e-5
    # (in-process; the fresh-process claim is test_runs_reproduce's).
    result = run_in_process("sweep.py", path, "--mlruns", mlruns, "--reproduce", str(study.best_trial.number))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("    r")]
    assert len(rows) == 2  # 1 repeat x 2 epochs
    assert all(abs(float(logged) - float(new)) <= 1e-5 for _, _, logged, new, _ in rows)
    with pytest.raises(ConfigError, match="has no trial 7"):
        reproduce(load_experiment(path), mlruns, "7")


def test_a_one_augmentation_base_shares_trainings_and_still_measures_affinity(write_experiment, tmp_path):
    exp = ablation_experiment()
    exp["ablation"] = {"repeats": 1, "baselines": False, "base": {"depth": 1, "augmentations": {"flip": None}}}
    mlruns = tmp_path / "mlruns"
    outcome = ablate_members(load_experiment(write_experiment(exp)), mlruns, "auto")
    # base-flip is `none` and none+flip is `base`: 5 variants, 3 trainings (one stacked program).
    assert [v.name for v in outcome.variants] == ["base", "base-flip", "none", "none+flip", "none+contrast"]
    assert outcome.trained_now == 3
    runs = children(MlflowClient(tracking_uri_for(mlruns)), outcome.parent_run_id)
    plain = [r for r in runs if "none" in r.data.tags["variants"].split(",")]
    assert len(plain) == 1 and plain[0].data.tags["variants"] == "base-flip,none"
    assert {"affinity/flip", "affinity/contrast"} <= set(plain[0].data.metrics)
    assert {r.data.tags.get("engine") for r in runs} == {"stacked"}


DIGITS = {
    # Known answer: horizontal flips and large rotations destroy digit identity (6 vs 9, 2 vs 5).
    "name": "digits-ablation",
    "dataset": {"source": "digits", "image_size": [16, 16]},
    "search_space": {"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                   "rotation": {"factor": [0.4, 0.5]}}},
    "train": {"epochs": 6, "batch_size": 64, "learning_rate": 0.003},
    "repeats": 1, "sampler": "random", "pruner": "none", "seed": 0,
    "ablation": {"repeats": 6, "baselines": False, "base": {
        "depth": 1, "augmentations": {"flip": {"mode": "horizontal"}, "rotation": {"factor": 0.5}}}},
}


@pytest.mark.slow
def test_ablation_finds_that_rotating_and_flipping_digits_hurts(write_experiment, tmp_path):
    """The known answer on fresh seeds, on `make ablate`'s path (`--members auto`: the 4 distinct variants x 6 seeds
    as one stacked program of 24 trainings of 6 epochs on 16x16 digits; 26 CPU-s of training against 41 one at a
    time), with its margin measured: rotation add-one-in +0.877 val_loss, interval [0.395, 1.359] at the report's
    level; flip add-one-in +0.312 [0.049, 0.575] and rotation leave-one-out +0.554 [0.148, 0.960], each positive
    on every one of the 6 seeds (smallest: +0.14, +0.28; rotation add-one-in +0.44). One at a time gives the same
    effects to 2e-4 (every seed's best val_loss within 1.2e-3: the engine's rounding, not its answer), so the
    margins are those the one-at-a-time test had. The size is what the margin needs: on 8x8 images flip add-one-in
    shrinks to +0.15 [-0.04, 0.34] and rotation to +0.43; on the first 4 of these seeds rotation add-one-in keeps
    about 1.1 half-widths and leave-one-out is no longer decided; 5 seeds save under a tenth of the time for a
    thinner margin."""
    path = write_experiment(DIGITS)
    ablate_members(load_experiment(path), tmp_path / "mlruns", "auto")
    out, _ = report(load_experiment(path), tmp_path / "mlruns", tmp_path / "report")
    effects = pd.read_csv(out / "effects.csv").set_index(["augmentation", "comparison"])
    # What is known on fresh seeds: each alone hurts (rotation by up to a half turn clearly); nothing helps.
    # (Leave-one-out flip is not known: with digits already rotated by up to 180 degrees, a mirror adds little;
    # measured -0.011 [-0.064, +0.042].)
    assert effects.loc[("rotation", "add-one-in"), "verdict"] == "hurts", effects
    assert effects.loc[("flip", "add-one-in"), "effect"] > 0
    assert effects.loc[("rotation", "leave-one-out"), "effect"] > 0
    assert not (effects["verdict"] == "helps").any(), effects


def test_a_failed_ablation_exits_1_naming_failures_and_the_report_shows_them(tmp_path, write_experiment, capsys):
    """A failing ablation: `--ablation` once exited 0 with 6 of 8 trainings FAILED, the report then crashed with a
    TypeError (None - None for a variant with no finished seed), and a class folder whose name is not UTF-8
    failed every training. An augmentation whose layer raises fails every variant that holds it (a diverged
    training is scored, not failed, so divergence no longer serves here). With `--members auto` those members'
    runs fail alone, each with its reason, before the program; the others train as one stacked program, and of
    those the plain network's runs fail in their own evaluation (its affinity builds every candidate, explode
    too) while the rest finish."""
    import os

    import numpy as np
    from PIL import Image

    from augsweep import augment
    from augsweep.cli import report_main, sweep_main

    def explode(params, seed):
        raise RuntimeError("planted failure in the augmentation builder")

    augment.register(augment.AugmentationSpec("explode", {}, explode))
    try:
        _failed_ablation(tmp_path, write_experiment, capsys, report_main, sweep_main, np, Image, os)
    finally:
        augment.unregister("explode")


def _failed_ablation(tmp_path, write_experiment, capsys, report_main, sweep_main, np, Image, os):

    data = tmp_path / "data"
    for split in ("train", "valid"):
        for c, value in ((b"car", 30), (b"tr\xfcck", 200)):
            folder = os.fsencode(data / split) + b"/" + c
            os.makedirs(folder)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), value + i, np.uint8)).save(os.fsdecode(folder + b"/%d.png" % i))
    path = write_experiment(tiny_experiment(
        name="abfail", dataset={"source": "folder", "path": str(data), "image_size": [8, 8]},
        search_space={"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]}, "explode": None}},
        train={"epochs": 2, "batch_size": 4, "learning_rate": 0.003},
        ablation={"base": {"depth": 1, "augmentations": {"flip": {"mode": "horizontal"}, "explode": {}}},
                  "repeats": 2, "baselines": False}))
    mlruns = tmp_path / "m"
    code = sweep_main([str(path), "--mlruns", str(mlruns), "--ablation", "--members", "auto"])
    err = capsys.readouterr().err
    assert code == 1, err
    line = [x for x in err.splitlines() if x.startswith("error: ")][0]
    assert "6 of 8 ablation trainings failed" in line and "planted failure" in line
    assert "encode" not in err and "surrogate" not in err  # the class name is not what failed
    client = MlflowClient(tracking_uri_for(mlruns))
    runs = client.search_runs([client.get_experiment_by_name("abfail").experiment_id], f"tags.kind = '{KIND_RUN}'")
    for run in runs:  # explode's variants and `none` FAILED, each with its reason; the others FINISHED, stacked
        fails = run.data.params.get("aug_explode") == "True" or run.data.tags["variant"] == "none"
        assert run.info.status == ("FAILED" if fails else "FINISHED"), run.data.tags
        if fails:
            assert "planted failure" in run.data.tags["failure_reason"]
        else:
            assert run.data.tags["engine"] == "stacked" and run.data.tags["members"] == "4"
    assert len(runs) == 8 and sum(r.info.status == "FINISHED" for r in runs) == 2
    out = tmp_path / "report"
    assert report_main([str(path), "--mlruns", str(mlruns), "--out", str(out)]) == 0, capsys.readouterr().err
    md = (out / "report.md").read_text()
    assert "## Ablation trainings that did not finish" in md and "All rows: status = FAILED" in md  # said once
