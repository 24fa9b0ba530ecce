"""The Kubernetes launcher and quarantine: manifests checked against the Kubernetes schemas, and the
real `kubernetes` client driven against a test double of the API server on 127.0.0.1.

The double answers only the endpoints the launcher uses (API groups, create Service/Job,
Job status, list pods, pod logs, delete, read/patch node) and records every request, so
the tests assert what a real API server would have been asked to do.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from clusterctl.burnin.launchers.kubernetes import KubernetesLauncher
from clusterctl.burnin.launchers.protocol import BurninSpec
from clusterctl.state.store import Store

NODES = ["gpu1", "gpu2", "gpu3"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
BURNIN_TAINT = {"key": "clusterctl.io/burnin", "value": "failed", "effect": "NoSchedule"}


def _rank_log(rank: int, node: str, speed: float, network: str = "IB") -> str:
    """What a rank pod prints: torchrun chatter and NCCL's INFO lines (its real format) around the workload's
    JSON lines."""
    base = {"clusterctl": "burnin/v1", "node": node, "rank": rank, "world_size": len(NODES), "run": "t"}
    pod, pid = f"clusterctl-burnin-x-{rank}-abcde", 100 + rank
    lines = ["INFO:torch.distributed.run:Using nproc_per_node=1",
             json.dumps({**base, "event": "start", "host": pod, "pid": pid, "backend": "nccl"})]
    if network == "IB":
        lines.append(f"{pod}:{pid}:{pid + 7} [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB ; OOB "
                     "net1:192.168.50.2<0>")
    lines.append(f"{pod}:{pid}:{pid + 7} [0] NCCL INFO Using network {network}")
    for i in range(6):
        lines.append(json.dumps({**base, "event": "step", "step": i * 3 + 1, "loss": 6.0 - 0.2 * i,
                                 "local_tokens_per_s": speed * (1 + 0.01 * (i % 2)), "time": 1.7e9 + i}))
    lines += [json.dumps({**base, "event": "checksum", "step": 16, "checksum": "00ab"}),
              json.dumps({**base, "event": "end", "status": "done", "steps": 16})]
    return "\n".join(lines) + "\n"


class FakeKubeAPI:
    """A Kubernetes API server double: just enough of core/v1 and batch/v1, every request recorded."""

    def __init__(self, *, finish_after_polls: int | None = 1, slow_node: str | None = "gpu2",
                 jobset: bool = False, socket_node: str | None = None) -> None:
        self.jobset = jobset
        self.socket_node = socket_node
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.polls = 0
        self.finish_after_polls = finish_after_polls
        self.slow_node = slow_node
        self.nodes = {n: {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
                          "spec": {"taints": [dict(GPU_TAINT)]}} for n in NODES}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # -- answers -------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET" and path in ("/apis", "/apis/"):
            groups = [("batch", "v1")] + ([("jobset.x-k8s.io", "v1alpha2")] if self.jobset else [])
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}]} for g, v in groups]}
        if re.fullmatch(r"/apis/jobset.x-k8s.io/v1alpha2/namespaces/\w+/jobsets", path):
            self.jobs[body["metadata"]["name"]] = body
            return 201, body
        if m := re.fullmatch(r"/apis/jobset.x-k8s.io/v1alpha2/namespaces/\w+/jobsets/([\w-]+)", path):
            if method == "DELETE":
                return 200, _status(200, "Success")
            self.polls += 1
            done = self.finish_after_polls is not None and self.polls > self.finish_after_polls
            return 200, {**self.jobs[m.group(1)], "status": {
                "conditions": [{"type": "Completed", "status": "True"}] if done else []}}
        if m := re.fullmatch(r"/api/v1/namespaces/(\w+)/services", path):
            self.services[body["metadata"]["name"]] = body
            return 201, body
        if m := re.fullmatch(r"/apis/batch/v1/namespaces/(\w+)/jobs", path):
            self.jobs[body["metadata"]["name"]] = body
            return 201, body
        if m := re.fullmatch(r"/apis/batch/v1/namespaces/\w+/jobs/([\w-]+)(/status)?", path):
            job = self.jobs.get(m.group(1))
            if job is None:
                return 404, _status(404, "NotFound")
            if method == "DELETE":
                return 200, _status(200, "Success")
            self.polls += 1
            done = self.finish_after_polls is not None and self.polls > self.finish_after_polls
            status = ({"succeeded": len(NODES), "conditions": [{"type": "Complete", "status": "True"}]}
                      if done else {"active": len(NODES)})
            return 200, {**job, "status": status}
        if m := re.fullmatch(r"/api/v1/namespaces/\w+/services/([\w-]+)", path):
            service = self.services.pop(m.group(1), None)  # DELETE answers with the deleted object
            return (200, service) if service else (404, _status(404, "NotFound"))
        if re.fullmatch(r"/api/v1/namespaces/\w+/pods", path):
            selector = query["labelSelector"][0]
            job = selector.split("=", 1)[1]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": f"{job}-{i}-abcde", "labels": {"clusterctl.io/burnin": job}}}
                for i in range(len(NODES))]}
        if m := re.fullmatch(r"/api/v1/namespaces/\w+/pods/([\w-]+)-(\d+)-abcde/log", path):
            rank = int(m.group(2))
            node = NODES[rank]
            text = _rank_log(rank, node, 300.0 if node == self.slow_node else 1000.0,
                             "Socket" if node == self.socket_node else "IB")
            if self.finish_after_polls is None:  # a Job that never finishes: its ranks stopped mid-run
                text = "\n".join(text.splitlines()[:6]) + "\n"
            return 200, text
        if m := re.fullmatch(r"/api/v1/nodes/([\w-]+)", path):
            node = self.nodes[m.group(1)]
            if method == "PATCH":
                node["spec"].update(body["spec"])
            return 200, node
        return 404, _status(404, "NotFound")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                api.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                     "body": body, "content_type": self.headers.get("Content-Type"),
                                     "auth": self.headers.get("Authorization")})
                code, answer = api.answer(self.command, url.path, parse_qs(url.query), body)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _status(code: int, reason: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "reason": reason, "code": code}


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubeconfig(tmp_path: Path, kube_api: FakeKubeAPI) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "double",
        "clusters": [{"name": "double", "cluster": {"server": kube_api.url}}],
        "users": [{"name": "tester", "user": {"token": "test-token-not-secret"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
    }))
    return path


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("""\
version: 1
site: {name: kube}
defaults:
  bmc: {vendor: redfish, address_pool: 10.0.1.0/24, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}
  ssh: {address: "{name}.mgmt.example", user: ops}
  hardware: {gpu: {model: H100-SXM5-80GB, count: 8}}
  scheduler:
    kubernetes:
      labels: {node.kubernetes.io/instance-type: xe9680, clusterctl.io/pool: burnin}
halls:
  - name: H1
    rows:
      - name: R1
        racks:
          - {name: r1}
groups:
  - name: gpu
    nodes: gpu[1-3]
    rack: r1
""")
    return path


def _kube_args(inventory: Path, kubeconfig: Path) -> list[Any]:
    return ["burnin", inventory, "--launcher", "kubernetes", "--kubeconfig", kubeconfig, "--image",
            "registry.example/clusterctl-burnin:1", "--model", "transformer-tiny", "--steps", "16", "--nproc", "1",
            "-o", "json"]


def test_burnin_through_the_api_then_quarantine_and_release(cli, inventory, kubeconfig, kube_api) -> None:
    result = cli(*_kube_args(inventory, kubeconfig), "--quarantine")
    assert result.code == 1, result.err
    data = result.json()
    assert {n["node"]: n["status"] for n in data["nodes"]} == {"gpu1": "pass", "gpu2": "fail", "gpu3": "pass"}
    assert "straggler" in data["nodes"][1]["reasons"][0]

    service = kube_api.calls("POST", r"/api/v1/namespaces/default/services")[0]["body"]
    job = kube_api.calls("POST", r"/apis/batch/v1/namespaces/default/jobs")[0]["body"]
    assert service["spec"]["clusterIP"] == "None" and service["metadata"]["name"] == job["metadata"]["name"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == container["resources"]["requests"] == {"nvidia.com/gpu": "8"}
    assert "--nproc-per-node=1" in container["command"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == NODES
    assert pod["nodeSelector"] == {"clusterctl.io/pool": "burnin", "node.kubernetes.io/instance-type": "xe9680",
                                   "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}  # set by GPU Feature Discovery
    assert len(kube_api.calls("GET", r"/api/v1/namespaces/default/pods/.*/log")) == 3
    assert kube_api.calls("DELETE", r"/api/v1/namespaces/default/services/.*")
    assert not kube_api.calls("DELETE", r"/apis/batch/v1/.*")  # a finished Job stays, with its logs
    assert all(r["auth"] == "Bearer test-token-not-secret" for r in kube_api.requests)

    # Cordon + taint: only the failed node, keeping the taints it already had.
    patches = kube_api.calls("PATCH", r"/api/v1/nodes/.*")
    assert [p["path"] for p in patches] == ["/api/v1/nodes/gpu2"]
    assert patches[0]["content_type"] == "application/strategic-merge-patch+json"
    assert patches[0]["body"]["spec"] == {"unschedulable": True, "taints": [GPU_TAINT, BURNIN_TAINT]}
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        assert [(f.node, f.source) for f in store.flags(quarantined_only=True)] == [("gpu2", "burnin:kubernetes")]

    released = cli("burnin", "release", "gpu2", "-o", "json")
    assert released.code == 0, released.err
    undo = kube_api.calls("PATCH", r"/api/v1/nodes/gpu2")[-1]["body"]["spec"]
    assert undo == {"unschedulable": False, "taints": [GPU_TAINT]}
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        assert store.flags(quarantined_only=True) == []


def test_job_past_its_timeout_is_deleted_after_its_logs_are_read(cli, inventory, kubeconfig, kube_api) -> None:
    kube_api.finish_after_polls = None  # the Job never finishes
    kube_api.slow_node = None
    result = cli(*_kube_args(inventory, kubeconfig), "--timeout", "2s")
    assert result.code == 1
    assert result.json()["job_state"] == "timeout"
    for node in result.json()["nodes"]:
        assert node["status"] == "fail" and "stopped reporting after step 4" in node["reasons"][0]
    log_reads = kube_api.calls("GET", r"/api/v1/namespaces/default/pods/.*/log")
    deletes = kube_api.calls("DELETE", r"/apis/batch/v1/namespaces/default/jobs/.*")
    assert len(deletes) == 1 and deletes[0]["query"]["propagationPolicy"] == ["Background"]
    assert kube_api.requests.index(log_reads[-1]) < kube_api.requests.index(deletes[0])


def test_rendered_manifests_are_valid_kubernetes(tmp_path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    spec = BurninSpec(run_id="A1b2", model="transformer-big", nodes=("gpu1", "gpu2"), nproc=8, duration_s=1800,
                      timeout_s=2400, fault="slow:rank=3")
    launcher = KubernetesLauncher(object(), namespace="burnin", image="registry.example/burnin:1", gpus_per_node=8,
                                  node_labels={"clusterctl.io/pool": "burnin"}, container_workdir="/opt/clusterctl",
                                  workload="job")
    files = launcher.render(spec)
    assert set(files) == {"service.yaml", "job.yaml"}
    for text in files.values():
        doc = yaml.safe_load(text)
        kubernetes_validate.validate(doc, desired_version=kubernetes_validate.latest_version(), strict=True)
    job = yaml.safe_load(files["job.yaml"])
    assert job["metadata"]["name"] == "clusterctl-burnin-a1b2"  # DNS-1123: lower case
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLUSTERCTL_NODE"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["CLUSTERCTL_BURNIN_FAULT"]["value"] == "slow:rank=3"
    assert job["spec"]["activeDeadlineSeconds"] == 2400

    # The JobSet's CRD schema is not shipped; its replicated job is a batch/v1 Job spec, checked as one.
    jobset_launcher = KubernetesLauncher(object(), image="registry.example/burnin:1", gpus_per_node=8,
                                         workload="jobset")
    jobset = yaml.safe_load(jobset_launcher.render(spec)["jobset.yaml"])
    assert jobset["kind"] == "JobSet" and jobset["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
    inner = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "inner"},
             "spec": jobset["spec"]["replicatedJobs"][0]["template"]["spec"]}
    kubernetes_validate.validate(inner, desired_version=kubernetes_validate.latest_version(), strict=True)


def test_invalid_manifest_is_caught_by_the_schema_check() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"completionMode": "Indexed", "completions": "three", "template": {"spec": {"containers": []}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, desired_version=kubernetes_validate.latest_version(), strict=True)


def test_jobset_is_used_when_the_cluster_serves_it(cli, inventory, kubeconfig, kube_api) -> None:
    kube_api.jobset = True
    kube_api.slow_node = None
    result = cli(*_kube_args(inventory, kubeconfig))
    assert result.code == 0, result.err
    assert [n["status"] for n in result.json()["nodes"]] == ["pass", "pass", "pass"]
    created = kube_api.calls("POST", r"/apis/jobset.x-k8s.io/v1alpha2/namespaces/default/jobsets")
    assert len(created) == 1
    jobset = created[0]["body"]
    name = jobset["metadata"]["name"]
    assert jobset["spec"]["network"]["enableDNSHostnames"] is True
    job_spec = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert job_spec["completionMode"] == "Indexed" and job_spec["completions"] == 3
    command = job_spec["template"]["spec"]["containers"][0]["command"]
    assert f"--master-addr={name}-ranks-0-0.{name}" in command and "--master-port=29400" in command
    assert "--node-rank=$(JOB_COMPLETION_INDEX)" in command
    assert not kube_api.calls("POST", r"/api/v1/namespaces/default/services")  # JobSet makes its own
    assert not kube_api.calls("POST", r"/apis/batch/v1/.*")
    assert len(kube_api.calls("GET", r"/api/v1/namespaces/default/pods/.*/log")) == 3


RDMA_SITE = """\
version: 1
site: {name: rdma}
defaults:
  bmc: {vendor: redfish, address_pool: 10.0.1.0/24, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}
  ssh: {address: "{name}.mgmt.example", user: ops}
  hardware:
    gpu: {model: H100-SXM5-80GB, count: 8}
    infiniband: {hcas: 8, rate_gbps: 400, devices: [mlx5_0, mlx5_1], socket_ifname: net1, gdr_level: PHB}
  scheduler:
    kubernetes:
      version: "1.30"
      image: registry.example/clusterctl-burnin:0.1.0
      labels: {clusterctl.io/pool: burnin}
      taints: ["nvidia.com/gpu=present:NoSchedule", "rdma:NoExecute"]
%(network)s
halls:
  - name: H1
    rows:
      - name: R1
        racks:
          - {name: r1}
groups:
  - name: gpu
    nodes: gpu[1-3]
    rack: r1
"""
MULTUS = """\
      rdma_resources: {rdma/rdma_shared_device_a: 1}
      networks: [rdma-net-a, rdma-net-b]"""


def _site(tmp_path: Path, network: str) -> Path:
    path = tmp_path / "rdma.yaml"
    path.write_text(RDMA_SITE % {"network": network})
    return path


def test_rdma_site_manifests_request_the_fabric_and_validate_against_the_sites_kubernetes(cli, tmp_path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for network in (MULTUS, "      rdma_resources: {nvidia.com/hostdev: 8}\n      host_network: true"):
        result = cli("burnin", _site(tmp_path, network), "--launcher", "kubernetes", "--kube-workload", "job",
                     "--dry-run", "-o", "json")
        assert result.code == 0, result.err
        docs = {name: yaml.safe_load(text) for name, text in result.json()["files"].items()}
        for doc in docs.values():  # the version the inventory names, strict: no unknown field anywhere
            kubernetes_validate.validate(doc, desired_version="1.30.0", strict=True)
        pod = docs["job.yaml"]["spec"]["template"]
        spec, container = pod["spec"], pod["spec"]["containers"][0]
        assert container["image"] == "registry.example/clusterctl-burnin:0.1.0"
        assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
        # GPU Feature Discovery's label for the inventory's GPU, beside the inventory's own labels.
        assert spec["nodeSelector"] == {"clusterctl.io/pool": "burnin",
                                        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert spec["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
            {"key": "rdma", "operator": "Exists", "effect": "NoExecute"}]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NCCL_IB_HCA"] == "=mlx5_0,mlx5_1" and env["NCCL_SOCKET_IFNAME"] == "net1"
        assert env["NCCL_NET_GDR_LEVEL"] == "PHB" and env["NCCL_DEBUG"] == "INFO"
        if network == MULTUS:
            assert container["resources"]["limits"] == {"nvidia.com/gpu": "8", "rdma/rdma_shared_device_a": "1"}
            assert pod["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "rdma-net-a,rdma-net-b"}
            assert "hostNetwork" not in spec
        else:
            assert container["resources"]["requests"] == {"nvidia.com/gpu": "8", "nvidia.com/hostdev": "8"}
            assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
            assert "annotations" not in pod["metadata"]


def test_an_infiniband_site_without_rdma_resources_is_refused(cli, tmp_path) -> None:
    result = cli("burnin", _site(tmp_path, "      host_network: true"), "--launcher", "kubernetes", "--dry-run")
    assert result.code == 2
    assert "gpu[1-3] have InfiniBand" in result.err and "scheduler.kubernetes.rdma_resources" in result.err
    assert "Traceback" not in result.err


def test_bad_fabric_values_in_the_inventory_are_clear_errors(cli, tmp_path) -> None:
    bad = (RDMA_SITE % {"network": MULTUS}).replace("devices: [mlx5_0, mlx5_1]", "devices: ['mlx5_0;reboot']")
    bad = bad.replace("rdma/rdma_shared_device_a", "rdma shared").replace("registry.example/clusterctl", "-registry")
    both = RDMA_SITE % {"network": MULTUS + "\n      host_network: true"}
    for text, expected in ((bad, [":8:", "devices[0]: expected an HCA name such as mlx5_0", ":12:",
                                  "image: expected a container image", ":15:",
                                  "rdma_resources.rdma shared: expected a Kubernetes extended resource"]),
                           (both, ["host_network: true and networks (Multus) contradict each other"])):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        result = cli("burnin", path, "--launcher", "kubernetes", "--dry-run")
        assert result.code == 2 and "Traceback" not in result.err
        for part in expected:
            assert part in result.err, result.err


def test_a_socket_fallback_on_an_infiniband_node_fails_it_through_the_api(cli, tmp_path, kubeconfig, kube_api):
    kube_api.slow_node, kube_api.socket_node = None, "gpu3"
    result = cli("burnin", _site(tmp_path, MULTUS), "--launcher", "kubernetes", "--kubeconfig", kubeconfig,
                 "--model", "transformer-tiny", "--steps", "16", "--nproc", "1", "-o", "json")
    assert result.code == 1, result.err
    nodes = {n["node"]: n for n in result.json()["nodes"]}
    assert {name: n["status"] for name, n in nodes.items()} == {"gpu1": "pass", "gpu2": "pass", "gpu3": "fail"}
    assert nodes["gpu1"]["metrics"]["transport"] == "IB"
    assert nodes["gpu1"]["metrics"]["nccl_ib_devices"] == ["[0]mlx5_0:1/IB", "[1]mlx5_1:1/IB"]
    assert nodes["gpu3"]["metrics"]["transport"] == "Socket"
    [check] = [c for c in nodes["gpu3"]["checks"] if c["name"] == "burnin.fabric"]
    assert "TCP sockets" in check["detail"] and check["remediation"]
