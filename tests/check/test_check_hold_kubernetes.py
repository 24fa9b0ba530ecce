"""`check --launcher kubernetes`: the hold manifests (a PriorityClass that never preempts, one Job per node asking
for all its GPUs) are valid Kubernetes, and against a double of the API server (the Kubernetes API cannot run
here) a node whose GPUs a user's pod holds is never checked: its hold pod stays Pending, its Job is deleted."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml
from test_check_lab import check, lab_factory  # noqa: F401 - the fixture is used by name

from clusterctl.check import kube_hold


class Scheduler:
    """Answers what the hold asks: create PriorityClass and Job, list pods by label, delete Job. A Job's pod runs
    on its node unless a user's pod holds that node's GPUs (then Pending, as the scheduler leaves it)."""

    def __init__(self, busy: set[str]) -> None:
        self.busy = busy
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.priority_classes: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/apis/scheduling.k8s.io/v1/priorityclasses":
            self.priority_classes.append(body)
            return 201, body
        if m := re.fullmatch(r"/apis/batch/v1/namespaces/([\w-]+)/jobs(?:/([\w.-]+))?", path):
            if method == "POST":
                self.jobs[body["metadata"]["name"]] = body
                return 201, body
            if method == "DELETE" and self.jobs.pop(m.group(2), None) is not None:
                self.deleted.append(m.group(2))
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        if m := re.fullmatch(r"/api/v1/namespaces/([\w-]+)/pods", path):
            key, _, node = unquote(query["labelSelector"][0]).partition("=")
            pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-x", "namespace": m.group(1)},
                     "spec": {"nodeName": None if node in self.busy else node,
                              "containers": [{"name": "hold", "image": "pause"}]},
                     "status": {"phase": "Pending" if node in self.busy else "Running"}}
                    for name, job in self.jobs.items() if job["metadata"]["labels"].get(key) == node]
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                code, doc = api.answer(self.command, url.path, parse_qs(url.query), body)
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def kubeconfig(self, path: Path) -> Path:
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": url}}],
            "users": [{"name": "tester", "user": {"token": "test-token-not-secret"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}]}))
        return path


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    api = Scheduler(busy={"gpu0002"})
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_the_hold_manifests_are_valid_kubernetes() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    for manifest in (kube_hold.priority_class(), kube_hold.hold_job("gpu0001", 8, namespace="ops", minutes=13.5)):
        kubernetes_validate.validate(manifest, desired_version=version, strict=True)
    job = kube_hold.hold_job("gpu0001", 8, namespace="ops", minutes=13.5)
    pod = job["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == kube_hold.PRIORITY_CLASS and kube_hold.priority_class()["value"] < 0
    assert kube_hold.priority_class()["preemptionPolicy"] == "Never"
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "gpu0001"}
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "8"}}
    assert job["spec"]["activeDeadlineSeconds"] == 810


def test_kubernetes_launcher_checks_only_nodes_its_low_priority_jobs_hold(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: Scheduler  # noqa: F811
) -> None:
    lab = lab_factory(3)
    inventory = lab.inventory(tmp_path / "lab.yaml")
    code, doc = check(capsys, str(inventory), "--launcher", "kubernetes", "--kubeconfig",
                      str(scheduler.kubeconfig(tmp_path / "kubeconfig")), "--namespace", "ops",
                      "--hold-start-timeout", "2")
    assert code == 0, doc
    assert [n["node"] for n in doc["nodes"]] == ["gpu0001", "gpu0003"]
    assert doc["skipped"]["gpu0002"].startswith("busy: its hold pod did not start")
    assert [p["metadata"]["name"] for p in scheduler.priority_classes] == [kube_hold.PRIORITY_CLASS]
    # Every hold Job is gone at the end: the busy node's at once, the others' when the round ended.
    assert scheduler.jobs == {} and sorted(scheduler.deleted) == sorted(
        kube_hold.job_name(n) for n in ("gpu0001", "gpu0002", "gpu0003"))
