"""Make a value safe to store: secrets masked, everything JSON-able on both backends.

Payloads come from BMC replies, node output and command arguments, any of which can
carry a credential. A key that names a secret loses its whole value; every string
also goes through `log.scrub`, which masks resolved secrets and credential patterns.
NaN and infinities become null: JSON has no spelling for them and PostgreSQL's json
type refuses them.

Bulk writes (hundreds of thousands of telemetry samples) repeat the same few keys,
strings and label dicts on every row, so a `Cleaner` lives for one batch and cleans
each distinct string, key and shared container once; plain numbers skip all work.
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


class Cleaner:
    """`clean` for one batch of rows; it remembers what it cleaned, so keep one per batch, not longer.

    A secret registered with `log.redact` after the cleaner met a string is not applied to
    that string again: a batch is cleaned against one snapshot of the known secrets.
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._secret_keys: dict[object, bool] = {}
        # The key tuples of dicts already met -> whether every key is a str that names no secret.
        self._plain_shapes: dict[tuple[object, ...], bool] = {}
        # id -> (the original, kept alive so its id cannot be reused; its cleaned copy)
        self._containers: dict[int, tuple[object, Any]] = {}

    def __call__(self, value: Any) -> Any:
        if value is None or type(value) is int or type(value) is bool:
            return value
        if type(value) is float:
            return value if math.isfinite(value) else None
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            seen = self._containers.get(id(value))
            if seen is not None and seen[0] is value:
                return seen[1]
            cleaned = self._container(value)
            self._containers[id(value)] = (value, cleaned)
            return cleaned
        if isinstance(value, int):  # int subclasses (IntEnum) are stored as numbers, as before
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        return self.text(str(value))

    def text(self, value: str) -> str:
        cleaned = self._texts.get(value)
        if cleaned is None:
            cleaned = self._texts[value] = scrub(value)
        return cleaned

    def optional_text(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def _container(self, value: Any) -> Any:
        if type(value) is dict and self._is_plain(value):
            return value
        if isinstance(value, Mapping):
            return {str(k): MASK if self._is_secret_key(k, v) else self(v) for k, v in value.items()}
        return [self(v) for v in value]

    def _is_plain(self, value: dict[Any, Any]) -> bool:
        """The fast path for labels such as {"rank": 3, "step": 120}: nothing to mask, nothing to convert."""
        shape = tuple(value)
        plain = self._plain_shapes.get(shape)
        if plain is None:
            plain = self._plain_shapes[shape] = all(type(k) is str and not _SECRET_KEY.search(k) for k in shape)
        return plain and all(
            v is None or type(v) is int or type(v) is bool or (type(v) is float and math.isfinite(v))
            for v in value.values()
        )

    def _is_secret_key(self, key: object, value: object) -> bool:
        """Mask scalar values under a secret-looking key; containers are walked instead."""
        if isinstance(value, bool) or value is None or value == "" or not isinstance(value, str | bytes | int):
            return False
        secret = self._secret_keys.get(key)
        if secret is None:
            secret = self._secret_keys[key] = bool(_SECRET_KEY.search(str(key)))
        return secret


def clean(value: Any) -> Any:
    return Cleaner()(value)


def clean_text(value: str | None) -> str | None:
    return None if value is None else scrub(value)
