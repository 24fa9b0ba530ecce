"""The fleet page and /metrics cost a fixed number of SQL statements, whatever the fleet's size.

Counted, not timed: the same store contents (every kind of record the pages read) for 20 and for 200
nodes, and each endpoint must send exactly as many statements for both. A per-node query (N+1)
would add 180; the render-time goals at 12,500 nodes are benchmarks/dashboard_render.py's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from dashboard_support import AUTH, fill

from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import Token
from clusterctl.inventory import load_inventory
from clusterctl.monitor import samples_from
from clusterctl.redfish.resources.telemetry import FanReading, PsuReading, Telemetry, TemperatureReading
from clusterctl.sim.inventory import render_lab_inventory
from clusterctl.state.store import Store

ENDPOINTS = ("/", "/api/v1/fleet", "/metrics")


def _statements(tmp: Path, nodes: int, token: Token, serve: Any) -> dict[str, int]:
    (tmp / "inventory.yaml").write_text(render_lab_inventory(nodes, tmp, names=f"h1-gpu[00001-{nodes:05d}]"))
    inventory = load_inventory(tmp / "inventory.yaml")
    counted: dict[str, int] = {}
    with Store.open(f"sqlite:///{tmp / 'state.db'}") as store:
        node_names = list(inventory.nodes)
        fill(store, node_names)
        now = time.time()
        store.record_telemetry([s for i, n in enumerate(node_names) for s in samples_from(n, [Telemetry(
            power_watts=5000.0 + i, inlet_c=22.0, fans=[FanReading(name="Fan1", rpm=9000.0)],
            psus=[PsuReading(name="PSU1", health="OK")],
            temperatures=[TemperatureReading(name=f"GPU {g} Temp", celsius=40.0 + g) for g in range(2)])], now)])
        sent = [0]

        def count(*_args: Any) -> None:
            sent[0] += 1

        sa.event.listen(store.engine, "before_cursor_execute", count)
        base = serve(create_app(store, inventory, token))
        with httpx.Client(base_url=base, timeout=60) as client:
            for path in ENDPOINTS:
                sent[0] = 0
                response = client.get(path, headers=AUTH)
                assert response.status_code == 200, (path, response.text[:200])
                counted[path] = sent[0]
            assert f'clusterctl_node_power_watts{{node="{node_names[-1]}"' in client.get("/metrics", headers=AUTH).text
            assert client.get("/api/v1/fleet", headers=AUTH).json()["total"] == nodes
    return counted


def test_fleet_page_and_metrics_send_as_many_statements_for_200_nodes_as_for_20(tmp_path: Path,
                                                                                token: Token, serve: Any) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _statements(tmp_path / "small", 20, token, serve)
    large = _statements(tmp_path / "large", 200, token, serve)
    assert small["/api/v1/fleet"] > 0 and small["/metrics"] > 0, small
    assert large == small
