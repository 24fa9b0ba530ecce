"""Which network NCCL used, from its log lines, and the fabric verdict built on it.

The log fixtures follow NCCL's own format (src/debug.cc: "HOST:PID:TID [DEV] NCCL INFO ", src/init.cc:
"Using network %s", src/transport/net_ib: "NET/IB : Using ..."); there is no GPU here, so the
ranks' output of an NCCL run is replayed through the same `execute` a GPU run goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

from clusterctl.burnin import nccl_log
from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.run import execute, parse_records
from clusterctl.burnin.verdict import FABRIC

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "burnin" / "nccl"
# Which rank ran where: the host names and pids of the fixtures' NCCL lines.
RANKS = {"gpu01": ("gpu01", 41230), "gpu02": ("gpu02.cluster.example", 7311)}


def _rank_output(rank: int, node: str, backend: str = "nccl") -> list[str]:
    host, pid = RANKS[node]
    base = {"clusterctl": "burnin/v1", "node": node, "rank": rank, "world_size": 2}
    lines = [json.dumps({**base, "event": "start", "host": host, "pid": pid, "backend": backend})]
    lines += [json.dumps({**base, "event": "step", "step": s, "loss": 6.0 - 0.3 * s, "local_tokens_per_s": 1000.0})
              for s in range(1, 7)]
    lines += [json.dumps({**base, "event": "checksum", "step": 6, "checksum": "ab"}),
              json.dumps({**base, "event": "end", "status": "done"})]
    return lines


class _Replay:
    """A launcher whose ranks' output is given: the one part of a GPU run that cannot happen here."""

    name = "replay"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def submit(self, spec: BurninSpec) -> Submission:
        return Submission(self.name, "1")

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        return Outcome("completed", 0)

    def collect(self, submission: Submission) -> list[str]:
        return self.lines

    def cancel(self, submission: Submission) -> None:
        pass


def test_the_parser_reads_nccls_network_and_devices_per_node() -> None:
    ib, sock = (FIXTURES / "ib.log").read_text(), (FIXTURES / "socket.log").read_text()
    lines = [*_rank_output(0, "gpu01"), *ib.splitlines(), *_rank_output(1, "gpu02"), *sock.splitlines()]
    found = nccl_log.transports(lines, parse_records(lines))
    assert found["gpu01"].name == "IB" and not found["gpu01"].fell_back_to_sockets
    assert sorted(found["gpu01"].ib_devices) == [f"[{i}]mlx5_{i}:1/IB" for i in range(4)]  # not the [RO] flag
    assert found["gpu02"].name == "Socket" and found["gpu02"].fell_back_to_sockets  # FQDN in start, short in NCCL
    # Lines of a process no rank reported (another job's, a stale pid) are nobody's.
    stray = nccl_log.transports(["gpu01:999:999 [0] NCCL INFO Using network Socket", *_rank_output(0, "gpu01")],
                                parse_records(_rank_output(0, "gpu01")))
    assert stray["gpu01"].networks == set() and stray["gpu01"].name == "unknown"


def test_a_socket_fallback_on_an_infiniband_node_fails_its_fabric_check_end_to_end() -> None:
    ib, sock = (FIXTURES / "ib.log").read_text(), (FIXTURES / "socket.log").read_text()
    # srun/kubectl interleave the ranks' output: order must not matter.
    lines = [*sock.splitlines(), *_rank_output(0, "gpu01"), *_rank_output(1, "gpu02"), *ib.splitlines()]
    spec = BurninSpec(run_id="r", nodes=("gpu01", "gpu02"))
    report = execute(_Replay(lines), spec, expected_nodes=["gpu01", "gpu02"], world_size=2,
                     rdma_nodes=["gpu01", "gpu02"])
    by_node = {v.node: v for v in report.verdicts}
    assert by_node["gpu01"].status == "pass" and by_node["gpu01"].metrics["transport"] == "IB"
    assert by_node["gpu02"].status == "fail" and by_node["gpu02"].metrics["transport"] == "Socket"
    check = next(c for c in by_node["gpu02"].checks if c.name == FABRIC)
    assert "TCP sockets" in check.detail and "ibstat" in (check.remediation or "")
    assert report.failed == {"gpu02": [check.detail]}

    # The same run on a site whose inventory lists no InfiniBand: sockets are all there is, nothing fails.
    plain = execute(_Replay(lines), spec, expected_nodes=["gpu01", "gpu02"], world_size=2)
    assert [v.status for v in plain.verdicts] == ["pass", "pass"]
    assert plain.verdicts[1].metrics["transport"] == "Socket"

    # NCCL_DEBUG overridden: no network line at all is a warning, not a pass and not a failure.
    quiet = execute(_Replay([*_rank_output(0, "gpu01"), *_rank_output(1, "gpu02")]), spec,
                    expected_nodes=["gpu01", "gpu02"], world_size=2, rdma_nodes=["gpu01", "gpu02"])
    assert [v.status for v in quiet.verdicts] == ["warn", "warn"]


def test_gloo_has_no_nccl_log_and_is_recorded_as_gloo_without_failing() -> None:
    lines = [*_rank_output(0, "gpu01", "gloo"), *_rank_output(1, "gpu02", "gloo")]
    report = execute(_Replay(lines), BurninSpec(run_id="r", nodes=("gpu01", "gpu02")),
                     expected_nodes=["gpu01", "gpu02"], world_size=2, rdma_nodes=["gpu01", "gpu02"])
    assert [(v.status, v.metrics["transport"]) for v in report.verdicts] == [("pass", "gloo"), ("pass", "gloo")]
