"""Run or resume an augmentation sweep: `python sweep.py EXPERIMENT.yaml [--trials N] ...`."""

import sys

from augsweep.cli import sweep_main

if __name__ == "__main__":
    sys.exit(sweep_main())
