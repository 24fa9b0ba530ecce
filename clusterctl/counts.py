"""Counts an operator gives as a number of nodes or a share of them (`5`, `10%`).

`--max-failures` (provision, maintain) and `--max-unavailable` (maintain) read the same way; only
the rounding differs: a failure budget rounds up (10% of 15 nodes tolerates 2 failures), a capacity
budget rounds down (10% of 15 takes out 1 at a time), and neither is ever below one node.
"""

from __future__ import annotations

import math
from typing import Literal


def count_or_share(text: str, total: int, *, rounding: Literal["up", "down"]) -> int:
    """`5` or `10%` of `total` as a count of at least 1; ValueError when it is neither."""
    raw = text.strip()
    if raw.endswith("%"):
        pct = float(raw[:-1])
        if not 0 < pct <= 100:
            raise ValueError(text)
        share = total * pct / 100
        return max(1, math.ceil(share) if rounding == "up" else math.floor(share))
    count = int(raw)
    if count < 1:
        raise ValueError(text)
    return count
