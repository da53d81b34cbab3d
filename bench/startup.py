"""Start-up time of `python sweep.py --help` against bare `python -c pass` and `import tensorflow`,
each a fresh process, alternating round by round.

    python bench/startup.py            # ~1 minute
    python bench/startup.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import _common
from _common import alternate, machine, median, rounds_text, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    rounds = 1 if args.tiny else args.rounds
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def process(*cmd):
        def run():
            subprocess.run([sys.executable, *cmd], cwd=_common.ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return run

    fns = {
        "python -c pass": process("-c", "pass"),
        "sweep.py --help": process("sweep.py", "--help"),
        "report.py --help": process("report.py", "--help"),
        "python -c 'import keras' (TF backend)": process("-c", "import keras"),
    }
    times = alternate(fns, rounds)
    base = median(times["python -c pass"])
    rows = [[k, f"{median(v):.3f}", f"{median(v) / base:.2f}", rounds_text(v, "{:.3f}")] for k, v in times.items()]
    print(f"start-up, fresh process each, {rounds} alternating rounds; {machine()}")
    print(table(["command", "median s", "ratio to python -c pass", "rounds (s)"], rows))
    print(f"sweep.py --help median: {median(times['sweep.py --help']):.3f} s (target < 1.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
