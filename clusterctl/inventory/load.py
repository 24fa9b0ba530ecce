"""Load an inventory: read, validate every block, expand, cross-check; report every error at once.

Validation runs in layers so one broken block does not hide the others: the
document shape, then each block of node settings alone (unknown keys, inline
secrets, bad digests), then the merged nodes, then checks across nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clusterctl.errors import InventoryError, Problem, SecretError
from clusterctl.inventory import untrusted
from clusterctl.inventory.crosscheck import crosscheck
from clusterctl.inventory.document import Document, position, read_document
from clusterctl.inventory.expand import build, group_layer
from clusterctl.inventory.models import InventoryDoc, NodeSettings
from clusterctl.inventory.secrets import SecretPolicy, SecretRef
from clusterctl.inventory.site import Inventory
from clusterctl.inventory.validation import did_you_mean, dotted, validate


def check_inventory(path: str | Path) -> tuple[Inventory | None, list[Problem], list[Problem]]:
    """(inventory or None, errors, warnings) — for `inventory check`, which shows all three."""
    path = Path(path)
    doc, errors = read_document(path)
    if doc is None:
        return None, errors, []
    spec, errors = validate(InventoryDoc, doc.data, doc)
    errors = _unique(untrusted.scan(doc) + errors + _check_layers(doc))
    if spec is None or errors:
        return None, _ordered(errors), []
    policy, errors = _secret_policy(doc, spec)
    if policy is None or errors:
        return None, _ordered(errors), []
    inventory, errors = build(doc, spec, policy)
    cross_errors, warnings = crosscheck(inventory, doc)
    errors = _ordered(_unique(errors + cross_errors))
    inventory.warnings = warnings
    return (None if errors else inventory), errors, warnings


def load_inventory(path: str | Path) -> Inventory:
    """The inventory, or InventoryError listing every problem (and the warnings)."""
    inventory, errors, warnings = check_inventory(path)
    if inventory is None:
        raise InventoryError(problems=errors, warnings=warnings)
    return inventory


def _layers(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every block of node settings in the file, with where it sits."""
    found: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    if isinstance(data.get("defaults"), dict):
        found.append((("defaults",), data["defaults"]))
    for hi, hall in _items(data.get("halls")):
        for ri, row in _items(hall.get("rows")):
            for ki, rack in _items(row.get("racks")):
                if isinstance(rack.get("defaults"), dict):
                    found.append((("halls", hi, "rows", ri, "racks", ki, "defaults"), rack["defaults"]))
    for gi, group in _items(data.get("groups")):
        found.append((("groups", gi), group_layer(group)))
        overrides = group.get("overrides")
        if isinstance(overrides, dict):
            for pattern, layer in overrides.items():
                if isinstance(layer, dict):
                    found.append((("groups", gi, "overrides", pattern), layer))
    return found


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


def _check_layers(doc: Document) -> list[Problem]:
    profiles = doc.data.get("bios_profiles")
    known = list(profiles) if isinstance(profiles, dict) else []
    problems: list[Problem] = []
    for loc, layer in _layers(doc.data):
        _, found = validate(NodeSettings, layer, doc, loc, partial=True)
        problems += found
        name = layer.get("bios_profile")
        if isinstance(name, str) and name not in known:
            line, column = position(doc.tree, (*loc, "bios_profile"))
            hint = did_you_mean(name, known) if known else "declare it under bios_profiles"
            problems.append(
                Problem(
                    doc.label,
                    line,
                    column,
                    f"unknown BIOS profile '{name}'",
                    key=dotted((*loc, "bios_profile")),
                    hint=hint,
                )
            )
    return problems


def _secret_policy(doc: Document, spec: InventoryDoc) -> tuple[SecretPolicy | None, list[Problem]]:
    """The site's secret policy, and a Problem at every reference it forbids."""
    try:
        policy = SecretPolicy.for_site(spec.site.secrets_dir, spec.site.secret_env_prefix, doc.path.parent)
    except SecretError as exc:
        line, column = position(doc.tree, ("site", "secrets_dir"))
        return None, [Problem(doc.label, line, column, str(exc), key="site")]
    problems = []
    for loc, layer in _layers(doc.data):
        for section, key in (("bmc", "password"), ("ssh", "key")):
            block = layer.get(section)
            value = block.get(key) if isinstance(block, dict) else None
            if not isinstance(value, str):
                continue
            refused = policy.refusal(SecretRef.parse(value))
            if refused:
                line, column = position(doc.tree, (*loc, section, key))
                problems.append(Problem(doc.label, line, column, refused[0], key=dotted((*loc, section, key)),
                                        hint=refused[1]))
    return policy, problems


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        seen.setdefault((p.line, p.column, p.key) if p.key else (p.line, p.column, p.message), p)
    return list(seen.values())


def _ordered(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
