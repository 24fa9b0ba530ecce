"""The lab as a background process, seen from another process: start it, reach its control API, stop it.

`clusterctl lab` and tests drive the lab through these; the process itself is clusterctl.sim.fleet.main.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clusterctl.sim import labdir
from clusterctl.sim.errors import FaultError, LabError, LabNotRunning
from clusterctl.sim.fleet import bmc_address
from clusterctl.sim.inventory import DEFAULT_NODES, render_lab_inventory

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def running(lab_dir: Path) -> dict[str, Any] | None:
    """The info the lab process wrote, while that process lives."""
    info = labdir.read_info(lab_dir)
    if info and labdir.pid_alive(int(info.get("pid", 0))):
        return info
    return None


def require_running(lab_dir: Path) -> dict[str, Any]:
    info = running(lab_dir)
    if info is None:
        raise LabNotRunning(f"the lab is not running (lab dir {lab_dir}); start it with `clusterctl lab up`")
    return info


def up(lab_dir: Path, *, nodes: int, faults: Path | None, time_scale: float, latency_ms: float, port: int,
       ssh_port: int, names: str | None = None, base_address: str | None = None,
       ssh_base_address: str | None = None, bare: bool = False) -> tuple[dict[str, Any], bool]:
    """The lab running as asked, its summary with the inventory written, and whether it already ran.

    Arguments are checked before anything starts: a fault file naming a node the lab will not have
    fails here, not in the background process. A lab of another size must be stopped first, since
    its inventory and state would no longer match.
    """
    from clusterctl.sim.faults import load_fault_file
    from clusterctl.sim.fleet import MAX_NODES, lab_names
    from clusterctl.sim.inventory import write_firmware_images

    if not 1 <= nodes <= MAX_NODES:
        raise LabError(f"--nodes {nodes}: must be between 1 and {MAX_NODES}")
    try:
        served = lab_names(nodes, names)
    except ValueError as exc:
        raise LabError(f"--names: {exc}") from None
    if time_scale <= 0 or latency_ms < 0:
        raise LabError("--time-scale must be positive and --latency-ms not negative")
    if faults is not None:
        load_fault_file(faults, set(served))
    info = running(lab_dir)
    if info and (info.get("nodes") != nodes or (names is not None and info.get("names") != names)):
        raise LabError(f"a lab with {info.get('nodes')} nodes already runs (pid {info['pid']}); "
                       "run `clusterctl lab down` first")
    already = info is not None
    if info is None:
        info = start(lab_dir, nodes=nodes, faults=faults, time_scale=time_scale, latency_ms=latency_ms, port=port,
                     ssh_port=ssh_port, names=names, base_address=base_address,
                     ssh_base_address=ssh_base_address, bare=bare)
    result = summary(lab_dir, info)
    result["inventory"] = str(write_inventory(info, lab_dir))
    write_firmware_images(lab_dir)
    return result, already


def control(lab_dir: Path, info: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    """One call to the lab's control API (clusterctl.sim.control), its errors as the lab's exceptions."""
    import ssl

    import httpx

    from clusterctl import log

    token = (lab_dir / labdir.TOKEN_FILE).read_text().strip()
    log.redact(token)
    try:
        with httpx.Client(
            base_url=info["control"],
            verify=ssl.create_default_context(cafile=str(lab_dir / "ca.pem")),
            timeout=30.0,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise LabNotRunning(f"the lab at {info['control']} does not answer ({type(exc).__name__})") from None
    body = response.json()
    if response.status_code == 400:
        raise FaultError(body.get("error", "rejected"))
    if response.status_code >= 300:
        raise LabError(f"lab control API: {response.status_code} {body.get('error', '')}")
    return body


def start(lab_dir: Path, *, nodes: int, faults: Path | None, time_scale: float, latency_ms: float, port: int,
          ssh_port: int, names: str | None = None, base_address: str | None = None,
          ssh_base_address: str | None = None, bare: bool = False) -> dict[str, Any]:
    """Start the lab process in the background with fresh secrets and return its info once it answers."""
    from clusterctl.sim.certs import ensure_ca

    ensure_ca(lab_dir)
    labdir.ensure_secret(lab_dir / labdir.PASSWORD_FILE)
    (lab_dir / labdir.TOKEN_FILE).unlink(missing_ok=True)
    labdir.ensure_secret(lab_dir / labdir.TOKEN_FILE, 24)
    (lab_dir / labdir.INFO_FILE).unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "clusterctl.sim",
        "--lab-dir",
        str(lab_dir),
        "--nodes",
        str(nodes),
        "--time-scale",
        str(time_scale),
        "--latency-ms",
        str(latency_ms),
        "--port",
        str(port),
        "--ssh-port",
        str(ssh_port),
    ]
    if faults is not None:
        cmd += ["--faults", str(faults.resolve())]
    for flag, value in (("--names", names), ("--base-address", base_address),
                        ("--ssh-base-address", ssh_base_address)):
        if value is not None:
            cmd += [flag, value]
    if bare:
        cmd.append("--bare")
    with open(lab_dir / labdir.LOG_FILE, "ab") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            close_fds=True,
        )
    return _wait_started(proc, lab_dir, time.monotonic() + START_TIMEOUT_S)


def _wait_started(proc: subprocess.Popen[bytes], lab_dir: Path, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (lab_dir / labdir.LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
            raise LabError("the lab process exited during start: " + (" | ".join(tail) or "no output"))
        info = labdir.read_info(lab_dir)
        if info and info.get("pid") == proc.pid:
            try:
                control(lab_dir, info, "GET", "/faults")
                return info
            except LabNotRunning:
                pass
        time.sleep(0.2)
    _stop(proc.pid)
    raise LabError(f"the lab did not answer within {START_TIMEOUT_S:.0f} s (see {lab_dir / labdir.LOG_FILE})")


def stop(lab_dir: Path) -> tuple[bool, int | None]:
    """(whether a running lab was stopped, its pid). Idempotent: stopping a stopped lab is fine."""
    pid = labdir.read_pid(lab_dir) or int((labdir.read_info(lab_dir) or {}).get("pid", 0))
    stopped = False
    if pid and labdir.pid_alive(pid) and _is_lab_process(pid):
        if not _stop(pid):
            raise LabError(f"the lab process {pid} did not stop")
        stopped = True
    for name in (labdir.INFO_FILE, labdir.PID_FILE):
        (lab_dir / name).unlink(missing_ok=True)
    return stopped, pid or None


def _is_lab_process(pid: int) -> bool:
    """A pid file can outlive its process and the pid be reused: only a lab process is signalled."""
    try:
        return b"clusterctl.sim" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop(pid: int) -> bool:
    """SIGTERM, a bounded wait, then SIGKILL. True when the process is gone."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        if not labdir.pid_alive(pid):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and labdir.pid_alive(pid):
            time.sleep(0.05)
    return not labdir.pid_alive(pid)


def _repo_inventory() -> Path:
    import clusterctl

    return Path(clusterctl.__file__).resolve().parent.parent / "inventories" / "lab.yaml"


def inventory_path(info: dict[str, Any], lab_dir: Path) -> Path:
    """The repo's lab inventory describes the default lab; any other lab gets its own in its directory."""
    default_dir = Path.home() / ".local" / "state" / "clusterctl" / "lab"
    default = (int(info["nodes"]), info.get("port"), info.get("ssh_port")) in ((DEFAULT_NODES, 8443, 2222),
                                                                               (DEFAULT_NODES, 8443, None))
    default = default and info.get("names") in (None, "gpu[0001-0016]")
    if default and lab_dir.resolve() == default_dir.resolve() == labdir.default_lab_dir().resolve():
        return _repo_inventory()
    return lab_dir / "inventory.yaml"


def write_inventory(info: dict[str, Any], lab_dir: Path) -> Path:
    """The inventory of the running lab: the repo's for the default lab, else one written into its directory."""
    path = inventory_path(info, lab_dir)
    if path.parent == lab_dir:
        path.write_text(render_lab_inventory(int(info["nodes"]), lab_dir, bmc_port=int(info.get("port") or 8443),
                                             ssh_port=int(info.get("ssh_port") or 2222), names=info.get("names"),
                                             os_image=True))
    return path


def summary(lab_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Where the running lab's BMCs, SSH nodes, inventory and control API are."""
    nodes = int(info["nodes"])
    base = info.get("base_address", "127.1.0.0")
    return {
        "inventory": str(inventory_path(info, lab_dir)),
        "nodes": nodes,
        "pid": info["pid"],
        "control": info["control"],
        "lab_dir": str(lab_dir),
        "ca": str(lab_dir / "ca.pem"),
        "port": info.get("port"),
        "time_scale": info.get("time_scale"),
        "bmc_first": bmc_address(0, base),
        "bmc_last": bmc_address(nodes - 1, base),
    } | {k: v for k, v in info.items() if k.startswith("ssh_")}
