"""Firmware components: which FirmwareInventory entries an inventory component names, and update order.

The inventory names components the way a site thinks of them (`iDRAC`, `BIOS`, `ConnectX-7`);
BMCs list one entry per device under vendor names ("Integrated Dell Remote Access Controller",
"Mellanox ConnectX-7 ... Adapter 3"). An entry belongs to a component when its name contains the
component's name or one of its aliases, case-insensitively.

Order follows the sequence Dell recommends for PowerEdge updates (iDRAC with Lifecycle Controller,
then BIOS, then the other components): the BMC first (it applies at once and resets itself), then
the BIOS, then everything else in inventory order; one reboot applies the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ALIASES: dict[str, tuple[str, ...]] = {
    "idrac": ("idrac", "integrated dell remote access controller"),
    "bmc": ("bmc", "baseboard management controller"),
    "bios": ("bios",),
}
BMC_COMPONENTS = frozenset({"idrac", "bmc", "ilo", "xcc"})


def is_bmc(component: str) -> bool:
    return component.lower() in BMC_COMPONENTS


def names_for(component: str) -> tuple[str, ...]:
    key = component.lower()
    return ALIASES.get(key, (key,))


def matches(component: str, entry_name: str) -> bool:
    name = entry_name.lower()
    return any(alias in name for alias in names_for(component))


def ordered(components: Iterable[str]) -> list[str]:
    items = list(components)

    def rank(c: str) -> int:
        return 0 if is_bmc(c) else 1 if c.lower() == "bios" else 2

    return sorted(items, key=lambda c: (rank(c), items.index(c)))


def installed_versions(components: Iterable[str], entries: Iterable[tuple[str, str | None]]) -> dict[str, set[str]]:
    """{component: versions installed across its devices}; (name, version) entries, installed ones only."""
    found: dict[str, set[str]] = {c: set() for c in components}
    listed = list(entries)
    for component in found:
        for name, version in listed:
            if matches(component, name):
                found[component].add(version or "unknown")
    return found


def behind(targets: Mapping[str, str], installed: Mapping[str, set[str]]) -> list[str]:
    """Components with a device not at its target version (missing components are reported elsewhere)."""
    return [c for c in ordered(targets) if installed.get(c) and installed[c] != {targets[c]}]
