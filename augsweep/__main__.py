"""`python -m augsweep VERB ARGS`: the `augsweep` command (`augsweep --help` lists the verbs)."""

import sys

try:
    from augsweep.cli import main, script
except KeyboardInterrupt:  # Ctrl-C while the package loads
    sys.exit(130)

if __name__ == "__main__":
    script(main)
