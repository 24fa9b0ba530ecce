"""Stage `firmware`: bring every component to the inventory's version, each image applied once.

observe (FirmwareInventory) -> diff (components behind) -> act (BMC image first and waited out;
the others staged OnReset and applied by one reboot) -> confirm (re-read versions).

Resume after a kill: before pushing, the BMC's job queue is read; a job already there for the
component (scheduled, downloading or running) is followed instead of pushing again, and a
component found at its target closes any intent left open. So an image is never applied twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.errors import BMCRequestFailed, NodeCheckFailed, TaskFailed
from clusterctl.provision import components as comp
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.reboot import reboot
from clusterctl.redfish.client import odata_id
from clusterctl.redfish.oem import idrac
from clusterctl.redfish.resources.managers import list_managers
from clusterctl.redfish.resources.tasks import task_location, wait_task
from clusterctl.redfish.resources.update import FirmwareComponent, multipart_push, simple_update, update_service

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

STAGE = "firmware"
IN_FLIGHT = {"New", "Scheduled", "Downloading", "Downloaded", "Running", "Waiting", "Starting", "Pending",
             "ReadyForExecution", "Scheduling"}


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
    for job in await idrac.jobs(await ctx.bmc()):
        if job.job_type != "FirmwareUpdate" or job.job_state not in IN_FLIGHT or not job.id:
            continue
        name = (job.name or "").removeprefix("Firmware Update:").strip()
        for component in ctx.node.firmware:
            if comp.matches(component, name):
                found.setdefault(component, job.id)
    return found


async def _push(ctx: NodeContext, component: str) -> str:
    """Verify the image, record the intent, hand the image to the BMC; returns the job/task reference."""
    target = ctx.node.firmware[component]
    assert ctx.images is not None
    path = await ctx.images.verify(component, target)
    await ctx.journal.intent(ctx.name, STAGE, _key(component), {
        "component": component, "version": target.version, "sha256": target.sha256, "image": target.image,
    })
    client = await ctx.bmc()
    apply_time = "Immediate" if comp.is_bmc(component) else "OnReset"
    if path is not None:
        resp = await multipart_push(client, path, apply_time=apply_time)
    else:
        resp = await simple_update(client, target.image, apply_time=apply_time)
    location = task_location(resp) or resp.headers.get("Location")
    if not location:
        raise BMCRequestFailed(f"firmware {component}: the BMC answered {resp.status_code} without a task",
                               bmc=ctx.name, status=resp.status_code)
    ref = idrac.job_id_from(location) if ctx.idrac else location
    await ctx.journal.event("firmware.pushed", node=ctx.name, stage=STAGE,
                            payload={"key": _key(component), "job": ref})
    return ref


async def _follow(ctx: NodeContext, ref: str, *, until: str) -> None:
    client = await ctx.bmc()
    if ctx.idrac:
        await idrac.wait_job(client, ref, deadline_s=ctx.tuning.job_deadline_s, poll_s=ctx.tuning.poll_s,
                             stop_at="scheduled" if until == "scheduled" else "completed")
    elif until == "completed":
        await wait_task(client, ref, deadline_s=ctx.tuning.job_deadline_s, poll_s=ctx.tuning.poll_s)


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


async def _confirm(ctx: NodeContext, components: list[str], errors: dict[str, str]) -> dict[str, set[str]]:
    installed = await observe(ctx)
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
    in_flight = await _jobs_in_flight(ctx) if ctx.journal.open_intents(ctx.name, STAGE) else {}
    pushed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for component in todo:
        job = in_flight.get(component)
        ref = await _adopt(ctx, component, job) if job else await _push(ctx, component)
        if not comp.is_bmc(component):
            pushed[component] = ref  # staged: all pushed back to back, then waited for together
            continue
        try:
            await _follow(ctx, ref, until="completed")
        except TaskFailed as exc:
            errors[component] = str(exc)
        await _confirm_bmc(ctx, component, errors)
        if errors:  # Ironic's rule: a failed BMC image aborts the rest of the node's firmware pass
            await ctx.journal.close_open(ctx.name, STAGE, "abandoned", error="firmware pass stopped")
            raise NodeCheckFailed("firmware " + "; ".join(f"{c}: {e}" for c, e in errors.items()))
    staged: dict[str, str] = {}
    for component, ref in pushed.items():
        try:
            await _follow(ctx, ref, until="scheduled")
            staged[component] = ref
        except TaskFailed as exc:
            errors[component] = str(exc)
            await ctx.journal.outcome(ctx.name, STAGE, _key(component), "failed", error=str(exc))
    if staged:  # reboot even after a staging failure: the jobs that are queued would run at any later reboot
        await reboot(ctx, "firmware " + ", ".join(staged))
        for component, ref in staged.items():
            try:
                await _follow(ctx, ref, until="completed")
            except TaskFailed as exc:
                errors[component] = str(exc)
        await _confirm(ctx, list(staged), errors)
    if errors:
        await ctx.journal.close_open(ctx.name, STAGE, "abandoned", error="firmware pass stopped")
        raise NodeCheckFailed("firmware " + "; ".join(f"{c}: {e}" for c, e in errors.items()))
    return done(None, updated={c: targets[c] for c in todo})
