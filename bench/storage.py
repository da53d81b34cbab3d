"""Pure bookkeeping of a shared study: trials/s with SQLite (lock file) vs PostgreSQL (advisory lock).

Both sides run the same harness (`tests/cluster.py:storage_load`): W worker threads, each its own
database client (Optuna storage, study, start lock), through augsweep's real start loop
(`runs.sweep.optimize`: budget lock, dead-worker reaping, count-then-start, Optuna heartbeat) with
an objective that only sleeps 5 ms. No training, no MLflow. Rounds alternate SQLite and PostgreSQL
(a fresh database each round) on one real PostgreSQL server started for the run (fsync off, as
the tests run it; a production server with fsync on pays one disk flush per commit more).

    python bench/storage.py                 # 32 workers x 500 trials, 2 rounds each: ~2 minutes on 2 cores
    python bench/storage.py --tiny          # smoke setting
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import _common  # noqa: F401 - puts the repository root on sys.path (tests.cluster)
from _common import machine, median, rounds_text, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.workers, args.trials, args.rounds = 4, 30, 1

    from tests.cluster import postgres_available, start_servers, storage_load

    if not postgres_available():
        print("error: PostgreSQL is not installed (make cluster-up installs it)", file=sys.stderr)
        return 2
    servers = start_servers(mlflow=False)
    rates: dict[str, list[float]] = {"SQLite": [], "PostgreSQL": []}
    try:
        for r in range(args.rounds):
            for side in rates:
                if side == "SQLite":
                    url = f"sqlite:///{tempfile.mkdtemp(prefix='augsweep-bench-')}/optuna.db"
                else:
                    url = servers.database("bench")
                seconds, errors, study = storage_load(url, args.workers, args.trials, name=f"bench{r}")
                done = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
                if errors or done != args.trials or len(study.trials) != args.trials:
                    print(f"error: {side}: {done}/{args.trials} complete, {len(study.trials)} trials, "
                          f"errors {errors[:3]}", file=sys.stderr)
                    return 1
                rates[side].append(args.trials / seconds)
                print(f"round {r} {side}: {args.trials / seconds:.1f} trials/s", flush=True)
    finally:
        servers.stop()
    rows = [[side, median(v), rounds_text(v, "{:.1f}")] for side, v in rates.items()]
    print(f"\n{machine()}; {args.workers} workers x {args.trials} trials, objective sleeps 5 ms; "
          f"{time.strftime('%Y-%m-%d')}")
    print(table(["storage", "trials/s (median)", "rounds"], rows))
    print(f"PostgreSQL / SQLite: {median(rates['PostgreSQL']) / median(rates['SQLite']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
