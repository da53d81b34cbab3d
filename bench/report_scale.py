"""Report time of large studies: `report.py` in a fresh process on a 1,000-trial and a default-sized study.

The studies are built without training (`tests/synthetic.py`), in the layout a sweep writes: a real Optuna
SQLite study of the default experiment's factorial design and a real MLflow SQLite store written through
augsweep's `Tracker` (per trial: params, tags, `repeat<r>/<metric>` and mean curves per epoch, summary
metrics, `history.csv`), with seeded synthetic curves. Then `python report.py EXPERIMENT --mlruns DIR --out
DIR` runs as a user runs it, in a fresh process, round after round: wall time, and CPU time of the process
(user + system, far less sensitive than wall time to other people's jobs on the same cores). With `--baseline
CHECKOUT` the report.py of another checkout (e.g. `git worktree add /tmp/old COMMIT`) runs alternately on the
same stores; the files every run writes must be byte-identical, across rounds and checkouts.

    python bench/report_scale.py                          # 1,000 + 16 trials: ~4 minutes to build on 2 cores
    python bench/report_scale.py --keep /tmp/scale        # build once into /tmp/scale, reuse it next time
    python bench/report_scale.py --keep /tmp/scale --baseline /tmp/old
    python bench/report_scale.py --tiny                   # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - puts the repository root on sys.path (tests.synthetic)
from _common import ROOT, machine, median, rounds_text, table

OUTPUTS = ("report.md", "report.html", "effects.csv", "effects_forest.png", "curves_by_augmentation.png",
           "train_vs_val.png", "optimization_history.png")


def report(checkout: Path, path: Path, mlruns: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `python report.py` of `checkout`, in a fresh process, as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(checkout / "report.py"), str(path), "--mlruns", str(mlruns),
                           "--out", str(out)], cwd=checkout, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"report.py of {checkout} failed:\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def differing(a: Path, b: Path) -> list[str]:
    """The report files that are not byte-identical (or missing) between two output folders."""
    return [n for n in OUTPUTS if not (a / n).exists() or not (b / n).exists()
            or (a / n).read_bytes() != (b / n).read_bytes()]


def run(root: Path, studies: dict[str, int], sides: dict[str, Path], args, rows: list[list]) -> int:
    """Build (or reuse) each study under `root`, time every side's report.py on it, check the bytes; rows."""
    from tests.synthetic import build_study

    for label, trials in studies.items():
        folder = root / f"t{trials}-r4-e{args.epochs}"
        path = folder / f"scale{trials}.yaml"
        if not (folder / "mlruns" / "mlflow.db").exists() or not path.exists():
            start = time.perf_counter()
            path = build_study(folder, f"scale{trials}", trials, 4, args.epochs)
            print(f"built {label} in {time.perf_counter() - start:.1f} s: {folder}", flush=True)
        wall: dict[str, list[float]] = {s: [] for s in sides}
        cpu: dict[str, list[float]] = {s: [] for s in sides}
        for r in range(args.rounds):
            for side, checkout in sides.items():
                w, c = report(checkout, path, folder / "mlruns", folder / f"report-{side.replace(' ', '-')}-{r}")
                wall[side].append(w)
                cpu[side].append(c)
                print(f"round {r} {label}, {side}: {w:.2f} s wall, {c:.2f} s CPU", flush=True)
        first = folder / "report-this-checkout-0"
        for side in sides:
            for r in range(args.rounds):
                bad = differing(first, folder / f"report-{side.replace(' ', '-')}-{r}")
                if bad:
                    print(f"error: {label}: round {r} of {side} wrote different files: {bad}", file=sys.stderr)
                    return 1
        rows += [[label, side, median(wall[side]), median(cpu[side]), rounds_text(wall[side]),
                  rounds_text(cpu[side])] for side in sides]
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000, help="trials of the large study")
    p.add_argument("--epochs", type=int, default=60, help="epochs per repeat (the default experiment's)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keep", type=Path, help="build the stores here once and reuse them (default: a temp folder)")
    p.add_argument("--baseline", type=Path, help="another checkout whose report.py runs alternately (before/after)")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.trials, args.epochs, args.rounds = 16, 4, 1  # the default study's size: two blocks of 8 runs

    studies = {"default (16 trials x 4 repeats)": 16, f"large ({args.trials} trials x 4 repeats)": args.trials}
    if args.tiny:  # the smoke run builds and reports one small study
        studies = {f"tiny ({args.trials} trials x 4 repeats)": args.trials}
    sides = {"this checkout": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    rows: list[list] = []
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="augsweep-") as root:
        code = run(Path(root).resolve(), studies, sides, args, rows)
    if code:
        return code
    print(f"\n{machine()}; {args.epochs} epochs per repeat; load average {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d')}")
    print(table(["study", "report.py of", "wall s (median)", "CPU s (median)", "wall rounds s", "CPU rounds s"],
                rows))
    print("files byte-identical across rounds" + (" and checkouts" if args.baseline else "") + ": "
          + ", ".join(OUTPUTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
