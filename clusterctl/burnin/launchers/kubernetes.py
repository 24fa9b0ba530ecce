"""Burn-in on Kubernetes: an Indexed Job (one pod per node) behind a headless Service, or a JobSet.

Manifests are rendered from templates (what `--dry-run` prints is what is created), pods
are pinned to the inventory's nodes by hostname affinity plus the labels all of them
share (with the `nvidia.com/gpu.product` that GPU Feature Discovery sets), tolerate the
nodes' taints, run one per node by anti-affinity, and each asks for the node's GPUs as
`nvidia.com/gpu` and for the RDMA devices the site's network operator exposes (with
IPC_LOCK to register memory, and host networking or Multus networks as the site has them).
Nodes with InfiniBand and no RDMA resource are refused: NCCL would fall back to TCP over the
pod network, and the burn-in would pass without testing the fabric. Rank output is read
from the pod logs. The API is asked which workload CRDs it serves: with JobSet installed the
same Indexed Job runs as a JobSet (which owns its Service and restarts); otherwise a plain
Job and Service, which need nothing installed. Kubeflow's PyTorchJob is detected and reported
but not used. The `kubernetes` package is imported only here, when this launcher is chosen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from clusterctl import log
from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.templates import render
from clusterctl.errors import ClusterctlError

_log = log.get("burnin.kubernetes")
POLL_S = 1.0
RDZV_PORT = 29400
CRD_GROUPS = {"jobset.x-k8s.io": "JobSet", "kubeflow.org": "PyTorchJob"}
JOBSET = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
WORKLOADS = ("auto", "job", "jobset")
LOG_LIMIT_BYTES = 64 * 1024 * 1024  # bounded: a runaway rank must not fill the controller's memory


class KubernetesError(ClusterctlError):
    """The API refused a request or cannot be reached."""


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient from a kubeconfig (given, $KUBECONFIG or ~/.kube/config), else the in-cluster account."""
    from kubernetes import client, config

    try:
        default = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()
        if kubeconfig or context or default.exists():
            return config.new_client_from_config(config_file=kubeconfig, context=context)
        config.load_incluster_config()
        return client.ApiClient()
    except (config.ConfigException, OSError) as exc:
        raise KubernetesError(f"cannot configure the Kubernetes client: {exc}") from None


def toleration(taint: str) -> dict[str, str]:
    """The toleration of an inventory taint `KEY[=VALUE]:EFFECT` (validated by the inventory model)."""
    key_value, _, effect = taint.rpartition(":")
    key, has_value, value = key_value.partition("=")
    if has_value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


class KubernetesLauncher:
    name = "kubernetes"

    def __init__(self, api: Any = None, *, kubeconfig: str | None = None, context: str | None = None,
                 namespace: str = "default", image: str = "", gpus_per_node: int | None = None,
                 node_labels: dict[str, str] | None = None, python: str = "python",
                 container_workdir: str | None = None, workload: str = "auto", poll_s: float = POLL_S,
                 tolerations: list[str] | None = None, rdma_resources: dict[str, int] | None = None,
                 networks: list[str] | None = None, host_network: bool = False,
                 infiniband: list[str] | None = None) -> None:
        if workload not in WORKLOADS:
            raise ClusterctlError(f"unknown Kubernetes workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
        self.workload = workload
        self._api = api
        self.kubeconfig, self.context = kubeconfig, context
        self.namespace = namespace
        self.image = image
        self.gpus_per_node = gpus_per_node
        self.node_labels = node_labels or {}
        self.python = python
        self.container_workdir = container_workdir
        self.poll_s = poll_s
        self.tolerations = [toleration(t) for t in tolerations or []]
        self.rdma_resources = dict(rdma_resources or {})
        self.networks = list(networks or [])
        self.host_network = host_network
        self.infiniband = list(infiniband or [])

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = api_client(self.kubeconfig, self.context)
        return self._api

    def expected_nodes(self, spec: BurninSpec) -> list[str]:
        if not spec.nodes:
            raise ClusterctlError("the kubernetes launcher needs the nodes to burn in: --nodes and an inventory")
        return list(spec.nodes)

    def world_size(self, spec: BurninSpec) -> int:
        return len(self.expected_nodes(spec)) * spec.nproc

    @staticmethod
    def job_name(spec: BurninSpec) -> str:
        return f"clusterctl-burnin-{spec.run_id}".lower()

    # -- protocol ----------------------------------------------------------------------------------------

    def kind(self) -> str:
        """"job" or "jobset": as configured, or JobSet when the cluster serves it (auto)."""
        if self.workload == "auto":
            try:
                self.workload = "jobset" if "JobSet" in self.workload_crds() else "job"
            except KubernetesError:  # no cluster to ask (a dry run): the plain Job needs nothing installed
                return "job"
        return self.workload

    def resources(self) -> dict[str, dict[str, str]]:
        """Requests = limits (extended resources allow nothing else); quantities are strings to the API."""
        wanted = {**({"nvidia.com/gpu": self.gpus_per_node} if self.gpus_per_node else {}), **self.rdma_resources}
        quantities = {name: str(count) for name, count in sorted(wanted.items())}
        return {"requests": quantities, "limits": dict(quantities)} if quantities else {}

    def render(self, spec: BurninSpec) -> dict[str, str]:
        nodes = self.expected_nodes(spec)
        if self.infiniband and not self.rdma_resources:
            from clusterctl.inventory.hostlist import fold

            raise ClusterctlError(
                f"{fold(self.infiniband)} have InfiniBand (hardware.infiniband) but the burn-in pods would request no "
                "RDMA device: NCCL would fall back to TCP over the pod network and the burn-in would not test the "
                "fabric. Set scheduler.kubernetes.rdma_resources in the inventory to what the site's network "
                "operator exposes, e.g. {rdma/rdma_shared_device_a: 1} or {nvidia.com/hostdev: 8}")
        name = self.job_name(spec)
        jobset = self.kind() == "jobset"
        head = f"{name}-ranks-0-0.{name}" if jobset else f"{name}-0.{name}"
        # Static rendezvous on pod 0, node rank = completion index (the kubelet expands $(VAR) from the
        # container's env): no agent owns a c10d rendezvous that the others still need while shutting down.
        command = [self.python, "-m", "torch.distributed.run", f"--nnodes={len(nodes)}",
                   f"--nproc-per-node={spec.nproc}", "--node-rank=$(JOB_COMPLETION_INDEX)",
                   f"--master-addr={head}", f"--master-port={RDZV_PORT}", *spec.workload_args()]
        values = {"name": name, "namespace": self.namespace, "run_id": spec.run_id, "nodes": nodes,
                  "node_labels": self.node_labels, "image": self.image, "workdir": self.container_workdir,
                  "command": command, "env": spec.env(), "gpus_per_node": self.gpus_per_node,
                  "rdzv_port": RDZV_PORT, "deadline_s": max(60, int(spec.timeout_s)),
                  "resources": self.resources(), "tolerations": self.tolerations,
                  "ipc_lock": bool(self.rdma_resources), "host_network": self.host_network,
                  "networks": ",".join(self.networks)}
        if jobset:
            return {"jobset.yaml": render("jobset.yaml.j2", **values)}
        return {"service.yaml": render("service.yaml.j2", **values), "job.yaml": render("job.yaml.j2", **values)}

    def submit(self, spec: BurninSpec) -> Submission:
        import yaml
        from kubernetes import client

        manifests = {name: yaml.safe_load(text) for name, text in self.render(spec).items()}
        detail = {"namespace": self.namespace, "completions": len(spec.nodes), "kind": self.kind()}
        if "jobset.yaml" in manifests:
            body = manifests["jobset.yaml"]
            self._call("create the JobSet", client.CustomObjectsApi(self.api).create_namespaced_custom_object,
                       JOBSET[0], JOBSET[1], self.namespace, JOBSET[2], body)
            return Submission(self.name, body["metadata"]["name"], detail=detail)
        core, batch = client.CoreV1Api(self.api), client.BatchV1Api(self.api)
        name = manifests["job.yaml"]["metadata"]["name"]
        self._call("create the headless Service", core.create_namespaced_service, self.namespace,
                   manifests["service.yaml"])
        try:
            self._call("create the Job", batch.create_namespaced_job, self.namespace, manifests["job.yaml"])
        except KubernetesError:
            self._delete_service(name)
            raise
        return Submission(self.name, name, detail=detail)

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        while time.monotonic() < deadline:
            ended = self._ended(submission)
            if ended is not None:
                return ended
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        return Outcome("timeout", None, f"{submission.detail['kind']} {submission.ref} passed the run's timeout")

    def _ended(self, submission: Submission) -> Outcome | None:
        """The Outcome once the Job or JobSet reports Complete/Completed or Failed; None while it runs."""
        from kubernetes import client

        if submission.detail["kind"] == "jobset":
            obj = self._call("read the JobSet", client.CustomObjectsApi(self.api).get_namespaced_custom_object,
                             JOBSET[0], JOBSET[1], self.namespace, JOBSET[2], submission.ref)
            conditions = [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                          for c in (obj.get("status") or {}).get("conditions") or []]
            succeeded = 0
        else:
            job = self._call("read the Job", client.BatchV1Api(self.api).read_namespaced_job_status,
                             submission.ref, self.namespace)
            status = job.status
            conditions = [(c.type, c.status, c.reason, c.message) for c in (status.conditions or [])] \
                if status else []
            succeeded = (status.succeeded or 0) if status else 0
        for kind, state, reason, message in conditions:
            if state == "True" and kind in ("Complete", "Completed"):
                return Outcome("completed", 0)
            if state == "True" and kind == "Failed":
                return Outcome("failed", 1, f"{submission.ref} failed: {reason}: {message or ''}".strip())
        if succeeded >= submission.detail["completions"]:
            return Outcome("completed", 0)
        return None

    def collect(self, submission: Submission) -> list[str]:
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        pods = self._call("list the rank pods", core.list_namespaced_pod, self.namespace,
                          label_selector=f"clusterctl.io/burnin={submission.ref}")
        lines: list[str] = []
        for pod in pods.items:
            try:
                text = self._call(f"read the log of {pod.metadata.name}", core.read_namespaced_pod_log,
                                  pod.metadata.name, self.namespace, container="burnin",
                                  limit_bytes=LOG_LIMIT_BYTES)
            except KubernetesError as exc:
                _log.warning("%s", exc)  # a pod that never started has no log; its node is named anyway
                continue
            lines.extend(text.splitlines())
        return lines

    def cancel(self, submission: Submission) -> None:
        from kubernetes import client

        if submission.detail["kind"] == "jobset":
            if self._ended(submission) is None:  # JobSet deletes its own Jobs, pods and Service
                self._call("delete the JobSet", client.CustomObjectsApi(self.api).delete_namespaced_custom_object,
                           JOBSET[0], JOBSET[1], self.namespace, JOBSET[2], submission.ref,
                           propagation_policy="Background")
            return
        batch = client.BatchV1Api(self.api)
        try:
            job = self._call("read the Job", batch.read_namespaced_job_status, submission.ref, self.namespace)
            if job.status and job.status.active:
                self._call("delete the Job", batch.delete_namespaced_job, submission.ref, self.namespace,
                           propagation_policy="Background")
        finally:
            self._delete_service(submission.ref)

    # -- helpers -----------------------------------------------------------------------------------------

    def workload_crds(self) -> list[str]:
        """Which of JobSet and PyTorchJob the API serves (from the API group list)."""
        from kubernetes import client

        try:
            groups = self._call("list API groups", client.ApisApi(self.api).get_api_versions)
        except KubernetesError as exc:
            _log.warning("%s; assuming no workload CRDs", exc)  # detection only informs, it never blocks a run
            return []
        return sorted(CRD_GROUPS[g.name] for g in groups.groups or [] if g.name in CRD_GROUPS)

    def _delete_service(self, name: str) -> None:
        from kubernetes import client

        try:
            self._call("delete the Service", client.CoreV1Api(self.api).delete_namespaced_service, name,
                       self.namespace)
        except KubernetesError as exc:
            _log.warning("%s", exc)

    @staticmethod
    def _call(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call(*args, **kwargs)
        except ApiException as exc:
            raise KubernetesError(f"{what}: Kubernetes answered {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:
            raise KubernetesError(f"{what}: {exc}") from None
