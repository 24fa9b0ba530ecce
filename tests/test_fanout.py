"""A fan-out result holds each target's value or error, whichever transport ran it."""

from __future__ import annotations

import logging

from clusterctl.errors import ClusterctlError
from clusterctl.fanout import TargetResult, recording

_log = logging.getLogger("test.fanout")


def test_an_error_stays_in_its_target_result() -> None:
    known: TargetResult[int] = TargetResult("gpu0001")
    with recording(known, _log, describe=lambda exc: f"described: {exc}"):
        raise ClusterctlError("no route")
    surprise: TargetResult[int] = TargetResult("gpu0002")
    with recording(surprise, _log):
        raise KeyError("Members")
    fine: TargetResult[int] = TargetResult("gpu0003")
    with recording(fine, _log):
        fine.value = 7
    assert (known.error, known.error_type, known.ok) == ("described: no route", "ClusterctlError", False)
    assert (surprise.error, surprise.error_type) == ("KeyError: 'Members'", "KeyError")
    assert fine.ok and fine.as_dict("bmc") == {"bmc": "gpu0003", "ok": True, "value": 7, "error": None,
                                                "error_type": None, "seconds": round(fine.seconds, 3)}
