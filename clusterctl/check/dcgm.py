"""DCGM diagnostics level 3 in the deep suite: `dcgmi diag -r 3 -j` on each node over SSH, its JSON judged.

Level 3 (about 10-15 minutes) stresses every GPU (memory, PCIe, NVLink, targeted power and stress); level 2
catches most bad GPUs and level 4 is the only one with a chance at silent data corruption, so a deep round
takes the longest that fits a maintenance gap. A node without dcgmi is skipped with a note, not failed: the
rest of the suite still judges it. The JSON's layout changed across DCGM releases ("DCGM GPU Diagnostic"
up to 3.x, "DCGM Diagnostic" in 4.x; warnings as strings or as objects with an error id), so the parser
reads both and treats any test it cannot place as a reason to look, never as a pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl.verdict import NodeVerdict

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory

CHECK = "dcgm.diag"
COMMAND = ("dcgmi", "diag", "-r", "3", "-j")
TIMEOUT_S = 45 * 60.0
NOT_FOUND = 127
REMEDIATION = ("Drain the node; read the failing test's warning (dcgmi diag -r 3 -v) and reseat or RMA the GPU "
               "it names; run level 4 before returning a GPU that failed memory or stress tests.")
_FAILED = {"fail", "failed", "error"}
_WARNED = {"warn", "warning"}
_PASSED = {"pass", "passed", "skip", "skipped", "not run", "notrun", "not_run"}


@dataclass
class Diagnosis:
    failed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    passed: int = 0


def parse(text: str) -> Diagnosis:
    """The tests that failed or warned, each as "test (GPU n): warning"; ValueError when it is not DCGM's JSON."""
    doc = json.loads(text[text.find("{"):text.rfind("}") + 1] if "{" in text else text)
    body = doc.get("DCGM GPU Diagnostic") or doc.get("DCGM Diagnostic") if isinstance(doc, Mapping) else None
    categories = body.get("test_categories") if isinstance(body, Mapping) else None
    if not isinstance(categories, list):
        raise ValueError("no test_categories in dcgmi's JSON")
    found = Diagnosis()
    for category in categories:
        for test in category.get("tests") or [] if isinstance(category, Mapping) else []:
            name = str(test.get("name") or test.get("test_name") or "?")
            for result in test.get("results") or []:
                status = str(result.get("status") or "").strip().lower()
                where = _gpus(result)
                words = f"{name}{f' ({where})' if where else ''}"
                note = _warnings(result.get("warnings"))
                if status in _FAILED:
                    found.failed.append(f"{words}: {note}" if note else words)
                elif status in _WARNED:
                    found.warned.append(f"{words}: {note}" if note else words)
                elif status in _PASSED:
                    found.passed += 1
                else:
                    found.warned.append(f"{words}: status {status or 'missing'} not understood")
    return found


def _gpus(result: Mapping[str, Any]) -> str:
    ids = result.get("gpu_ids", result.get("gpu_id"))
    if ids is None or ids == "":
        return ""
    return f"GPU {ids}" if not isinstance(ids, list) else "GPU " + ",".join(str(i) for i in ids)


def _warnings(value: Any) -> str:
    items = value if isinstance(value, list) else [value] if value else []
    texts = [str(w.get("warning") or w.get("message") or w) if isinstance(w, Mapping) else str(w) for w in items]
    return "; ".join(t.strip() for t in texts if t and t.strip())[:400]


def judge(node: str, exit_status: int, stdout: str, stderr: str) -> NodeVerdict:
    """One node's word on its diagnostics: pass, warn, fail, or skipped with a note (no dcgmi)."""
    verdict = NodeVerdict(node)
    if exit_status == NOT_FOUND or (not stdout.strip() and "not found" in stderr.lower()):
        verdict.metrics["dcgm"] = "skipped: dcgmi is not installed on this node"
        return verdict
    try:
        found = parse(stdout)
    except (ValueError, AttributeError) as exc:
        tail = (stderr.strip() or stdout.strip())[-200:]
        verdict.add("warn", CHECK, f"dcgmi diag -r 3 exited with status {exit_status} without a readable "
                    f"result ({exc}): {tail}", REMEDIATION)
        return verdict
    verdict.metrics["dcgm"] = {"failed": len(found.failed), "warned": len(found.warned), "passed": found.passed}
    if found.failed:
        verdict.fail(CHECK, "DCGM diagnostics level 3 failed: " + "; ".join(found.failed[:5]), REMEDIATION)
    if found.warned:
        verdict.add("warn", CHECK, "DCGM diagnostics level 3 warned: " + "; ".join(found.warned[:5]), REMEDIATION)
    return verdict


def diagnose_nodes(inventory: Inventory, nodes: Sequence[str], *, parallel: int = 32,
                   connect_timeout: float = 10.0) -> dict[str, NodeVerdict]:
    """Every node's diagnostics at once (each is bound to its own GPUs); an unreachable node warns."""
    from clusterctl.ssh import SSHPool, target_from_node
    from clusterctl.ssh.fleet import run_many

    targets = [target_from_node(inventory.nodes[n], inventory) for n in nodes]
    pool = SSHPool(max_sessions=parallel, connect_timeout=connect_timeout, command_timeout=TIMEOUT_S)
    out: dict[str, NodeVerdict] = {}
    for result in run_many(targets, lambda t: pool.run(t, list(COMMAND)), max_parallel=parallel):
        if result.ok and result.value is not None:
            r = result.value
            out[result.target] = judge(result.target, r.exit_status, r.stdout.decode(errors="replace"),
                                       r.stderr.decode(errors="replace"))
        else:
            verdict = NodeVerdict(result.target)
            verdict.add("warn", CHECK, f"could not run dcgmi diag: {result.error}", REMEDIATION)
            out[result.target] = verdict
    return out
