"""The periodic checks on the dashboard: /api/v1/nodes/{node}/checks and /api/v1/checks over a store filled by
the check code itself (judge_round judging the figures, history.write_round storing them, each node's check
stage set), then the node and fleet pages in Chromium.

Synthetic: only the figures (no lab round runs here; tests/check runs real rounds). One node's SM clock falls
3 % a round, another's correctable ECC climbs; the rest are healthy with a little spread.
"""

from __future__ import annotations

import statistics
from typing import Any

import httpx
import sqlalchemy as sa
from dashboard_support import AUTH, screenshot  # type: ignore[import-not-found]

from clusterctl.check import history
from clusterctl.check.figures import Figure
from clusterctl.check.judge import DAY_S, Policy
from clusterctl.check.round import judge_round
from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import Token
from clusterctl.dashboard.checks import BandCache, fleet_checks, node_checks
from clusterctl.dashboard.views import ReadModel
from clusterctl.state import schema
from clusterctl.state.store import Store

T0 = 1_800_000_000.0
ROUNDS = 8
NODES = [f"n{i:02d}" for i in range(24)]
SLOW, CREEP = "n03", "n07"


def _figures(r: int) -> dict[str, dict[str, Figure]]:
    out = {}
    for i, n in enumerate(NODES):
        clock = 1980.0 - 5 * (i % 4) - (1980.0 * 0.03 * r if n == SLOW else 0.0)
        ecc = 10.0 + (300.0 * r if n == CREEP else (1 + i % 3) * 10.0 * r)  # others creep below their limit
        out[n] = {"gpu.sm_clock_mhz": Figure(n, "gpu.sm_clock_mhz", clock, {"gpu": 2}),
                  "gpu.ecc_corrected": Figure(n, "gpu.ecc_corrected", ecc),
                  "bmc.inlet_c": Figure(n, "bmc.inlet_c", 22.0 + (i % 3))}
    return out


def fill_checks(store: Store) -> dict[str, Any]:
    """Rounds half a day apart, judged and written as `clusterctl check` does; what was named, per round."""
    policy = Policy()
    named: dict[float, list[tuple[str, str, str]]] = {}
    for r in range(ROUNDS):
        ts = T0 + r * DAY_S / 2
        figures = _figures(r)
        past = history.history(store, NODES, ts - 8 * DAY_S, ts)
        findings, risks = judge_round(figures, ts, dict.fromkeys(NODES, "H100"), past, policy)
        run = store.start_run("check", args={"policy": policy.as_dict()})
        history.write_round(store, run, ts, [f for figs in figures.values() for f in figs.values()], findings, risks,
                            dict.fromkeys(NODES, "H100"))
        store.set_stages(NODES, "check", "done", run_id=run)
        store.finish_run(run, "failed" if findings else "succeeded")
        named[ts] = sorted((f.node, f.metric, f.judge) for f in findings)
    return {"named": named, "last": risks, "last_findings": findings}


def _check_band(band: list[list[float]]) -> None:
    """Per round: the median of all 24 peers (an even count: the mean of the middle two) and the judge's width."""
    assert len(band) == ROUNDS
    for r, (ts, median, low, high) in enumerate(band):
        values = [f["gpu.sm_clock_mhz"].value for f in _figures(r).values()]
        want = statistics.median(values)
        width = max(4 * statistics.median(abs(v - want) for v in values), 0.10 * want)
        assert ts == T0 + r * DAY_S / 2 and median == want
        assert abs(low - (want - width)) < 1e-6 and abs(high - (want + width)) < 1e-6


def test_band_and_lists_on_both_backends(store_url: str) -> None:
    with Store.open(store_url) as store:
        filled = fill_checks(store)
        model = ReadModel(store, None)
        cache = BandCache()
        first = node_checks(model, SLOW, 3650, cache)
        _check_band(first["series"]["gpu.sm_clock_mhz"]["band"])
        assert first["series"]["gpu.ecc_corrected"]["band"] == []  # a counter is not judged against peers
        assert cache.known == {}  # every round stored its bands: no figures were ranked
        # A round stored before check_bands existed has no rows there: its band comes from the fleet's figures,
        # the same band, and is computed once per process.
        first_round = history.latest_runs(store, ROUNDS)[-1]
        with store.transaction() as tx:
            tx.connection.execute(sa.delete(schema.check_bands).where(schema.check_bands.c.run_id == first_round))
        assert node_checks(model, SLOW, 3650, cache)["series"] == first["series"]
        assert {run for run, _, _ in cache.known} == {first_round}
        fleet = fleet_checks(model)
        assert {r["node"] for r in fleet["regressions"]} == {SLOW, CREEP}
        assert len(fleet["early_warning"]) == 20 and len(fleet_checks(model, top=500)["early_warning"]) == len(NODES)
        assert filled["last_findings"]


def _inventory(models: dict[str, str]) -> Any:
    """What the dashboard reads of an inventory to group peers: each node's GPU model."""
    from types import SimpleNamespace

    return SimpleNamespace(nodes={n: SimpleNamespace(hardware=SimpleNamespace(gpu=SimpleNamespace(model=m)))
                                  for n, m in models.items()})


def test_the_band_drawn_is_the_one_the_peers_judge_flags_outside_of(store: Store) -> None:
    """Two GPU models judged apart; outliers on both sides of both. Per node and round, a figure outside the
    drawn band on its bad side (below a level, above a heat) is exactly what the verdict named."""
    import random

    rng = random.Random(17)
    models = {n: "H100" if i % 3 else "A100" for i, n in enumerate(NODES)}
    base = {"H100": (1980.0, 40.0), "A100": (1410.0, 36.0)}
    policy = Policy()
    seen: dict[tuple[str, str, float], float] = {}
    named: set[tuple[str, str, float]] = set()
    for r in range(5):
        ts = T0 + r * DAY_S / 4
        figures = {}
        for n in NODES:
            clock, heat = base[models[n]]
            clock *= rng.choice([1.0, 1.0, 1.0, 0.97, 0.85, 1.2])  # some far off the median, either side
            heat += rng.choice([0.0, 0.5, -0.5, 9.0, -9.0])
            figures[n] = {"gpu.sm_clock_mhz": Figure(n, "gpu.sm_clock_mhz", clock),
                          "gpu.temperature_c": Figure(n, "gpu.temperature_c", heat)}
            seen[(n, "gpu.sm_clock_mhz", ts)], seen[(n, "gpu.temperature_c", ts)] = clock, heat
        findings, risks = judge_round(figures, ts, models, {}, policy)
        named |= {(f.node, f.metric, ts) for f in findings if f.judge == "peers"}
        run = store.start_run("check", args={"policy": policy.as_dict()})
        history.write_round(store, run, ts, [f for figs in figures.values() for f in figs.values()], findings, risks,
                            models)
        store.finish_run(run, "succeeded")
    model = ReadModel(store, _inventory(models))  # type: ignore[arg-type]
    outside = set()
    cache = BandCache()
    for n in NODES:
        series = node_checks(model, n, 3650, cache)["series"]
        for name, bad in (("gpu.sm_clock_mhz", lambda v, low, high: v < low),
                          ("gpu.temperature_c", lambda v, low, high: v > high)):
            band = series[name]["band"]
            assert len(band) == 5
            outside |= {(n, name, ts) for ts, _, low, high in band if bad(seen[(n, name, ts)], low, high)}
    assert cache.known == {}  # all of it from the stored bands
    assert named and outside == named
    # Grouped by model: the A100s' median is theirs, not the fleet's.
    a100 = next(n for n in NODES if models[n] == "A100")
    assert all(abs(median - 1410.0) < 1410.0 * 0.05
               for _, median, _, _ in node_checks(model, a100, 3650)["series"]["gpu.sm_clock_mhz"]["band"])


def _check_api(base: str, filled: dict[str, Any]) -> None:
    with httpx.Client(base_url=base, timeout=20) as http:
        for path in (f"/api/v1/nodes/{SLOW}/checks", "/api/v1/checks"):
            assert http.get(path).status_code == 401
            assert http.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        node = http.get(f"/api/v1/nodes/{SLOW}/checks", params={"days": 3650}, headers=AUTH).json()
        fleet = http.get("/api/v1/checks", headers=AUTH).json()
        assert http.get("/api/v1/checks", params={"top": 0}, headers=AUTH).status_code == 422

    clock = node["series"]["gpu.sm_clock_mhz"]
    assert [p[1] for p in clock["points"]] == [_figures(r)[SLOW]["gpu.sm_clock_mhz"].value for r in range(ROUNDS)]
    _check_band(clock["band"])
    # Marked rounds are exactly those the judge named a regression of this metric in.
    marked = [ts for ts, found in filled["named"].items() if (SLOW, "gpu.sm_clock_mhz", "history") in found
              or (SLOW, "gpu.sm_clock_mhz", "peers") in found]
    assert marked and clock["regressions"] == sorted(marked)
    assert marked[0] > T0  # not from the first round: history needs min_history rounds
    assert node["series"]["bmc.inlet_c"]["regressions"] == []
    assert all(r["node"] == SLOW and r["remediation"] for r in node["regressions"])

    # Fleet: the latest round's regressions, with words and action; the early-warning list worst first.
    want = sorted((f.node, f.metric, f.judge) for f in filled["last_findings"])
    assert sorted((r["node"], r["metric"], r["judge"]) for r in fleet["regressions"]) == want
    assert {r["node"] for r in fleet["regressions"]} == {SLOW, CREEP}
    creep = next(r for r in fleet["regressions"] if r["node"] == CREEP)
    assert creep["change_words"].endswith("/day") and "dcgmi diag" in creep["action"] and creep["since_iso"]
    scores = sorted(((round(r.score, 2), r.node) for r in filled["last"] if r.score > 0), key=lambda s: (-s[0], s[1]))
    assert len(scores) > 20 and fleet["nodes_checked"] == len(NODES)
    assert [(w["score"], w["node"]) for w in fleet["early_warning"]] == scores[:20]
    assert {w["node"] for w in fleet["early_warning"][:2]} == {SLOW, CREEP}
    assert all(w["explanation"] for w in fleet["early_warning"])


def test_check_history_api_and_pages(store: Store, token: Token, serve: Any, request: Any) -> None:
    filled = fill_checks(store)
    base = serve(create_app(store, None, token))
    _check_api(base, filled)

    browser = request.getfixturevalue("browser")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []  # script errors and CSP refusals
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_extra_http_headers(AUTH)

    page.goto(f"{base}/nodes/{SLOW}")
    page.wait_for_selector("body[data-checks-ready='1']", timeout=15_000)
    chart = page.locator("#check-charts .chart[data-metric='gpu.sm_clock_mhz'] svg")
    assert chart.count() == 1
    assert chart.locator("polygon.band").count() == 1 and chart.locator("polyline.median").count() == 1
    marked = [ts for ts, found in filled["named"].items() if any(f[:2] == (SLOW, "gpu.sm_clock_mhz") for f in found)]
    assert chart.locator("circle.regression").count() == len(marked)
    assert page.locator("#check-charts .chart[data-metric='bmc.inlet_c'] circle.regression").count() == 0
    assert "below" in page.inner_text("#node-regressions")
    screenshot(page, "node-checks")

    page.goto(base + "/")
    page.wait_for_selector("body[data-checks-ready='1']", timeout=15_000)
    rows = page.locator("#regressions tbody tr")
    assert rows.count() == len(filled["last_findings"])
    assert "dcgmi diag" in page.inner_text(f"#regressions tr[data-node='{CREEP}']")
    warn = page.locator("#early-warning tbody tr")
    assert warn.count() == 20
    assert "/day" in warn.first.inner_text()  # the score explained in words
    screenshot(page, "fleet-checks")
    assert not problems, problems
