"""A real Debian 12 machine for the os stage's tests: systemd, apt, dpkg and sshd are Debian's own.

The root file system is built once with mmdebstrap from Debian's packages and kept in a cache
directory named after what went into it (suite, package list, the hooks below), so a changed list
builds a new one and an unchanged one is reused across test runs. Each node boots its own writable
view of that root with `systemd-nspawn --boot`: an overlay mount (the cached root as the read-only lower
layer, the node's writes in an upper directory of its own; see the kernel's
Documentation/filesystems/overlayfs.rst), so starting a node copies nothing and the cache stays as built.
The node shares the host's network namespace: its sshd listens on a loopback
address of its own, and its host key is written to a known_hosts file that clients must check.

A reboot inside the container (Ansible's reboot module runs `shutdown -r`) ends systemd-nspawn with
exit status 133, as systemd-nspawn(1) documents; a supervisor thread then boots the same root again,
as systemd-nspawn@.service does with RestartForceExitStatus=133. The container's boot id is its own
(systemd-nspawn gives each boot a new /proc/sys/kernel/random/boot_id), so a reboot is observable.

What a container cannot have (a kernel of its own, a GPU) stays out: the node's PCI device list can
be replaced by a prepared directory (`binds={dir: "/sys/bus/pci/devices"}`), which is what the
playbooks' hardware facts read; other host directories can be shown to it read-only the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from support import leftovers
from support.ports import ephemeral_port

SUITE = "bookworm"
USER = "ops"  # the SSH user: a sudoer, not root, as on most sites
# A stock server's packages, plus what Ansible's modules need on the node (python3-apt for apt,
# gnupg for keys), pip (for nvidia-ml-py) and venv (for the burn-in runtime), so a test never waits on
# Debian's mirror for them.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "python3", "python3-apt", "python3-pip",
    "python3-venv",
    "gnupg", "ca-certificates", "iproute2", "kmod", "procps", "curl", "git", "make",
)
# Unattended apt timers would take dpkg's lock in the middle of a test run; a site masks them too.
# Debian's own sources go: the node is air-gapped, as most GPU sites' nodes are, and only the site's mirror
# (the test's repository) is reachable.
HOOKS = (
    'rm -f "$1/etc/apt/sources.list" "$1/etc/apt/sources.list.d/"*',
    'chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer',
    f'chroot "$1" useradd --create-home --shell /bin/bash {USER}',
    f'echo "{USER} ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/{USER}"',
    f'chmod 0440 "$1/etc/sudoers.d/{USER}"',
    'rm -f "$1"/etc/ssh/ssh_host_*',  # each node makes its own host keys
)
REBOOT_STATUS = 133  # systemd-nspawn's exit status when the container rebooted
BOOT_TIMEOUT_S = 90.0


def tools_missing() -> list[str]:
    """What this machine lacks to build and boot the node: the tools, and root (systemd-nspawn and
    mmdebstrap --mode=root need it)."""
    missing = [t for t in ("mmdebstrap", "systemd-nspawn") if shutil.which(t) is None]
    return missing + ([] if os.geteuid() == 0 else ["root privileges"])


def cache_dir() -> Path:
    base = os.environ.get("CLUSTERCTL_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "clusterctl-tests")
    return Path(base)


def rootfs_key() -> str:
    text = "\n".join([SUITE, *PACKAGES, *HOOKS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_rootfs(cache: Path | None = None) -> Path:
    """The cached root for this package list, built first when absent (about a minute, mostly downloads)."""
    cache = cache or cache_dir()
    root = cache / f"debian12-{rootfs_key()}"
    if (root / "etc" / "os-release").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{root.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    command = ["mmdebstrap", "--mode=root", "--variant=apt", "--quiet", f"--include={','.join(PACKAGES)}"]
    command += [f"--customize-hook={hook}" for hook in HOOKS]
    command += [SUITE, str(partial)]
    subprocess.run(command, check=True, timeout=900, stdin=subprocess.DEVNULL)
    try:
        partial.rename(root)
    except OSError:  # another run built it at the same time: keep theirs
        shutil.rmtree(partial, ignore_errors=True)
    return root


class DebianNode:
    """One booted copy of the cached root. `start()`, then `ssh(...)`, `boot_id()`; `stop()` always."""

    def __init__(self, workdir: Path, address: str, *, rootfs: Path, binds: Mapping[Path, str] | None = None) -> None:
        self.workdir = workdir
        self.address = address
        self.root = workdir / "root"
        self.binds = dict(binds or {})
        self.port = ephemeral_port(address)
        self.user = USER
        self.client_key = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self.console = workdir / "console.log"
        self._boot_log = workdir / "boots.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.exit_status: int | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self._mount_root(rootfs)
        try:
            self._configure()
        except BaseException:
            self.remove()
            raise

    def _mount_root(self, rootfs: Path) -> None:
        """The cached root under an overlay: a copy writes (and its removal deletes) ~15,000 files per node,
        and deleting a provisioned node's root (PyTorch in its runtime) took a minute on a busy test machine.
        Where the overlay cannot be mounted (a temporary directory that is itself an overlay cannot hold the
        upper layer), the node gets a copy, as before."""
        upper, work = self.workdir / "upper", self.workdir / "overlay-work"
        layers = {"lowerdir": rootfs, "upperdir": upper, "workdir": work}
        for path in (upper, work):
            path.mkdir()
        options = ",".join(f"{name}={path}" for name, path in layers.items())
        # mount(8) splits options at commas, and overlayfs its layer lists at colons.
        if not any(c in options for c in ":\\") and options.count(",") == len(layers) - 1:
            self.root.mkdir()
            done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
                                  capture_output=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
            if done.returncode == 0:
                return
            self.root.rmdir()
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True, timeout=300)

    def _configure(self) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)], check=True,
                       timeout=30)
        ssh_dir = self.root / "etc" / "ssh"
        host_key = ssh_dir / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, timeout=30)
        (ssh_dir / "sshd_config.d" / "test-node.conf").write_text(
            f"ListenAddress {self.address}:{self.port}\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n")
        home = self.root / "home" / USER
        ssh_home = home / ".ssh"
        ssh_home.mkdir(mode=0o700, exist_ok=True)
        (ssh_home / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        uid_gid = (home.stat().st_uid, home.stat().st_gid)
        for path in (ssh_home, ssh_home / "authorized_keys"):
            os.chown(path, *uid_gid)
        key = host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.address}]:{self.port} {key[0]} {key[1]}\n")
        (self.root / "etc" / "hostname").write_text("debian-node\n")
        (self.root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 debian-node\n")

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._boot()
        self._supervisor = threading.Thread(target=self._supervise, name="debian-node", daemon=True)
        self._supervisor.start()
        self.wait_ssh()

    def _boot(self) -> None:
        """systemd-nspawn under a shell that boots it again when it reboots: the shell, started with the node,
        is the parent of every boot, so a node kept for a module is not taken for what a test left running
        when a reboot during that test started a new systemd-nspawn."""
        command = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(self.root),
                   f"--machine=debian-node-{self.port}", "--boot"]
        for source, target in self.binds.items():
            command.insert(-1, f"--bind-ro={source}:{target}")
        # SIGTERM (stop) reaches both: systemd-nspawn powers the node off, the shell then ends with its status.
        loop = (f"trap 'stopping=1' TERM; while :; do echo boot >> {shlex.quote(str(self._boot_log))}; "
                f'{shlex.join(command)}; s=$?; [ -z "${{stopping:-}}" ] && [ "$s" -eq {REBOOT_STATUS} ] || exit "$s"; '
                "done")
        with open(self.console, "ab") as console:
            self._proc = subprocess.Popen(["sh", "-c", loop], stdin=subprocess.DEVNULL, stdout=console,
                                          stderr=console, start_new_session=True, env=leftovers.session_env())

    @property
    def boots(self) -> int:
        return len(self._boot_log.read_text().splitlines()) if self._boot_log.exists() else 0

    def _supervise(self) -> None:
        proc = self._proc
        assert proc is not None
        self.exit_status = proc.wait()

    def wait_ssh(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_status is not None:
                raise RuntimeError(f"the node stopped (status {self.exit_status}); see {self.console}")
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the node's sshd did not answer on {self.address}:{self.port} in {timeout:g} s")

    def stop(self, timeout: float = 60.0) -> None:
        """Power the container off (SIGTERM makes systemd-nspawn ask its init to), SIGKILL if it hangs."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if self._supervisor is not None:
            self._supervisor.join(10)

    def remove(self) -> None:
        """Unmount the node's root. Its writes stay in the test's temporary directory, which pytest deletes
        with its other old ones (it keeps the last three runs'): deleting them here made the test wait for the
        disk, about a minute for a provisioned node."""
        if os.path.ismount(self.root):
            subprocess.run(["umount", str(self.root)], check=True, timeout=60, stdin=subprocess.DEVNULL)

    # -- access ---------------------------------------------------------------------------------

    def ssh(self, command: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ssh", "-i", str(self.client_key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "ConnectTimeout=10", f"{self.user}@{self.address}", command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{command!r} on the node failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
