"""The inventory as an Ansible inventory, so playbooks see the same nodes and facts.

Hosts are grouped by rack, role, node group and GPU model; host variables carry the
SSH connection and what clusterctl expects of the node (`clusterctl_*`). Secrets
never appear: a `file:` key reference becomes `ansible_ssh_private_key_file`,
which is a path, not the key.

Every string that came from the inventory is marked unsafe, so Ansible never renders it
as a template: `!unsafe` in YAML, `{"__ansible_unsafe": ...}` in JSON
(https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_advanced_syntax.html#unsafe-or-raw-strings).
Validation already refuses `{{`; the marking keeps a value that slips past it inert.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from clusterctl.inventory.site import Inventory, Node

_INVALID = re.compile(r"[^A-Za-z0-9_]")


class Unsafe(str):
    """A string Ansible must take as data, never as a template."""


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def group_name(prefix: str, value: str) -> str:
    """Ansible's rule: letters, digits and underscores, not starting with a digit."""
    return _INVALID.sub("_", f"{prefix}_{value}").lower()


def hostvars(inventory: Inventory, node: Node) -> dict[str, Any]:
    ssh, hw = node.ssh, node.hardware
    facts: dict[str, Any] = {
        "ansible_host": ssh.address,
        "ansible_port": ssh.port,
        "ansible_user": ssh.user,
    }
    if ssh.key is not None and ssh.key.scheme == "file":
        facts["ansible_ssh_private_key_file"] = str(ssh.key.path(inventory.secrets))
    if ssh.known_hosts:
        known = inventory.resolve_path(ssh.known_hosts)
        # Ansible splits these with shlex; quoting keeps a path one argument whatever it holds.
        known_arg = shlex.quote(f"UserKnownHostsFile={known}")
        facts["ansible_ssh_common_args"] = f"-o {known_arg} -o StrictHostKeyChecking=yes"
    facts.update(
        {
            "clusterctl_site": inventory.site.name,
            "clusterctl_group": node.group,
            "clusterctl_role": node.role,
            "clusterctl_hall": node.hall,
            "clusterctl_row": node.row,
            "clusterctl_rack": node.rack,
            "clusterctl_slot": node.slot,
            "clusterctl_bmc_address": node.bmc.address,
            "clusterctl_bmc_port": node.bmc.port,
            "clusterctl_bmc_vendor": node.bmc.vendor,
            "clusterctl_hardware_model": hw.model,
            "clusterctl_gpu_model": hw.gpu.model if hw.gpu else None,
            "clusterctl_gpu_count": hw.gpu_count,
            "clusterctl_nvlink": bool(hw.gpu and hw.gpu.nvlink),
            "clusterctl_ib_hcas": hw.infiniband.hcas if hw.infiniband else 0,
            "clusterctl_ib_rate_gbps": hw.infiniband.rate_gbps if hw.infiniband else None,
            "clusterctl_psus": hw.psus,
            "clusterctl_max_power_w": hw.max_power_w,
            "clusterctl_software": node.software.model_dump(exclude_none=True),
            "clusterctl_firmware": {c: t.version for c, t in node.firmware.items()},
            "clusterctl_bios_profile": node.bios_profile,
            "clusterctl_slurm_partition": node.scheduler.slurm.partition,
            "clusterctl_kubernetes_labels": dict(node.scheduler.kubernetes.labels),
            "clusterctl_repositories": repositories(inventory),
        }
    )
    return _unsafe(facts)


def repositories(inventory: Inventory) -> dict[str, dict[str, str]]:
    """The site's mirrors; a key becomes an absolute path on the controller (the role reads it there)."""
    found = {}
    for name, repo in inventory.site.repositories:
        if repo is not None:
            entry = {"url": repo.url}
            if repo.key:
                entry["key"] = str(inventory.resolve_path(repo.key))
            found[name] = entry
    return found


def ansible_inventory(inventory: Inventory, nodes: list[Node] | None = None) -> dict[str, Any]:
    chosen = list(inventory.nodes.values()) if nodes is None else nodes
    children: dict[str, dict[str, Any]] = {}

    def member(group: str, host: str) -> None:
        children.setdefault(group, {"hosts": {}})["hosts"][host] = None

    for node in chosen:
        member(group_name("rack", node.rack), node.name)
        member(group_name("role", node.role), node.name)
        member(group_name("group", node.group), node.name)
        if node.hardware.gpu is not None:
            member(group_name("gpu", node.hardware.gpu.model), node.name)
    return {
        "all": {
            "vars": {"clusterctl_site": Unsafe(inventory.site.name)},
            "hosts": {node.name: hostvars(inventory, node) for node in chosen},
            "children": children,
        }
    }


def render(inventory: Inventory, fmt: str = "yaml", nodes: list[Node] | None = None) -> str:
    data = ansible_inventory(inventory, nodes)
    if fmt == "json":
        return to_json(data)
    return _yaml_dump(data)


def to_json(data: Any) -> str:
    """JSON that Ansible's loader reads back with every `Unsafe` string still marked unsafe."""
    return json.dumps(_json_marked(data), indent=1) + "\n"


def _json_marked(value: Any) -> Any:
    if isinstance(value, Unsafe):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, dict):
        return {k: _json_marked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_marked(v) for v in value]
    return value


def _yaml_dump(data: dict[str, Any]) -> str:
    """PyYAML (ansible-core depends on it), C dumper when present: ruamel's pure one is slow."""
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc,valid-type]
        pass

    def unsafe(dumper: Any, value: Unsafe) -> Any:
        # ansible-core 2.19 resolves an `!unsafe` scalar's type again ("12.4" would come back a float),
        # so text that YAML would read as a number, bool or null stays a plain quoted string: it
        # cannot hold a template anyway.
        text = str(value)
        if dumper.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
            return dumper.represent_str(text)
        return dumper.represent_scalar("!unsafe", text, style="'")

    Dumper.add_representer(Unsafe, unsafe)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=200)
