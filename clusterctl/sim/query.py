"""`$select` and `$filter` (DSP0266 7.3.4, 7.3.5) as iDRAC9 honours them.

iDRAC9's service root says `SelectQuery` and `FilterQuery` are supported, and Dell's scripts lean
on them (`Systems/System.Embedded.1?$select=PowerState`, `Jobs?$filter=JobState eq 'Scheduled'`).
`$filter` applies to a collection's members: comparisons (`eq ne gt ge lt le`) of a property (a path
with `/`) with a string, number, boolean or null literal, joined by `and`, `or`, `not` and
parentheses. On a single resource it is refused (400), as the spec requires. `$select` keeps the
named properties (paths with `/` select within an object) plus `@odata.id`, `@odata.type`,
`@odata.context` and `@odata.etag`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clusterctl.sim.refusal import ActionError

SELECT = "$select"
FILTER = "$filter"
_TOKEN = re.compile(r"\s*(?:(\()|(\))|('(?:[^']|'')*')|(-?\d+(?:\.\d+)?)\b|([A-Za-z_@][\w@.#/]*))")
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}
_ALWAYS = ("@odata.id", "@odata.type", "@odata.context", "@odata.etag")

Predicate = Callable[[dict[str, Any]], bool]


def _bad(value: str, key: str) -> ActionError:
    return ActionError(
        400,
        "Base.1.12.QueryParameterValueFormatError",
        f"The value '{value}' for the parameter {key} is of a different format than the parameter can accept.",
        args=[value, key],
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _bad(text, FILTER)
        pos = match.end()
        kind = ["(", ")", "str", "num", "word"][match.lastindex - 1]  # type: ignore[operator]
        out.append((kind, match.group(match.lastindex or 0)))
    return out


def parse_filter(text: str) -> Predicate:
    """A predicate over a member's body for a `$filter` expression; a malformed one is a 400."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise _bad(text, FILTER)
        pos += 1
        return tokens[pos - 1]

    def literal() -> Any:
        kind, value = take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "word" and value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        raise _bad(text, FILTER)

    def factor() -> Predicate:
        token = peek()
        if token == ("word", "not"):
            take()
            inner = factor()
            return lambda body: not inner(body)
        if token is not None and token[0] == "(":
            take()
            inner = expr()
            if take()[0] != ")":
                raise _bad(text, FILTER)
            return inner
        kind, prop = take()
        op = take()
        if kind != "word" or op[0] != "word" or op[1] not in _OPS:
            raise _bad(text, FILTER)
        value, compare = literal(), _OPS[op[1]]

        def check(body: dict[str, Any]) -> bool:
            try:
                return bool(compare(_lookup(body, prop), value))
            except TypeError:  # a string compared with a number: no match, as on iDRAC
                return False

        return check

    def joined(word: str, part: Callable[[], Predicate], combine: Callable[[bool, bool], bool]) -> Predicate:
        left = part()
        while peek() == ("word", word):
            take()
            right, before = part(), left
            left = (lambda a, b: lambda body: combine(a(body), b(body)))(before, right)
        return left

    def term() -> Predicate:
        return joined("and", factor, lambda a, b: a and b)

    def expr() -> Predicate:
        return joined("or", term, lambda a, b: a or b)

    predicate = expr()
    if pos != len(tokens):
        raise _bad(text, FILTER)
    return predicate


def _lookup(body: Any, path: str) -> Any:
    for part in path.split("/"):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def filter_members(text: str, members: list[str], read: Callable[[str], dict[str, Any] | None]) -> list[str]:
    """The member URIs whose resources match `text` (each read as a GET of its URI would answer it)."""
    predicate = parse_filter(text)
    kept = []
    for uri in members:
        body = read(uri)
        if body is not None and predicate(body):
            kept.append(uri)
    return kept


def select(body: dict[str, Any], text: str) -> dict[str, Any]:
    """The body cut to the properties `text` names (comma-separated; `/` reaches into an object)."""
    names = [n.strip() for n in text.split(",")]
    if not all(names) or any(n == "*" for n in names[1:]):
        raise _bad(text, SELECT)
    if "*" in names:
        return body
    out = {k: v for k, v in body.items() if k in _ALWAYS}
    for name in names:
        head, _, rest = name.partition("/")
        if head not in body:
            continue
        if rest and isinstance(body[head], dict):
            inner = select(body[head], rest)
            out[head] = {**out.get(head, {}), **{k: v for k, v in inner.items() if k not in _ALWAYS}}
        else:
            out[head] = body[head]
    return out
