"""Which nodes a burn-in takes, how many ranks each gets, and what its launcher needs from the inventory.

Shared by every command that burns nodes in (`burnin`, and the short burn-ins of maintenance and
periodic checks), so a node list means the same thing whichever command reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory


def choose_nodes(inventory: Inventory | None, pattern: str | None) -> list[str]:
    """Names, hostlists, racks or groups from the inventory; without one, a plain hostlist."""
    if inventory is not None:
        return [n.name for n in inventory.select(pattern)]
    if not pattern:
        return []
    from clusterctl.inventory.hostlist import HostlistError, expand

    try:
        return expand(pattern)
    except HostlistError as exc:
        raise ClusterctlError(f"--nodes: {exc}") from None


def gpus_per_node(inventory: Inventory | None, nodes: list[str]) -> int | None:
    """One rank per GPU needs one GPU count: a job's ranks per node are the same on every node."""
    if inventory is None or not nodes:
        return None
    counts = {inventory.nodes[n].gpus for n in nodes}
    if len(counts) > 1:
        raise ClusterctlError(f"--nodes mixes nodes with {sorted(counts)} GPUs; burn them in separately "
                              "or give --nproc")
    return counts.pop() or None


def rdma_nodes(inventory: Inventory | None, nodes: list[str]) -> list[str]:
    """The nodes whose inventory lists InfiniBand HCAs: their NCCL must use the fabric, not TCP."""
    if inventory is None:
        return []
    return [n for n in nodes if (ib := inventory.nodes[n].hardware.infiniband) is not None and ib.present]


def fabric_env(inventory: Inventory | None, nodes: list[str]) -> dict[str, str]:
    """NCCL_IB_HCA, NCCL_SOCKET_IFNAME and NCCL_NET_GDR_LEVEL from the nodes' `hardware.infiniband`.

    A job has one environment, so the chosen nodes must agree; `=` makes NCCL match the HCA names
    exactly (mlx5_1 would otherwise also select mlx5_10).
    """
    found: dict[str, set[str]] = {}
    if inventory is None:
        return {}
    for name in rdma_nodes(inventory, nodes):
        ib = inventory.nodes[name].hardware.infiniband
        if ib is None:
            continue
        for key, value in (("NCCL_IB_HCA", "=" + ",".join(ib.devices) if ib.devices else None),
                           ("NCCL_SOCKET_IFNAME", ib.socket_ifname), ("NCCL_NET_GDR_LEVEL", ib.gdr_level)):
            found.setdefault(key, set()).add(value or "")
    mixed = sorted(key for key, values in found.items() if len(values) > 1)
    if mixed:
        raise ClusterctlError(f"--nodes mixes nodes whose hardware.infiniband gives different {', '.join(mixed)}; "
                              "burn them in separately")
    return {key: values.pop() for key, values in found.items() if values != {""}}


def _common(inventory: Inventory, nodes: list[str], key: str, value_of: Any) -> Any:
    """The one value every chosen node has for an inventory key that a job can only have once."""
    values = {repr(value_of(inventory.nodes[n])): value_of(inventory.nodes[n]) for n in nodes}
    if len(values) > 1:
        raise ClusterctlError(f"--nodes mixes nodes with different {key} in the inventory; burn them in separately")
    return next(iter(values.values()), None)


def gpu_product_label(inventory: Inventory, nodes: list[str]) -> str | None:
    """The value GPU Feature Discovery gives `nvidia.com/gpu.product` on these nodes: the GPU's NVML name
    with spaces as dashes ("NVIDIA H100 80GB HBM3" → NVIDIA-H100-80GB-HBM3; GFD's README, "Generated Labels")."""
    model = _common(inventory, nodes, "hardware.gpu.model", lambda n: n.hardware.gpu.model if n.hardware.gpu else None)
    if model is None:
        return None
    from clusterctl.validate.rules import load_ruleset

    names = load_ruleset(model).nvml_names
    return names[0].replace(" ", "-") if names else None


def launcher_options(launcher: str, inventory: Inventory | None, nodes: list[str], *, slurm_conf: Path | None,
                     partition: str | None, gpus: int | None, kubeconfig: Path | None, context: str | None,
                     namespace: str, image: str | None, kube_workload: str = "auto") -> dict[str, Any]:
    if launcher == "slurm":
        container_image = image
        if inventory is not None and nodes:
            if partition is None:
                found = {inventory.nodes[n].scheduler.slurm.partition for n in nodes} - {None}
                partition = found.pop() if len(found) == 1 else None
            container_image = image or _common(inventory, nodes, "scheduler.slurm.container_image",
                                               lambda n: n.scheduler.slurm.container_image)
        return {"slurm_conf": str(slurm_conf) if slurm_conf else None, "partition": partition,
                "gpus_per_node": gpus, "container_image": container_image,
                "inventory": str(inventory.path) if inventory is not None else None}
    if launcher == "kubernetes":
        return _kubernetes_options(inventory, nodes, kubeconfig=kubeconfig, context=context, namespace=namespace,
                                   image=image, gpus=gpus, kube_workload=kube_workload)
    if launcher == "ssh":
        if inventory is None:
            raise ClusterctlError("the ssh launcher needs the inventory FILE (node addresses, keys, known_hosts)")
        from clusterctl.ssh.target import target_from_node

        return {"targets": {n: target_from_node(inventory.nodes[n], inventory) for n in nodes},
                "inventory": str(inventory.path)}
    return {}


def _kubernetes_options(inventory: Inventory | None, nodes: list[str], *, kubeconfig: Path | None,
                        context: str | None, namespace: str, image: str | None, gpus: int | None,
                        kube_workload: str) -> dict[str, Any]:
    options: dict[str, Any] = {"kubeconfig": str(kubeconfig) if kubeconfig else None, "context": context,
                               "namespace": namespace, "gpus_per_node": gpus, "workload": kube_workload}
    labels: dict[str, str] = {}
    if inventory is not None and nodes:
        kube = [inventory.nodes[n].scheduler.kubernetes for n in nodes]
        # Only labels every chosen node carries can select them all.
        labels = {k: v for k, v in kube[0].labels.items() if all(s.labels.get(k) == v for s in kube)}
        product = gpu_product_label(inventory, nodes)
        if product and "nvidia.com/gpu.product" not in labels:
            labels["nvidia.com/gpu.product"] = product
        # Tolerating a taint a node does not have is harmless: tolerate every chosen node's.
        options["tolerations"] = sorted({t for k in kube for t in k.taints})
        image = image or _common(inventory, nodes, "scheduler.kubernetes.image", lambda n: n.scheduler.kubernetes.image)
        for key in ("rdma_resources", "networks", "host_network"):
            options[key] = _common(inventory, nodes, f"scheduler.kubernetes.{key}",
                                   lambda n, key=key: getattr(n.scheduler.kubernetes, key))
        options["infiniband"] = rdma_nodes(inventory, nodes)
    if not image:
        raise ClusterctlError("--image: the kubernetes launcher needs a container image with torch and the workload "
                              "(clusterctl burnin image build; or scheduler.kubernetes.image in the inventory)")
    return {**options, "image": image, "node_labels": labels}
