"""contrib/: the Prometheus alert rules pass `promtool check rules`, and both they and the Grafana dashboard
name only metrics clusterctl's /metrics exposes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from clusterctl.dashboard.metrics import DOCUMENTED

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus" / "clusterctl-check-alerts.yml"
NODE_RULES = CONTRIB / "prometheus" / "clusterctl-node-alerts.yml"
DASHBOARD = CONTRIB / "grafana" / "clusterctl-checks.json"
NAME = re.compile(r"\bclusterctl_[a-z_]+\b")


@pytest.mark.parametrize(("rules", "count"), [(RULES, 3), (NODE_RULES, 7)], ids=["checks", "nodes"])
def test_alert_rules_pass_promtool(rules: Path, count: int) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (Debian: prometheus), and CI must run it")
        pytest.skip("promtool is not installed")
    done = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and f"SUCCESS: {count} rules found" in done.stdout, done.stdout + done.stderr


def _named(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in NAME.findall(e)}


def test_rules_and_dashboard_name_only_exposed_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    exprs = [r["expr"] for r in rules]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    named = _named(exprs)
    assert named == {"clusterctl_check_regression", "clusterctl_node_risk_score",
                     "clusterctl_check_last_run_timestamp_seconds"}
    assert named <= set(DOCUMENTED)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_node_rules_name_only_exposed_metrics_and_labels_they_carry() -> None:
    """Node series carry `node` only (the rack is joined from clusterctl_node_state), so a rule that
    templates `$labels.rack` on one of them would print an empty rack."""
    rules = yaml.safe_load(NODE_RULES.read_text())["groups"][0]["rules"]
    named = _named([r["expr"] for r in rules])
    assert named <= set(DOCUMENTED), named - set(DOCUMENTED)
    assert "clusterctl_node_psus_unhealthy" in named and "clusterctl_node_gpus_missing" in named
    for rule in rules:
        if "$labels.rack" in rule["annotations"]["summary"]:
            assert all(n.startswith("clusterctl_rack_") for n in _named([rule["expr"]])), rule["alert"]
