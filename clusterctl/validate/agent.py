"""Node-side validation agent: collects GPU, XID, InfiniBand, service and software facts; prints ONE JSON document.

Shipped over SSH as source and run with `python3 - [options]`, so it must stay a single file
that needs only the standard library and `pynvml`, and runs on the oldest python3 a GPU node
ships (3.8). It judges nothing: the controller's rules turn these facts into verdicts, so a
rule change never needs a new agent on the nodes. Every part degrades on its own: a node
without a driver still reports its fabric and software, and no failure prints a traceback.

Options (for tests and the embedded lab; the defaults read the real node):
  --sysfs-root DIR   prefix for /sys paths           --kernel-log FILE   read XIDs from FILE
  --root DIR         prefix for /usr paths (software versions)
  --software-only    only the driver and software versions: what `plan` and `maintain` compare, read
                     on every node of a fleet, without the per-GPU, XID, InfiniBand and service reads
Without --kernel-log the agent reads the kernel log with journalctl -k, then sudo -n journalctl -k,
then dmesg; when none of them may, the XID part reports each refusal (the rules fail it).

NVML source: the agent imports the installed `pynvml`. When the environment variable
CLUSTERCTL_AGENT_PYNVML names a Python file, that file is loaded as `pynvml` instead; tests
that run the agent as a program on machines without GPUs point it at clusterctl/sim/fake_nvml.py.
Real nodes never set it.

`collect(node)` is the whole collection with every read going through `node` (a `NodeIO`):
the embedded lab imports this module and passes a NodeIO of its simulated hardware, so the
code that runs on real nodes is the code the lab exercises, without a process per node.
"""

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

AGENT_VERSION = 1
# "NVRM: Xid (PCI:0000:18:00): 79, pid=..., GPU has fallen off the bus." (NVIDIA XID catalog)
XID_RE = re.compile(r"NVRM: Xid \(PCI:([0-9A-Fa-f:.]+)\): (\d+),?\s*(.*)")
MAX_XID_EVENTS = 500
# nvmlClocksEventReason* bits (formerly nvmlClocksThrottleReason*), the one list of them in clusterctl:
# https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
# The agent reports names so rules never see masks; clusterctl/validate/clock_events.py says what each means.
CLOCK_EVENT_BITS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal"),
    (0x40, "hw_thermal"),
    (0x80, "hw_power_brake"),
    (0x100, "display_clocks"),
)
# nvmlGpuFabricState_t (NVML_GPU_FABRIC_STATE_*)
FABRIC_STATES = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}
IB_COUNTERS = (
    "symbol_error",
    "link_downed",
    "link_error_recovery",
    "port_rcv_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "port_xmit_discards",
)
LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/cuda/lib64",
    "/usr/local/nccl/lib",
)
COMMAND_TIMEOUT = 15
# Kernel-log readers in order: the SSH user in group systemd-journal or adm (the os stage grants it),
# then root through passwordless sudo for this one command, then the ring buffer (what is left of it).
JOURNAL_K = ["journalctl", "-k", "-b", "-o", "cat", "--no-pager"]
KERNEL_LOG_READERS = (JOURNAL_K, ["sudo", "-n", *JOURNAL_K], ["dmesg"])
# What journalctl prints to stderr when it can open only the user's own journal (systemd's journalctl.c).
JOURNAL_REFUSED = ("not seeing messages from other users and the system", "insufficient permissions")
SERVICES = ("nvidia-fabricmanager",)
PYNVML_ENV = "CLUSTERCTL_AGENT_PYNVML"


class NodeIO:
    """Every way the agent looks at its node. This one reads the real node; the lab's subclass
    answers from simulated hardware (same method names and return shapes)."""

    def hostname(self):
        return socket.gethostname()

    def now(self):
        """The node's clock: periodic checks date their figures by it (the lab's nodes live in simulated time)."""
        return time.time()

    def nvml(self):
        """The stand-in file $CLUSTERCTL_AGENT_PYNVML names, else pynvml (ImportError when it is not installed)."""
        path = os.environ.get(PYNVML_ENV)
        if path:
            return load_module("pynvml", path)
        import pynvml

        return pynvml

    def read(self, path):
        return read(path)

    def isdir(self, path):
        return os.path.isdir(path)

    def listdir(self, path):
        return os.listdir(path)

    def glob(self, pattern):
        return glob.glob(pattern)

    def command(self, argv):
        return command(argv)

    def run(self, argv):
        """A command's stdout when it succeeded, else None."""
        done = self.command(argv)
        return done[1] if done is not None and done[0] == 0 else None


def load_module(name, path):
    """By file location, so the stand-in need not be on the node python3's sys.path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load " + path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(prog="clusterctl-agent")
    parser.add_argument("--sysfs-root", default="/sys")
    parser.add_argument("--kernel-log", default=None)
    parser.add_argument("--root", default="/")
    parser.add_argument("--software-only", action="store_true")
    args = parser.parse_args(argv)
    doc = collect(NodeIO(), sysfs_root=args.sysfs_root, kernel_log_path=args.kernel_log, root=args.root,
                  software_only=args.software_only)
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    return 0


def collect(node, sysfs_root="/sys", kernel_log_path=None, root="/", software_only=False):
    """The agent's document for the node that `node` (a NodeIO) reads; `software_only`: the versions alone."""
    doc = {"agent": AGENT_VERSION, "hostname": node.hostname(), "time": node.now()}
    if software_only:
        doc["software"] = guarded(collect_software, root, sysfs_root, guarded(collect_gpus, node, False), node)
        return doc
    doc["gpu"] = guarded(collect_gpus, node)
    doc["xid"] = guarded(collect_xids, kernel_log_path, node)
    doc["services"] = guarded(collect_services, node)
    doc["infiniband"] = guarded(collect_infiniband, sysfs_root, node)
    doc["software"] = guarded(collect_software, root, sysfs_root, doc["gpu"], node)
    return doc


def guarded(fn, *args):
    """One part failing becomes that part's error, so the rest of the report still arrives."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the agent must always print its document
        return {"error": f"agent could not collect this: {type(exc).__name__}: {exc}"}


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- GPUs (NVML) ------------------------------------------------------------------------------------------


def collect_gpus(node=None, devices=True):
    """The driver's versions and, with `devices`, every GPU's facts."""
    try:
        pynvml = (node or NodeIO()).nvml()
    except ImportError:
        return {"error": "no NVIDIA driver", "detail": "the pynvml module is not installed"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses differ between pynvml versions
        return {"error": "no NVIDIA driver", "detail": f"NVML: {exc}"}
    try:
        out = {"driver": text(pynvml.nvmlSystemGetDriverVersion())}
        cuda = optional(pynvml, "nvmlSystemGetCudaDriverVersion")
        out["cuda_driver"] = None if cuda is None else f"{cuda // 1000}.{(cuda % 1000) // 10}"
        if not devices:
            return out
        count = pynvml.nvmlDeviceGetCount()
        out["count"] = count
        out["devices"] = [collect_device(pynvml, i) for i in range(count)]
        return out
    finally:
        with contextlib.suppress(Exception):  # nothing useful to do about a failed shutdown
            pynvml.nvmlShutdown()


def optional(nvml, name, *args):
    """An NVML call that a GPU may not support: None instead of an error."""
    fn = getattr(nvml, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends
        return None


def pci_address(bus_id):
    """NVML's 00000000:18:00.0 and the kernel's 0000:18:00 name the same device: 0000:18:00.0."""
    parts = text(bus_id).strip().lower().split(":")
    if len(parts) != 3:
        return text(bus_id).strip().lower()
    return f"{parts[0][-4:].rjust(4, '0')}:{parts[1]}:{parts[2]}"


def collect_device(nvml, index):
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as exc:  # noqa: BLE001 - a lost GPU is data
        return {"index": index, "error": str(exc) or type(exc).__name__}
    pci = optional(nvml, "nvmlDeviceGetPciInfo", handle)
    dev = {
        "index": index,
        "name": text(optional(nvml, "nvmlDeviceGetName", handle) or ""),
        "uuid": text(optional(nvml, "nvmlDeviceGetUUID", handle) or ""),
        "pci_bus_id": pci_address(pci.busId) if pci is not None else None,
    }
    persistence = optional(nvml, "nvmlDeviceGetPersistenceMode", handle)
    dev["persistence_mode"] = None if persistence is None else persistence == 1
    dev["ecc"] = collect_ecc(nvml, handle)
    dev["retired_pages"] = collect_retired_pages(nvml, handle)
    rows = optional(nvml, "nvmlDeviceGetRemappedRows", handle)
    dev["remapped_rows"] = None if rows is None else {
        "correctable": int(rows[0]), "uncorrectable": int(rows[1]),
        "pending": bool(rows[2]), "failure": bool(rows[3]),
    }
    dev["pcie"] = {
        "gen_cur": optional(nvml, "nvmlDeviceGetCurrPcieLinkGeneration", handle),
        "gen_max": optional(nvml, "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "width_cur": optional(nvml, "nvmlDeviceGetCurrPcieLinkWidth", handle),
        "width_max": optional(nvml, "nvmlDeviceGetMaxPcieLinkWidth", handle),
        # Link-level retransmissions since the driver loaded: a riser or slot going bad shows here first.
        "replay": optional(nvml, "nvmlDeviceGetPcieReplayCounter", handle),
    }
    dev["nvlink"] = collect_nvlink(nvml, handle)
    dev["fabric"] = collect_fabric(nvml, handle)
    sm, mem = getattr(nvml, "NVML_CLOCK_SM", 1), getattr(nvml, "NVML_CLOCK_MEM", 2)
    dev["clocks"] = {
        "sm": optional(nvml, "nvmlDeviceGetClockInfo", handle, sm),
        "sm_max": optional(nvml, "nvmlDeviceGetMaxClockInfo", handle, sm),
        "mem": optional(nvml, "nvmlDeviceGetClockInfo", handle, mem),
        "mem_max": optional(nvml, "nvmlDeviceGetMaxClockInfo", handle, mem),
    }
    mask = optional(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    if mask is None:
        mask = optional(nvml, "nvmlDeviceGetCurrentClocksEventReasons", handle)
    dev["throttle"] = None if mask is None else {
        "mask": int(mask), "reasons": [name for bit, name in CLOCK_EVENT_BITS if int(mask) & bit],
    }
    dev["temperature_c"] = optional(nvml, "nvmlDeviceGetTemperature", handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    dev["temperature_slowdown_c"] = optional(
        nvml, "nvmlDeviceGetTemperatureThreshold", handle, getattr(nvml, "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1)
    )
    dev["temperature_shutdown_c"] = optional(
        nvml, "nvmlDeviceGetTemperatureThreshold", handle, getattr(nvml, "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN", 0)
    )
    power = optional(nvml, "nvmlDeviceGetPowerUsage", handle)
    limit = optional(nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    dev["power_w"] = None if power is None else power / 1000.0
    dev["power_limit_w"] = None if limit is None else limit / 1000.0
    return dev


def collect_ecc(nvml, handle):
    mode = optional(nvml, "nvmlDeviceGetEccMode", handle)
    unc = getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
    cor = getattr(nvml, "NVML_MEMORY_ERROR_TYPE_CORRECTED", 0)
    vol = getattr(nvml, "NVML_VOLATILE_ECC", 0)
    agg = getattr(nvml, "NVML_AGGREGATE_ECC", 1)
    return {
        "enabled": None if mode is None else mode[0] == 1,
        "pending_enabled": None if mode is None else mode[1] == 1,
        "volatile_uncorrected": optional(nvml, "nvmlDeviceGetTotalEccErrors", handle, unc, vol),
        "aggregate_uncorrected": optional(nvml, "nvmlDeviceGetTotalEccErrors", handle, unc, agg),
        "volatile_corrected": optional(nvml, "nvmlDeviceGetTotalEccErrors", handle, cor, vol),
        "aggregate_corrected": optional(nvml, "nvmlDeviceGetTotalEccErrors", handle, cor, agg),
    }


def collect_retired_pages(nvml, handle):
    """Page retirement is the pre-Ampere mechanism; Ampere and later remap rows instead (None here)."""
    sbe = optional(nvml, "nvmlDeviceGetRetiredPages", handle, 0)
    dbe = optional(nvml, "nvmlDeviceGetRetiredPages", handle, 1)
    if sbe is None and dbe is None:
        return None
    pending = optional(nvml, "nvmlDeviceGetRetiredPagesPendingStatus", handle)
    return {"sbe": len(sbe or []), "dbe": len(dbe or []), "pending": bool(pending)}


def collect_nvlink(nvml, handle):
    links = []
    for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
        state = optional(nvml, "nvmlDeviceGetNvLinkState", handle, link)
        if state is None:
            break
        entry = {"link": link, "active": state == 1}
        for counter, name in enumerate(("replay", "recovery", "crc_flit", "crc_data")):
            entry[name] = optional(nvml, "nvmlDeviceGetNvLinkErrorCounter", handle, link, counter)
        links.append(entry)
    return links


def collect_fabric(nvml, handle):
    """The GPU's NVSwitch fabric registration (Hopper and later): state and status, as nvidia-smi -q's
    "Fabric" section shows them. Newest call first; a driver or pynvml without either says so.
    https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html (nvmlDeviceGetGpuFabricInfoV)
    """
    import ctypes

    unsupported = "not supported by this driver"
    for call, struct in (("nvmlDeviceGetGpuFabricInfoV", "c_nvmlGpuFabricInfoV_t"),
                         ("nvmlDeviceGetGpuFabricInfo", "c_nvmlGpuFabricInfo_t")):
        fn, make = getattr(nvml, call, None), getattr(nvml, struct, None)
        if fn is None or make is None:
            continue
        info = make()
        try:
            fn(handle, ctypes.byref(info))
        except Exception as exc:  # noqa: BLE001 - NVMLError subclasses differ between pynvml versions
            code = getattr(exc, "value", None)
            if code == getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13):
                continue  # this pynvml knows the call, the driver's libnvidia-ml does not
            if code == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3):
                unsupported = "not supported by this GPU"
                break
            return {"error": str(exc) or type(exc).__name__}
        status = int(info.status)
        return {
            "state": FABRIC_STATES.get(int(info.state), str(int(info.state))),
            "status": status,
            "status_text": nvml_error_text(nvml, status),
            "clique_id": int(info.cliqueId),
        }
    return {"unsupported": unsupported}


def nvml_error_text(nvml, code):
    if code == 0:
        return "Success"
    try:
        return text(nvml.nvmlErrorString(code))
    except Exception:  # noqa: BLE001 - an unknown code is still reported by number
        return f"NVML error {code}"


# -- XIDs from the kernel log -----------------------------------------------------------------------------


def collect_xids(path, node=None):
    source, lines = kernel_log(path, node or NodeIO())
    if lines is None:
        return {"error": f"cannot read the kernel log: {source}"}
    events = []
    counts = {}
    for line in lines:
        match = XID_RE.search(line)
        if not match:
            continue
        xid = int(match.group(2))
        counts[str(xid)] = counts.get(str(xid), 0) + 1
        events.append({"xid": xid, "pci": pci_address(match.group(1)), "text": match.group(3).strip()[:200]})
    return {"source": source, "counts": counts, "events": events[-MAX_XID_EVENTS:]}


def kernel_log(path, node):
    """Lines since boot and where they came from: (source, lines), or (why each reader failed, None).

    The given file, else each of KERNEL_LOG_READERS in turn. journalctl run by a user outside the
    systemd-journal and adm groups exits 0 with only that user's own journal (and a hint on stderr),
    and Ubuntu's kernel.dmesg_restrict refuses dmesg: both are refusals, never "no XIDs". A log with
    no kernel line at all is one too: every boot logs the kernel's own banner.
    """
    if path:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return path, f.read().splitlines()
        except OSError as exc:
            return f"{path}: {exc.strerror}", None
    refusals = []
    for argv in KERNEL_LOG_READERS:
        name = " ".join(argv[:4] if argv[0] == "sudo" else argv[:2])
        done = node.command(argv)
        if done is None:
            refusals.append(f"{name}: not installed, or no answer in {COMMAND_TIMEOUT} s")
            continue
        returncode, out, err = done
        lines = [line for line in out.splitlines() if line.strip() and not line.startswith("-- ")]
        if returncode != 0:
            why = first_line(err)
            why = why[len(argv[0]) + 2:] if why.startswith(argv[0] + ": ") else why
            refusals.append(f"{name}: {why or f'exit status {returncode}'}")
        elif any(hint in err for hint in JOURNAL_REFUSED):
            refusals.append(f"{name}: shows only the user's own journal (not in group systemd-journal or adm)")
        elif not lines:
            refusals.append(f"{name}: no kernel messages since boot")
        else:
            return " ".join(argv), lines
    return "; ".join(refusals), None


def first_line(raw):
    for line in (raw or "").splitlines():
        if line.strip():
            return line.strip()[:160]
    return ""


def command(argv):
    """(exit status, stdout, stderr) of a command, or None when it is missing or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, text(done.stdout), text(done.stderr)


# -- services ---------------------------------------------------------------------------------------------


def collect_services(node):
    """`systemctl is-active` of each unit in SERVICES: active, failed, inactive, activating... or None
    without systemd. Reported on every node; the rules say where a unit must be active."""
    states = {}
    for unit in SERVICES:
        done = node.command(["systemctl", "is-active", unit])
        states[unit] = (first_line(done[1]) or None) if done is not None else None
    return states


# -- InfiniBand (sysfs) -----------------------------------------------------------------------------------


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def enum_value(raw):
    """sysfs writes '4: ACTIVE' and '5: LinkUp': the name is what people read."""
    if raw is None:
        return None
    return raw.split(":", 1)[1].strip() if ":" in raw else raw


def rate_gbps(raw):
    """'400 Gb/sec (4X NDR)' -> 400.0."""
    match = re.match(r"\s*([\d.]+)\s*Gb/sec", raw or "")
    return float(match.group(1)) if match else None


def collect_infiniband(sysfs_root, node=None):
    node = node or NodeIO()
    read = node.read
    base = os.path.join(sysfs_root, "class", "infiniband")
    if not node.isdir(base):
        return {"hcas": []}
    hcas = []
    for hca in sorted(node.listdir(base)):
        ports_dir = os.path.join(base, hca, "ports")
        ports = []
        for port in sorted(node.listdir(ports_dir), key=lambda p: int(p) if p.isdigit() else 0) if node.isdir(
            ports_dir
        ) else []:
            pdir = os.path.join(ports_dir, port)
            counters = {}
            for name in IB_COUNTERS:
                value = read(os.path.join(pdir, "counters", name))
                if value is not None and value.isdigit():
                    counters[name] = int(value)
            raw_rate = read(os.path.join(pdir, "rate"))
            ports.append({
                "port": int(port) if port.isdigit() else port,
                "state": enum_value(read(os.path.join(pdir, "state"))),
                "phys_state": enum_value(read(os.path.join(pdir, "phys_state"))),
                "rate": raw_rate,
                "rate_gbps": rate_gbps(raw_rate),
                "link_layer": read(os.path.join(pdir, "link_layer")),
                "counters": counters,
            })
        hcas.append({"name": hca, "fw_ver": read(os.path.join(base, hca, "fw_ver")), "ports": ports})
    return {"hcas": hcas}


# -- software versions ------------------------------------------------------------------------------------


def under(root, path):
    return os.path.join(root, path.lstrip("/"))


def collect_software(root, sysfs_root, gpu, node=None):
    node = node or NodeIO()
    driver = gpu.get("driver") if isinstance(gpu, dict) else None
    return {
        "driver": driver or node.read(os.path.join(sysfs_root, "module", "nvidia", "version")),
        "cuda": cuda_version(root, node) or (gpu.get("cuda_driver") if isinstance(gpu, dict) else None),
        "nccl": nccl_version(root, node),
        "ofed": ofed_version(node),
        "fabricmanager": first_version(node.run(["nv-fabricmanager", "--version"])),
        "dcgm": first_version(node.run(["dcgmi", "--version"])),
    }


def cuda_version(root, node=None):
    read = (node or NodeIO()).read
    raw = read(under(root, "/usr/local/cuda/version.json"))
    if raw:
        try:
            return json.loads(raw)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            pass
    return first_version(read(under(root, "/usr/local/cuda/version.txt")))


def nccl_version(root, node=None):
    node = node or NodeIO()
    read = node.read
    found = []
    for directory in LIB_DIRS:
        for path in node.glob(os.path.join(under(root, directory), "libnccl.so.*.*.*")):
            match = re.search(r"libnccl\.so\.(\d+\.\d+\.\d+)$", path)
            if match:
                found.append(tuple(int(x) for x in match.group(1).split(".")))
    if found:
        return ".".join(str(x) for x in max(found))
    header = read(under(root, "/usr/include/nccl.h"))
    if header:
        parts = [re.search(r"#define NCCL_" + k + r"\s+(\d+)", header) for k in ("MAJOR", "MINOR", "PATCH")]
        if all(parts):
            return ".".join(p.group(1) for p in parts)
    return None


def ofed_version(node=None):
    """`ofed_info -s` prints 'MLNX_OFED_LINUX-23.10-1.1.9.0:'; the version is what follows the dash."""
    raw = (node or NodeIO()).run(["ofed_info", "-s"])
    if not raw:
        return None
    line = raw.strip().splitlines()[0].rstrip(":")
    return line.split("-", 1)[1] if line.startswith("MLNX_OFED_LINUX-") else line


def first_version(raw):
    match = re.search(r"(\d+\.\d+(?:\.\d+)*)", raw or "")
    return match.group(1) if match else None


if __name__ == "__main__":
    sys.exit(main())
