"""Run or resume an augmentation sweep: `python sweep.py EXPERIMENT.yaml [--trials N] ...`."""

import sys

try:
    from augsweep.cli import script, sweep_main
except KeyboardInterrupt:  # Ctrl-C while the package loads
    sys.exit(130)

if __name__ == "__main__":
    script(sweep_main)
