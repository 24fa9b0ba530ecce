"""Where a BMC is and how to trust it: the one input every Redfish call starts from.

`BMCTarget` knows nothing of the inventory, so the client can be used ad hoc (`clusterctl bmc
--target`) and tested alone; `targets_for` is the one place inventory nodes become targets.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from clusterctl.inventory import Inventory, Node


class BMCTargetError(ClusterctlError):
    """A BMC target is unusable as given (bad URL, missing CA file)."""


@dataclass(frozen=True)
class BMCTarget:
    """One BMC. `verify` is True (system trust store), a CA bundle path, or False (insecure, opt-in)."""

    name: str
    base_url: str
    username: str
    password: str = field(repr=False)
    verify: bool | str = True
    vendor: Literal["idrac", "redfish"] = "redfish"

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BMCTargetError(f"{self.name}: BMC URL {self.base_url!r} is not http(s)://HOST[:PORT]")
        object.__setattr__(self, "base_url", f"{parts.scheme}://{parts.netloc}")

    @property
    def insecure(self) -> bool:
        return self.verify is False

    def ssl_context(self) -> ssl.SSLContext:
        """A context that trusts exactly this target's CA: a site CA must not widen trust for every other BMC.

        Targets that trust the same CA file (or the system store) share one context: loading
        trust anchors costs ~0.5 ms (the system store far more), which adds up across thousands of BMCs.
        """
        if self.verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if self.verify is True:
            return _trusting(None, 0, 0)
        ca = Path(self.verify)
        if not ca.is_file():
            raise BMCTargetError(f"{self.name}: CA file {str(ca)!r} does not exist")
        try:
            seen = ca.stat()  # a replaced CA file gets a new context
            return _trusting(str(ca.resolve()), seen.st_mtime_ns, seen.st_size)
        except ssl.SSLError as exc:
            raise BMCTargetError(f"{self.name}: CA file {str(ca)!r} is not a PEM certificate: {exc}") from exc


@functools.lru_cache(maxsize=32)
def _trusting(cafile: str | None, mtime_ns: int, size: int) -> ssl.SSLContext:
    """The verifying context for one CA file (None: the system store); errors are not cached."""
    return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()


def targets_for(inventory: Inventory, nodes: Iterable[Node]) -> dict[str, BMCTarget]:
    """Each node's BMC by node name; a password many BMCs share is resolved once, not once per node
    (each resolve reads a file, the environment or a vault).

    The inventory has no URL scheme for BMCs; Redfish is HTTPS-only in DSP0266, so https it is.
    """
    secrets: dict[str, str] = {}
    targets = {}
    for node in nodes:
        bmc = node.bmc
        if not bmc.address:
            raise BMCTargetError(f"{node.name}: no BMC address in the inventory")
        ref = str(bmc.password)
        if ref not in secrets:
            secrets[ref] = bmc.password.resolve(inventory.secrets)
        verify: bool | str = False if bmc.insecure else (
            str(inventory.resolve_path(bmc.ca_file)) if bmc.ca_file else True)
        targets[node.name] = BMCTarget(name=node.name, base_url=f"https://{bmc.endpoint}", username=bmc.user,
                                       password=secrets[ref], verify=verify, vendor=bmc.vendor)
    return targets


def targets_from_inventory(path: Path, limit: str | None) -> list[BMCTarget]:
    """The BMCs of the nodes `limit` selects in the inventory file at `path`."""
    from clusterctl.inventory import load_inventory

    inventory = load_inventory(path)
    return list(targets_for(inventory, inventory.select(limit)).values())


def target_from_url(url: str, *, user: str, password: str, ca: Path | None, insecure: bool,
                    vendor: str = "redfish") -> BMCTarget:
    """One BMC named by its URL, outside any inventory (`clusterctl bmc --target`).

    A bare host means https: Redfish is HTTPS-only in DSP0266. The password is redacted from
    logs from here on, since it arrived outside the inventory's secret references.
    """
    from clusterctl import log

    if vendor not in ("redfish", "idrac"):
        raise BMCTargetError(f"--vendor {vendor!r}: use redfish or idrac")
    if ca is not None and insecure:
        raise BMCTargetError("--ca and --insecure contradict each other; keep one")
    if ca is not None and not ca.is_file():
        raise BMCTargetError(f"--ca {ca}: no such file")
    log.redact(password)
    host = urlsplit(url if "://" in url else f"https://{url}")
    return BMCTarget(name=host.netloc or url, base_url=f"{host.scheme}://{host.netloc}", username=user,
                     password=password, verify=False if insecure else (str(ca) if ca else True),
                     vendor=vendor)  # type: ignore[arg-type]
