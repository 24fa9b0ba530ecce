"""The limits file of the peer and history judges: the shipped defaults load and judge as before, a metric's own
settings replace the defaults for that metric only, and every bad value is refused with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import run_cli

from clusterctl.check import limits
from clusterctl.check.figures import METRICS, Figure
from clusterctl.check.judge import DAY_S, against_history, against_peers


def test_shipped_defaults_and_a_metrics_own_limits(tmp_path: Path) -> None:
    policy = limits.load()
    assert (policy.window_days, policy.max_drop, policy.peer_mads, policy.peer_share) == (7, 0.05, 4, 0.10)
    # Every counter has its growth a day in the file, equal to the catalog's.
    for name, m in METRICS.items():
        if m.kind == "counter":
            assert policy.for_metric(name).limit(m) == m.per_day, name
    past = [(i * DAY_S, 1000.0) for i in range(5)]
    now = 5 * DAY_S
    # tokens/s 6 % down: within its own 7 % limit; a clock 6 % down is past the default 5 %.
    assert against_history(Figure("n", "burnin.tokens_per_s", 940.0), now, past, policy) is None
    assert against_history(Figure("n", "gpu.sm_clock_mhz", 940.0), now, past, policy) is not None

    own = tmp_path / "limits.yaml"
    own.write_text("defaults:\n  max_drop: 0.2\nmetrics:\n  gpu.sm_clock_mhz: {max_drop: 0.02, peer_share: 0.01}\n"
                   "  gpu.ecc_corrected: {per_day: 5}\n")
    policy = limits.load(own, max_rise_c=9.0)
    assert policy.max_drop == 0.2 and policy.max_rise_c == 9.0
    assert against_history(Figure("n", "bmc.fan_rpm", 900.0), now, past, policy) is None  # 10 % < 20 %
    assert against_history(Figure("n", "gpu.sm_clock_mhz", 970.0), now, past, policy) is not None  # 3 % > 2 %
    grew = against_history(Figure("n", "gpu.ecc_corrected", 10.0), now, [(i * DAY_S, 0.0) for i in range(5)], policy)
    assert grew is not None and "limit 5 a day" in grew.detail
    clocks = {f"n{i}": {"gpu.sm_clock_mhz": Figure(f"n{i}", "gpu.sm_clock_mhz", v)}
              for i, v in enumerate([1980, 1981, 1979, 1980, 1950])}
    assert [f.node for f in against_peers(clocks, dict.fromkeys(clocks, "H100"), policy)] == ["n4"]  # 1.5 % > 1 %


@pytest.mark.parametrize(("text", "line", "words"), [
    ("defaults:\n  max_drop: 5\n", 2, "max_drop is '5'; fix: a share between 0.001 and 0.9"),
    ("defaults:\n  window_days: soon\n", 2, "window_days is 'soon'; fix: days"),
    ("defaults:\n  min_history: 2.5\n", 2, "fix: a whole number of rounds"),
    ("defaults:\n  max_dorp: 0.1\n", 2, "unknown setting 'max_dorp'; fix: use one of window_days"),
    ("metrics:\n  gpu.sm_clok_mhz: {max_drop: 0.1}\n", 2, "unknown metric 'gpu.sm_clok_mhz'; fix: use one of "),
    ("metrics:\n  bmc.fan_rpm: {per_day: 3}\n", 2, "per_day applies to counters only"),
    ("\nthresholds: {}\n", 2, "unknown key 'thresholds'; fix: the file holds only"),
    ("defaults: [1, 2]\n", 1, "defaults must be a mapping"),
    ("defaults:\n  max_drop: [0.1\n", 3, "not YAML"),
])
def test_bad_limits_are_refused_with_file_line_and_fix(tmp_path: Path, text: str, line: int, words: str) -> None:
    bad = tmp_path / "limits.yaml"
    bad.write_text(text)
    with pytest.raises(limits.LimitsError) as caught:
        limits.load(bad)
    assert str(caught.value).startswith(f"{bad}:{line}: ") and words in str(caught.value), str(caught.value)


def test_the_cli_refuses_a_bad_limits_file_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "limits.yaml"
    bad.write_text("defaults:\n  peer_mads: 0\n")
    result = run_cli(capsys, "check", str(Path(__file__).resolve().parents[2] / "inventories" / "lab.yaml"),
                     "--limits", str(bad))
    assert result.code == 2 and f"{bad}:2:" in result.err and "Traceback" not in result.err, result.err
