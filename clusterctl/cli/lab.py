"""`clusterctl lab ...`: start, inspect, fault and stop the embedded lab of simulated servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from clusterctl.cli.context import settings

app = typer.Typer(
    help="The embedded lab: simulated iDRAC9 BMCs of XE9680-class servers on loopback, with faults.",
    no_args_is_help=True,
)
fault_app = typer.Typer(help="Inject and clear faults while the lab runs.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

DEFAULT_NODES = 16
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
FAULTS_FILE = typer.Option(None, "--faults", help="Fault file (YAML) applied at start.")
PARAM = typer.Option([], "--param", "-p", help="KEY=VALUE, repeatable.")


def _lab_dir() -> Path:
    from clusterctl.sim.labdir import default_lab_dir, ensure_lab_dir

    return ensure_lab_dir(default_lab_dir())


def _repo_inventory() -> Path:
    import clusterctl

    return Path(clusterctl.__file__).resolve().parent.parent / "inventories" / "lab.yaml"


def inventory_path(info: dict[str, Any], lab_dir: Path) -> Path:
    """The repo's lab inventory describes the default lab; any other lab gets its own in its directory."""
    from clusterctl.sim.labdir import default_lab_dir

    default_dir = Path.home() / ".local" / "state" / "clusterctl" / "lab"
    default = (int(info["nodes"]), info.get("port"), info.get("ssh_port")) in ((DEFAULT_NODES, 8443, 2222),
                                                                               (DEFAULT_NODES, 8443, None))
    if default and lab_dir.resolve() == default_dir.resolve() == default_lab_dir().resolve():
        return _repo_inventory()
    return lab_dir / "inventory.yaml"


def _write_inventory(info: dict[str, Any], lab_dir: Path) -> Path:
    from clusterctl.sim.inventory import render_lab_inventory

    path = inventory_path(info, lab_dir)
    if path.parent == lab_dir:
        path.write_text(render_lab_inventory(int(info["nodes"]), lab_dir, bmc_port=int(info.get("port") or 8443),
                                             ssh_port=int(info.get("ssh_port") or 2222)))
    return path


def _write_firmware_images(lab_dir: Path) -> None:
    """The images the lab inventory points at (`file:` paths), pushed to the BMCs by multipart upload."""
    from clusterctl.sim.inventory import FIRMWARE, firmware_file_name, lab_firmware_image

    folder = lab_dir / "firmware"
    folder.mkdir(exist_ok=True)
    for component, version in FIRMWARE.items():
        (folder / firmware_file_name(component, version)).write_bytes(lab_firmware_image(component, version))


def _running(lab_dir: Path) -> dict[str, Any] | None:
    from clusterctl.sim.labdir import pid_alive, read_info

    info = read_info(lab_dir)
    if info and pid_alive(int(info.get("pid", 0))):
        return info
    return None


def _control(lab_dir: Path, info: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    import ssl

    import httpx

    from clusterctl import log
    from clusterctl.sim.errors import FaultError, LabError, LabNotRunning

    token = (lab_dir / "control-token").read_text().strip()
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


def _wait_started(proc: subprocess.Popen[bytes], lab_dir: Path, deadline: float) -> dict[str, Any]:
    from clusterctl.sim.errors import LabError, LabNotRunning
    from clusterctl.sim.labdir import read_info

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (lab_dir / "sim.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise LabError("the lab process exited during start: " + (" | ".join(tail) or "no output"))
        info = read_info(lab_dir)
        if info and info.get("pid") == proc.pid:
            try:
                _control(lab_dir, info, "GET", "/faults")
                return info
            except LabNotRunning:
                pass
        time.sleep(0.2)
    _stop(proc.pid)
    raise LabError(f"the lab did not answer within {START_TIMEOUT_S:.0f} s (see {lab_dir / 'sim.log'})")


@app.command()
def up(
    ctx: typer.Context,
    nodes: int = typer.Option(DEFAULT_NODES, "--nodes", "-n", help="How many servers to simulate (1-9999)."),
    faults: Path = FAULTS_FILE,
    time_scale: float = typer.Option(60.0, "--time-scale", help="Simulated seconds per real second."),
    latency_ms: float = typer.Option(50.0, "--latency-ms", help="Added latency of every BMC answer."),
    port: int = typer.Option(8443, "--port", help="BMC HTTPS port on every lab address."),
    ssh_port: int = typer.Option(2222, "--ssh-port", help="SSH port of every lab node (0: no SSH)."),
) -> None:
    """Start the lab in the background and wait until it answers. Example: clusterctl lab up --nodes 64"""
    from clusterctl.sim import labdir
    from clusterctl.sim.certs import ensure_ca
    from clusterctl.sim.errors import LabError
    from clusterctl.sim.faults import load_fault_file
    from clusterctl.sim.fleet import MAX_NODES, node_name

    cfg = settings(ctx)
    if not 1 <= nodes <= MAX_NODES:
        raise LabError(f"--nodes {nodes}: must be between 1 and {MAX_NODES}")
    if time_scale <= 0 or latency_ms < 0:
        raise LabError("--time-scale must be positive and --latency-ms not negative")
    if faults is not None:
        load_fault_file(faults, {node_name(i) for i in range(nodes)})
    lab_dir = _lab_dir()
    info = _running(lab_dir)
    if info:
        if info.get("nodes") != nodes:
            raise LabError(
                f"a lab with {info.get('nodes')} nodes already runs (pid {info['pid']}); "
                "run `clusterctl lab down` first"
            )
        cfg.note(f"lab already running (pid {info['pid']})")
    else:
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
        with open(lab_dir / labdir.LOG_FILE, "ab") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                close_fds=True,
            )
        cfg.note(f"starting the lab: {nodes} servers ...")
        info = _wait_started(proc, lab_dir, time.monotonic() + START_TIMEOUT_S)
    result = _summary(lab_dir, info)
    result["inventory"] = str(_write_inventory(info, lab_dir))
    _write_firmware_images(lab_dir)

    def draw(console: Any) -> None:
        console.print(
            f"lab up: {result['nodes']} servers, BMCs https://{result['bmc_first']}:{result['port']} .. "
            f"{result['bmc_last']}, pid {result['pid']}"
        )
        if result.get("ssh_error"):
            console.print(f"SSH is off: {result['ssh_error']}", markup=False)
        if result.get("ssh_first"):
            console.print(f"SSH: {result['ssh_user']}@{result['ssh_first']} .. {result['ssh_last']} port "
                          f"{result['ssh_port']}, key {result['ssh_key']}, known_hosts {result['ssh_known_hosts']}")
        console.print(f"inventory: {result['inventory']}   CA: {lab_dir / 'ca.pem'}   control: {result['control']}")

    cfg.emit(result, draw)


def _summary(lab_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    from clusterctl.sim.fleet import bmc_address

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


@app.command()
def status(ctx: typer.Context) -> None:
    """What the lab did to every server: firmware applied, BIOS changes, resets, power, boot overrides."""
    from clusterctl.sim.errors import LabNotRunning

    lab_dir = _lab_dir()
    info = _running(lab_dir)
    if info is None:
        raise LabNotRunning(f"the lab is not running (lab dir {lab_dir}); start it with `clusterctl lab up`")
    body = _control(lab_dir, info, "GET", "/status")
    result = _summary(lab_dir, info) | {"servers": body["servers"]}

    def draw(console: Any) -> None:
        from rich.table import Table

        ssh = (f", SSH {result['ssh_first']}..{result['ssh_last']}:{result['ssh_port']}"
               if result.get("ssh_first") else "")
        title = f"lab: {result['nodes']} servers, pid {result['pid']}, inventory {result['inventory']}{ssh}"
        table = Table(title=title)
        for column in ("node", "bmc", "power", "firmware applied", "BIOS changes", "resets", "faults"):
            table.add_column(column)
        for s in result["servers"]:
            table.add_row(
                s["node"],
                s["bmc"],
                s["power_state"],
                " ".join(f"{k}×{v}" for k, v in s["firmware_applied"].items()) or "-",
                str(len(s["bios_changes"])),
                " ".join(f"{k}×{v}" for k, v in s["resets"].items()) or "-",
                " ".join(f["kind"] for f in s["faults"]) or "-",
            )
        console.print(table)

    settings(ctx).emit(result, draw)


def _is_lab_process(pid: int) -> bool:
    try:
        return b"clusterctl.sim" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop(pid: int) -> bool:
    """SIGTERM, a bounded wait, then SIGKILL. True when the process is gone."""
    from clusterctl.sim.labdir import pid_alive

    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        if not pid_alive(pid):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
    return not pid_alive(pid)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the lab. Idempotent: stopping a stopped lab is fine."""
    from clusterctl.sim import labdir
    from clusterctl.sim.errors import LabError

    lab_dir = _lab_dir()
    pid = labdir.read_pid(lab_dir) or int((labdir.read_info(lab_dir) or {}).get("pid", 0))
    cfg = settings(ctx)
    stopped = False
    if pid and labdir.pid_alive(pid) and _is_lab_process(pid):
        if not _stop(pid):
            raise LabError(f"the lab process {pid} did not stop")
        stopped = True
    for name in (labdir.INFO_FILE, labdir.PID_FILE):
        (lab_dir / name).unlink(missing_ok=True)
    cfg.emit(
        {"stopped": stopped, "pid": pid or None},
        lambda console: console.print("lab stopped" if stopped else "lab was not running"),
    )


@fault_app.command("add")
def fault_add(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="Node name, e.g. gpu0007."),
    kind: str = typer.Argument(..., help="Fault kind (see `clusterctl lab fault kinds`)."),
    param: list[str] = PARAM,
) -> None:
    """Inject a fault into the running lab. Example: clusterctl lab fault add gpu0007 xid -p code=79"""
    from clusterctl.sim.errors import LabNotRunning
    from clusterctl.sim.faults import make_fault, parse_param_args

    params = parse_param_args(param)
    make_fault(node, kind, params)  # fail fast on a bad kind or parameter, before talking to the lab
    lab_dir = _lab_dir()
    info = _running(lab_dir)
    if info is None:
        raise LabNotRunning("the lab is not running; start it with `clusterctl lab up`")
    added = _control(lab_dir, info, "POST", "/faults", json={"node": node, "kind": kind, "params": params})
    settings(ctx).emit(added, lambda console: console.print(f"fault added: {node} {kind} {added['params']}"))


@fault_app.command("clear")
def fault_clear(
    ctx: typer.Context,
    node: str = typer.Argument(None, help="Only this node (default: all)."),
    kind: str = typer.Argument(None, help="Only this kind (default: all)."),
) -> None:
    """Clear faults: all, a node's, or one kind on a node."""
    from clusterctl.sim.errors import FaultError, LabNotRunning
    from clusterctl.sim.faults import FAULT_KINDS

    if kind is not None and kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault kind {kind!r} (known: {', '.join(sorted(FAULT_KINDS))})")
    lab_dir = _lab_dir()
    info = _running(lab_dir)
    if info is None:
        raise LabNotRunning("the lab is not running; start it with `clusterctl lab up`")
    query = {k: v for k, v in (("node", node), ("kind", kind)) if v}
    body = _control(lab_dir, info, "DELETE", "/faults", params=query)
    settings(ctx).emit(body, lambda console: console.print(f"cleared {body['cleared']} fault(s)"))


@fault_app.command("kinds")
def fault_kinds(ctx: typer.Context) -> None:
    """List fault kinds, where they show (bmc/node), and their parameters with defaults."""
    from clusterctl.sim.faults import FAULT_KINDS

    data: list[dict[str, Any]] = [
        {"kind": k.name, "side": k.side, "params": k.params, "doc": k.doc} for k in FAULT_KINDS.values()
    ]

    def draw(console: Any) -> None:
        from rich.table import Table

        table = Table("kind", "side", "params", "effect")
        for d in data:
            table.add_row(d["kind"], d["side"], " ".join(f"{k}={v}" for k, v in d["params"].items()), d["doc"])
        console.print(table)

    settings(ctx).emit(data, draw)
