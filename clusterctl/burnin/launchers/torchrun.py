"""What torchrun says about failed ranks: the "Root Cause (first observed failure)" of its summary.

When one rank dies, torchrun (and srun, with --kill-on-bad-exit) stops the others, so the
rank reports alone show every rank stopping; torchrun's summary names the one that
failed first. A rank killed by a signal we sent is no root cause, so only exits with a
status count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ENTRY = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)", re.MULTILINE)


def root_causes(texts: Iterable[str]) -> dict[int, int]:
    """Global rank → exit status of the first observed failures in torchrun's stderr summaries."""
    found: dict[int, int] = {}
    for text in texts:
        _, marker, tail = text.partition("Root Cause (first observed failure)")
        if not marker:
            continue
        for rank, code in _ENTRY.findall(tail.split("=" * 20)[0]):
            if int(code) > 0:
                found[int(rank)] = int(code)
    return found
