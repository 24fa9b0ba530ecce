"""Checks across nodes that no single block can see: clashing endpoints, rack power, and firmware
images the node's BMC cannot take.

A typo in one pool can make thousands of nodes collide; collisions are reported
once per pair of groups, naming the nodes as a hostlist with one example.
"""

from __future__ import annotations

import stat
from typing import Any

from clusterctl.errors import Problem, SecretError
from clusterctl.inventory.document import Document, position
from clusterctl.inventory.hostlist import fold
from clusterctl.inventory.secrets import SecretRef
from clusterctl.inventory.site import Inventory


def crosscheck(inventory: Inventory, doc: Document) -> tuple[list[Problem], list[Problem]]:
    group_index = {g.get("name"): i for i, g in enumerate(doc.data.get("groups", [])) if isinstance(g, dict)}
    errors = _duplicates(inventory, doc, group_index, "bmc", "BMC endpoint")
    errors += _duplicates(inventory, doc, group_index, "ssh", "SSH endpoint")
    errors += _image_types(inventory, doc)
    return errors, _power(inventory, doc) + _secret_files(inventory, doc)


def _duplicates(
    inventory: Inventory, doc: Document, group_index: dict[Any, int], kind: str, what: str
) -> list[Problem]:
    first: dict[tuple[str | None, int], str] = {}
    clashes: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for node in inventory.nodes.values():
        endpoint = node.bmc if kind == "bmc" else node.ssh
        key = (endpoint.address, endpoint.port)
        earlier = first.setdefault(key, node.name)
        if earlier != node.name:
            pair = (inventory.nodes[earlier].group, node.group)
            clashes.setdefault(pair, []).append((node.name, earlier, endpoint.endpoint))
    problems = []
    for (earlier_group, group), found in clashes.items():
        name, other, shared = found[0]
        line, column = position(doc.tree, ("groups", group_index.get(group, 0)))
        names = fold(n for n, _, _ in found)
        problems.append(
            Problem(
                doc.label,
                line,
                column,
                f"{len(found)} node(s) reuse the {what} of an earlier node: {names} "
                f"(e.g. {name} and {other} are both {shared})",
                key=f"groups[{group_index.get(group, 0)}].{kind}.address",
                hint=f"give each node its own {kind}.address (pool, template or override)"
                + ("" if earlier_group == group else f"; the earlier nodes are in group {earlier_group}"),
            )
        )
    return problems


IDRAC_IMAGE_TYPES = (".exe", ".d7", ".d9", ".pm")
"""What an iDRAC takes by Redfish upload: Windows Dell Update Packages, iDRAC images (d7/d9) and PM
files (Dell's DeviceFirmwareMultipartUploadREDFISH.py says so). A Linux package (.BIN) runs only
inside the host's OS, so the BMC refuses it after the upload, one node at a time."""


def _image_types(inventory: Inventory, doc: Document) -> list[Problem]:
    refused: dict[tuple[str, str], list[str]] = {}
    for node in inventory.nodes.values():
        if node.bmc.vendor != "idrac":
            continue
        for component, target in node.firmware.items():
            name = target.image.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            if not name.lower().endswith(IDRAC_IMAGE_TYPES):
                refused.setdefault((component, target.image), []).append(node.name)
    problems = []
    for (component, image), nodes in refused.items():
        path = _path_to_value(doc.data, "image", image) or ()
        line, column = position(doc.tree, path)
        problems.append(Problem(
            doc.label, line, column,
            f"firmware {component}: an iDRAC cannot take {image.rsplit('/', 1)[-1]!r} "
            f"(nodes {fold(nodes)}): it accepts {', '.join(IDRAC_IMAGE_TYPES)} images",
            key=".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[") or None,
            hint="use the component's Windows Dell Update Package (…_WN64_….EXE), which iDRAC applies "
                 "whatever OS the host runs; a Linux package (.BIN) runs only inside the host"))
    return problems


def _path_to_value(data: Any, key: str, value: str, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where in the document `key: value` is first written (a firmware image sits in defaults, a group
    or an override, and the error points at that line)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, child in items:
        if k == key and child == value:
            return (*path, k)
        found = _path_to_value(child, key, value, (*path, k))
        if found is not None:
            return found
    return None


def _power(inventory: Inventory, doc: Document) -> list[Problem]:
    """Racks of one entry usually share a fate; they are reported together."""
    over: dict[tuple[Any, ...], list[str]] = {}
    for rack in inventory.racks.values():
        draw = sum(inventory.nodes[n].hardware.max_power_w or 0 for n in rack.nodes)
        if rack.power_budget_w is not None and draw > rack.power_budget_w:
            over.setdefault((rack.at, "power_budget_w", draw, rack.power_budget_w), []).append(rack.name)
        if rack.cooling_w is not None and draw > rack.cooling_w:
            over.setdefault((rack.at, "cooling_w", draw, rack.cooling_w), []).append(rack.name)
    warnings = []
    for (at, key, draw, limit), racks in over.items():
        what = "power budget" if key == "power_budget_w" else "cooling capacity"
        warnings.append(
            Problem(
                doc.label,
                at[0],
                at[1],
                f"rack {fold(racks)}: the nodes of each may draw {draw} W, over its {what} of {limit} W",
                severity="warning",
                key=key,
                hint="power-cap the nodes, move nodes out or raise the budget"
                if key == "power_budget_w"
                else None,
            )
        )
    return warnings


def _secret_files(inventory: Inventory, doc: Document) -> list[Problem]:
    """`file:` secrets that exist but that others can read: commands will refuse them, so say it now.

    Files that do not exist yet are fine here (the lab writes its own on `lab up`).
    """
    first_use: dict[SecretRef, str] = {}
    for node in inventory.nodes.values():
        for ref in (node.bmc.password, node.ssh.key):
            if ref is not None and ref.scheme == "file":
                first_use.setdefault(ref, node.source)
    warnings = []
    for ref, source in first_use.items():
        try:
            path = ref.path(inventory.secrets)
            mode = path.stat().st_mode
        except (OSError, SecretError):  # commands that need it say why; a missing file is fine here
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            line = source.rpartition(":")[2]
            warnings.append(
                Problem(
                    doc.label,
                    int(line) if line.isdigit() else None,
                    None,
                    f"{ref}: {path} is readable by others (mode {stat.S_IMODE(mode):o}); commands will refuse it",
                    severity="warning",
                    hint=f"run: chmod 600 {path}",
                )
            )
    return warnings
