"""The rules every string of an inventory obeys, whatever key it sits under.

An inventory arrives from a pull request, an asset database or a spreadsheet, and its strings
travel on into Ansible variables, sbatch scripts, Kubernetes manifests and command lines. Each
key's own type says which characters it takes (models.py); this pass is the floor under all of
them, keys included, so that a key the models do not yet know cannot carry a payload either:

- no control characters (a newline turns one `#SBATCH` line into two shell lines), except a
  newline or tab in a `description`, which only people read;
- no template delimiters `{{`, `{%`, `{#`: Ansible renders any string it is given as a Jinja
  template (https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_advanced_syntax.html#unsafe-or-raw-strings),
  so `driver: "{{ lookup('pipe', 'id') }}"` would run on the controller;
- a bounded length.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

from clusterctl.errors import Problem
from clusterctl.inventory.document import Document, position
from clusterctl.inventory.validation import dotted

MAX_LENGTH = 4096
TEMPLATE_MARKS = ("{{", "{%", "{#")
_PROSE_KEYS = frozenset({"description"})
_PROSE_CONTROLS = frozenset("\n\t")


def why_unsafe(text: str, *, prose: bool = False) -> str | None:
    """Why `text` may not appear in an inventory, or None."""
    if len(text) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    allowed = _PROSE_CONTROLS if prose else frozenset()
    for char in text:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return f"contains the control character U+{ord(char):04X}"
    for mark in TEMPLATE_MARKS:
        if mark in text:
            return f"contains the template marker '{mark}', which Ansible would run"
    return None


def scan(doc: Document) -> list[Problem]:
    """A Problem, with its position, for every key or string value that breaks the rules above."""
    problems = []
    for loc, text, is_key in _strings(doc.data, ()):
        why = why_unsafe(text, prose=not is_key and bool(loc) and loc[-1] in _PROSE_KEYS)
        if why:
            line, column = position(doc.tree, loc, key=is_key)
            what = "key" if is_key else "value"
            problems.append(
                Problem(doc.label, line, column, f"the {what} {why}", key=dotted(loc) or None,
                        hint="inventory values are data: remove it")
            )
    return problems


def _strings(node: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str, bool]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                yield (*loc, key), key, True
            yield from _strings(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*loc, index))
    elif isinstance(node, str):
        yield loc, node, False
