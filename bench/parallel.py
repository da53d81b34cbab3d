"""Parallel trainings: the same sweep with one worker and with `--workers auto`, side by side.

Each side is the real `sweep.py` on fresh embedded stores, then its report (`report.py`'s entry function, in this
process: only its effects.csv is read, and one process loads the report's libraries once for every side). Columns:
the sweep's wall time, the CPU time of the whole process tree (launcher and workers: `RUSAGE_CHILDREN`), the CPU
utilisation (CPU / wall: 100% is one busy core), the speed-up of wall time over one worker, and whether
`effects.csv` is byte-identical to one worker's (deterministic ops and one thread per training make it so). Sides
run one after the other, alternating over `--rounds`.

    python bench/parallel.py                       # first block of experiments/default.yaml (16 trials), ~11 min
    python bench/parallel.py --trials 32           # the whole default sweep (both blocks), ~22 min
    python bench/parallel.py --tiny                # smoke setting
    python bench/parallel.py --experiment E --keep DIR   # keep each side's stores and report in DIR

On a GPU machine the same command compares one worker with N per GPU (`auto` packs them by free memory).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import ROOT, machine, median, table

TINY = {
    "name": "bench-parallel", "dataset": {"source": "synthetic", "image_size": [16, 16], "samples": 96},
    "search_space": {"depth": [1], "augmentations": {"flip": {"mode": "horizontal"}, "contrast": {"factor": 0.3}}},
    "train": {"epochs": 2, "batch_size": 32, "learning_rate": 0.003}, "trials": 4, "repeats": 1,
    "sampler": "factorial", "stop": "budget", "pruner": "none", "seed": 0,
}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def write_report(experiment: Path, mlruns: Path, out: Path) -> None:
    """`report.py EXPERIMENT --mlruns MLRUNS --out OUT` through its entry function, in this process, from the
    repository root as the sweep ran; what it prints (but TensorFlow's load-time chatter) is kept for a failure's
    message."""
    import contextlib
    import io
    import os

    from augsweep.cli import report_main
    from augsweep.runtime.native import filtered_native_stderr, no_gpu_noise

    said, here = io.StringIO(), Path.cwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said), \
                filtered_native_stderr(no_gpu_noise()):
            code = report_main([str(experiment), "--mlruns", str(mlruns), "--out", str(out)])
    finally:
        os.chdir(here)
    if code != 0:
        raise SystemExit(f"report failed ({code}):\n{said.getvalue()[-3000:]}")


def run_side(experiment: Path, workers: str, trials: int | None, tmp: Path, label: str) -> dict:
    """One sweep and its report on fresh stores: wall, CPU, effects.csv's hash, trainings and images trained."""
    mlruns, out = tmp / f"mlruns-{label}", tmp / f"report-{label}"
    cmd = [sys.executable, str(ROOT / "sweep.py"), str(experiment), "--mlruns", str(mlruns), "--workers", workers]
    if trials:
        cmd += ["--trials", str(trials)]
    cpu0, wall0 = children_cpu(), time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall0, children_cpu() - cpu0
    if run.returncode != 0:
        raise SystemExit(f"sweep with --workers {workers} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    write_report(experiment, mlruns, out)
    n_workers = re.search(r"(\d+) workers on", run.stdout)
    finished = re.findall(r"\[\s*(\d+)/\s*\d+\]", run.stdout)
    return {"wall": wall, "cpu": cpu, "workers": int(n_workers.group(1)) if n_workers else 1,
            "effects": hashlib.sha256((out / "effects.csv").read_bytes()).hexdigest()[:12],
            "trials": max(map(int, finished)) if finished else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="experiments/default.yaml")
    ap.add_argument("--trials", type=int, default=16, help="total trials of each side (default: one block, 16)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="a synthetic 4-trial sweep (smoke test)")
    ap.add_argument("--workers", default="1,auto", help="the sides, comma-separated (default: 1,auto); the first "
                                                        "is the speed-up's baseline")
    ap.add_argument("--keep", type=Path, help="keep each side's stores (mlruns-<round>-<workers>) and report "
                                             "(report-<round>-<workers>) in this folder instead of a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.keep:
            tmp = args.keep.resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        experiment, trials = Path(args.experiment), args.trials
        if args.tiny:
            experiment, trials = tmp / "tiny.yaml", None
            experiment.write_text(yaml.safe_dump(TINY))
        exp = yaml.safe_load(experiment.read_text())
        repeats = int(exp.get("repeats", 1))
        sides = {(f"--workers {w}" if w != "1" else "1 worker"): w for w in args.workers.split(",")}
        results: dict[str, list[dict]] = {k: [] for k in sides}
        for r in range(args.rounds):
            for name, workers in sides.items():
                results[name].append(run_side(experiment, workers, trials, tmp, f"{r}-{workers}"))
    base = median([x["wall"] for x in next(iter(results.values()))])
    same = {x["effects"] for xs in results.values() for x in xs}
    rows = []
    for name, xs in results.items():
        wall, cpu = median([x["wall"] for x in xs]), median([x["cpu"] for x in xs])
        trainings = xs[0]["trials"] * repeats
        rows.append([name, xs[0]["workers"], wall, cpu, f"{100 * cpu / wall:.0f}%", base / wall,
                     f"{60 * trainings / wall:.1f}", xs[0]["effects"]])
    print(f"machine: {machine()}; experiment {args.experiment if not args.tiny else 'tiny synthetic'}; "
          f"{trials or TINY['trials']} trials x {repeats} repeats; {args.rounds} round(s)")
    print(table(["side", "workers", "wall s", "CPU s (all processes)", "CPU utilisation", "speed-up (wall)",
                 "trainings / min", "effects.csv sha256"], rows))
    print(f"effects.csv byte-identical across sides: {'yes' if len(same) == 1 else 'NO'}")
    if len(same) != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
