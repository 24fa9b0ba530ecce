"""What a stage works with: the node, its BMC session, the journal, the power gate and the run's tuning.

Stages are functions of a `NodeContext`; they never open clients, read the inventory or write to
the store by other means, which keeps each one a plain observe -> diff -> act -> confirm.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.errors import BMCRequestFailed

if TYPE_CHECKING:
    import httpx

    from clusterctl.inventory import Inventory, Node
    from clusterctl.provision.images import ImageCheck
    from clusterctl.provision.journal import Journal
    from clusterctl.provision.places import Places
    from clusterctl.provision.power import PowerGate
    from clusterctl.redfish import BMCTarget, Limits, RedfishClient, RetryPolicy
    from clusterctl.redfish.cadence import Durations, Learned
    from clusterctl.redfish.resources.systems import ComputerSystem

_log = log.get("provision")


@dataclass(frozen=True)
class Tuning:
    """Waits and deadlines, in real seconds. Defaults suit real iDRACs, where updates take 30-60 min a server."""

    poll_s: float = 5.0
    job_deadline_s: float = 2400.0
    reboot_deadline_s: float = 1800.0
    os_deadline_s: float = 3600.0
    request_timeout_s: float = 30.0
    stage_attempts: int = 3
    stage_retry_wait_s: float = 10.0
    ssh_probe_timeout_s: float = 3.0
    boot_via: str = "pxe"
    os_batch_window_s: float = 5.0
    """How long the first node to reach `os` waits for others to share its ansible-runner run."""
    os_batch_max: int = 200
    os_forks: int = 50
    os_reapply: bool = False
    """Run the os playbooks even where the journal says they were applied (`--reapply`: drift since)."""


@dataclass(frozen=True)
class StageResult:
    status: str  # "done" | "skipped"
    reason: str | None = None
    detail: dict[str, Any] | None = None


def done(reason: str | None = None, **detail: Any) -> StageResult:
    return StageResult("done", reason, detail or None)


def skipped(reason: str, **detail: Any) -> StageResult:
    return StageResult("skipped", reason, detail or None)


@dataclass
class NodeContext:
    node: Node
    target: BMCTarget
    inventory: Inventory
    journal: Journal
    gate: PowerGate
    tuning: Tuning
    limits: Limits
    retry: RetryPolicy
    images: ImageCheck | None = None
    durations: Durations | None = None
    """How long BMC operations took on earlier nodes of the run: later waits poll around that."""
    transport: httpx.AsyncBaseTransport | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    places: Places | None = None
    """The node's places in the run's concurrency and warm-up group (none: a plan or a unit test)."""
    stage: str = ""
    per_run: dict[str, Any] = field(default_factory=dict)
    """One dict per engine run, shared by every node's context: what a stage's nodes share, under the
    stage's name (the os stage's ansible-runner batches)."""
    _client: RedfishClient | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def idrac(self) -> bool:
        return self.target.vendor == "idrac"

    async def bmc(self) -> RedfishClient:
        """The node's one BMC session for the whole pipeline, opened on first use.

        A BMC whose session table is full (iDRAC RAC0218, 503) is used with basic auth instead, as
        Ansible's redfish modules do: sessions are a courtesy, not a requirement of DSP0266.
        """
        if self._client is not None:
            return self._client
        from clusterctl.redfish import RedfishClient

        kwargs: dict[str, Any] = {"limits": self.limits, "retry": self.retry,
                                  "timeout": self.tuning.request_timeout_s, "transport": self.transport}
        try:
            self._client = await self._stack.enter_async_context(RedfishClient(self.target, **kwargs))
        except BMCRequestFailed as exc:
            if exc.status != 503 or not any(m in str(exc) for m in ("RAC0218", "SessionLimit", "sessions")):
                raise
            _log.info("%s: no session available (%s); using basic auth", self.name, exc)
            await self.journal.event("bmc.basic_auth", node=self.name, stage=self.stage,
                                     payload={"reason": str(exc)})
            client = RedfishClient(self.target, use_sessions=False, **kwargs)
            self._client = await self._stack.enter_async_context(client)
        return self._client

    async def warm_up(self) -> None:
        """Wait for a place in the warm-up group before the BMC-heavy work (once per node)."""
        if self.places is not None:
            await self.places.warm_up()

    def warmed_up(self) -> None:
        """The node's first reset is sent: its BMC-heavy start is over."""
        if self.places is not None:
            self.places.warmed_up()

    def step_out(self) -> None:
        """The node is about to wait for a reboot slot (the power gate calls this)."""
        if self.places is not None:
            self.places.step_out()

    async def step_in(self) -> None:
        """The reboot the node waited for is over: back into the run's concurrency."""
        if self.places is not None:
            await self.places.step_in()

    def poll(self, *what: str) -> Learned | float:
        """The cadence for waiting on `what` (the same work on the same server model learns together)."""
        if self.durations is None:
            return self.tuning.poll_s
        return self.durations.cadence((self.node.hardware.model, self.target.vendor, *what))

    async def system(self) -> ComputerSystem:
        """The node's ComputerSystem, read fresh; its URI is found once, then read directly (one GET)."""
        from clusterctl.redfish.resources.systems import get_system

        found = await get_system(await self.bmc(), self.facts.get("system_uri"))
        self.facts["system_uri"] = found.odata_id
        return found

    async def look_system(self) -> ComputerSystem | None:
        """The ComputerSystem for a poll loop (one attempt): None while the BMC does not answer."""
        from clusterctl.errors import BMCUnreachable
        from clusterctl.redfish.resources.systems import ComputerSystem

        uri = self.facts.get("system_uri")
        if not uri:
            try:
                return await self.system()
            except BMCUnreachable:
                return None
        resp = await (await self.bmc()).look(uri)
        return ComputerSystem.model_validate(resp.json()) if resp is not None else None

    async def drop_session(self) -> None:
        """Forget the session (after an error that may have left it broken); the next use logs in again."""
        self._client = None
        await self._stack.aclose()
        self._stack = AsyncExitStack()

    async def close(self) -> None:
        await self.drop_session()
