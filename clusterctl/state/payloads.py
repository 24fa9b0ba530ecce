"""Make a value safe to store: secrets masked, everything JSON-able on both backends.

Payloads come from BMC replies, node output and command arguments, any of which can
carry a credential. A key that names a secret loses its whole value; every string
also goes through `log.scrub`, which masks resolved secrets and credential patterns.
NaN and infinities become null: JSON has no spelling for them and PostgreSQL's json
type refuses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from clusterctl.log import MASK, scrub

# Matched at the end of a key, so `bmc_password` and `X-Auth-Token` match but `password_file` does not.
_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|passphrase|secret|token|api[_-]?key|authorization|private[_-]?key|cookie)$"
)


def clean(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {str(k): MASK if _is_secret_key(k, v) else clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(v) for v in value]
    return scrub(str(value))


def clean_text(value: str | None) -> str | None:
    return None if value is None else scrub(value)


def _is_secret_key(key: object, value: object) -> bool:
    """Mask scalar values under a secret-looking key; containers are walked instead."""
    if isinstance(value, bool) or value in (None, ""):
        return False
    return isinstance(value, str | bytes | int) and bool(_SECRET_KEY.search(str(key)))
