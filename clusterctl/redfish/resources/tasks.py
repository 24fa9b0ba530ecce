"""TaskService: Task resources and waiting on a task monitor until the operation ends.

Long operations (firmware, BIOS apply, configuration export) answer 202 with a Location to
poll. The BMC may reset itself during the task (iDRAC restarts to apply its own firmware),
so connection failures while polling are waited out until the deadline, never fatal on their own.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from clusterctl import log
from clusterctl.errors import BMCRequestFailed, TaskFailed
from clusterctl.redfish.cadence import Cadence, Wait
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.messages import describe
from clusterctl.redfish.resources.common import Resource
from clusterctl.redfish.retry import parse_retry_after

_log = log.get("redfish.tasks")

RUNNING_STATES = {
    "New",
    "Starting",
    "Running",
    "Suspended",
    "Interrupted",
    "Pending",
    "Stopping",
    "Cancelling",
    "Service",
}
FAILED_STATES = {"Exception", "Killed", "Cancelled"}


class Task(Resource):
    task_state: str | None = Field(default=None, alias="TaskState")
    task_status: str | None = Field(default=None, alias="TaskStatus")
    percent_complete: int | None = Field(default=None, alias="PercentComplete")
    start_time: str | None = Field(default=None, alias="StartTime")
    end_time: str | None = Field(default=None, alias="EndTime")
    task_monitor: str | None = Field(default=None, alias="TaskMonitor")
    messages: list[dict[str, Any]] = Field(default_factory=list, alias="Messages")

    @property
    def finished(self) -> bool:
        return self.task_state not in RUNNING_STATES

    @property
    def failed(self) -> bool:
        return self.task_state in FAILED_STATES or self.task_status == "Critical"

    def message_text(self) -> str:
        return describe({"@Message.ExtendedInfo": self.messages})


async def list_tasks(client: RedfishClient, *, limit: int = 200) -> list[Task]:
    """Tasks the TaskService still holds (finished ones linger until the BMC overwrites them)."""
    service = await client.get(odata_id(client.root.get("TaskService")) or "/redfish/v1/TaskService")
    uri = odata_id(service.get("Tasks"))
    return [Task.model_validate(m) for m in await client.members(uri, limit=limit)] if uri else []


def task_location(response: httpx.Response) -> str | None:
    """Where to follow an operation: the task monitor from Location, else the Task in the body."""
    if response.status_code != 202:
        return None
    location = response.headers.get("Location")
    if location:
        return httpx.URL(location).path if location.startswith("http") else location
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("@odata.id") if isinstance(body, dict) else None


async def wait_task(
    client: RedfishClient,
    location: str,
    *,
    deadline_s: float = 1800.0,
    poll: float | Cadence = 5.0,
) -> dict[str, Any]:
    """Poll until the operation ends; return its final body (the Task, or the operation's result).

    Raises TaskFailed when the task ends in an exception state or the deadline passes.
    """
    wait = Wait(poll, deadline_s)
    body = await _until_task_ends(client, location, wait)
    wait.done()
    return body


async def _until_task_ends(client: RedfishClient, location: str, wait: Wait) -> dict[str, Any]:
    last: dict[str, Any] = {}
    while True:
        retry_after: float | None = None
        try:
            resp = await client.look(location)
            if resp is None:
                _log.info("%s: task %s: BMC unreachable or busy, still waiting", client.name, location)
        except BMCRequestFailed as exc:
            if exc.status == 404 and Task.model_validate(last).task_state == "Completed":
                return last  # some BMCs drop a finished task monitor
            raise TaskFailed(f"task {location}: {exc}", bmc=client.name) from exc
        if resp is not None:
            body = _json(resp)
            if body:
                last = body
            task = Task.model_validate(body) if body else None
            if resp.status_code != 202 and (task is None or task.task_state is None or task.finished):
                if task is not None and task.failed:
                    raise TaskFailed(_failure(location, task), bmc=client.name)
                return body
            if task is not None and task.finished:
                if task.failed:
                    raise TaskFailed(_failure(location, task), bmc=client.name)
                return body
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if not await wait.sleep(retry_after):
            state = Task.model_validate(last).task_state if last else "unknown"
            raise TaskFailed(f"task {location} still {state} after {wait.deadline_s:.0f} s", bmc=client.name)


async def wait_staged(
    client: RedfishClient,
    location: str,
    *,
    deadline_s: float = 120.0,
    poll: float | Cadence = 5.0,
) -> bool:
    """Wait until a staged update says it awaits activation (DMTF `Update.*.AwaitToActivate`), or ends.

    A reset before the BMC has verified and staged the image can leave the update waiting for a
    reset that already happened. True: staged (or already finished); False: the BMC never said so
    within `deadline_s` (not every BMC does; the caller goes on as before). Raises TaskFailed when
    the task fails.
    """
    wait = Wait(poll, deadline_s)
    while True:
        resp = await client.look(location)
        body = _json(resp) if resp is not None else {}
        task = Task.model_validate(body) if body else None
        if task is not None:
            if task.finished:
                if task.failed:
                    raise TaskFailed(_failure(location, task), bmc=client.name)
                return True
            if awaits_activation(task):
                wait.done()
                return True
        if not await wait.sleep():
            return False


def awaits_activation(task: Task) -> bool:
    """The task's update is staged and waits for something to activate it (DMTF Update.*.AwaitToActivate)."""
    ids = [str(m.get("MessageId") or "") for m in task.messages if isinstance(m, dict)]
    return not task.finished and any(i.split(".")[0] == "Update" and i.split(".")[-1] == "AwaitToActivate"
                                     for i in ids)


async def still_awaits_activation(client: RedfishClient, location: str) -> bool:
    """One look at a task after the reset that should have activated it: still waiting means the
    update needs more than a reset (an AC power cycle, for HGX baseboard and CPLD images)."""
    resp = await client.look(location)
    body = _json(resp) if resp is not None else {}
    return bool(body) and awaits_activation(Task.model_validate(body))


def _failure(location: str, task: Task) -> str:
    detail = task.message_text()
    return f"task {location} ended {task.task_state}/{task.task_status}" + (f": {detail}" if detail else "")


def _json(resp: httpx.Response) -> dict[str, Any]:
    if not resp.content:
        return {}
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def start_and_wait(
    client: RedfishClient, response: httpx.Response, *, deadline_s: float = 1800.0, poll: float | Cadence = 5.0
) -> dict[str, Any]:
    """Follow a response that may be synchronous (200/204) or asynchronous (202 + task)."""
    location = task_location(response)
    if location is None:
        return _json(response)
    return await wait_task(client, location, deadline_s=deadline_s, poll=poll)
