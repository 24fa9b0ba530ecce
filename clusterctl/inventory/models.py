"""The inventory file's shape, as pydantic v2 models: what each key means and accepts.

Reference of every key (`*` = required once all layers are merged):

    version: 1                         *  file format version
    site:                              *  name* (letters, digits, - _ .), description
    defaults:                             node settings for every node (lowest layer, see below)
    bios_profiles:                        NAME: {description, attributes: {Attribute: value}}
    halls:                             *  list of {name*, rows*: list of {name*, racks*: list of RACK}}
      RACK:  name* (a hostlist pattern: `a01-r[01-16]` declares 16 racks), power_budget_w,
             cooling_w, max_rebooting (nodes of the rack power-cycled at once, default 1),
             defaults (node settings for nodes in the rack: the rack layer)
    groups:                            *  list of GROUP
      GROUP: name*, nodes* (hostlist: `gpu[0001-2048]`), rack (all nodes in one rack) or
             racks (hostlist of racks filled in order) with per_rack (nodes per rack; default:
             spread evenly), overrides ({hostlist: node settings}: the node layer), and any
             node setting key (the group layer)

Node settings (defaults, group, rack `defaults`, overrides; merged in that order, mappings deeply):
    role                                  compute (default), login, service, ...
    bmc:  vendor (idrac | redfish), address* or address_pool*, port (443), user*,
          password* (secret reference), ca_file, insecure (only `true` turns TLS checks off;
          not together with ca_file)
    ssh:  address* or address_pool*, port (22), user*, key (secret reference to a private key
          file), known_hosts
    hardware: model, gpu {model*, count*, nvlink}, infiniband {hcas*, rate_gbps*}, psus, max_power_w
    firmware: COMPONENT: {version*, image* (https://, http:// or file:PATH), sha256* (64 hex)},
          or COMPONENT: null to drop a component a lower layer named
    bios_profile: a name from bios_profiles; bios: {Attribute: value} applied on top of it
    software: driver, cuda, nccl, ofed, fabricmanager, dcgm, os (version strings)
    scheduler: slurm {partition, features}, kubernetes {labels, taints}

Addresses: `address` is a literal or a template with fields {name} {n} (numeric suffix of the
name) {index} (0-based position in the group) {rack} {slot} (1-based position in the rack);
`address_pool` (a CIDR) gives each node using it the next host address, in node order; groups
sharing a pool continue where the previous one stopped, and a node whose override sets `address`
still uses up its slot, so one replaced node does not shift the addresses of all after it.
Secrets are references only: env:NAME, file:PATH (mode 600), vault:PATH[#key].
Paths (ca_file, known_hosts, file: references) expand `~` and are relative to the inventory file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, IPvAnyNetwork, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from clusterctl.inventory.secrets import SecretRef

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]+$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError("name", "expected a name of letters, digits, '-', '_' and '.'")
    return value


def _address(value: str) -> str:
    if "{" not in value and not _HOST.match(value):
        raise PydanticCustomError(
            "address", "expected an IP address, a host name or a template such as '{name}.mgmt.example'"
        )
    return value


def _sha256(value: str) -> str:
    if not _SHA256.match(value):
        found = "non-hexadecimal characters" if len(value) == 64 else f"{len(value)} characters"
        raise PydanticCustomError(
            "sha256", "expected a SHA-256 digest: 64 hexadecimal characters, found {found}", {"found": found}
        )
    return value.lower()


def _image(value: str) -> str:
    if not value.startswith(("https://", "http://", "file:")):
        raise PydanticCustomError("image", "expected an https://, http:// or file:PATH image location")
    return value


Name = Annotated[str, AfterValidator(_name)]
Address = Annotated[str, AfterValidator(_address)]
Port = Annotated[int, Field(ge=1, le=65535)]
Scalar = StrictBool | int | float | str


class Model(BaseModel):
    """Unknown keys are errors (typos must not pass silently); numbers may stand for versions."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class BMC(Model):
    vendor: Literal["idrac", "redfish"] = "redfish"
    address: Address | None = None
    address_pool: IPvAnyNetwork | None = None
    port: Port = 443
    user: str
    password: SecretRef
    ca_file: str | None = None
    insecure: StrictBool = False

    @model_validator(mode="after")
    def _one_tls_policy(self) -> BMC:
        if self.insecure and self.ca_file:
            raise PydanticCustomError(
                "tls_policy", "ca_file and insecure: true contradict each other; keep one"
            )
        return self

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if self.address and ":" in self.address else self.address
        return f"{host}:{self.port}"


class SSH(Model):
    address: Address | None = None
    address_pool: IPvAnyNetwork | None = None
    port: Port = 22
    user: str
    key: SecretRef | None = None
    known_hosts: str | None = None

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if self.address and ":" in self.address else self.address
        return f"{host}:{self.port}"


class GPU(Model):
    model: str
    count: int = Field(ge=0)
    nvlink: StrictBool = False


class InfiniBand(Model):
    hcas: int = Field(ge=0)
    rate_gbps: int = Field(gt=0)


class Hardware(Model):
    model: str | None = None
    gpu: GPU | None = None
    infiniband: InfiniBand | None = None
    psus: int | None = Field(default=None, ge=1)
    max_power_w: int | None = Field(default=None, gt=0)

    @property
    def gpu_count(self) -> int:
        return self.gpu.count if self.gpu else 0


class FirmwareTarget(Model):
    version: str
    image: Annotated[str, AfterValidator(_image)]
    sha256: Annotated[str, AfterValidator(_sha256)]


class BiosProfile(Model):
    description: str | None = None
    attributes: dict[str, Scalar] = Field(default_factory=dict)


class Software(Model):
    driver: str | None = None
    cuda: str | None = None
    nccl: str | None = None
    ofed: str | None = None
    fabricmanager: str | None = None
    dcgm: str | None = None
    os: str | None = None


class Slurm(Model):
    partition: str | None = None
    features: list[str] = Field(default_factory=list)


class Kubernetes(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[str] = Field(default_factory=list)


class Scheduler(Model):
    slurm: Slurm = Field(default_factory=Slurm)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)


class NodeSettings(Model):
    """One node's settings after merging; each layer alone is validated with it, ignoring gaps."""

    role: Name = "compute"
    bmc: BMC
    ssh: SSH
    hardware: Hardware = Field(default_factory=Hardware)
    firmware: dict[str, FirmwareTarget | None] = Field(default_factory=dict)
    bios_profile: str | None = None
    bios: dict[str, Scalar] = Field(default_factory=dict)
    software: Software = Field(default_factory=Software)
    scheduler: Scheduler = Field(default_factory=Scheduler)


LAYER_KEYS = frozenset(NodeSettings.model_fields)


class Site(Model):
    name: Name
    description: str | None = None


class RackSpec(Model):
    name: str = Field(min_length=1)
    power_budget_w: int | None = Field(default=None, gt=0)
    cooling_w: int | None = Field(default=None, gt=0)
    max_rebooting: int = Field(default=1, ge=1)
    defaults: dict[str, Any] = Field(default_factory=dict)


class Row(Model):
    name: Name
    racks: list[RackSpec] = Field(min_length=1)


class Hall(Model):
    name: Name
    rows: list[Row] = Field(min_length=1)


class GroupSpec(Model):
    """A group's own keys; its node-setting keys are checked separately as the group layer."""

    name: Name
    nodes: str = Field(min_length=1)
    rack: str | None = None
    racks: str | None = None
    per_rack: int | None = Field(default=None, ge=1)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    role: Any = None
    bmc: dict[str, Any] | None = None
    ssh: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    firmware: dict[str, Any] | None = None
    bios_profile: Any = None
    bios: dict[str, Any] | None = None
    software: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_placement(self) -> GroupSpec:
        if self.rack and self.racks:
            raise PydanticCustomError("placement", "give either rack or racks, not both")
        if not self.rack and not self.racks:
            raise PydanticCustomError("placement", "missing rack or racks: every node needs a rack")
        return self


class InventoryDoc(Model):
    version: Literal[1]
    site: Site
    defaults: dict[str, Any] = Field(default_factory=dict)
    bios_profiles: dict[str, BiosProfile] = Field(default_factory=dict)
    halls: list[Hall] = Field(min_length=1)
    groups: list[GroupSpec] = Field(min_length=1)
