"""Naming the rank that failed first from torchrun's summary, and sparing the nodes it stopped."""

from __future__ import annotations

from clusterctl.burnin.launchers.torchrun import root_causes
from clusterctl.burnin.run import blame, parse_records
from clusterctl.burnin.verdict import judge

# The end of torchrun's stderr when rank 1 exits with status 3 and rank 0 is then stopped (torch 2.13).
SUMMARY = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
workloads.transformer FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-25_12:36:14
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 5148)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 5148
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-25_12:36:14
  host      : localhost
  rank      : 5 (local_rank: 1)
  exitcode  : 3 (pid: 5150)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_root_cause_is_the_rank_that_exited_not_the_ones_stopped() -> None:
    assert root_causes([SUMMARY]) == {5: 3}
    assert root_causes(["no summary here", SUMMARY.replace("exitcode  : 3", "exitcode  : -9")]) == {}


def _lines(world: int, stop_at: int) -> list[str]:
    lines = ['[rank0]: some torchrun chatter', '{"clusterctl": "burnin/v1", "event": "step", "rank": 0, "cut']
    for rank in range(world):
        node = f"n{rank // 2}"
        base = f'"clusterctl": "burnin/v1", "node": "{node}", "rank": {rank}, "world_size": {world}'
        lines.append("{" + base + ', "event": "start"}')
        lines += ["{" + base + f', "event": "step", "step": {s}, "loss": {6 - s * 0.1}, "local_tokens_per_s": 100}}'
                  for s in range(1, stop_at + 1)]
    return lines


def test_blame_spares_nodes_stopped_by_another() -> None:
    records = parse_records(_lines(6, 3))
    assert len(records) == 6 * 4  # the cut line and the chatter are skipped
    verdicts = judge(records, ["n0", "n1", "n2"], world_size=6)
    assert {v.status for v in verdicts} == {"fail"}
    blame(verdicts, records, {5: 3})
    by_node = {v.node: v for v in verdicts}
    assert by_node["n2"].status == "fail" and "rank 5 exited with status 3" in by_node["n2"].reasons[-1]
    assert by_node["n0"].status == by_node["n1"].status == "incomplete"


def test_blame_without_a_root_cause_changes_nothing() -> None:
    records = parse_records(_lines(4, 3))
    verdicts = judge(records, ["n0", "n1"], world_size=4)
    blame(verdicts, records, {})
    assert {v.status for v in verdicts} == {"fail"}
