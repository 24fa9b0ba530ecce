"""Reading an inventory file into a YAML tree that remembers where every key and value sits.

Every way a file can be unusable (missing, empty, binary, not UTF-8, bad YAML, not a
mapping) becomes a `Problem` with a position, like a validation error would, so the
user sees one kind of message whatever went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterctl.errors import Problem

_WITH_VALUE = re.compile(r"\s+with value .*$", re.S)


@dataclass
class Document:
    """The parsed file: `tree` keeps ruamel's positions, `data` is plain dicts/lists for pydantic."""

    path: Path
    label: str
    tree: Any
    data: Any


def _yaml():  # noqa: ANN202 - ruamel types are private
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import RoundTripConstructor

    class _Constructor(RoundTripConstructor):
        """Floats keep the text as written: `cuda: 12.10` is version "12.10", not 12.1."""

    def _float_as_text(constructor: RoundTripConstructor, node: Any) -> str:
        return str(constructor.construct_scalar(node))

    _Constructor.add_constructor("tag:yaml.org,2002:float", _float_as_text)
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    return yaml


def _offset_position(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def read_document(path: Path, label: str | None = None) -> tuple[Document | None, list[Problem]]:
    label = label or str(path)

    def problem(message: str, line: int | None = None, column: int | None = None, hint: str | None = None):
        return None, [Problem(label, line, column, message, hint=hint)]

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return problem("file not found")
    except IsADirectoryError:
        return problem("is a directory, expected an inventory YAML file")
    except OSError as exc:
        return problem(f"cannot read the file: {exc.strerror or exc}")
    if b"\x00" in raw:
        line, column = _offset_position(raw, raw.index(b"\x00"))
        return problem("binary data (a NUL byte), expected YAML text", line, column)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _offset_position(raw, exc.start)
        return problem("not UTF-8 text", line, column, hint="save the file as UTF-8")
    if not text.strip() or all(not s.strip() or s.lstrip().startswith("#") for s in text.splitlines()):
        return problem("the file is empty", 1, 1, hint="an inventory starts with 'version: 1' and 'site:'")
    return _parse(path, label, text)


def _parse(path: Path, label: str, text: str) -> tuple[Document | None, list[Problem]]:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        # Only ruamel's description of the problem: its context snippet could quote a secret,
        # and so could the values it names for a duplicate key.
        problem = _WITH_VALUE.sub("", str(exc.problem or exc.context or "cannot parse"))
        message = f"YAML syntax: {problem}"
        return None, [Problem(label, line, column, message.strip())]
    except ReaderError as exc:
        # A character YAML does not allow in a stream (a control character such as DEL): say where.
        before = text[: exc.position] if isinstance(exc.position, int) else ""
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        code = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        return None, [Problem(label, line, column, f"YAML syntax: {code} is not allowed in a YAML file")]
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        return None, [Problem(label, None, None, f"YAML syntax: {type(exc).__name__}")]
    if tree is None:
        return None, [Problem(label, 1, 1, "the file is empty", hint="start with 'version: 1' and 'site:'")]
    if not isinstance(tree, dict):
        kind = "a list" if isinstance(tree, list) else f"a single {type(tree).__name__} value"
        return None, [
            Problem(
                label,
                1,
                1,
                f"expected a mapping at the top level, found {kind}",
                hint="an inventory starts with 'version: 1' and 'site:'",
            )
        ]
    try:
        data = to_plain(tree)
    except _TooLarge as exc:
        return None, [Problem(label, 1, 1, str(exc))]
    return Document(path, label, tree, data), []


MAX_VALUES = 1_000_000


class _TooLarge(ValueError):
    """Aliases that expand without bound (a YAML 'billion laughs') or refer to themselves."""


def to_plain(node: Any) -> Any:
    """ruamel's commented containers and scalar subclasses as plain Python values."""
    budget = [MAX_VALUES]
    return _plain(node, budget, set())


def _plain(node: Any, budget: list[int], path: set[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(f"the file expands to more than {MAX_VALUES} values (aliases nested too deep?)")
    if isinstance(node, dict | list | tuple):
        if id(node) in path:
            raise _TooLarge("an alias refers to a mapping or list that contains it")
        path.add(id(node))
        try:
            if isinstance(node, dict):
                return {_key(k): _plain(v, budget, path) for k, v in node.items()}
            return [_plain(v, budget, path) for v in node]
        finally:
            path.discard(id(node))
    return _scalar(node)


def _key(key: Any) -> Any:
    return _scalar(key) if isinstance(key, str | int | bool) else str(key)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def position(tree: Any, loc: tuple[Any, ...], *, key: bool = False) -> tuple[int | None, int | None]:
    """1-based line and column of what `loc` names, else of its nearest existing parent.

    A scalar points at its value; a mapping or list (and, with `key`, the last step)
    points at its key, which is the line a person looks for.
    """
    line, column = _own(tree)
    node = tree
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and step in node:
            child = node[step]
            use_key = (key and last) or isinstance(child, dict | list)
            found = _lc(node, "key" if use_key else "value", step)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            child = node[step]
            found = _lc(node, "item", step)
        else:
            break
        if found:
            line, column = found
        node = child
    return line, column


def _lc(node: Any, kind: str, step: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        line, column = getattr(lc, kind)(step)
    except (KeyError, TypeError, AttributeError, IndexError):
        return None
    if line is None or column is None:
        return None
    return line + 1, column + 1


def _own(node: Any) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    return lc.line + 1, lc.col + 1
