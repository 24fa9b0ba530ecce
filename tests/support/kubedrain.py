"""A Kubernetes API server double for drains, on 127.0.0.1, driven by the real `kubernetes` client.

It answers what a drain asks (list and patch nodes, list pods by node, the Eviction API, delete pod),
and enforces one PodDisruptionBudget as the API server does: an eviction that would break it is
answered 429 TooManyRequests. A pod "finishes" when its time is up; every request and every
change of a node's schedulability is recorded, so tests can check the floor at each instant.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


@dataclass
class Pod:
    name: str
    node: str
    namespace: str = "default"
    daemonset: bool = False
    budget: str | None = None
    """The PodDisruptionBudget covering it (minAvailable = all its pods: none may be evicted)."""
    ends_after_cordon: float | None = None
    """Seconds it still runs once its node is cordoned (then it finishes on its own), or never ends."""
    ends_at: float | None = None
    evictions_refused: int = 0
    evicted: bool = False


@dataclass
class FakeKube:
    nodes: list[str]
    pods: list[Pod] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    cordoned: dict[str, bool] = field(default_factory=dict)
    taints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    peak_cordoned: int = 0
    finished: dict[str, float] = field(default_factory=dict)
    """pod -> wall time it finished on its own"""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.cordoned = dict.fromkeys(self.nodes, False)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token-not-secret"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
        }))
        return path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # -- the cluster's state -----------------------------------------------------------------------------

    def _live(self) -> list[Pod]:
        now = time.monotonic()
        for pod in self.pods:
            if pod.ends_at is not None and now >= pod.ends_at and pod.name not in self.finished:
                self.finished[pod.name] = time.time()
        return [p for p in self.pods if not p.evicted and p.name not in self.finished]

    def _node(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"unschedulable": self.cordoned[name], "taints": self.taints.get(name, [])},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    def _pod(self, pod: Pod) -> dict[str, Any]:
        owner = ({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter", "uid": "u1",
                  "controller": True} if pod.daemonset else
                 {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": pod.name.rsplit("-", 1)[0], "uid": "u2",
                  "controller": True})
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "ownerReferences": [owner]},
                "spec": {"nodeName": pod.node, "containers": [{"name": "c", "image": "img"}]},
                "status": {"phase": "Running"}}

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if method == "GET" and path == "/api/v1/nodes":
                return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                             "items": [self._node(n) for n in self.nodes]}
            if m := re.fullmatch(r"/api/v1/nodes/([\w-]+)", path):
                name = m.group(1)
                if name not in self.cordoned:
                    return 404, _status(404, "NotFound")
                if method == "PATCH":
                    spec = body.get("spec", {})
                    if "unschedulable" in spec:
                        self.cordoned[name] = bool(spec["unschedulable"])
                        for pod in self.pods:
                            if pod.node == name and pod.ends_after_cordon is not None and pod.ends_at is None:
                                pod.ends_at = time.monotonic() + pod.ends_after_cordon
                    if "taints" in spec:
                        self.taints[name] = spec["taints"]
                    self.peak_cordoned = max(self.peak_cordoned, sum(self.cordoned.values()))
                return 200, self._node(name)
            if method == "GET" and path == "/api/v1/pods":
                selector = unquote(query.get("fieldSelector", [""])[0])
                node = selector.removeprefix("spec.nodeName=")
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {},
                             "items": [self._pod(p) for p in self._live() if p.node == node]}
            if m := re.fullmatch(r"/api/v1/namespaces/([\w-]+)/pods/([\w-]+)(/eviction)?", path):
                pod = next((p for p in self._live() if p.name == m.group(2) and p.namespace == m.group(1)), None)
                if pod is None:
                    return 404, _status(404, "NotFound")
                if m.group(3) and pod.budget is not None:
                    pod.evictions_refused += 1
                    return 429, _status(429, "TooManyRequests",
                                        "Cannot evict pod as it would violate the pod's disruption budget.")
                pod.evicted = True
                return (201 if m.group(3) else 200), _status(200, "Success")
            return 404, _status(404, "NotFound")


def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "reason": reason, "message": message, "code": code}


def _handler(api: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            code, answer = api.answer(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
