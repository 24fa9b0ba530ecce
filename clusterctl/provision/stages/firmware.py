"""Stage `firmware`: bring every component to the inventory's version, each image applied once.

observe (FirmwareInventory) -> diff (components behind) -> act (BMC image first and waited out;
the others staged OnReset and applied by one reboot, then one virtual AC power cycle for those that
wait for it, HGX baseboard and CPLD on Dell) -> confirm (re-read versions).

Resume after a kill: a component found at its target closes any intent left open. Otherwise, on
an iDRAC the job queue is read and a job already there for the component is followed instead of
pushing again. On a generic (DMTF) BMC the task the push started is followed: the one an earlier
run recorded (`firmware.pushed`), else the one TaskService lists that the journal does not know
(matched by the image its Payload names, or by elimination when it is the only one). When that
cannot be told, the node fails with the reason and the push is not repeated (outcome
`undetermined`, re-examined by the next run). So an image is never applied twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.errors import BMCRequestFailed, NodeCheckFailed, TaskFailed
from clusterctl.provision import components as comp
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.reboot import ac_cycle, reboot
from clusterctl.redfish.client import odata_id
from clusterctl.redfish.oem import idrac
from clusterctl.redfish.resources.managers import list_managers
from clusterctl.redfish.resources.tasks import (
    Task,
    list_tasks,
    still_awaits_activation,
    task_location,
    wait_staged,
    wait_task,
)
from clusterctl.redfish.resources.update import FirmwareComponent, multipart_push, update_service

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

STAGE = "firmware"
STAGE_GRACE_S = 120.0
"""How long a generic BMC gets to say a pushed image is staged before the reboot goes ahead anyway."""
_log = log.get("provision.firmware")
UNDETERMINED = "undetermined"
GONE = ""  # a recorded task the BMC no longer lists: the FirmwareInventory alone decides


def _key(component: str) -> str:
    return f"firmware:{component}"


async def _inventory(ctx: NodeContext) -> list[FirmwareComponent]:
    """FirmwareInventory in one request where the BMC offers `$expand` (iDRAC lists ~32 entries on an
    XE9680: one GET each would be most of a node's requests, all at once after every reboot wave)."""
    client = await ctx.bmc()
    uri = odata_id((await update_service(client)).get("FirmwareInventory"))
    if not uri:
        return []
    return [FirmwareComponent.model_validate(m) for m in await client.members(uri, expand=True)]


async def observe(ctx: NodeContext) -> dict[str, set[str]]:
    entries = [
        (e.name or "", e.version)
        for e in await _inventory(ctx)
        if not (e.id or "").startswith("Previous") and e.status.state != "StandbyOffline"
    ]
    return comp.installed_versions(ctx.node.firmware, entries)


def _check_listed(ctx: NodeContext, installed: dict[str, set[str]]) -> None:
    missing = [c for c, versions in installed.items() if not versions]
    if missing:
        raise NodeCheckFailed(f"firmware component(s) {', '.join(missing)} not in the BMC's FirmwareInventory")


async def plan(ctx: NodeContext) -> dict[str, Any]:
    if not ctx.node.firmware:
        return {"skip": "no firmware targets in the inventory"}
    installed = await observe(ctx)
    targets = {c: t.version for c, t in ctx.node.firmware.items()}
    return {
        "change": {c: {"from": sorted(installed[c]), "to": targets[c]} for c in comp.behind(targets, installed)},
        "missing": [c for c, v in installed.items() if not v],
    }


async def _jobs_in_flight(ctx: NodeContext) -> dict[str, str]:
    """{component: job id} of firmware jobs the BMC still holds unfinished (Dell job queue)."""
    if not ctx.idrac:
        return {}
    found: dict[str, str] = {}
    for job_id, job in (await idrac.jobs_in_flight(await ctx.bmc(), "FirmwareUpdate")).items():
        name = (job.name or "").removeprefix("Firmware Update:").strip()
        for component in ctx.node.firmware:
            if comp.matches(component, name):
                found.setdefault(component, job_id)
    return found


def _recorded_tasks(ctx: NodeContext) -> tuple[dict[str, str], set[str]]:
    """({key: task} the open intents' pushes started, every task the journal knows for this node)."""
    notes = ctx.journal.notes(ctx.name, STAGE)
    known = {str(n.payload["job"]) for n in notes if n.payload.get("job")}
    started: dict[str, str] = {}
    for intent in ctx.journal.open_intents(ctx.name, STAGE):
        known.update({str(intent.payload["adopted_job"])} if intent.payload.get("adopted_job") else set())
        after = [n for n in notes if n.key == intent.key and n.event_id > intent.event_id and n.payload.get("job")]
        if after:
            started[intent.key] = str(after[-1].payload["job"])
        elif intent.payload.get("adopted_job"):
            started[intent.key] = str(intent.payload["adopted_job"])
    return started, known


def _request_body(task: Task) -> str | None:
    """The request that started the task (DMTF Task.Payload.JsonBody); None where the BMC does not say."""
    payload = (task.model_extra or {}).get("Payload")
    body = payload.get("JsonBody") if isinstance(payload, dict) else None
    return str(body) if body else None


def _names_image(task: Task, image: str) -> bool:
    body = _request_body(task)
    return body is not None and image.rstrip("/").rsplit("/", 1)[-1] in body


async def _task_exists(ctx: NodeContext, ref: str) -> bool:
    try:
        await (await ctx.bmc()).get(ref)
    except BMCRequestFailed as exc:
        if exc.status in (404, 410):
            return False
        raise
    return True


async def _tasks_to_follow(ctx: NodeContext, todo: list[str]) -> dict[str, str]:
    """{component: task} of pushes earlier runs started on a generic BMC, found instead of pushed again.

    A push is unaccounted for when a run was killed between recording its intent and recording the
    task the BMC answered with (or an earlier run could not tell, outcome `undetermined`). TaskService
    then decides: a task the journal does not know whose Payload names the image is that push; with no
    Payload, the only unknown task is (pushes on one node go one at a time, so at most one is
    unaccounted for); no unknown task means the push never reached the BMC. Anything else fails the node.
    """
    started, known = _recorded_tasks(ctx)
    found: dict[str, str] = {}
    unaccounted: list[str] = []
    for component in todo:
        key = _key(component)
        if key in started:
            found[component] = started[key] if await _task_exists(ctx, started[key]) else GONE
        elif ctx.journal.open_intent(ctx.name, STAGE, key) is not None or (
            (ctx.journal.last_outcome(ctx.name, STAGE, key) or {}).get("result") == UNDETERMINED
        ):
            unaccounted.append(component)
    if not unaccounted:
        return found
    unknown = [t for t in await list_tasks(await ctx.bmc())
               if not t.failed and not ({t.odata_id, t.task_monitor} & known)]
    anonymous = [t for t in unknown if _request_body(t) is None]
    for component in unaccounted:
        named = [t for t in unknown if _names_image(t, ctx.node.firmware[component].image)]
        if len(named) == 1 and named[0].odata_id:
            found[component] = named[0].odata_id
        elif not named and not anonymous:
            await ctx.journal.event("firmware.not_pushed", node=ctx.name, stage=STAGE, payload={
                "key": _key(component), "reason": "no task on the BMC that the journal does not know"})
        elif not named and len(anonymous) == 1 and len(unaccounted) == 1 and anonymous[0].odata_id:
            found[component] = anonymous[0].odata_id
        else:
            await _undetermined(ctx, component, named or anonymous)
    return found


async def _undetermined(ctx: NodeContext, component: str, tasks: list[Task]) -> None:
    uris = ", ".join(t.odata_id or "?" for t in tasks)
    why = (f"an earlier run started pushing {component} but did not record its task, and the BMC lists "
           f"{len(tasks)} task(s) it could be ({uris}): not pushing again; let them finish or delete them, "
           "then re-run")
    if ctx.journal.open_intent(ctx.name, STAGE, _key(component)) is not None:
        await ctx.journal.outcome(ctx.name, STAGE, _key(component), UNDETERMINED, error=why)
    else:  # still in doubt since an earlier run's `undetermined` outcome, which stays the newest
        await ctx.journal.event("firmware.undetermined", node=ctx.name, stage=STAGE,
                                payload={"key": _key(component), "error": why})
    await ctx.journal.close_open(ctx.name, STAGE, "abandoned", error="firmware pass stopped")
    raise NodeCheckFailed(f"firmware {why}")


async def _push(ctx: NodeContext, component: str) -> str:
    """Verify the image, record the intent, push the verified copy to the BMC; returns the job/task reference.

    The BMC is never told to fetch the image's URL (SimpleUpdate): what it would fetch is not what was
    checked. A BMC without multipart push fails the node instead.
    """
    target = ctx.node.firmware[component]
    assert ctx.images is not None
    client = await ctx.bmc()
    if not (await update_service(client)).get("MultipartHttpPushUri"):
        raise NodeCheckFailed(
            f"firmware {component}: the BMC's UpdateService offers no MultipartHttpPushUri; clusterctl only "
            "pushes the image it verified and never has a BMC fetch a URL: update this BMC's firmware "
            "to one with multipart push (iDRAC9 4.00 or later), or update this component by hand")
    path = await ctx.images.verify(component, target)
    if ctx.idrac:
        # The Lifecycle Controller takes no update while it collects inventory, which it does after
        # every host reboot and after the iDRAC's own reset (the BMC image just applied): Dell's
        # update scripts check GetRemoteServicesAPIStatus before each one.
        await idrac.wait_lc_ready(client, deadline_s=ctx.tuning.job_deadline_s, poll=ctx.poll(STAGE, "lc"))
    await ctx.journal.intent(ctx.name, STAGE, _key(component), {
        "component": component, "version": target.version, "sha256": target.sha256, "image": target.image,
    })
    apply_time = "Immediate" if comp.is_bmc(component) else "OnReset"
    resp = await multipart_push(client, path, apply_time=apply_time)
    location = task_location(resp) or resp.headers.get("Location")
    if not location:
        raise BMCRequestFailed(f"firmware {component}: the BMC answered {resp.status_code} without a task",
                               bmc=ctx.name, status=resp.status_code)
    ref = idrac.job_id_from(location) if ctx.idrac else location
    await ctx.journal.event("firmware.pushed", node=ctx.name, stage=STAGE,
                            payload={"key": _key(component), "job": ref})
    return ref


async def _follow(ctx: NodeContext, ref: str, component: str, *, until: str) -> bool:
    """Wait for the push's job or task until it is `scheduled` (staged for the reboot), `completed`,
    or, after the reboot, `activated`; True when it waits for a virtual AC power cycle instead."""
    if ref == GONE:
        return False
    client = await ctx.bmc()
    poll = ctx.poll(STAGE, component, until)
    if ctx.idrac:
        job = await idrac.wait_job(client, ref, deadline_s=ctx.tuning.job_deadline_s, poll=poll,
                                   stop_at="scheduled" if until == "scheduled" else "completed")
        return job.job_state in idrac.JOB_AWAITS_AC_CYCLE
    if until == "activated" and await still_awaits_activation(client, ref):
        return True  # the reboot did not activate it: on DMTF BMCs too, that is an AC cycle's job
    if until in ("completed", "activated"):
        await wait_task(client, ref, deadline_s=ctx.tuning.job_deadline_s, poll=poll)
    elif not await wait_staged(client, ref, deadline_s=min(ctx.tuning.job_deadline_s, STAGE_GRACE_S), poll=poll):
        _log.info("%s: task %s never said it awaits activation; rebooting anyway", ctx.name, ref)
    return False


async def _adopt(ctx: NodeContext, component: str, job: str) -> str:
    """A job found on the BMC for this component: make sure the journal announces it, then follow it."""
    intent = ctx.journal.open_intent(ctx.name, STAGE, _key(component))
    if intent is None:
        target = ctx.node.firmware[component]
        await ctx.journal.intent(ctx.name, STAGE, _key(component), {
            "component": component, "version": target.version, "sha256": target.sha256,
            "image": target.image, "adopted_job": job,
        })
    await ctx.journal.event("firmware.resumed", node=ctx.name, stage=STAGE,
                            payload={"key": _key(component), "job": job})
    return job


async def _confirm(ctx: NodeContext, components: list[str], errors: dict[str, str],
                   installed: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    installed = installed if installed is not None else await observe(ctx)
    for component in components:
        want = ctx.node.firmware[component].version
        if installed.get(component) == {want}:
            await ctx.journal.outcome(ctx.name, STAGE, _key(component), "applied", version=want)
        else:
            why = errors.get(component) or f"still at {', '.join(sorted(installed.get(component, set())))}"
            errors[component] = why
            await ctx.journal.outcome(ctx.name, STAGE, _key(component), "failed", version=want, error=why)
    return installed


async def _confirm_bmc(ctx: NodeContext, component: str, errors: dict[str, str]) -> None:
    """The BMC's own version from its Manager resource (2 requests instead of the whole inventory)."""
    managers = await list_managers(await ctx.bmc())
    version = managers[0].firmware_version if managers else None
    if version is None:
        await _confirm(ctx, [component], errors)
        return
    want = ctx.node.firmware[component].version
    if version == want and component not in errors:
        await ctx.journal.outcome(ctx.name, STAGE, _key(component), "applied", version=want)
        return
    errors[component] = errors.get(component) or f"still at {version}"
    await ctx.journal.outcome(ctx.name, STAGE, _key(component), "failed", version=want, error=errors[component])


async def _ac_cycle(ctx: NodeContext, components: list[str], errors: dict[str, str]) -> dict[str, set[str]]:
    """HGX baseboard and CPLD images run only after a virtual AC power cycle (their jobs say
    PendingActivation after the reboot): one cycle for all of them, then each must be at its target.
    Returns the versions observed after the cycle."""
    await ac_cycle(ctx, "firmware " + ", ".join(components))
    installed = await observe(ctx)
    for component in components:
        if installed.get(component) != {ctx.node.firmware[component].version}:
            errors.setdefault(component, f"still at {', '.join(sorted(installed.get(component, set())))} "
                                         "after the AC power cycle")
    return installed


async def run(ctx: NodeContext) -> StageResult:
    if not ctx.node.firmware:
        return skipped("no firmware targets in the inventory")
    targets = {c: t.version for c, t in ctx.node.firmware.items()}
    installed = await observe(ctx)
    _check_listed(ctx, installed)
    todo = comp.behind(targets, installed)
    for component in set(targets) - set(todo):
        if ctx.journal.open_intent(ctx.name, STAGE, _key(component)):
            await ctx.journal.outcome(ctx.name, STAGE, _key(component), "applied", version=targets[component],
                                      observed="at target when re-observed")
    if not todo:
        await ctx.journal.close_open(ctx.name, STAGE, "reconciled", observed="all components at target")
        return done("already at target", versions=targets)
    # Our jobs can only be on the BMC when an intent is open (intents precede pushes), so the job
    # queue is read only then: at 2,000 nodes every request saved counts.
    if ctx.idrac:
        in_flight = await _jobs_in_flight(ctx) if ctx.journal.open_intents(ctx.name, STAGE) else {}
    else:
        in_flight = await _tasks_to_follow(ctx, todo)
    pushed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for component in todo:
        job = in_flight.get(component)
        ref = await _adopt(ctx, component, job) if job is not None else await _push(ctx, component)
        if not comp.is_bmc(component):
            pushed[component] = ref  # staged: all pushed back to back, then waited for together
            continue
        try:
            await _follow(ctx, ref, component, until="completed")
        except TaskFailed as exc:
            errors[component] = str(exc)
        await _confirm_bmc(ctx, component, errors)
        if errors:  # Ironic's rule: a failed BMC image aborts the rest of the node's firmware pass
            await ctx.journal.close_open(ctx.name, STAGE, "abandoned", error="firmware pass stopped")
            raise NodeCheckFailed("firmware " + "; ".join(f"{c}: {e}" for c, e in errors.items()))
    staged: dict[str, str] = {}
    for component, ref in pushed.items():
        try:
            await _follow(ctx, ref, component, until="scheduled")
            staged[component] = ref
        except TaskFailed as exc:
            errors[component] = str(exc)
            await ctx.journal.outcome(ctx.name, STAGE, _key(component), "failed", error=str(exc))
    if staged:  # reboot even after a staging failure: the jobs that are queued would run at any later reboot
        await reboot(ctx, "firmware " + ", ".join(staged))
        # A component at its target after the reboot is done: its job is not read (four requests per
        # node, all at once as each reboot wave ends). The others' jobs say when they end, or why not.
        installed = await observe(ctx)
        behind = {c: ref for c, ref in staged.items() if installed.get(c) != {ctx.node.firmware[c].version}}
        awaits_ac: list[str] = []
        for component, ref in behind.items():
            try:
                if await _follow(ctx, ref, component, until="activated"):
                    awaits_ac.append(component)
            except TaskFailed as exc:
                errors[component] = str(exc)
        if awaits_ac:
            installed = await _ac_cycle(ctx, awaits_ac, errors)
        await _confirm(ctx, list(staged), errors, None if behind and not awaits_ac else installed)
    if errors:
        await ctx.journal.close_open(ctx.name, STAGE, "abandoned", error="firmware pass stopped")
        raise NodeCheckFailed("firmware " + "; ".join(f"{c}: {e}" for c, e in errors.items()))
    return done(None, updated={c: targets[c] for c in todo})
