"""End to end: a real lab, a real `clusterctl monitor --once`, the dashboard served by uvicorn, Chromium clicking.

Real: the lab's Redfish BMCs, the monitor's sweep into telemetry (power, temperatures, fans, PSUs, GPU
temperatures), the store, uvicorn, FastAPI, the page scripts in Chromium. Synthetic (written through the
store API because their commands are still being written): provision stages, validate checks, burn-in
results and loss curves, the quarantine flag and `gpu.xid` events (see conftest.fill).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import AUTH, TOKEN, fill, screenshot  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families
from support.cli import CLI
from support.dashboard import stop
from support.lab import stop_lab_cli
from support.ports import ephemeral_port

from clusterctl.dashboard.app import create_app
from clusterctl.inventory import load_inventory
from clusterctl.state.store import Store

LAB_PORT = 18643
NODES = 16
FAIL_RGB = [0xD2, 0x3C, 0x3C]
QUARANTINED_RGB = [0x7B, 0x3F, 0xB8]
# {node: [r, g, b]} at the centre of each node's square, or null when the heatmap does not show it.
PIXELS = """names => Object.fromEntries(names.map(name => {
  const spot = window.locateNode(name);
  if (!spot) return [name, null];
  const canvas = document.querySelector(`canvas.heatmap[data-hall="${spot.hall}"]`);
  const scale = canvas.width / canvas.clientWidth;
  const px = canvas.getContext("2d").getImageData(Math.floor(spot.x * scale), Math.floor(spot.y * scale), 1, 1).data;
  return [name, [px[0], px[1], px[2]]];
}))"""


@pytest.fixture
def lab(cli: CLI) -> Iterator[dict[str, Any]]:
    code, up, err = cli("-o", "json", "lab", "up", "--nodes", str(NODES), "--port", str(LAB_PORT),
                        "--latency-ms", "0", "--time-scale", "600")
    try:
        assert code == 0, err
        yield up
    finally:
        stop_lab_cli(cli)


def wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def lab_inventory(lab: dict[str, Any], folder: Path) -> str:
    """The inventory `lab up` wrote for this lab, which names the BMC port it serves."""
    assert f"    port: {LAB_PORT}\n" in Path(lab["inventory"]).read_text()
    return str(lab["inventory"])


def test_dashboard_end_to_end(cli: CLI, lab: dict[str, Any], serve: Any, request: pytest.FixtureRequest,
                              tmp_path: Path) -> None:
    inventory_path = lab_inventory(lab, tmp_path)
    assert cli("lab", "fault", "add", "gpu0010", "psu_failed", "--param", "psu=2")[0] == 0
    code, swept, err = cli("-o", "json", "monitor", inventory_path, "--once")
    assert code == 0, (err, swept["errors"])
    assert swept["answered"] == NODES and not swept["errors"]

    _collect_in_the_background(inventory_path)

    inventory = load_inventory(inventory_path)
    nodes = list(inventory.nodes)
    store = Store.open(os.environ["CLUSTERCTL_STATE"])
    try:
        fleet = fill(store, nodes)
        base = serve(create_app(store, inventory, _token()))
        _check_api_and_metrics(base, fleet)
        # Playwright's sync API keeps an event loop running in this thread, so it starts after the sweep.
        browser = request.getfixturevalue("browser")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []  # script errors and CSP refusals, on any page
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(base + "/")  # no token: sent to the login page
        assert "/login" in page.url
        assert page.locator("input[name=token]").count() == 1
        screenshot(page, "login")

        page.fill("input[name=token]", TOKEN)  # posted in the form body: the token never enters a URL
        page.click("form button[type=submit]")
        wait_ready(page)
        assert page.url == base + "/"
        for state, count in fleet.counts.items():
            assert page.get_attribute(f"#count-{state}", "data-count") == str(count), state
        # The heatmap is a canvas: read back the pixel under every node's square.
        colours = page.evaluate(PIXELS, nodes)
        assert sum(1 for c in colours.values() if c == FAIL_RGB) == fleet.counts["fail"]
        assert colours[nodes[2]] == FAIL_RGB and colours[nodes[6]] == QUARANTINED_RGB
        screenshot(page, "fleet")

        failing = nodes[4]
        spot = page.evaluate("name => window.locateNode(name)", failing)
        page.click(f"canvas.heatmap[data-hall='{spot['hall']}']", position={"x": spot["x"], "y": spot["y"]})
        wait_ready(page)
        assert page.url.endswith(f"/nodes/{failing}")
        row = page.locator("#checks tr[data-check='gpu.count']")
        assert "fail" in row.inner_text() and "7 of 8 GPUs visible" in row.inner_text()
        assert "Reseat GPU 3" in row.inner_text()
        # Real telemetry from the monitor's sweep of the lab: at least power, inlet and GPU temperature charts.
        # CSS selectors, not JS predicates: the page's CSP (script-src 'self') forbids the eval they need.
        page.wait_for_selector("#charts .chart:nth-child(3)", timeout=10_000)
        assert "BIOS" in page.inner_text("#firmware")
        screenshot(page, "node")

        page.goto(f"{base}/racks/{inventory.nodes[failing].rack}")
        wait_ready(page)
        assert "W of 96000 W budget" in page.inner_text("#rack-power")
        assert f"{NODES // 2} of {NODES // 2} nodes reporting" in page.inner_text("#rack-power")
        assert page.eval_on_selector("#power-bar span", "bar => parseFloat(bar.style.width)") > 0
        screenshot(page, "rack")

        page.goto(f"{base}/runs/{fleet.burnin_run}")
        wait_ready(page)
        assert fleet.straggler in page.inner_text("#stragglers")
        assert "burnin.speed: rank 0: straggler, 33% of the median" in page.inner_text("#results")
        assert page.locator(".chart svg").count() == 2  # throughput histogram and loss curves
        screenshot(page, "burnin")

        # Live: a stage failure written now turns up on the open fleet page without a reload.
        page.goto(base + "/")
        wait_ready(page)
        renders = int(page.get_attribute("body", "data-renders") or "0")
        store.set_stage(nodes[11], "burnin", "failed", run_id=fleet.burnin_run, reason="NCCL timeout")
        page.wait_for_selector(f"#count-fail[data-count='{fleet.counts['fail'] + 1}']", timeout=10_000)
        assert page.evaluate(PIXELS, [nodes[11]])[nodes[11]] == FAIL_RGB
        assert int(page.get_attribute("body", "data-renders") or "0") > renders
        screenshot(page, "fleet-live")

        page.goto(base + "/events")
        wait_ready(page)
        new_id = store.event("operator.note", node=nodes[12], payload={"note": "<b>not markup</b>"})
        page.wait_for_selector(f"#events tr[data-event='{new_id}']", timeout=10_000)
        assert "<b>not markup</b>" in page.inner_text(f"#events tr[data-event='{new_id}']")
        assert page.locator("#events b").count() == 0  # shown as text, never parsed as HTML
        screenshot(page, "events")

        renders = int(page.get_attribute("body", "data-renders") or "0")
        page.fill("#filter-kind", "gpu.xid")
        page.click("#filters button")
        page.wait_for_selector(f"body[data-renders='{renders + 1}']", timeout=10_000)
        kinds = page.locator("#events tbody tr td:nth-child(5)").all_inner_texts()
        assert kinds == ["gpu.xid"] * 3 and "kind=gpu.xid" in page.url

        page.click(".signout button")
        page.wait_for_url(base + "/login")
        page.goto(base + "/")
        assert "/login" in page.url  # the cookie went with the sign-out
        assert not problems
    finally:
        store.close()


def _collect_in_the_background(inventory: str) -> None:
    """`clusterctl dashboard FILE --collect` as a real process: sweeps keep landing while it serves."""
    import subprocess
    import sys
    import time

    from clusterctl.monitor import names

    launch = "from clusterctl.cli import main; main.run()"
    port = ephemeral_port()
    env = {**os.environ, "CLUSTERCTL_DASHBOARD_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-c", launch, "dashboard", inventory, "--collect", "--interval", "1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            deadline = time.monotonic() + 20
            while len(store.telemetry("gpu0016", names.BMC_UP)) < 3:  # the --once sweep and two more
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
    finally:
        code, _, _ = stop(proc, timeout=20)
    assert code == 130  # interrupted, after a graceful stop of server and collector


def _token() -> Any:
    from clusterctl.dashboard.auth import Token

    return Token(TOKEN, "test")


def _check_api_and_metrics(base: str, fleet: Any) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/api/v1/fleet").status_code == 401
        assert http.get("/api/v1/fleet", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert http.get("/metrics").status_code == 401
        assert http.get("/api/v1/fleet", headers=AUTH).json()["counts"] == fleet.counts
        text = http.get("/metrics", headers=AUTH).text
        # The per-PSU detail stays in the API, behind the node page.
        psus = http.get("/api/v1/nodes/gpu0010/telemetry", params={"metric": "psu_ok"}, headers=AUTH).json()
    failed = [s["labels"]["psu"] for s in psus["series"] if s["points"][-1][1] == 0.0]
    assert len(psus["series"]) == 6 and len(failed) == 1 and "2" in failed[0], psus  # psu_failed psu=2
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def per_node(name: str) -> dict[str, float]:
        return {s.labels["node"]: s.value for s in families[name].samples}

    unhealthy = per_node("clusterctl_node_psus_unhealthy")
    assert unhealthy.pop("gpu0010") == 1.0, "the lab's failed PSU, read over Redfish"
    assert set(unhealthy.values()) == {0.0} and len(unhealthy) == NODES - 1
    assert per_node("clusterctl_node_gpus_missing") == dict.fromkeys(per_node("clusterctl_bmc_up"), 0.0)
    assert len(per_node("clusterctl_bmc_up")) == NODES and set(per_node("clusterctl_bmc_up").values()) == {1.0}
    assert all(v > 0 for v in per_node("clusterctl_node_power_watts").values())
    assert min(per_node("clusterctl_node_fan_speed_min_rpm").values()) > 0
