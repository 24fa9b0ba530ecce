"""Run DMTF's Redfish use-case checkers against one service and print every result as JSON lines.

Run as a script (`python use_case_checkers.py URL USER PASSWORD`) so the checkers' requests, logging
and module state stay in a process of their own. The checkers' own entry point writes HTML and Excel
reports only; this runs the same five use-case modules in the same order and prints the results.

Their fixed waits for a real server (10 s after each reset, 5 s between power-state polls) are cut
to a twentieth: the lab runs at 600x simulated time, where a twentieth of each wait is still longer
than the lab's POST. `--relaxed` is the checkers' own option: a FAILWARN (a result the spec allows,
such as 409 for powering on a server that is on, as iDRAC answers) counts as a warning.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

SPEEDUP = 20.0


class _FastTime:
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds / SPEEDUP)


def main(url: str, user: str, password: str, log_dir: str) -> None:
    import redfish
    from redfish_use_case_checkers import (
        account_management,
        boot_override,
        logger,
        manager_ethernet_interfaces,
        power_control,
        query_parameters,
    )
    from redfish_use_case_checkers.system_under_test import SystemUnderTest

    power_control.time = boot_override.time = _FastTime()  # type: ignore[attr-defined]
    logger.logger = redfish.redfish_logger(str(Path(log_dir) / "checkers.log"), "%(message)s", logging.INFO)
    sut = SystemUnderTest(url, user, password, True)
    for module in (account_management, power_control, boot_override, manager_ethernet_interfaces, query_parameters):
        module.use_cases(sut)
    sut.logout()
    for category in sut._results:
        for test in category["Tests"]:
            for result in test["Results"]:
                print(json.dumps({"category": category["Category"], "test": test["Name"], **result}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
