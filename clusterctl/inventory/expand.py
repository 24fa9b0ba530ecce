"""From validated blocks to nodes: expand hostlists, place nodes in racks, merge the layers.

Layers merge as Ansible group_vars do (site defaults → group → rack `defaults` →
node overrides, mappings deeply). Nodes that share the same layers share one
validated `NodeSettings`, so a 12,500-node group costs a handful of validations;
only addresses are computed per node. A setting missing for many nodes is one
error naming them as a hostlist, never one error per node.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from pydantic import ValidationError

from clusterctl.errors import Problem
from clusterctl.inventory.document import Document, position
from clusterctl.inventory.hostlist import HostlistError, expand, fold
from clusterctl.inventory.models import LAYER_KEYS, InventoryDoc, NodeSettings, is_host
from clusterctl.inventory.secrets import SecretPolicy
from clusterctl.inventory.site import Inventory, Node, Rack
from clusterctl.inventory.validation import did_you_mean, dotted

_EMPTY: dict[str, Any] = {}
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = value
    return out


def group_layer(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k in LAYER_KEYS and v is not None}


@dataclass
class _Merged:
    settings: NodeSettings | None
    bios: dict[str, Any]
    firmware: dict[str, Any]
    # Whether the node layer set the address itself (then the pool slot is still used, so
    # one overridden node does not shift the addresses of all that follow it).
    override_address: dict[str, bool]
    errors: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass
class _Failures:
    """Errors that many nodes share, gathered so each is reported once with a hostlist."""

    nodes: dict[tuple[int, str, str, str | None], list[str]] = field(default_factory=dict)

    def add(self, group: int, key: str, message: str, node: str, hint: str | None = None) -> None:
        self.nodes.setdefault((group, key, message, hint), []).append(node)


@dataclass
class Builder:
    doc: Document
    spec: InventoryDoc
    secrets: SecretPolicy
    errors: list[Problem] = field(default_factory=list)
    racks: dict[str, Rack] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    failures: _Failures = field(default_factory=_Failures)
    pools: dict[tuple[str, Any], int] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)

    def problem(
        self, loc: tuple[Any, ...], message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        line, column = position(self.doc.tree, loc, key=key)
        self.errors.append(Problem(self.doc.label, line, column, message, key=dotted(loc), hint=hint))

    def source(self, loc: tuple[Any, ...]) -> str:
        line, _ = position(self.doc.tree, loc)
        return f"{self.doc.label}:{line}"

    # racks -----------------------------------------------------------------------------------
    def build_racks(self) -> None:
        data = self.doc.data
        for hi, hall in enumerate(self.spec.halls):
            for ri, row in enumerate(hall.rows):
                for ki, rack in enumerate(row.racks):
                    loc = ("halls", hi, "rows", ri, "racks", ki)
                    try:
                        names = expand(rack.name)
                    except HostlistError as exc:
                        self.problem((*loc, "name"), str(exc))
                        continue
                    defaults = data["halls"][hi]["rows"][ri]["racks"][ki].get("defaults") or _EMPTY
                    source = self.source(loc)
                    at = position(self.doc.tree, loc)
                    for name in names:
                        if name in self.racks:
                            self.problem((*loc, "name"), f"rack {name} is declared twice")
                            continue
                        self.racks[name] = Rack(
                            name,
                            hall.name,
                            row.name,
                            rack.power_budget_w,
                            rack.cooling_w,
                            rack.max_rebooting,
                            source,
                            defaults,
                            at=at,
                        )

    # groups ----------------------------------------------------------------------------------
    def build_groups(self) -> None:
        defaults = self.doc.data.get("defaults") or _EMPTY
        for gi, group in enumerate(self.spec.groups):
            loc = ("groups", gi)
            if group.name in self.groups:
                self.problem((*loc, "name"), f"group {group.name} is declared twice")
                continue
            try:
                names = expand(group.nodes)
            except HostlistError as exc:
                self.problem((*loc, "nodes"), str(exc))
                continue
            placement = self._placement(gi, names)
            overrides = self._overrides(gi, set(names))
            if placement is None or overrides is None:
                continue
            self.groups[group.name] = []
            raw = self.doc.data["groups"][gi]
            self._nodes(gi, names, placement, overrides, defaults, group_layer(raw))

    def _placement(self, gi: int, names: list[str]) -> list[str] | None:
        group = self.spec.groups[gi]
        key = "rack" if group.rack else "racks"
        try:
            rack_names = [group.rack] if group.rack else expand(group.racks or "")
        except HostlistError as exc:
            self.problem(("groups", gi, key), str(exc))
            return None
        unknown = [r for r in rack_names if r not in self.racks]
        if unknown:
            hint = did_you_mean(unknown[0], list(self.racks)) if len(unknown) == 1 else None
            if hint and hint.startswith("expected one of"):
                hint = None
            self.problem(("groups", gi, key), f"unknown rack {fold(unknown)}: not declared under halls", hint)
            return None
        per_rack = len(names) if group.rack else (group.per_rack or math.ceil(len(names) / len(rack_names)))
        if len(names) > per_rack * len(rack_names):
            self.problem(
                ("groups", gi, "per_rack"),
                f"{len(names)} nodes do not fit in {len(rack_names)} racks at {per_rack} per rack",
                "add racks or raise per_rack",
            )
            return None
        return [rack_names[i // per_rack] for i in range(len(names))]

    def _overrides(self, gi: int, members: set[str]) -> dict[str, list[int]] | None:
        group = self.spec.groups[gi]
        by_node: dict[str, list[int]] = {}
        ok = True
        for oi, pattern in enumerate(group.overrides):
            loc = ("groups", gi, "overrides", pattern)
            try:
                names = expand(pattern)
            except HostlistError as exc:
                self.problem(loc, str(exc), key=True)
                ok = False
                continue
            strangers = [n for n in names if n not in members]
            if strangers:
                self.problem(
                    loc, f"overrides nodes that are not in group {group.name}: {fold(strangers)}", key=True
                )
                ok = False
            for name in names:
                by_node.setdefault(name, []).append(oi)
        return by_node if ok else None

    def _nodes(
        self,
        gi: int,
        names: list[str],
        placement: list[str],
        overrides: dict[str, list[int]],
        defaults: dict[str, Any],
        layer: dict[str, Any],
    ) -> None:
        group = self.spec.groups[gi]
        override_layers = list(self.doc.data["groups"][gi].get("overrides", {}).values())
        cache: dict[tuple[int, tuple[int, ...]], _Merged] = {}
        source = self.source(("groups", gi, "nodes"))
        duplicates: dict[str, list[str]] = {}
        for index, name in enumerate(names):
            rack = self.racks[placement[index]]
            if name in self.owner:
                duplicates.setdefault(self.owner[name], []).append(name)
                continue
            picks = tuple(overrides.get(name, ()))
            merged = cache.get((id(rack.defaults), picks))
            if merged is None:
                merged = self._merge(gi, defaults, layer, rack.defaults, [override_layers[i] for i in picks])
                cache[(id(rack.defaults), picks)] = merged
            if merged.settings is None:
                for key, message, hint in merged.errors:
                    self.failures.add(gi, key, message, name, hint)
                continue
            slot = len(rack.nodes) + 1
            fields = {"name": name, "index": index, "rack": rack.name, "slot": slot, "n": _number(name)}
            bmc_address = self._address(gi, "bmc", merged, fields)
            ssh_address = self._address(gi, "ssh", merged, fields)
            if bmc_address is None or ssh_address is None:
                continue
            s = merged.settings
            node = Node(
                name,
                group.name,
                s.role,
                rack.name,
                rack.hall,
                rack.row,
                index,
                slot,
                s.bmc.model_copy(update={"address": bmc_address}),
                s.ssh.model_copy(update={"address": ssh_address}),
                s.hardware,
                merged.firmware,
                s.bios_profile,
                merged.bios,
                s.software,
                s.scheduler,
                source,
            )
            self.nodes[name] = node
            self.owner[name] = group.name
            rack.nodes.append(name)
            self.groups[group.name].append(name)
        for other, dupes in duplicates.items():
            self.problem(
                ("groups", gi, "nodes"),
                f"node names already defined by group {other}: {fold(dupes)}",
                "each node belongs to exactly one group",
            )

    def _merge(
        self,
        gi: int,
        defaults: dict[str, Any],
        layer: dict[str, Any],
        rack: Mapping[str, Any],
        overrides: list[dict[str, Any]],
    ) -> _Merged:
        merged = deep_merge(defaults, layer, rack, *overrides)
        try:
            settings = NodeSettings.model_validate(merged)
        except ValidationError as exc:
            errors = []
            for err in exc.errors(include_url=False, include_input=False):
                key = dotted(tuple(s for s in err["loc"] if isinstance(s, str | int)))
                if err["type"] == "missing":
                    message = f"required setting {key} is not set"
                    hint = "set it in defaults, the group, the rack's defaults or the group's overrides"
                else:
                    message = f"{key}: {err['msg']}"
                    hint = None
                errors.append((key, message, hint))
            return _Merged(None, {}, {}, {}, list(dict.fromkeys(errors)))
        profile = self.spec.bios_profiles.get(settings.bios_profile) if settings.bios_profile else None
        bios = {**(profile.attributes if profile else {}), **settings.bios}
        from_override = {
            kind: any(isinstance(o.get(kind), dict) and "address" in o[kind] for o in overrides)
            for kind in ("bmc", "ssh")
        }
        firmware = {k: v for k, v in settings.firmware.items() if v is not None}
        return _Merged(settings, bios, firmware, from_override)

    def _address(self, gi: int, kind: str, merged: _Merged, fields: dict[str, Any]) -> str | None:
        endpoint = merged.settings.bmc if kind == "bmc" else merged.settings.ssh  # type: ignore[union-attr]
        pool = endpoint.address_pool
        pooled = None
        if pool is not None and (endpoint.address is None or merged.override_address[kind]):
            pooled = self._next_in_pool(gi, kind, pool, fields["name"])
        if endpoint.address is None:
            if pool is None:
                self.failures.add(
                    gi,
                    f"{kind}.address",
                    f"{kind}.address (or {kind}.address_pool) is not set",
                    fields["name"],
                    "set an address template such as '{name}.mgmt' or a pool",
                )
            return pooled
        if "{" not in endpoint.address:
            return endpoint.address
        try:
            address = endpoint.address.format(**fields)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            self.failures.add(
                gi,
                f"{kind}.address",
                f"the address template cannot be filled in: {exc!r}",
                fields["name"],
                "fields: {name} {n} {index} {rack} {slot}",
            )
            return None
        if not is_host(address):
            # What reaches ssh and URLs is the filled-in value, so that is what must be a host.
            self.failures.add(gi, f"{kind}.address", "the address template gives a value that is not a host name",
                              fields["name"], "fields fill in names; keep the template's own text a host name")
            return None
        return address

    def _next_in_pool(self, gi: int, kind: str, pool: IPv4Network | IPv6Network, name: str) -> str | None:
        used = self.pools.get((kind, pool), 0)
        self.pools[(kind, pool)] = used + 1
        # Host addresses only: skip the network address (and, via the bound, the broadcast one).
        if used + 2 >= pool.num_addresses:
            self.failures.add(
                gi, f"{kind}.address_pool", f"address pool {pool} is exhausted", name, "use a larger pool"
            )
            return None
        return str(pool.network_address + used + 1)

    def report_failures(self) -> None:
        for (gi, key, message, hint), names in self.failures.nodes.items():
            line, column = position(self.doc.tree, ("groups", gi))
            self.errors.append(
                Problem(
                    self.doc.label,
                    line,
                    column,
                    f"{message} for {fold(names)}",
                    key=f"groups[{gi}].{key}",
                    hint=hint,
                )
            )

    def inventory(self) -> Inventory:
        return Inventory(
            self.doc.path, self.spec.site, self.racks, self.nodes, self.groups, dict(self.spec.bios_profiles),
            self.secrets,
        )


def _number(name: str) -> int | None:
    match = _TRAILING_NUMBER.search(name)
    return int(match.group(1)) if match else None


def build(doc: Document, spec: InventoryDoc, secrets: SecretPolicy) -> tuple[Inventory, list[Problem]]:
    builder = Builder(doc, spec, secrets)
    builder.build_racks()
    builder.build_groups()
    builder.report_failures()
    return builder.inventory(), builder.errors
