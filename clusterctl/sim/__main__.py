"""`python -m clusterctl.sim`: the lab process that `clusterctl lab up` starts in the background."""

import sys

from clusterctl.sim.errors import LabError
from clusterctl.sim.fleet import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
