"""The OS stage's bridge to Ansible: run the site playbook through ansible-runner, results as data.

Per-host results come from ansible-runner's structured event stream (one event per task and
host, then the play's stats), never from parsing Ansible's text output, and go to the state
store as `ansible.task` events plus one `ansible.host` outcome per node. Host keys are always
checked against the inventory's known_hosts: ansible-runner turns checking off unless told
otherwise, and an SSH option given first wins, so both are set here explicitly.

A host that fails or cannot be reached is an outcome, not an exception: Ansible drops it from
the play and the other hosts carry on. When `run_playbook` returns, no process of the run is left
on this machine, whether the run ended, timed out or was cancelled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clusterctl import log, processes
from clusterctl.errors import ClusterctlError, StateError
from clusterctl.inventory.export_ansible import Unsafe, ansible_inventory, to_json
from clusterctl.state.private import private_dir

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory, Node
    from clusterctl.state.store import Store

PLAYBOOKS = Path(__file__).resolve().parents[4] / "playbooks"
SITE_PLAYBOOK = PLAYBOOKS / "site.yml"
STAGE = "os"
MESSAGE_LIMIT = 1000
FLUSH_EVERY = 500  # task events buffered before a store write, besides one write per task
CHECK_EVERY_S = 1  # how often ansible-runner looks at the cancel flag and the timeout (its default: 5 s)

_log = log.get("provision.ansible")

TaskStatus = Literal["ok", "changed", "failed", "skipped", "unreachable", "ignored"]
HostStatus = Literal["ok", "failed", "unreachable"]

_TASK_EVENTS: dict[str, TaskStatus] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


@dataclass(frozen=True)
class TaskResult:
    """One task's result on one host, as the event stream reported it."""

    host: str
    task: str
    role: str | None
    action: str | None
    status: TaskStatus
    changed: bool
    duration: float | None
    message: str | None = None

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        del data["host"]
        data["failed"] = self.status in ("failed", "unreachable")
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class HostOutcome:
    """How the playbook ended for one host; counts are the play's recap (`ok` includes `changed`)."""

    host: str
    status: HostStatus = "failed"
    tasks_ok: int = 0
    changed: int = 0
    skipped: int = 0
    failed_task: str | None = None
    failed_role: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def unreachable(self) -> bool:
        return self.status == "unreachable"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_playbook(
    inventory: Inventory,
    nodes: list[Node],
    *,
    workdir: Path,
    playbook: Path = SITE_PLAYBOOK,
    extra_vars: Mapping[str, Any] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
    store: Store | None = None,
    run_id: int | None = None,
    stage: str = STAGE,
    forks: int = 50,
    timeout: float | None = None,
    connect_timeout: int = 10,
    on_task: Callable[[TaskResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, HostOutcome]:
    """Run `playbook` on `nodes`; returns an outcome for every node, whatever happened to the others.

    `host_vars` sets variables for single hosts on top of what the inventory gives (a per-host
    `clusterctl_root`, say); `extra_vars` override everything for all hosts. The private data
    directory (generated inventory, ansible-runner's artifacts) is a new directory under `workdir`.
    `timeout` bounds the whole run; hosts the run did not finish are reported failed, as they are
    when `cancel` is set (ansible-runner checks it between events and stops ansible-playbook).
    ansible-runner writes `extra_vars` into the private data directory: pass no secrets in them.
    """
    import ansible_runner

    if not nodes:
        return {}
    playbook = playbook.resolve()
    if not playbook.is_file():
        raise ClusterctlError(f"playbook {playbook} does not exist")
    unknown = sorted(set(host_vars or {}) - {n.name for n in nodes})
    if unknown:
        raise ClusterctlError(f"host_vars names hosts that are not being provisioned: {', '.join(unknown)}")

    search_path = _search_path()
    private_dir(workdir)
    private = Path(tempfile.mkdtemp(prefix="ansible-", dir=workdir))
    inventory_file = private / "inventory" / "hosts.json"
    inventory_file.parent.mkdir()
    inventory_file.write_text(to_json(_inventory(inventory, nodes, host_vars or {})))

    collector = _Collector(store, run_id=run_id, stage=stage, on_task=on_task)
    started = time.monotonic()
    # SSH control sockets need a short path (sun_path is 108 bytes), so not under `workdir`.
    control_dir = Path(tempfile.mkdtemp(prefix="clusterctl-cp-"))
    mark = processes.new_mark()
    _log.info("running %s on %d host(s) in %s", playbook.name, len(nodes), private)
    try:
        result = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(playbook.parent),
            playbook=playbook.name,
            inventory=str(inventory_file),
            extravars=dict(extra_vars or {}),
            envvars=_environment(playbook.parent, control_dir, connect_timeout) | {"PATH": search_path}
            | log.masked_environment() | processes.mark_env(mark),
            settings={"pexpect_timeout": CHECK_EVERY_S},
            forks=max(1, min(forks, len(nodes))),
            timeout=max(1, math.ceil(timeout)) if timeout else None,
            event_handler=collector.handle,
            cancel_callback=(lambda: cancel.is_set()) if cancel is not None else None,
            status_handler=lambda status, runner_config: _log.debug("ansible-runner: %s", status.get("status")),
            quiet=True,
        )
    finally:
        collector.flush()
        _end_processes(mark, control_dir)
    why = _unfinished_reason(result, timeout)
    outcomes = {node.name: collector.outcome(node.name, why) for node in nodes}
    collector.record_outcomes(outcomes.values(), elapsed=time.monotonic() - started)
    return outcomes


def _search_path() -> str:
    """PATH with this environment's bin first: a virtualenv is often used without being activated,
    and ansible-playbook must be the one installed beside clusterctl."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    if not shutil.which("ansible-playbook", path=path):
        raise ClusterctlError("ansible-playbook is not installed (pip install ansible-core)")
    return path


def _inventory(
    inventory: Inventory, nodes: list[Node], host_vars: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The export's inventory, with host-key checking made explicit for every host."""
    data = ansible_inventory(inventory, nodes)
    for name, hostvars in data["all"]["hosts"].items():
        hostvars["ansible_connection"] = "ssh"
        common = hostvars.get("ansible_ssh_common_args", "")
        if "StrictHostKeyChecking" not in common:
            # No known_hosts in the inventory: the user's own file, still checked, never added to.
            hostvars["ansible_ssh_common_args"] = Unsafe(f"{common} -o StrictHostKeyChecking=yes".strip())
        hostvars.update(host_vars.get(name, {}))
    return data


def _environment(project: Path, control_dir: Path, connect_timeout: int) -> dict[str, str]:
    return {
        # ansible-runner sets this to False when it is absent; Ansible would then pass
        # StrictHostKeyChecking=no before the inventory's own options, and ssh keeps the first.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        # Ansible's default without -C: compressing module payloads costs CPU on both ends for ~100 KB.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
        "ANSIBLE_TIMEOUT": str(connect_timeout),
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_ROLES_PATH": str(project / "roles"),
        "ANSIBLE_LIBRARY": str(project / "library"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "True",
    }


def _end_processes(mark: str, control_dir: Path) -> None:
    """Leave nothing of the run running. On a timeout or a cancel ansible-runner kills ansible-playbook's
    process group, but each Ansible worker has called setsid() and lives on, orphaned, until its task ends,
    and so do the ssh clients it started: every one of them carries the run's mark. SSH masters shed the
    mark once their control socket exists, so they are told to exit through it, after the sweep."""
    left = processes.end_marked(mark)
    if left:
        _log.info("ended %d process(es) the playbook run left behind", len(left))
    _close_connections(control_dir)


def _close_connections(control_dir: Path) -> None:
    """End the SSH master connections of this run instead of leaving them to idle out on every node."""
    sockets = [p for p in control_dir.iterdir() if p.is_socket()] if control_dir.is_dir() else []

    def close(socket: Path) -> None:
        try:
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "clusterctl"],
                           capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _log.debug("could not close %s: %s", socket, exc)

    if sockets:
        with ThreadPoolExecutor(max_workers=min(16, len(sockets))) as pool:
            list(pool.map(close, sockets))
    shutil.rmtree(control_dir, ignore_errors=True)


def _unfinished_reason(result: Any, timeout: float | None) -> str:
    """Why a host has no recap: the run timed out, was cancelled, or ansible-playbook itself failed."""
    if result.status == "timeout":
        return f"the playbook run timed out after {timeout:g} s"
    if result.status == "canceled":
        return "the playbook run was cancelled"
    tail = ""
    try:
        lines = [line.strip() for line in result.stdout.read().splitlines() if line.strip()]
        tail = lines[-1] if lines else ""
    except (OSError, AttributeError, ValueError):
        pass
    return _clip(f"ansible-playbook ended ({result.status}, rc={result.rc}) before this host finished"
                 + (f": {tail}" if tail else ""))


def _clip(text: str) -> str:
    """One line, secrets masked; long text keeps its head and its tail, where ssh puts its verdict."""
    lines = (line.strip() for line in text.splitlines())
    text = log.scrub(" ".join(line for line in lines if line and set(line) != {"@"}))
    if len(text) <= MESSAGE_LIMIT:
        return text
    head = MESSAGE_LIMIT // 3
    return text[:head] + " … " + text[-(MESSAGE_LIMIT - head - 3):]


def _message(res: Mapping[str, Any]) -> str | None:
    for key in ("msg", "stderr", "module_stderr", "reason"):
        value = res.get(key)
        if value:
            return _clip(value if isinstance(value, str) else json.dumps(value, default=str))
    return None


class _Collector:
    """Turns ansible-runner events into task results, host outcomes and store events.

    ansible-runner calls `handle` on the thread that called `run`, so no locking is needed.
    """

    def __init__(self, store: Store | None, *, run_id: int | None, stage: str,
                 on_task: Callable[[TaskResult], None] | None) -> None:
        self.store = store
        self.run_id = run_id
        self.stage = stage
        self.on_task = on_task
        self.stats: dict[str, dict[str, int]] = {}
        self.first_failure: dict[str, TaskResult] = {}
        self.pending: list[TaskResult] = []
        self.store_broken = False

    def handle(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind in _TASK_EVENTS and data.get("host"):
            self._task(kind, data)
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.flush()
        elif kind == "playbook_on_stats":
            for key in ("ok", "changed", "skipped", "failures", "dark", "ignored", "rescued"):
                for host, count in (data.get(key) or {}).items():
                    self.stats.setdefault(host, {})[key] = int(count)
        # The store keeps what matters; ansible-runner's one JSON file per event would be
        # tens of thousands of files per run on a large site.
        return False

    def _task(self, kind: str, data: Mapping[str, Any]) -> None:
        res = data.get("res") or {}
        status = _TASK_EVENTS[kind]
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        changed = bool(res.get("changed")) and status in ("ok", "ignored")
        if status == "ok" and changed:
            status = "changed"
        result = TaskResult(
            host=data["host"],
            task=data.get("task") or data.get("task_action") or "?",
            role=data.get("role") or None,
            action=data.get("task_action") or data.get("resolved_action") or None,
            status=status,
            changed=changed,
            duration=round(float(data["duration"]), 3) if data.get("duration") is not None else None,
            message=_message(res) if status in ("failed", "unreachable", "ignored") else None,
        )
        if status in ("failed", "unreachable"):
            self.first_failure.setdefault(result.host, result)
        self.pending.append(result)
        if self.on_task is not None:
            self.on_task(result)
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch or self.store is None or self.store_broken:
            return
        try:
            with self.store.transaction() as tx:
                for r in batch:
                    tx.event("ansible.task", node=r.host, stage=self.stage, run_id=self.run_id, payload=r.payload())
        except StateError as exc:
            # The playbook keeps running (stopping it mid-way would leave nodes half-configured);
            # the outcomes are still returned to the caller.
            self.store_broken = True
            _log.error("task events are no longer recorded: %s", exc)

    def outcome(self, host: str, unfinished: str) -> HostOutcome:
        stats = self.stats.get(host)
        failure = self.first_failure.get(host)
        if stats is None:
            return HostOutcome(host, "failed", failed_task=failure.task if failure else None,
                               failed_role=failure.role if failure else None,
                               message=failure.message if failure and failure.message else unfinished)
        status: HostStatus = "ok"
        if stats.get("dark"):
            status = "unreachable"
        elif stats.get("failures"):
            status = "failed"
        outcome = HostOutcome(host, status, tasks_ok=stats.get("ok", 0), changed=stats.get("changed", 0),
                              skipped=stats.get("skipped", 0))
        if status != "ok" and failure is not None:
            outcome.failed_task, outcome.failed_role, outcome.message = failure.task, failure.role, failure.message
        return outcome

    def record_outcomes(self, outcomes: Any, *, elapsed: float) -> None:
        if self.store is None or self.store_broken:
            return
        try:
            with self.store.transaction() as tx:
                for o in outcomes:
                    payload = o.as_dict() | {"elapsed_s": round(elapsed, 1)}
                    tx.event("ansible.host", node=o.host, stage=self.stage, run_id=self.run_id, payload=payload)
        except StateError as exc:
            _log.error("host outcomes were not recorded: %s", exc)
