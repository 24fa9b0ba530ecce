"""Keep failed nodes away from jobs, in the scheduler that places them, and let them back.

Slurm drains the node with the reason (`sinfo -R` shows it); Kubernetes cordons it and
adds the taint `clusterctl.io/burnin=failed:NoSchedule`. Either way the store gets the
flag and a `quarantine.applied` event recording the mechanism and how it was reached,
so `release` undoes exactly what was done without being told which scheduler it was.
Used by `clusterctl burnin --quarantine` and `clusterctl validate --quarantine`; `clusterctl maintain`
drains, watches and resumes nodes through the same Slurm calls (`slurm_drain`, `slurm_nodes`, `slurm_resume`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.errors import ClusterctlError
from clusterctl.slurm_commands import run_slurm

if TYPE_CHECKING:
    from clusterctl.state.store import Store

_log = log.get("burnin.quarantine")
VIA = ("slurm", "kubernetes")
NONE = "none"
"""A node in no scheduler (maintain takes such nodes directly): held out by the store's flag alone."""
TAINT_KEY = "clusterctl.io/burnin"
TAINT = {"key": TAINT_KEY, "value": "failed", "effect": "NoSchedule"}
APPLIED = "quarantine.applied"
RELEASED = "quarantine.released"
SCONTROL_TIMEOUT_S = 30
MAX_REASON = 200  # Slurm keeps the reason in a fixed-size field shown by sinfo -R


class QuarantineError(ClusterctlError):
    """The scheduler refused to drain/cordon or resume/uncordon a node."""


@dataclass(frozen=True)
class Action:
    node: str
    via: str
    action: str  # "quarantined" | "released"
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "via": self.via, "action": self.action, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Schedulers:
    """How to reach the schedulers: SLURM_CONF for scontrol, kubeconfig/context or a ready ApiClient."""

    slurm_conf: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    kube_api: Any = None

    def reach(self, via: str) -> dict[str, str]:
        """What to record so that `release` can come back the same way (no secrets: paths and names)."""
        if via == "slurm":
            return {"slurm_conf": self.slurm_conf} if self.slurm_conf else {}
        return {k: v for k, v in (("kubeconfig", self.kubeconfig), ("context", self.context)) if v}


def _reason_text(source: str, reasons: str | Sequence[str]) -> str:
    text = reasons if isinstance(reasons, str) else "; ".join(reasons)
    return " ".join(f"{source} failed: {text}".split())[:MAX_REASON]


def quarantine(nodes_with_reasons: Mapping[str, str | Sequence[str]], *, via: str, store: Store | None,
               source: str, schedulers: Schedulers = Schedulers(), run_id: int | None = None) -> list[Action]:
    """Drain (Slurm) or cordon and taint (Kubernetes) each node; a node the scheduler refuses is
    reported with ok=False and not flagged, the others still are."""
    if via not in (*VIA, NONE):
        raise ClusterctlError(f"cannot quarantine via {via!r}; choose one of {', '.join(VIA)}")
    actions = []
    for node, reasons in nodes_with_reasons.items():
        reason = _reason_text(source, reasons)
        try:
            if via == "slurm":
                slurm_drain(node, reason, schedulers)
            elif via == "kubernetes":
                _kube_quarantine(node, schedulers)
        except ClusterctlError as exc:  # the scheduler refused, or cannot be reached at all
            _log.error("%s: not quarantined: %s", node, exc)
            actions.append(Action(node, via, "quarantined", False, str(exc)))
            continue
        if store is not None:
            with store.transaction() as tx:
                tx.set_flag(node, quarantined=True, reason=reason, source=f"{source}:{via}")
                tx.event(APPLIED, node=node, run_id=run_id,
                         payload={"via": via, "reason": reason, "source": source, **schedulers.reach(via)})
        actions.append(Action(node, via, "quarantined", True, reason))
    return actions


def release(node: str, *, store: Store, schedulers: Schedulers | None = None, via: str | None = None) -> Action:
    """Undo `quarantine` for one node, by the mechanism recorded for it (or `via` when given)."""
    applied = store.events(node=node, kind=APPLIED, limit=1, newest=True)
    recorded: dict[str, Any] = dict(applied[0].payload or {}) if applied else {}
    via = via or recorded.get("via") or _via_from_flag(store, node)
    if via not in (*VIA, NONE):
        raise ClusterctlError(f"{node} has no quarantine recorded in {store.url}; "
                              "name the scheduler with --via slurm|kubernetes")
    given = schedulers or Schedulers()
    reach = Schedulers(slurm_conf=given.slurm_conf or recorded.get("slurm_conf"),
                       kubeconfig=given.kubeconfig or recorded.get("kubeconfig"),
                       context=given.context or recorded.get("context"), kube_api=given.kube_api)
    if via == "slurm":
        slurm_resume(node, reach)
    elif via == "kubernetes":
        _kube_release(node, reach)
    with store.transaction() as tx:
        tx.set_flag(node, quarantined=False, reason="released", source=f"release:{via}")
        tx.event(RELEASED, node=node, payload={"via": via})
    return Action(node, via, "released", True)


def slurm_drain(node: str, reason: str, schedulers: Schedulers) -> None:
    """`scontrol update state=drain`: Slurm starts nothing new on the node; its running jobs go on."""
    _scontrol(["update", f"nodename={node}", "state=drain", f"reason={' '.join(reason.split())[:MAX_REASON]}"],
              schedulers)


def slurm_resume(node: str, schedulers: Schedulers) -> None:
    _scontrol(["update", f"nodename={node}", "state=resume"], schedulers)


def slurm_jobs(node: str, schedulers: Schedulers) -> list[str]:
    """Ids of the jobs running (or being started) on the node."""
    out = _run(["squeue", "-h", "-w", node, "-t", "RUNNING,CONFIGURING,COMPLETING", "-o", "%i"], schedulers,
               what=f"squeue -w {node}")
    return [line.strip() for line in out.splitlines() if line.strip()]


def slurm_requeue(job_ids: list[str], schedulers: Schedulers) -> None:
    """`scontrol requeue`: the jobs go back to the queue and start again elsewhere (or later)."""
    if job_ids:
        _scontrol(["requeue", ",".join(job_ids)], schedulers)


@dataclass(frozen=True)
class SlurmNode:
    state: str
    """Slurm's long state without its flags (`drained`, `draining`, `idle`, `mixed`, `down`...)."""
    reason: str
    flags: str = ""
    """The suffixes Slurm adds: `*` not responding, `~` powered off, `#` powering up..."""

    @property
    def available(self) -> bool:
        """Able to take jobs now: neither drained, down, failing nor powered off."""
        return self.state in ("idle", "mixed", "allocated", "completing") and not set(self.flags) & set("*~#%!")

    @property
    def drained(self) -> bool:
        """Drained with no job left on it (Slurm's `drained`, or a drained node that went down)."""
        return self.state in ("drained", "down", "fail")


def slurm_nodes(schedulers: Schedulers) -> dict[str, SlurmNode]:
    """Every node Slurm knows, with its state and reason (one line per node, whatever its partitions)."""
    out = _run(["sinfo", "-h", "-N", "-o", "%N|%T|%E"], schedulers, what="sinfo")
    found: dict[str, SlurmNode] = {}
    for line in out.splitlines():
        parts = line.split("|", 2)
        if len(parts) != 3:
            continue
        name, state, reason = parts
        base = state.rstrip("*~#%!$@^-")
        found[name] = SlurmNode(base.lower(), "" if reason == "none" else reason, state[len(base):])
    return found


def _via_from_flag(store: Store, node: str) -> str | None:
    for flag in store.flags(quarantined_only=True):
        if flag.node == node and flag.source and ":" in flag.source:
            return flag.source.rsplit(":", 1)[1]
    return None


def _scontrol(args: list[str], schedulers: Schedulers) -> None:
    _run(["scontrol", *args], schedulers, what=f"scontrol {args[0]} {args[1]}")


def _run(argv: list[str], schedulers: Schedulers, *, what: str) -> str:
    return run_slurm(argv, schedulers.slurm_conf, error=QuarantineError, what=what, timeout_s=SCONTROL_TIMEOUT_S)


def _core_api(schedulers: Schedulers) -> Any:
    from kubernetes import client

    from clusterctl.burnin.launchers.kubernetes import api_client

    return client.CoreV1Api(schedulers.kube_api or api_client(schedulers.kubeconfig, schedulers.context))


def _kube_call(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return call(*args, **kwargs)
    except ApiException as exc:
        raise QuarantineError(f"{what}: Kubernetes answered {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise QuarantineError(f"{what}: {exc}") from None


def _taints(node_obj: Any) -> list[dict[str, Any]]:
    taints = (node_obj.spec.taints if node_obj.spec else None) or []
    return [{"key": t.key, "value": t.value, "effect": t.effect} for t in taints]


def _kube_quarantine(node: str, schedulers: Schedulers) -> None:
    api = _core_api(schedulers)
    current = _kube_call(f"read node {node}", api.read_node, node)
    taints = [t for t in _taints(current) if t["key"] != TAINT_KEY] + [TAINT]
    _kube_call(f"cordon {node}", api.patch_node, node, {"spec": {"unschedulable": True, "taints": taints}})


def _kube_release(node: str, schedulers: Schedulers) -> None:
    api = _core_api(schedulers)
    current = _kube_call(f"read node {node}", api.read_node, node)
    taints = [t for t in _taints(current) if t["key"] != TAINT_KEY]
    _kube_call(f"uncordon {node}", api.patch_node, node, {"spec": {"unschedulable": False, "taints": taints}})


# -- Kubernetes, for `clusterctl maintain`: cordon, evict through the Eviction API, uncordon --------------


@dataclass(frozen=True)
class KubeNode:
    ready: bool
    unschedulable: bool

    @property
    def available(self) -> bool:
        return self.ready and not self.unschedulable


def kube_nodes(schedulers: Schedulers) -> dict[str, KubeNode]:
    api = _core_api(schedulers)
    found = {}
    for item in _kube_call("list nodes", api.list_node).items:
        conditions = (item.status.conditions if item.status else None) or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        found[item.metadata.name] = KubeNode(ready, bool(item.spec and item.spec.unschedulable))
    return found


def kube_cordon(node: str, schedulers: Schedulers, *, cordon: bool = True) -> None:
    api = _core_api(schedulers)
    _kube_call(f"{'cordon' if cordon else 'uncordon'} {node}", api.patch_node, node,
               {"spec": {"unschedulable": cordon}})


def _evictable(pod: Any) -> bool:
    """What `kubectl drain` evicts: not a DaemonSet's pod (it would come back), not a static (mirror) pod,
    not one that has already ended."""
    owners = pod.metadata.owner_references or []
    annotations = pod.metadata.annotations or {}
    phase = pod.status.phase if pod.status else None
    return (not any(o.kind == "DaemonSet" for o in owners) and "kubernetes.io/config.mirror" not in annotations
            and phase not in ("Succeeded", "Failed"))


def kube_pods(node: str, schedulers: Schedulers) -> list[tuple[str, str]]:
    """(namespace, name) of the pods on the node that a drain must move."""
    api = _core_api(schedulers)
    pods = _kube_call(f"list pods on {node}", api.list_pod_for_all_namespaces,
                      field_selector=f"spec.nodeName={node}").items
    return [(p.metadata.namespace, p.metadata.name) for p in pods if _evictable(p)]


def kube_evict(node: str, schedulers: Schedulers) -> list[str]:
    """Ask the Eviction API to move every pod off the node; returns the pods still there ("ns/name").

    An eviction a PodDisruptionBudget forbids is answered 429 and simply tried again at the next
    call, as `kubectl drain` does: the budget, not clusterctl, decides when the pod may go.
    """
    from kubernetes.client.exceptions import ApiException

    api = _core_api(schedulers)
    left = []
    for namespace, name in kube_pods(node, schedulers):
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        try:
            api.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                continue
            if exc.status != 429:
                raise QuarantineError(f"evict {namespace}/{name}: Kubernetes answered {exc.status} {exc.reason}") \
                    from None
        left.append(f"{namespace}/{name}")
    return left


def kube_delete_pods(node: str, schedulers: Schedulers) -> list[str]:
    """--force-after: delete the pods a drain could not evict (their budgets are overridden)."""
    api = _core_api(schedulers)
    deleted = []
    for namespace, name in kube_pods(node, schedulers):
        _kube_call(f"delete pod {namespace}/{name}", api.delete_namespaced_pod, name, namespace)
        deleted.append(f"{namespace}/{name}")
    return deleted
