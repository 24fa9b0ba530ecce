"""A site's mirror for the os stage: a signed apt repository laid out like NVIDIA's CUDA repository, a PyPI
index, node_exporter's release files (all served over HTTP on loopback) and a git mirror of nccl-tests.

NVIDIA's repository (developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/) is a flat
repository: the packages, `Packages`, `Release` and `InRelease` sit in one directory, and sources name
it with the suite `/`. This one is the same, signed with a key made for the test, which the os stage
installs as the site's mirror key. Beside it, a PyPI simple index holds an nvidia-ml-py wheel.

The packages are stand-ins built here with dpkg-deb under NVIDIA's names and versions, and they
behave like the originals where the playbooks depend on it:
- the DKMS package "builds" the kernel module for the running kernel; it is "loaded" only at the next
  boot (a unit that runs early at boot records the module's version under /run), as a freshly
  installed driver is not loaded until the node reboots with nouveau out of the way;
- nvidia-smi fails to talk to the driver until the module is loaded, and reports a driver/library
  version mismatch when the loaded module is not the installed one, as the real one does;
- Fabric Manager refuses to start when the loaded driver is not its own version, and the persistence
  daemon and the DCGM host engine need the loaded driver;
- each package exists in the version the inventory asks for and in a newer one, so a package that is
  not pinned drifts to the newer version, as it would on NVIDIA's repository.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import http.server
import shutil
import subprocess
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ARCH = "amd64"
DRIVER = "550.90.07"
DRIVER_NEWER = "550.127.05"
CUDA = "12.4.1"
NCCL = "2.21.5"
DCGM = "3.3.7"
NVML_PY = "12.550.52"

LOADED = "/run/nvidia-standin/version"  # what /sys/module/nvidia/version would say
MODULE = "/lib/modules/$(uname -r)/updates/dkms/nvidia.ko"

NVIDIA_SMI = """#!/usr/bin/python3
# Stand-in for nvidia-smi: answers the queries clusterctl's playbooks make, from state under /run.
import os, sys
INSTALLED = "@VERSION@"
try:
    loaded = open("@LOADED@").read().strip()
except OSError:
    print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
          "Make sure that the latest NVIDIA driver is installed and running.")
    sys.exit(9)
if loaded != INSTALLED:
    print("Failed to initialize NVML: Driver/library version mismatch")
    sys.exit(18)
state = "/run/nvidia-standin"
args = sys.argv[1:]
pm = os.path.exists(state + "/persistence")
if args[:2] == ["-pm", "1"]:
    open(state + "/persistence", "w").close()
    sys.exit(0)
if args and args[0] in ("-rac", "-pl", "-ac", "-i"):
    sys.exit(0)
query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
if query is None:
    print("NVIDIA-SMI " + INSTALLED)
    sys.exit(0)
values = {"index": "0", "driver_version": INSTALLED, "persistence_mode": "Enabled" if pm else "Disabled",
          "power.limit": "700.00", "clocks.applications.graphics": "1755", "clocks.applications.memory": "2619",
          "clocks.max.graphics": "1980", "clocks.max.memory": "2619",
          "clocks.default_applications.graphics": "1755", "clocks.default_applications.memory": "2619"}
print(", ".join(values.get(f, "[N/A]") for f in query.split(",")))
"""

# Its unit runs it first with --check (ExecStartPre), so `systemctl start` fails as it does for the
# real daemons, which fail before they report themselves started.
NEEDS_DRIVER = """#!/bin/sh
# Stand-in daemon: like the real one, it cannot run without the loaded NVIDIA driver.
set -e
loaded=$(cat @LOADED@ 2>/dev/null || true)
if [ -z "$loaded" ]; then echo "$0: NVIDIA driver not loaded" >&2; exit 1; fi
@CHECK@
[ "$1" = --check ] && exit 0
@AFTER@
exec sleep infinity
"""


@dataclass
class Package:
    name: str
    version: str
    depends: str = ""
    files: dict[str, str] = field(default_factory=dict)  # path -> content (executable when it starts with #!)
    links: dict[str, str] = field(default_factory=dict)  # path -> target
    postinst: str = ""
    prerm: str = ""


def _daemon(check: str = "", after: str = "") -> str:
    return NEEDS_DRIVER.replace("@LOADED@", LOADED).replace("@CHECK@", check).replace("@AFTER@", after)


def _unit(description: str, exec_start: str) -> str:
    return (f"[Unit]\nDescription={description}\n\n[Service]\nExecStartPre={exec_start.split()[0]} --check\n"
            f"ExecStart={exec_start}\n\n[Install]\nWantedBy=multi-user.target\n")


def driver_packages(version: str) -> list[Package]:
    branch = version.split(".")[0]
    dkms = Package(
        "nvidia-kernel-open-dkms", f"{version}-1",
        files={
            "/usr/lib/nvidia-standin/load-module": (
                "#!/bin/sh\n# At boot: the module built for this kernel is the one that gets loaded.\n"
                f'm={MODULE}\n[ -f "$m" ] || exit 0\nmkdir -p /run/nvidia-standin\n'
                f'sed -n "s/^version=//p" "$m" > {LOADED}\n'),
            "/usr/lib/systemd/system/nvidia-standin-module.service": (
                "[Unit]\nDescription=Load the NVIDIA kernel module (stand-in)\nDefaultDependencies=no\n"
                "Before=sysinit.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                "ExecStart=/usr/lib/nvidia-standin/load-module\n"),
        },
        links={"/usr/lib/systemd/system/sysinit.target.wants/nvidia-standin-module.service":
               "../nvidia-standin-module.service"},
        postinst=f'#!/bin/sh\nset -e\nmkdir -p "$(dirname {MODULE})"\necho "version={version}" > {MODULE}\n',
        prerm=f"#!/bin/sh\nrm -f {MODULE}\n",
    )
    smi = NVIDIA_SMI.replace("@VERSION@", version).replace("@LOADED@", LOADED)
    persistenced_unit = _unit("NVIDIA Persistence Daemon", "/usr/bin/nvidia-persistenced --user nvidia-persistenced "
                              "--no-persistence-mode --verbose")
    persist_after = ('case " $* " in *" --persistence-mode "*) touch /run/nvidia-standin/persistence;; esac')
    driver = Package(
        "nvidia-driver", f"{version}-1", depends=f"nvidia-kernel-open-dkms (= {version}-1)",
        files={"/usr/bin/nvidia-smi": smi,
               "/usr/bin/nvidia-persistenced": _daemon(after=persist_after),
               "/usr/lib/systemd/system/nvidia-persistenced.service": persistenced_unit},
        postinst="#!/bin/sh\nset -e\ngetent passwd nvidia-persistenced >/dev/null || "
                 "useradd --system --no-create-home --shell /usr/sbin/nologin nvidia-persistenced\n",
    )
    fm_check = (f'if [ "$loaded" != "{version}" ]; then echo "fabric manager NVIDIA GPU driver interface version '
                f'{version} don\'t match with driver version $loaded. Please update with matching NVIDIA driver '
                'package." >&2; exit 1; fi')
    fabricmanager = Package(
        f"nvidia-fabricmanager-{branch}", f"{version}-1",
        files={"/usr/bin/nv-fabricmanager": _daemon(check=fm_check),
               "/usr/lib/systemd/system/nvidia-fabricmanager.service":
                   _unit("NVIDIA fabric manager service", "/usr/bin/nv-fabricmanager -c "
                         "/usr/share/nvidia/nvswitch/fabricmanager.cfg")},
    )
    return [dkms, driver, fabricmanager]


def packages() -> list[Package]:
    found = driver_packages(DRIVER) + driver_packages(DRIVER_NEWER)
    for cuda in (CUDA, "12.6.2"):
        mm = ".".join(cuda.split(".")[:2])
        nvcc = f"#!/bin/sh\necho 'Cuda compilation tools, release {mm}, V{cuda}'\n"
        found.append(Package(f"cuda-toolkit-{mm.replace('.', '-')}", f"{cuda}-1",
                             files={f"/usr/local/cuda-{mm}/bin/nvcc": nvcc}))
    for nccl, cuda in ((NCCL, "12.4"), ("2.23.4", "12.6")):
        found.append(Package("libnccl2", f"{nccl}-1+cuda{cuda}",
                             files={f"/usr/lib/x86_64-linux-gnu/libnccl.so.{nccl}": f"stand-in NCCL {nccl}\n"}))
        found.append(Package("libnccl-dev", f"{nccl}-1+cuda{cuda}", depends=f"libnccl2 (= {nccl}-1+cuda{cuda})",
                             files={"/usr/include/nccl.h": f"#define NCCL_VERSION_STR \"{nccl}\"\n"}))
    for dcgm in (DCGM, "3.3.9"):
        found.append(Package("datacenter-gpu-manager", f"1:{dcgm}",
                             files={"/usr/bin/nv-hostengine": _daemon(),
                                    "/usr/lib/systemd/system/nvidia-dcgm.service":
                                        _unit("NVIDIA DCGM service", "/usr/bin/nv-hostengine -n --service-account "
                                              "nvidia-dcgm")}))
    found.append(Package("dcgm-exporter", f"{DCGM}-3.4.2-1", depends="datacenter-gpu-manager",
                         files={"/usr/bin/dcgm-exporter": _daemon()}))
    found.append(Package("cuda-keyring", "1.1-1",
                         files={"/usr/share/keyrings/cuda-archive-keyring.gpg": "stand-in: not NVIDIA's key\n"}))
    return found


def build_deb(pkg: Package, workdir: Path, out: Path) -> Path:
    tree = workdir / f"{pkg.name}_{pkg.version.replace(':', '%3a')}"
    (tree / "DEBIAN").mkdir(parents=True)
    control = (f"Package: {pkg.name}\nVersion: {pkg.version}\nArchitecture: {ARCH}\n"
               "Maintainer: clusterctl tests <tests@clusterctl.invalid>\nSection: non-free/libs\nPriority: optional\n"
               f"Description: stand-in for NVIDIA's {pkg.name}\n")
    if pkg.depends:
        control += f"Depends: {pkg.depends}\n"
    (tree / "DEBIAN" / "control").write_text(control)
    for script, text in (("postinst", pkg.postinst), ("prerm", pkg.prerm)):
        if text:
            (tree / "DEBIAN" / script).write_text(text)
            (tree / "DEBIAN" / script).chmod(0o755)
    for path, content in pkg.files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o755 if content.startswith("#!") else 0o644)
    for path, link in pkg.links.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(link)
    deb = out / f"{pkg.name}_{pkg.version.split(':')[-1]}_{ARCH}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=60)
    return deb


def _stanza(deb: Path) -> str:
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True,
                            timeout=30).stdout.rstrip("\n")
    data = deb.read_bytes()
    return (f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}\n"  # noqa: S324
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n")


def _release(repo: Path, names: list[str]) -> str:
    lines = ["Origin: clusterctl test mirror", f"Date: {email.utils.formatdate(usegmt=True)}",
             "Label: NVIDIA CUDA (stand-in)", f"Architectures: {ARCH}",
             "Acquire-By-Hash: no", "SHA256:"]
    for name in names:
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def nvml_wheel(out: Path) -> Path:
    """nvidia-ml-py as pip would find it on PyPI: a pure-Python wheel named as NVIDIA names it."""
    name = f"nvidia_ml_py-{NVML_PY}"
    wheel = out / f"{name}-py3-none-any.whl"
    files = {
        "pynvml.py": f'"""Stand-in for nvidia-ml-py {NVML_PY}: importable; NVML itself needs the driver."""\n'
                     "class NVMLError(Exception):\n    pass\n\ndef nvmlInit():\n"
                     "    raise NVMLError('NVML Shared Library Not Found')\n",
        f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: nvidia-ml-py\nVersion: {NVML_PY}\n",
        f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: clusterctl-tests\nRoot-Is-Purelib: true\n"
                                  "Tag: py3-none-any\n",
    }
    record = [f"{path},,"for path in files] + [f"{name}.dist-info/RECORD,,"]
    files[f"{name}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


NODE_EXPORTER = "1.8.2"
NCCL_TESTS_TAG = "v2.13.11"
NCCL_TESTS_MAKEFILE = """# Stand-in for nccl-tests' Makefile: it needs CUDA and NCCL where the real one does.
CUDA_HOME ?= /usr/local/cuda
build/all_reduce_perf:
\ttest -x $(CUDA_HOME)/bin/nvcc
\ttest -f /usr/include/nccl.h
\tmkdir -p build
\tprintf '#!/bin/sh\\necho all_reduce_perf stand-in\\n' > $@
\tchmod +x $@
"""


def node_exporter_release(www: Path) -> Path:
    """node_exporter's release files as GitHub serves them: the tarball and sha256sums.txt beside it."""
    import tarfile

    folder = www / "node_exporter" / f"v{NODE_EXPORTER}"
    folder.mkdir(parents=True)
    name = f"node_exporter-{NODE_EXPORTER}.linux-{ARCH}"
    tree = Path(tempfile.mkdtemp(prefix="node_exporter-", dir=www.parent)) / name
    tree.mkdir()
    (tree / "node_exporter").write_text("#!/bin/sh\n# Stand-in for node_exporter.\nexec sleep infinity\n")
    (tree / "node_exporter").chmod(0o755)
    (tree / "LICENSE").write_text("Apache-2.0\n")
    tarball = folder / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=name)
    shutil.rmtree(tree.parent)
    (folder / "sha256sums.txt").write_text(f"{hashlib.sha256(tarball.read_bytes()).hexdigest()}  {tarball.name}\n")
    return folder


def nccl_tests_repo(path: Path) -> Path:
    """A bare git repository with a tagged stand-in of nccl-tests, as a site's git mirror would hold it."""
    work = Path(tempfile.mkdtemp(prefix="nccl-tests-", dir=path.parent))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@clusterctl.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@clusterctl.invalid", "HOME": str(work), "PATH": "/usr/bin:/bin"}

    def git(*args: str, cwd: Path = work) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)

    git("init", "-q", "-b", "master")
    (work / "Makefile").write_text(NCCL_TESTS_MAKEFILE)
    git("add", "Makefile")
    git("commit", "-q", "-m", "stand-in")
    git("tag", NCCL_TESTS_TAG)
    git("clone", "-q", "--bare", str(work), str(path), cwd=path.parent)
    shutil.rmtree(work)
    return path


class NvidiaRepo:
    """Builds the repository and the index under `workdir`, signs them, and serves both on `address`."""

    def __init__(self, workdir: Path, address: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.repo = workdir / "www" / "cuda" / "repos" / "debian12" / "x86_64"
        self.index = workdir / "www" / "pypi" / "simple" / "nvidia-ml-py"
        self.key = workdir / "mirror-key.asc"
        self.repo.mkdir(parents=True)
        self.index.mkdir(parents=True)
        build = Path(tempfile.mkdtemp(prefix="debs-", dir=workdir))
        debs = [build_deb(p, build, self.repo) for p in packages()]
        shutil.rmtree(build)
        (self.repo / "Packages").write_text("\n".join(_stanza(d) for d in sorted(debs)))
        (self.repo / "Packages.gz").write_bytes(gzip.compress((self.repo / "Packages").read_bytes()))
        (self.repo / "Release").write_text(_release(self.repo, ["Packages", "Packages.gz"]))
        self._sign()
        wheel = nvml_wheel(self.index)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (self.index / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>\n')
        node_exporter_release(workdir / "www")
        self.git = nccl_tests_repo(workdir / "nccl-tests.git")
        self._server = http.server.ThreadingHTTPServer((address, 0), self._handler(workdir / "www"))
        self.address = address
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="nvidia-repo", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/cuda/repos/debian12/x86_64/"

    @property
    def node_exporter(self) -> str:
        return f"http://{self.address}:{self.port}/node_exporter/v{NODE_EXPORTER}/"

    @property
    def pypi(self) -> str:
        return f"http://{self.address}:{self.port}/pypi/simple/"

    def _sign(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="gnupg-", dir="/tmp"))  # the agent's socket path must be short
        gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        try:
            subprocess.run([*gpg, "--quick-gen-key", "clusterctl test mirror <mirror@clusterctl.invalid>", "ed25519",
                            "sign", "never"], check=True, capture_output=True, timeout=60)
            subprocess.run([*gpg, "--armor", "--output", str(self.key), "--export"], check=True, timeout=30)
            release = self.repo / "Release"
            subprocess.run([*gpg, "--clearsign", "--output", str(self.repo / "InRelease"), str(release)], check=True,
                           timeout=30)
            subprocess.run([*gpg, "--armor", "--detach-sign", "--output", str(self.repo / "Release.gpg"),
                            str(release)], check=True, timeout=30)
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, timeout=30)
            shutil.rmtree(home, ignore_errors=True)

    @staticmethod
    def _handler(root: Path) -> type[http.server.SimpleHTTPRequestHandler]:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
