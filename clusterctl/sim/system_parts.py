"""The parts of a simulated XE9680 that hang off its ComputerSystem and Chassis: network interfaces,
DIMMs, PCIe devices and functions, storage, Secure Boot, the boot sources and the BIOS attribute registry.

URIs and Ids follow iDRAC9 6.x/7.x (Dell's Redfish API guide; FQDDs such as NIC.Slot.31-1-1,
DIMM.Socket.A1, Disk.Direct.0-0:BOSS.SL.14-1); the values are the lab's and stay fixed for a node
so that a client can compare two reads.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clusterctl.sim.bmc import BIOS_ENUMS, BMC, BOOT_ENABLED, BOOT_TARGETS
from clusterctl.sim.node import GPU_COUNT, IB_PORTS
from clusterctl.sim.resources import CHA, SYS, V1, ref, resource, status

DIMMS_PER_SOCKET = 16
DIMM_MIB = 65536  # 32 x 64 GiB = 2 TiB, as MemorySummary says
BOSS = "BOSS.SL.14-1"
NVME = "CPU.1"  # iDRAC names direct-attached NVMe storage after the CPU that hosts it
BIOS_REGISTRY = "BiosAttributeRegistry.v1_0_3"


def mac(bmc: BMC, label: str) -> str:
    digest = hashlib.sha256(f"{bmc.hw.name}/{label}".encode()).digest()
    return ":".join(f"{b:02X}" for b in (b"\xb0\x26\x28" + digest[:3]))


# --- network ---------------------------------------------------------------------------------------
def nic_ids() -> list[str]:
    """Two onboard 25GbE ports (LOM) and one ConnectX-7 port per GPU, as an XE9680 is cabled for training."""
    return ["NIC.Embedded.1-1-1", "NIC.Embedded.2-1-1"] + [f"NIC.Slot.{31 + n}-1-1" for n in range(IB_PORTS)]


def ethernet_interface(bmc: BMC, nid: str) -> dict[str, Any] | None:
    if nid not in nic_ids():
        return None
    embedded = nid.startswith("NIC.Embedded")
    up = embedded and bmc.power_state == "On"
    if not embedded:
        port = bmc.hw.ib_ports()[int(nid.split(".")[2].split("-")[0]) - 31]
        up = bmc.power_state == "On" and "ACTIVE" in port["state"]
    return resource(
        "#EthernetInterface.v1_6_0.EthernetInterface",
        f"{SYS}/EthernetInterfaces/{nid}",
        nid,
        "System Ethernet Interface",
        Description="Embedded NIC" if embedded else "ConnectX-7 NDR port",
        MACAddress=mac(bmc, nid),
        PermanentMACAddress=mac(bmc, nid),
        SpeedMbps=25000 if embedded else 400000,
        AutoNeg=True,
        FullDuplex=True,
        LinkStatus="LinkUp" if up else "LinkDown",
        InterfaceEnabled=True,
        Status=status("OK", "Enabled"),
        Links={"Chassis": ref(CHA)},
    )


# --- memory ----------------------------------------------------------------------------------------
def dimm_ids() -> list[str]:
    return [f"DIMM.Socket.{s}{n}" for s in "AB" for n in range(1, DIMMS_PER_SOCKET + 1)]


def memory(bmc: BMC, mid: str) -> dict[str, Any] | None:
    if mid not in dimm_ids():
        return None
    return resource(
        "#Memory.v1_16_0.Memory",
        f"{SYS}/Memory/{mid}",
        mid,
        mid,
        Description="DIMM",
        CapacityMiB=DIMM_MIB,
        Manufacturer="Hynix Semiconductor",
        PartNumber="HMCG94AEBRA109N",
        SerialNumber=hashlib.sha256(f"{bmc.hw.name}/{mid}".encode()).hexdigest()[:8].upper(),
        MemoryDeviceType="DDR5",
        MemoryType="DRAM",
        BaseModuleType="RDIMM",
        OperatingSpeedMhz=4800,
        AllowedSpeedsMHz=[4800],
        RankCount=2,
        DataWidthBits=64,
        BusWidthBits=72,
        ErrorCorrection="MultiBitECC",
        DeviceLocator=f"DIMM {mid.rsplit('.', 1)[-1]}",
        MemoryLocation={"Socket": 1 if "Socket.A" in mid else 2},
        Status=status(),
    )


# --- PCIe ------------------------------------------------------------------------------------------
def pcie_ids(bmc: BMC) -> list[str]:
    """Device Ids as iDRAC forms them (bus-device); one function (-0) each."""
    gpus = [f"{0x18 + 0x10 * i:x}-0" for i in range(GPU_COUNT) if bmc.hw.gpu_present(i)]
    nics = [f"{0x1a + 0x10 * n:x}-0" for n in range(IB_PORTS)]
    return gpus + nics + ["3-0"]  # 3-0: the BOSS-N1 controller


def _pcie_kind(bmc: BMC, did: str) -> tuple[str, str, str, str]:
    """(name, manufacturer, class, firmware) of a device Id."""
    if did == "3-0":
        return "Dell BOSS-N1 Monolithic", "Dell", "MassStorageController", "2.1.13.2025"
    bus = int(did.split("-")[0], 16)
    if (bus - 0x18) % 0x10 == 0:
        return "NVIDIA H100 SXM5 80GB", "NVIDIA Corporation", "DisplayController", bmc.firmware["gpu"]
    return "Mellanox ConnectX-7 Single Port VPI NDR OSFP Adapter", "Mellanox Technologies", \
        "NetworkController", bmc.firmware["nic"]


def pcie_device(bmc: BMC, did: str) -> dict[str, Any] | None:
    if did not in pcie_ids(bmc):
        return None
    name, maker, _, firmware = _pcie_kind(bmc, did)
    uri = f"{CHA}/PCIeDevices/{did}"
    return resource(
        "#PCIeDevice.v1_11_0.PCIeDevice",
        uri,
        did,
        name,
        Manufacturer=maker,
        Model=name,
        FirmwareVersion=firmware,
        DeviceType="SingleFunction",
        PCIeInterface={"PCIeType": "Gen5", "MaxPCIeType": "Gen5", "LanesInUse": 16, "MaxLanes": 16},
        PCIeFunctions=ref(f"{uri}/PCIeFunctions"),
        Status=status(),
        Links={"Chassis": [ref(CHA)]},
    )


def pcie_function(bmc: BMC, did: str, fid: str) -> dict[str, Any] | None:
    if did not in pcie_ids(bmc) or fid != did:
        return None
    name, maker, cls, _ = _pcie_kind(bmc, did)
    return resource(
        "#PCIeFunction.v1_5_0.PCIeFunction",
        f"{CHA}/PCIeDevices/{did}/PCIeFunctions/{fid}",
        fid,
        name,
        FunctionId=0,
        FunctionType="Physical",
        DeviceClass=cls,
        Manufacturer=maker,
        Status=status(),
        Links={"PCIeDevice": ref(f"{CHA}/PCIeDevices/{did}")},
    )


# --- storage ---------------------------------------------------------------------------------------
STORAGE: dict[str, dict[str, Any]] = {
    BOSS: {
        "name": "BOSS-N1 Monolithic",
        "drives": {f"Disk.Direct.{n}-{n}:{BOSS}": 480103981056 for n in range(2)},
        "volumes": {f"Disk.Virtual.0:{BOSS}": ("RAID1", 479559942144)},
    },
    NVME: {
        "name": "CPU.1",
        "drives": {f"Disk.Bay.{n}:Enclosure.Internal.0-1": 3840755982336 for n in range(2, 10)},
        "volumes": {},
    },
}


def storage(bmc: BMC, sid: str) -> dict[str, Any] | None:
    spec = STORAGE.get(sid)
    if spec is None:
        return None
    uri = f"{SYS}/Storage/{sid}"
    return resource(
        "#Storage.v1_15_0.Storage",
        uri,
        sid,
        spec["name"],
        Drives=[ref(f"{uri}/Drives/{d}") for d in spec["drives"]],
        **{"Drives@odata.count": len(spec["drives"])},
        Volumes=ref(f"{uri}/Volumes"),
        StorageControllers=[
            {
                "@odata.id": f"{uri}#/StorageControllers/0",
                "MemberId": sid,
                "Name": spec["name"],
                "Status": status(),
                "SupportedRAIDTypes": ["RAID1"] if spec["volumes"] else [],
            }
        ],
        Status=status(),
        Links={"Enclosures": [ref(CHA)]},
    )


def drive(bmc: BMC, sid: str, did: str) -> dict[str, Any] | None:
    spec = STORAGE.get(sid)
    if spec is None or did not in spec["drives"]:
        return None
    boss = sid == BOSS
    return resource(
        "#Drive.v1_16_0.Drive",
        f"{SYS}/Storage/{sid}/Drives/{did}",
        did,
        "SSD 0" if boss else f"PCIe SSD in Slot {did.split('.')[2].split(':')[0]}",
        CapacityBytes=spec["drives"][did],
        MediaType="SSD",
        Protocol="SATA" if boss else "NVMe",
        Manufacturer="MICRON" if boss else "Dell",
        Model="MTFDDAV480TGA" if boss else "Dell Ent NVMe CM6 RI 3.84TB",
        SerialNumber=hashlib.sha256(f"{bmc.hw.name}/{did}".encode()).hexdigest()[:12].upper(),
        Status=status(),
        Links={"Volumes": [ref(f"{SYS}/Storage/{sid}/Volumes/{v}") for v in spec["volumes"]]},
    )


def volume(bmc: BMC, sid: str, vid: str) -> dict[str, Any] | None:
    spec = STORAGE.get(sid)
    if spec is None or vid not in spec["volumes"]:
        return None
    raid, size = spec["volumes"][vid]
    return resource(
        "#Volume.v1_9_0.Volume",
        f"{SYS}/Storage/{sid}/Volumes/{vid}",
        vid,
        "Boot Volume",
        RAIDType=raid,
        CapacityBytes=size,
        VolumeType="Mirrored",
        Encrypted=False,
        Status=status(),
        Links={"Drives": [ref(f"{SYS}/Storage/{sid}/Drives/{d}") for d in spec["drives"]]},
    )


# --- boot, Secure Boot -----------------------------------------------------------------------------
def boot(bmc: BMC) -> dict[str, Any]:
    """The ComputerSystem's Boot object: what the override may be set to, as iDRAC9 6.x publishes it."""
    return {
        "BootSourceOverrideTarget": bmc.boot["target"],
        "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
        "BootSourceOverrideEnabled": bmc.boot["enabled"],
        "BootSourceOverrideEnabled@Redfish.AllowableValues": BOOT_ENABLED,
        "BootSourceOverrideMode": bmc.boot["mode"],
        "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI", "Legacy"],
        "UefiTargetBootSourceOverride": bmc.boot.get("uefi_target", ""),
        "BootOrder": [f"Boot{n:04X}" for n in range(len(boot_sources(bmc)))],
    }


def secure_boot(bmc: BMC) -> dict[str, Any]:
    on = bmc.secure_boot
    return resource(
        "#SecureBoot.v1_1_0.SecureBoot",
        f"{SYS}/SecureBoot",
        "SecureBoot",
        "UEFI Secure Boot",
        SecureBootEnable=on,
        SecureBootCurrentBoot="Enabled" if on and bmc.power_state == "On" else "Disabled",
        SecureBootMode="DeployedMode",
        Actions={
            "#SecureBoot.ResetKeys": {
                "target": f"{SYS}/SecureBoot/Actions/SecureBoot.ResetKeys",
                "ResetKeysType@Redfish.AllowableValues": ["ResetAllKeysToDefault", "DeleteAllKeys", "DeletePK"],
            }
        },
    )


def boot_sources(bmc: BMC) -> list[dict[str, Any]]:
    """The UEFI boot sequence as the BIOS keeps it (badfish and Dell's scripts read and reorder it)."""
    names = [
        ("Disk.Virtual.0:BOSS.SL.14-1", "Ubuntu (BOSS-N1 RAID1)"),
        ("NIC.PxeDevice.1-1", "PXE Device 1: Integrated NIC 1 Port 1 Partition 1"),
        ("NIC.HttpDevice.1-1", "HTTP Device 1: Integrated NIC 1 Port 1 Partition 1"),
        ("Optical.iDRACVirtual.1-1", "Virtual Optical Drive"),
    ]
    return [
        {"Enabled": True, "Id": f"BIOS.Setup.1-1#UefiBootSeq#{fqdd}#{n}", "Index": n, "Name": fqdd,
         "DisplayName": label}
        for n, (fqdd, label) in enumerate(names)
    ]


def boot_sources_resource(bmc: BMC, oem: bool) -> dict[str, Any]:
    uri = f"{SYS}/Oem/Dell/DellBootSources" if oem else f"{SYS}/BootSources"
    return resource(
        "#DellBootSources.v1_1_0.DellBootSources",
        uri,
        "BootSources",
        "Boot Sources Configuration Current Settings",
        Attributes={"UefiBootSeq": boot_sources(bmc)},
        AttributeRegistry="BootSourcesRegistry.v1_1_0",
    )


# --- BIOS attribute registry -------------------------------------------------------------------------
BIOS_GROUPS = {
    "BootMode": ("BootSettings", "Boot Mode"),
    "SysProfile": ("SysProfileSettings", "System Profile"),
    "ProcVirtualization": ("ProcSettings", "Virtualization Technology"),
    "LogicalProc": ("ProcSettings", "Logical Processor"),
    "ProcCStates": ("SysProfileSettings", "C States"),
    "SriovGlobalEnable": ("IntegratedDevices", "SR-IOV Global Enable"),
    "MemTest": ("MemSettings", "System Memory Testing"),
    "NumaNodesPerSocket": ("MemSettings", "NUMA Nodes Per Socket"),
    "NodeInterleave": ("MemSettings", "Node Interleaving"),
    "PcieAspmL1": ("SysProfileSettings", "PCI ASPM L1 Link Power Management"),
    "ProcTurboMode": ("SysProfileSettings", "Turbo Boost"),
    "WorkloadProfile": ("SysProfileSettings", "Workload Profile"),
    "SerialComm": ("SerialCommSettings", "Serial Communication"),
    "AcPwrRcvry": ("SysSecurity", "AC Power Recovery"),
    "AcPwrRcvryDelay": ("SysSecurity", "AC Power Recovery Delay"),
    "OsWatchdogTimer": ("SysSecurity", "OS Watchdog Timer"),
}


def bios_registry(bmc: BMC) -> dict[str, Any]:
    """`Bios/BiosRegistry` in iDRAC's shape: an AttributeRegistry whose `RegistryEntries.Attributes`
    lists each attribute with its type and allowed values."""
    attributes = []
    for name, current in bmc.bios.items():
        group, text = BIOS_GROUPS.get(name, ("Miscellaneous", name))
        entry: dict[str, Any] = {
            "AttributeName": name,
            "DisplayName": text,
            "HelpText": f"{text}.",
            "MenuPath": f"./{group}",
            "ReadOnly": False,
            "ResetRequired": True,
            "Hidden": False,
            "Immutable": False,
            "CurrentValue": None,
        }
        if name in BIOS_ENUMS:
            entry["Type"] = "Enumeration"
            entry["Value"] = [{"ValueName": v, "ValueDisplayName": v} for v in BIOS_ENUMS[name]]
        elif isinstance(current, int):
            entry.update(Type="Integer", LowerBound=0, UpperBound=3600, ScalarIncrement=1)
        else:
            entry.update(Type="String", MinLength=0, MaxLength=64)
        attributes.append(entry)
    return {
        "@odata.id": f"{SYS}/Bios/BiosRegistry",
        "@odata.type": "#AttributeRegistry.v1_3_6.AttributeRegistry",
        "Id": BIOS_REGISTRY,
        "Name": "BIOS Attribute Registry",
        "Description": "This registry defines a representation of BIOS Attribute instances",
        "Language": "en",
        "OwningEntity": "Dell",
        "RegistryVersion": "1.0.3",
        "SupportedSystems": [{"ProductName": "PowerEdge XE9680", "SystemId": "0x0B41", "FirmwareVersion":
                              bmc.firmware["bios"]}],
        "RegistryEntries": {
            "Attributes": attributes,
            "Dependencies": [],
            "Menus": [{"MenuName": g, "DisplayName": g, "MenuPath": f"./{g}", "ReadOnly": False, "Hidden": False}
                      for g in sorted({g for g, _ in BIOS_GROUPS.values()})],
        },
    }


REGISTRIES = {
    "BiosAttributeRegistry": (BIOS_REGISTRY, f"{SYS}/Bios/BiosRegistry"),
}


def registry_file(rid: str) -> dict[str, Any] | None:
    found = REGISTRIES.get(rid)
    if found is None:
        return None
    registry, uri = found
    return resource(
        "#MessageRegistryFile.v1_1_3.MessageRegistryFile",
        f"{V1}/Registries/{rid}",
        rid,
        f"{rid} Registry File",
        Languages=["en"],
        Registry=registry,
        Location=[{"Language": "en", "Uri": uri}],
    )
