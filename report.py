"""Write the effects report of a sweep: `python report.py EXPERIMENT.yaml [--mlruns DIR] [--out DIR]`."""

import sys

try:
    from augsweep.cli import report_main, script
except KeyboardInterrupt:  # Ctrl-C while the package loads
    sys.exit(130)

if __name__ == "__main__":
    script(report_main)
