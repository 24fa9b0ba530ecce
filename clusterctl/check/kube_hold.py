"""`check --launcher kubernetes`: the round runs only on nodes a low-priority Job holds, as `hold.py` does for Slurm.

One Job per node: its pod asks for every GPU of the node (`nvidia.com/gpu`), is pinned to it by its hostname
label, and runs at a PriorityClass below every user's (negative value, `preemptionPolicy: Never`), so it
never evicts a user's pod and any user's pending pod is scheduled first. A pod that is Running on its node
proves no user's pod holds a GPU there (the re-check at start); one still pending after the start timeout
means the node is busy: its Job is deleted and the node skipped. The Jobs are deleted when the round ends,
and their own deadline ends them if the controller does not.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clusterctl.check.hold import Holds
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory

PRIORITY_CLASS = "clusterctl-check-low"
PRIORITY = -100
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
LABEL = "clusterctl.io/check-hold"
POLL_S = 0.5


def priority_class() -> dict[str, Any]:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": PRIORITY_CLASS},
            "value": PRIORITY, "globalDefault": False, "preemptionPolicy": "Never",
            "description": "clusterctl check rounds: only idle nodes, never preempting users' pods"}


def job_name(node: str) -> str:
    return f"clusterctl-check-hold-{node}".lower()[:63].rstrip("-.")


def hold_job(node: str, gpus: int, *, namespace: str, minutes: float, image: str = PAUSE_IMAGE) -> dict[str, Any]:
    """The Job holding one node (its name comes validated from the inventory: a DNS label)."""
    seconds = max(60, int(minutes * 60))
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(node), "namespace": namespace, "labels": {LABEL: node}},
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": seconds, "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {"labels": {LABEL: node}},
                "spec": {
                    "restartPolicy": "Never", "priorityClassName": PRIORITY_CLASS,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "hold", "image": image, "resources": resources}],
                },
            },
        },
    }


def render(inventory: Inventory, names: Sequence[str], *, namespace: str, minutes: float) -> list[dict[str, Any]]:
    return [priority_class(), *(hold_job(n, inventory.nodes[n].gpus or 0, namespace=namespace, minutes=minutes)
                                for n in names)]


def hold_nodes(api: Any, manifests: list[dict[str, Any]], *, start_timeout_s: float = 60.0) -> Holds:
    """Submit the PriorityClass (kept if it exists) and the Jobs; {node: Job name} for those whose pod runs there."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    jobs = {m["metadata"]["labels"][LABEL]: m for m in manifests if m["kind"] == "Job"}
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    holds = Holds()
    created: dict[str, str] = {}
    try:
        try:
            client.SchedulingV1Api(api).create_priority_class(priority_class())  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:  # already there: ours from an earlier round
                raise ClusterctlError(f"--launcher kubernetes: cannot create PriorityClass {PRIORITY_CLASS}: "
                                      f"{exc.reason}") from None
        for node, manifest in jobs.items():
            namespace = manifest["metadata"]["namespace"]
            try:
                batch.create_namespaced_job(namespace, manifest)  # type: ignore[arg-type]
                created[node] = namespace
            except ApiException as exc:
                holds.skipped[node] = f"its hold Job was refused: {exc.reason}"
        deadline = time.monotonic() + start_timeout_s
        waiting = dict(created)
        while waiting:
            for node, namespace in list(waiting.items()):
                pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={node}").items
                if any(p.status is not None and p.spec is not None and p.status.phase == "Running"
                       and p.spec.node_name == node for p in pods):
                    holds.held[node] = job_name(node)
                    waiting.pop(node)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        for node in waiting:
            holds.skipped[node] = f"busy: its hold pod did not start within {start_timeout_s:g}s"
        _delete(batch, {n: created[n] for n in waiting})
    except BaseException:
        _delete(batch, created)
        raise
    holds.namespaces = {n: created[n] for n in holds.held}
    return holds


def _delete(batch: Any, jobs: dict[str, str]) -> None:
    from kubernetes.client.rest import ApiException

    for node, namespace in jobs.items():
        with contextlib.suppress(ApiException):  # else its activeDeadlineSeconds ends it
            batch.delete_namespaced_job(job_name(node), namespace, propagation_policy="Background")


def release(api: Any, holds: Holds) -> None:
    from kubernetes import client

    _delete(client.BatchV1Api(api), holds.namespaces)
