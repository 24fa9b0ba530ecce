"""The rollout view (/maintain and /api/v1/maintain): every node's state, the floor, the time in each state,
from the `maintain.*` events written by the rollout's own ledger functions; the page in Chromium."""

from __future__ import annotations

import time
from typing import Any

import httpx
from dashboard_support import AUTH, TOKEN  # type: ignore[import-not-found]

from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import Token
from clusterctl.maintain import ledger
from clusterctl.state.store import Store

STEP_S = 0.05


def rollout_in_flight(store: Store) -> int:
    """A rollout as `maintain` records it: one node resumed, one failed and quarantined, one updating."""
    run = store.start_run("maintain", args={"max_unavailable": "2", "allowed_unavailable": 2, "fleet": 4})
    for state in ("draining", "drained", "updating", "updated", "validating", "resuming", "resumed"):
        ledger.record(store, "gpu0001", state, run_id=run, reason="HGX-H100 23.10.2 -> 24.07.0"
                      if state == "draining" else None)
        time.sleep(STEP_S)
    for state in ("draining", "drained", "updating", "updated", "validating"):
        ledger.record(store, "gpu0002", state, run_id=run)
        time.sleep(STEP_S)
    ledger.record(store, "gpu0002", "failed", run_id=run, reason="validate: gpu.count: 7 of 8 <GPUs>")
    store.set_flag("gpu0002", quarantined=True, reason="validate: gpu.count", source="clusterctl maintain")
    for state in ("draining", "drained", "updating"):
        ledger.record(store, "gpu0003", state, run_id=run)
        time.sleep(STEP_S)
    return run


def test_the_rollout_view_shows_states_the_floor_and_time_in_each_state(
        store: Store, token: Token, serve: Any, browser: Any) -> None:
    run = rollout_in_flight(store)
    base = serve(create_app(store, None, token))
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/api/v1/maintain").status_code == 401  # behind the same token as every view
        view = http.get("/api/v1/maintain", headers=AUTH).json()
    assert view["run"]["id"] == run and view["run"]["status"] == "running"
    nodes = {n["node"]: n for n in view["nodes"]}
    assert {n: v["state"] for n, v in nodes.items()} == {"gpu0001": "resumed", "gpu0002": "failed",
                                                        "gpu0003": "updating"}
    # The floor: the node the rollout holds and the quarantined one are out, of 2 allowed.
    floor = view["floor"]
    assert floor["allowed_unavailable"] == 2 and floor["unavailable_now"] == 2 and not floor["broken"]
    assert floor["held_by_rollout"] == ["gpu0003"] and floor["quarantined"] == ["gpu0002"]
    assert view["counts"] == {"updating": 1, "resumed": 1, "failed": 1}
    # Time in each state: every state a node left took at least the pause between its events; a final state
    # counts nothing, the current one counts until now.
    spent = nodes["gpu0001"]["time_in_states_s"]
    assert set(spent) == {"draining", "drained", "updating", "updated", "validating", "resuming"}
    assert all(s >= STEP_S * 0.9 for s in spent.values()), spent
    assert nodes["gpu0003"]["time_in_states_s"]["updating"] > 0 and nodes["gpu0002"]["reason"].endswith("<GPUs>")

    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(base + "/maintain")
    assert "/login" in page.url
    page.fill("input[name=token]", TOKEN)
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/maintain")
    assert page.text_content("#floor-now") == "2" and page.text_content("#floor-allowed") == "2"
    rows = page.locator("#rollout-nodes tbody tr")
    assert rows.count() == 3
    assert page.get_attribute("tr[data-node=gpu0003]", "data-state") == "updating"
    assert page.text_content("tr[data-node=gpu0002] .reason") == "validate: gpu.count: 7 of 8 <GPUs>"  # escaped
    shown = page.text_content("tr[data-node=gpu0001] td[data-spent=drained]")
    assert shown == f"{spent['drained']:.1f} s"
    assert page.text_content("tr[data-node=gpu0001] td[data-spent=failed]") == ""
    assert problems == [], problems
