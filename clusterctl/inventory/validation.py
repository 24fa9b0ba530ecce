"""pydantic errors as `Problem`s: file:line:col, the key, what was expected, a did-you-mean hint.

pydantic reports a location path (`('groups', 0, 'bmc', 'pasword')`); the YAML tree
turns it into a line and column, and the model itself lists the keys that would
have been accepted, which is where the hint comes from. Input values are never
copied into a message: the value could be a pasted password.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from clusterctl.errors import Problem
from clusterctl.inventory.document import Document, position

_LAYER_GAPS = frozenset({"missing"})


def validate(
    model: type[BaseModel], data: Any, doc: Document, prefix: tuple[Any, ...] = (), *, partial: bool = False
) -> tuple[Any, list[Problem]]:
    """Validate `data` (found at `prefix` in the file); `partial` ignores keys a later layer may add."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        ignore = _LAYER_GAPS if partial else frozenset()
        return None, problems_from(exc, model, doc, prefix, ignore)


def problems_from(
    exc: ValidationError,
    model: type[BaseModel],
    doc: Document,
    prefix: tuple[Any, ...],
    ignore: frozenset[str],
) -> list[Problem]:
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        if err["type"] in ignore:
            continue
        loc = _real_loc(doc.data, prefix, tuple(err["loc"]), err["type"])
        grouped.setdefault(loc, []).append(err)
    problems = []
    for loc, errs in grouped.items():
        problems.append(_problem(model, doc, prefix, loc, errs))
    return problems


def _real_loc(data: Any, prefix: tuple[Any, ...], loc: tuple[Any, ...], kind: str) -> tuple[Any, ...]:
    """Drop the steps pydantic adds for union members and validators: they are not in the file."""
    node = _at(data, prefix)
    kept: list[Any] = []
    for i, step in enumerate(loc):
        if _has(node, step):
            node = node[step]
            kept.append(step)
        elif i == len(loc) - 1 and kind == "missing" and isinstance(step, str):
            kept.append(step)
    return prefix + tuple(kept)


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _at(data: Any, loc: tuple[Any, ...]) -> Any:
    for step in loc:
        data = data[step]
    return data


def _problem(
    model: type[BaseModel], doc: Document, prefix: tuple[Any, ...], loc: tuple[Any, ...], errs: list[Any]
) -> Problem:
    kind = errs[0]["type"]
    key = dotted(loc)
    hint = None
    if kind == "missing":
        line, column = position(doc.tree, loc[:-1])
        message = f"required key '{loc[-1]}' is missing"
    elif kind == "extra_forbidden":
        line, column = position(doc.tree, loc, key=True)
        message = "unknown key"
        hint = did_you_mean(str(loc[-1]), keys_at(model, loc[len(prefix) : -1]))
    else:
        line, column = position(doc.tree, loc)
        messages = list(dict.fromkeys(_message(e) for e in errs))
        message = messages[0] if len(messages) == 1 else "expected one of: " + "; ".join(messages)
        if kind == "inline_secret":
            name = f"CLUSTERCTL_{_env_name(loc)}"
            hint = f"for example env:{name}, with {name} exported before running"
    return Problem(doc.label, line, column, message, key=key or None, hint=hint)


def _message(err: dict[str, Any]) -> str:
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _env_name(loc: tuple[Any, ...]) -> str:
    words = [str(s) for s in loc[-2:] if isinstance(s, str)]
    return "_".join(words).upper().replace("-", "_").replace(".", "_") or "SECRET"


def dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += ("." if text else "") + str(step)
    return text


def did_you_mean(word: str, choices: list[str] | None) -> str | None:
    if not choices:
        return None
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(choices)


def keys_at(model: type[BaseModel], steps: tuple[Any, ...]) -> list[str] | None:
    """The keys the model accepts at `steps`, found by walking its field annotations."""
    tp: Any = model
    for step in steps:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(step) if isinstance(step, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if inner is not type(None):
                return inner
    return tp
