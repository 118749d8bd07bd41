"""`python -m annealbench`: the `annealbench` command (`annealbench.cli`)."""

import sys

from annealbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
