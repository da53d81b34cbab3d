"""Start-up time of `python sweep.py --help` against bare `python -c pass` and `import tensorflow`,
each a fresh process, alternating round by round.

    python bench/startup.py            # ~1 minute
    python bench/startup.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

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
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([sys.executable, *cmd], cwd=_common.ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return run

    fns = {
        "python -c pass": process("-c", "pass"),
        "sweep.py --help": process("sweep.py", "--help"),
        "report.py --help": process("report.py", "--help"),
        "python -c 'import keras' (TF backend)": process("-c", "import keras"),
    }
    wall, cpu = alternate(fns, rounds)
    base = median(wall["python -c pass"])
    rows = [[k, f"{median(v):.3f}", f"{median(v) / base:.2f}", f"{median(cpu[k]):.3f}", rounds_text(v, "{:.3f}")]
            for k, v in wall.items()]
    print(f"start-up, fresh process each, {rounds} alternating rounds; {machine()}")
    print(table(["command", "wall s (median)", "ratio to python -c pass", "CPU s (median)", "wall s per round"], rows))
    print(f"sweep.py --help median: {median(wall['sweep.py --help']):.3f} s wall (target < 1.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
