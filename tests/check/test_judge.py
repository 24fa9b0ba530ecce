"""Judging figures against peers and history, on plain numbers: the rules behind `clusterctl check`."""

from __future__ import annotations

import pytest

from clusterctl.check.figures import Figure
from clusterctl.check.judge import DAY_S, Policy, against_history, against_peers, counter_rate
from clusterctl.check.risk import node_risk, worst_first

P = Policy()


def fig(metric: str, value: float, node: str = "n1", **labels: object) -> Figure:
    return Figure(node, metric, value, labels or None)


def days(*values: float, step: float = 0.5) -> list[tuple[float, float]]:
    return [(i * step * DAY_S, v) for i, v in enumerate(values)]


def test_a_level_is_judged_against_its_rolling_median_and_names_since_when() -> None:
    past = days(1980, 1980, 1980, 1975, 1900)
    assert against_history(fig("gpu.sm_clock_mhz", 1890, gpu=3), 2.5 * DAY_S, past, P) is None  # 4.5 % < 5 %
    found = against_history(fig("gpu.sm_clock_mhz", 1850, gpu=3), 2.5 * DAY_S, past, P)
    assert found is not None and found.judge == "history" and found.value == pytest.approx(130 / 1980)
    assert found.since == 2.0 * DAY_S  # the first of the latest rounds below the median
    assert "GPU's SM clock" in found.detail and "gpu 3" in found.detail and "7-day median" in found.detail
    assert found.remediation
    # Too little history: nothing is said; outside the window does not count.
    assert against_history(fig("gpu.sm_clock_mhz", 1000), 1.0 * DAY_S, days(1980, 1980), P) is None
    old = [(t - 30 * DAY_S, v) for t, v in days(1980, 1980, 1980)]
    assert against_history(fig("gpu.sm_clock_mhz", 1000), 0.0, old, P) is None


def test_a_heat_regresses_when_it_climbs_past_the_limit() -> None:
    past = days(22, 22, 22, 23)
    assert against_history(fig("bmc.inlet_c", 26.5), 2 * DAY_S, past, P) is None
    found = against_history(fig("bmc.inlet_c", 28), 2 * DAY_S, past, P)
    assert found is not None and found.value == pytest.approx(6.0)


def test_a_counter_regresses_on_its_growth_per_day_and_survives_a_reset() -> None:
    past = days(0, 0, 10, 60)  # days 0, 0.5, 1.0, 1.5
    rate = counter_rate(fig("gpu.ecc_corrected", 160), 2.0 * DAY_S, past, P)
    assert rate == (150.0, 1.0 * DAY_S)  # from day 1.0 (10) to day 2.0 (160), growing since day 1.0
    found = against_history(fig("gpu.ecc_corrected", 160), 2.0 * DAY_S, past, P)
    assert found is not None and found.judge == "rate" and "150.0 a day" in found.detail
    assert against_history(fig("gpu.ecc_corrected", 100), 2.0 * DAY_S, past, P) is None  # 90 a day
    # A reset (reboot, driver reload): the counter's value is its growth.
    assert counter_rate(fig("gpu.ecc_corrected", 40), 2.0 * DAY_S, days(0, 0, 500, 600), P) == (40.0, 2.0 * DAY_S)
    # Without a reading a day old there is no rate yet; a site can change a limit.
    assert counter_rate(fig("gpu.ecc_corrected", 1000), 0.5 * DAY_S, days(0), P) is None
    strict = Policy(per_day={"gpu.ecc_corrected": 50})
    assert against_history(fig("gpu.ecc_corrected", 100), 2.0 * DAY_S, past, strict) is not None


def test_peers_by_model_need_both_mads_and_share() -> None:
    clocks = {f"n{i}": {"gpu.sm_clock_mhz": fig("gpu.sm_clock_mhz", 1980 - i % 3, f"n{i}")} for i in range(12)}
    clocks["n5"] = {"gpu.sm_clock_mhz": fig("gpu.sm_clock_mhz", 1700, "n5")}
    clocks["n6"] = {"gpu.sm_clock_mhz": fig("gpu.sm_clock_mhz", 1900, "n6")}  # 4 % off: noise, not an outlier
    models = {n: "H100-SXM5-80GB" for n in clocks}
    found = against_peers(clocks, models, P)
    assert [(f.node, f.judge) for f in found] == [("n5", "peers")]
    assert "below its 12 peers' median" in found[0].detail
    # Another model is not a peer: alone in its group, n5 is judged against nobody.
    assert against_peers(clocks, {**models, "n5": "A100-SXM4-80GB"}, P) == []


def test_the_early_warning_score_adds_trends_in_words_worst_first() -> None:
    now = 3.0 * DAY_S
    past = {"gpu.ecc_corrected": days(0, 0, 0, 0, 25), "bmc.fan_rpm": days(5280, 5280, 5280, 5200, 5150)}
    figs = {"gpu.ecc_corrected": fig("gpu.ecc_corrected", 75), "bmc.fan_rpm": fig("bmc.fan_rpm", 5100),
            "gpu.remap_pending": fig("gpu.remap_pending", 1)}
    risk = node_risk("n1", figs, now, past, P)
    # ECC: +50 over the last day against 100 a day; a pending remap 1; the fan 3.4 % below its median of 5 %.
    assert risk.score == pytest.approx(0.5 + 1 + (5280 - 5100) / 5280 / 0.05, abs=0.01)
    assert risk.reasons[0].startswith("1 GPU(s) with a row remap pending")  # the biggest share first
    assert risk.reasons[1].startswith("slowest fan's speed 3.4% below")
    assert "correctable ECC errors (lifetime) +50.0/day (limit 100/day)" in risk.words
    healthy = node_risk("n2", {"bmc.fan_rpm": fig("bmc.fan_rpm", 5280)}, now, {"bmc.fan_rpm": days(5280, 5280, 5280)},
                        P)
    assert healthy.score == 0 and healthy.words == "no counter or figure is trending"
    assert [r.node for r in worst_first([healthy, risk])] == ["n1"]
