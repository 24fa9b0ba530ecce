"""The check history in the store, on both backends: figures per node and round read back by node and time,
findings by time, and the trends views built on them."""

from __future__ import annotations

from clusterctl.check import history
from clusterctl.check.figures import Figure
from clusterctl.check.judge import DAY_S, Finding
from clusterctl.check.risk import Risk
from clusterctl.check.trends import fleet_trends, node_trends
from clusterctl.state.store import Store

T0 = 1_800_000_000.0  # a fixed instant: rounds are dated by the nodes' clock, not the store's


def test_figures_and_findings_round_trip(store_url: str) -> None:
    with Store.open(store_url) as store:
        for r, clock in enumerate((1980.0, 1980.0, 1850.0)):
            run = store.start_run("check")
            figs = [Figure(n, "gpu.sm_clock_mhz", clock if n == "a" else 1980.0, {"gpu": 3}) for n in ("a", "b")]
            figs += [Figure(n, "bmc.inlet_c", 22.0) for n in ("a", "b")]
            found = [Finding("a", "gpu.sm_clock_mhz", "history", 0.066, T0 + DAY_S, "6.6 % below", "DCGM", 1.3)] \
                if r == 2 else []
            history.write_round(store, run, T0 + r * DAY_S / 2, figs, found, [Risk("a", 1.3, ["slow"]), Risk("b", 0)])
        past = history.history(store, ["a", "b", "c"], T0, T0 + DAY_S)  # the third round is outside
        assert past["a"]["gpu.sm_clock_mhz"] == [(T0, 1980.0), (T0 + DAY_S / 2, 1980.0)]
        assert set(past) == {"a", "b"} and set(past["b"]) == {"gpu.sm_clock_mhz", "bmc.inlet_c"}
        only = history.history(store, ["a"], 0, float("inf"), ["bmc.inlet_c"])
        assert list(only["a"]) == ["bmc.inlet_c"] and len(only["a"]["bmc.inlet_c"]) == 3

        view = node_trends(store, "a", 10_000, "gpu.sm_clock_mhz")
        series = view["series"]["gpu.sm_clock_mhz"]
        assert (series["rounds"], series["first"], series["last"], series["change"]) == (3, 1980.0, 1850.0, "-6.6%")
        assert [(f["judge"], f["since"]) for f in view["regressions"]] == [("history", T0 + DAY_S)]
        fleet = fleet_trends(store, 10_000, None, 20)
        assert [f["node"] for f in fleet["regressions"]] == ["a"]
        assert [(w["node"], w["score"]) for w in fleet["early_warning"]] == [("a", 1.3)]  # b scored 0: not stored
        assert fleet_trends(store, 10_000, "bmc.inlet_c", 20)["regressions"] == []
