"""Write the effects report of a sweep: `python report.py EXPERIMENT.yaml [--mlruns DIR] [--out DIR]`."""

import sys

from augsweep.cli import report_main

if __name__ == "__main__":
    sys.exit(report_main())
