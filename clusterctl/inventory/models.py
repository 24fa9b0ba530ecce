"""The inventory file's shape, as pydantic v2 models: what each key means and accepts.

Reference of every key (`*` = required once all layers are merged):

    version: 1                         *  file format version
    site:                              *  name* (letters, digits, - _ .), description, secrets_dir (where file: and
                                          vault: references lie; default ~/.config/clusterctl/secrets),
                                          secret_env_prefix (env: references start with it; default CLUSTERCTL_),
                                          repositories (the site's mirrors, for the os stage; see below)
    defaults:                             node settings for every node (lowest layer, see below)
    bios_profiles:                        NAME: {description, attributes: {Attribute: value},
                                            apply_with (settings | scp: one SCP import on iDRACs)}
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
    hardware: model, gpu {model*, count*, nvlink}, infiniband {hcas*, rate_gbps*, devices (NCCL_IB_HCA),
          socket_ifname (NCCL_SOCKET_IFNAME), gdr_level (NCCL_NET_GDR_LEVEL: LOC|PIX|PXB|PHB|SYS)}, psus,
          max_power_w
    firmware: COMPONENT: {version*, image* (https:// or file:PATH), sha256* (64 hex),
          insecure_image_transfer (only `true` allows an http:// image; give it beside the image)},
          or COMPONENT: null to drop a component a lower layer named. The controller downloads
          each image once per run, checks its sha256 and pushes that copy to the BMCs
    bios_profile: a name from bios_profiles; bios: {Attribute: value} applied on top of it
    software: driver, cuda, nccl, ofed, fabricmanager, dcgm, pytorch (the burn-in runtime's), os (version
          strings), os_image (an
          http:// or https:// installer ISO the BMC mounts as virtual media: the boot stage installs
          software.os from it; without it the boot stage uses --boot-via, PXE by default)
    scheduler: slurm {partition, features, container_image (pyxis)}, kubernetes {labels, taints, version,
          image, rdma_resources ({resource: count}, required with InfiniBand), networks (Multus), host_network}

Repositories (site.repositories), each {url, key}: cuda (NVIDIA's CUDA repository: driver, Fabric Manager,
CUDA, NCCL, DCGM), doca (DOCA-OFED), epel (EL only), pypi (a simple index holding nvidia-ml-py), node_exporter
(the directory holding node_exporter's release files), nccl_tests (a git URL), wheelhouse (a directory of wheels
the nodes read, for the burn-in runtime's PyTorch and nvidia-ml-py without an index: file:/// on a shared
file system, or http(s)://; without it they come from pypi). url is http://, https:// or
file:///; key is an ASCII-armored OpenPGP public key file on the controller that signs the mirror (its path
relative to the inventory file). Unset, the os stage uses the upstream repositories.

Addresses: `address` is a literal or a template with fields {name} {n} (numeric suffix of the
name) {index} (0-based position in the group) {rack} {slot} (1-based position in the rack);
`address_pool` (a CIDR) gives each node using it the next host address, in node order; groups
sharing a pool continue where the previous one stopped, and a node whose override sets `address`
still uses up its slot, so one replaced node does not shift the addresses of all after it.
Secrets are references only: env:NAME, file:PATH (mode 600), vault:PATH[#key], inside the bounds above.
Paths (ca_file, known_hosts, secrets_dir) expand `~` and are relative to the inventory file; file: and
vault: references are relative to secrets_dir. No string anywhere may hold a control character or `{{`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, IPvAnyNetwork, StrictBool, model_validator
from pydantic_core import PydanticCustomError, core_schema

from clusterctl.inventory.secrets import SecretRef

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# Every value below reaches a command line, an Ansible variable or a job file somewhere, so each kind
# of value accepts the characters its kind needs and nothing else; see README "Security model".
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")
_TEMPLATE_FIELD = re.compile(r"\{(name|n|index|rack|slot)\}")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~:-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+()/-]{0,63}$")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
# A repository URL reaches apt/dnf source files and pip/git command lines: no quotes, spaces or shell characters.
_REPO_URL = re.compile(r"^(https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?|file://)(/[A-Za-z0-9._~%+=@/-]*)?$")
_OS_IMAGE_URL = re.compile(r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?/[A-Za-z0-9._~%+=@/-]*\.(iso|ISO)$")
_ENV_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*_$")
# Kubernetes label syntax: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
# NCCL_IB_HCA entries (an HCA, optionally `:port`) and NCCL_SOCKET_IFNAME (a Linux interface name or prefix,
# at most 15 characters): https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html
_IB_DEVICE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}(:[0-9]{1,2})?$")
_IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
# A container image reference: registry/name:tag or @digest; enroot/pyxis writes the registry as `registry#name`,
# and a pyxis site may also name a squashfs file by its absolute path.
IMAGE_REF = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9._/:@#+-]{0,254}$")
# Kubernetes extended resource name (domain/name), e.g. rdma/rdma_shared_device_a or nvidia.com/hostdev.
_RESOURCE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_KUBE_VERSION = re.compile(r"^1\.[0-9]{1,3}(\.[0-9]{1,3})?$")
_TAINT = re.compile(r"^(?P<key>[^=:]+)(=(?P<value>[^:]*))?:(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError("name", "expected a name of letters, digits, '-', '_' and '.'")
    return value


def is_host(value: str) -> bool:
    """An IP address or a DNS name: what ssh, Ansible and a URL may take as a host, never an option."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(value)) and len(value) <= 253


def _address(value: str) -> str:
    # A template is checked with its fields filled in by a placeholder; expand checks every real value too.
    if not is_host(_TEMPLATE_FIELD.sub("x0", value)):
        raise PydanticCustomError(
            "address",
            "expected an IP address, a host name or a template such as '{name}.mgmt.example' "
            "(fields: {name} {n} {index} {rack} {slot})",
        )
    return value


def _path(value: str) -> str:
    if not value or value.startswith("-") or any(c.isspace() or not c.isprintable() for c in value):
        raise PydanticCustomError(
            "path", "expected a file path without spaces or control characters, not starting with '-'"
        )
    return value


def _pattern(regex: re.Pattern[str], kind: str, expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise PydanticCustomError(kind, expected)
        return value

    return AfterValidator(check)


def _sha256(value: str) -> str:
    if not _SHA256.match(value):
        found = "non-hexadecimal characters" if len(value) == 64 else f"{len(value)} characters"
        raise PydanticCustomError(
            "sha256", "expected a SHA-256 digest: 64 hexadecimal characters, found {found}", {"found": found}
        )
    return value.lower()


def _image(value: str, info: core_schema.ValidationInfo) -> str:
    if value.startswith("http://") and info.data.get("insecure_image_transfer") is not True:
        raise PydanticCustomError(
            "insecure_image", "http:// image: use https://, or set insecure_image_transfer: true beside it "
            "(the download could be altered in transit before its sha256 is checked)"
        )
    if not value.startswith(("https://", "http://", "file:")):
        raise PydanticCustomError("image", "expected an https:// or file:PATH image location")
    if value.startswith("file:"):
        _path(value[len("file:"):])
    elif any(c.isspace() or not c.isprintable() for c in value):
        raise PydanticCustomError("image", "expected a URL without spaces or control characters")
    return value


@cache
def known_gpu_models() -> tuple[str, ...]:
    from clusterctl.validate.rules import available_models

    return tuple(available_models())


def _gpu_model(value: str) -> str:
    # The model names the rules file validation loads: only the shipped ones, never a path.
    known = known_gpu_models()
    if value not in known:
        raise PydanticCustomError(
            "gpu_model", "unknown GPU model; expected one of: {known}", {"known": ", ".join(known)}
        )
    return value


def _taint(value: str) -> str:
    match = _TAINT.match(value)
    if not match or not _LABEL_KEY.match(match["key"]) or not _LABEL_VALUE.match(match["value"] or ""):
        raise PydanticCustomError(
            "taint", "expected a Kubernetes taint KEY[=VALUE]:EFFECT, EFFECT one of NoSchedule, "
            "PreferNoSchedule, NoExecute"
        )
    return value


Name = Annotated[str, AfterValidator(_name)]
Address = Annotated[str, AfterValidator(_address)]
FilePath = Annotated[str, AfterValidator(_path)]
User = Annotated[str, _pattern(_USER, "user", "expected a user name of letters, digits, '-', '_' and '.'")]
Version = Annotated[str, _pattern(_VERSION, "version", "expected a version of letters, digits and . _ + ~ : -")]
HardwareModel = Annotated[
    str, _pattern(_MODEL, "model", "expected a model name of letters, digits, spaces and . _ + ( ) / -")
]
Attribute = Annotated[
    str, _pattern(_ATTRIBUTE, "attribute", "expected a BIOS attribute name of letters, digits and '_'")
]
LabelKey = Annotated[str, _pattern(_LABEL_KEY, "label_key", "expected a Kubernetes label key ([prefix/]name)")]
LabelValue = Annotated[
    str, _pattern(_LABEL_VALUE, "label_value", "expected a Kubernetes label value (at most 63 of A-Z a-z 0-9 - _ .)")
]
# The BMC fetches it, not clusterctl: http:// is allowed (most virtual media shares are), and the node
# is trusted only once its OS answers SSH with the site's host key.
OsImageUrl = Annotated[
    str, _pattern(_OS_IMAGE_URL, "os_image", "expected an http:// or https:// URL of an ISO, without spaces or quotes")
]
RepoUrl = Annotated[
    str,
    _pattern(_REPO_URL, "repo_url", "expected an http://, https:// or file:/// URL without spaces or quotes"),
]
IBDevice = Annotated[str, _pattern(_IB_DEVICE, "ib_device", "expected an HCA name such as mlx5_0 or mlx5_0:1")]
IfName = Annotated[str, _pattern(_IFNAME, "ifname", "expected a network interface name such as ens1f0 (at most 15 "
                                 "of letters, digits, . _ -)")]
ImageRef = Annotated[str, _pattern(IMAGE_REF, "image_ref", "expected a container image such as "
                                   "nvcr.io/site/clusterctl-burnin:0.1.0 (letters, digits and . _ / : @ # + -)")]
ResourceName = Annotated[str, _pattern(_RESOURCE, "resource_name", "expected a Kubernetes extended resource "
                                       "DOMAIN/NAME such as rdma/rdma_shared_device_a or nvidia.com/hostdev")]
KubeVersion = Annotated[str, _pattern(_KUBE_VERSION, "kube_version", "expected a Kubernetes version such as 1.30")]
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
    user: User
    password: SecretRef
    ca_file: FilePath | None = None
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
    user: User
    key: SecretRef | None = None
    known_hosts: FilePath | None = None

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if self.address and ":" in self.address else self.address
        return f"{host}:{self.port}"


class GPU(Model):
    model: Annotated[str, AfterValidator(_gpu_model)]
    count: int = Field(ge=0)
    nvlink: StrictBool = False


class InfiniBand(Model):
    hcas: int = Field(ge=0)
    rate_gbps: int = Field(gt=0)
    devices: list[IBDevice] = Field(default_factory=list)
    """The HCAs NCCL may use (NCCL_IB_HCA, matched exactly), e.g. [mlx5_0, mlx5_1:1]; empty: NCCL picks."""
    socket_ifname: IfName | None = None
    """The Ethernet interface NCCL bootstraps over (NCCL_SOCKET_IFNAME), e.g. ens1f0 or a prefix such as eth."""
    gdr_level: Literal["LOC", "PIX", "PXB", "PHB", "SYS"] | None = None
    """GPUDirect RDMA: the farthest GPU-NIC distance at which NCCL still uses it (NCCL_NET_GDR_LEVEL)."""

    @property
    def present(self) -> bool:
        return self.hcas > 0


class Hardware(Model):
    model: HardwareModel | None = None
    gpu: GPU | None = None
    infiniband: InfiniBand | None = None
    psus: int | None = Field(default=None, ge=1)
    max_power_w: int | None = Field(default=None, gt=0)

    @property
    def gpu_count(self) -> int:
        return self.gpu.count if self.gpu else 0


class FirmwareTarget(Model):
    version: Version
    insecure_image_transfer: StrictBool = False  # before image: its validator reads it
    image: Annotated[str, AfterValidator(_image)]
    sha256: Annotated[str, AfterValidator(_sha256)]


class BiosProfile(Model):
    description: str | None = None
    attributes: dict[Attribute, Scalar] = Field(default_factory=dict)
    apply_with: Literal["settings", "scp"] = "settings"
    """settings: PATCH the BIOS settings object and queue a job (any Redfish BMC). scp: on iDRACs,
    one Server Configuration Profile import, which orders dependent attributes itself."""


class Software(Model):
    driver: Version | None = None
    cuda: Version | None = None
    nccl: Version | None = None
    ofed: Version | None = None
    fabricmanager: Version | None = None
    dcgm: Version | None = None
    pytorch: Version | None = None
    os: HardwareModel | None = None  # "Ubuntu 22.04"
    os_image: OsImageUrl | None = None


class Slurm(Model):
    partition: Name | None = None
    features: list[Name] = Field(default_factory=list)
    container_image: ImageRef | None = None
    """Run the burn-in in this image through pyxis (srun --container-image); unset: the node's runtime."""


class Kubernetes(Model):
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: list[Annotated[str, AfterValidator(_taint)]] = Field(default_factory=list)
    version: KubeVersion | None = None
    """The cluster's Kubernetes version (1.30): what rendered manifests are checked against."""
    image: ImageRef | None = None
    """The burn-in image (clusterctl burnin image build); --image overrides it."""
    rdma_resources: dict[ResourceName, Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=dict)
    """What the site's network operator exposes per pod for RDMA, e.g. {rdma/rdma_shared_device_a: 1} or
    {nvidia.com/hostdev: 8}. Required on nodes with InfiniBand: without it NCCL falls back to TCP."""
    networks: list[Name] = Field(default_factory=list)
    """Multus NetworkAttachmentDefinitions for the pod's secondary (RDMA) interfaces."""
    host_network: StrictBool = False
    """The pod uses the node's network namespace (sites without Multus)."""

    @model_validator(mode="after")
    def _one_network_mode(self) -> Kubernetes:
        if self.host_network and self.networks:
            raise PydanticCustomError(
                "network_mode", "host_network: true and networks (Multus) contradict each other; keep one")
        return self


class Scheduler(Model):
    slurm: Slurm = Field(default_factory=Slurm)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)


class NodeSettings(Model):
    """One node's settings after merging; each layer alone is validated with it, ignoring gaps."""

    role: Name = "compute"
    bmc: BMC
    ssh: SSH
    hardware: Hardware = Field(default_factory=Hardware)
    firmware: dict[Name, FirmwareTarget | None] = Field(default_factory=dict)
    bios_profile: Name | None = None
    bios: dict[Attribute, Scalar] = Field(default_factory=dict)
    software: Software = Field(default_factory=Software)
    scheduler: Scheduler = Field(default_factory=Scheduler)


LAYER_KEYS = frozenset(NodeSettings.model_fields)


class Repository(Model):
    url: RepoUrl
    key: FilePath | None = None


class Repositories(Model):
    """The site's mirrors of what the os stage installs from; each one unset means the upstream one."""

    cuda: Repository | None = None
    doca: Repository | None = None
    epel: Repository | None = None
    pypi: Repository | None = None
    node_exporter: Repository | None = None
    nccl_tests: Repository | None = None
    wheelhouse: Repository | None = None


class Site(Model):
    name: Name
    description: str | None = None
    secrets_dir: FilePath | None = None
    secret_env_prefix: Annotated[
        str, _pattern(_ENV_PREFIX, "env_prefix", "expected an upper-case prefix ending in '_', such as CLUSTERCTL_")
    ] | None = None
    repositories: Repositories = Field(default_factory=Repositories)


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
    bios_profiles: dict[Name, BiosProfile] = Field(default_factory=dict)
    halls: list[Hall] = Field(min_length=1)
    groups: list[GroupSpec] = Field(min_length=1)
