"""Redfish writes on a simulated iDRAC: sessions, resets, updates, jobs, PATCHes, media, logs.

Each handler takes the parsed `Request` and returns a `Response` (or raises `ActionError`,
which the app renders as a Redfish error).
"""

from __future__ import annotations

import json
from typing import Any

from clusterctl.sim import dell
from clusterctl.sim import resources as R
from clusterctl.sim.bmc import REBOOT_JOB_TYPES, ActionError
from clusterctl.sim.protocol import Request, Response, etag_of, missing, need
from clusterctl.sim.resources import MGR, SYS, V1


def session_create(req: Request) -> Response:
    body = req.json()
    user, password = need(body, "UserName"), need(body, "Password")
    sess = req.bmc.create_session(user, password)
    uri = f"{V1}/SessionService/Sessions/{sess.id}"
    body = R.session(req.bmc, sess.id) or {}
    acc = req.bmc.accounts.find(user)
    if acc is not None and acc.password_change_required:
        target = f"{V1}/AccountService/Accounts/{acc.slot}"
        body["@Message.ExtendedInfo"] = [{
            "MessageId": "Base.1.12.PasswordChangeRequired",
            "Message": "The password provided for this account must be changed before access is granted. PATCH "
                       f"the Password property for this account located at the target URI '{target}' to complete "
                       "this process.",
            "MessageArgs": [target],
            "Severity": "Critical",
            "Resolution": "Change the password for this account using a PATCH to the Password property at the URI "
                          "provided.",
        }]
    return Response(201, body, {"Location": uri, "X-Auth-Token": sess.token})


def session_delete(req: Request, sid: str) -> Response:
    """iDRAC9 answers a session DELETE with 200 and a message (badfish warns on anything else)."""
    if req.bmc.sessions.pop(sid, None) is None:
        return missing(req)
    return Response(200, dell.success("The resource has been removed successfully.", "Base.1.12.ResourceRemoved"))


def reset(req: Request) -> Response:
    req.bmc.reset(need(req.json(), "ResetType"))
    return Response(204)


def manager_reset(req: Request) -> Response:
    kind = req.json().get("ResetType", "GracefulRestart")
    if kind not in ("GracefulRestart", "ForceRestart"):
        raise ActionError(
            400,
            "Base.1.12.ActionParameterValueNotInList",
            f"The value '{kind}' for the parameter ResetType is not in the list of acceptable values.",
            args=[str(kind), "ResetType"],
        )
    req.bmc.reset_idrac()
    return Response(204)


TRANSFER_PROTOCOLS = ("HTTP", "HTTPS", "NFS", "CIFS", "TFTP", "FTP")


def simple_update(req: Request) -> Response:
    body = req.json()
    uri = need(body, "ImageURI")
    protocol = body.get("TransferProtocol")
    scheme = uri.split("://", 1)[0].upper() if "://" in uri else None
    if protocol is not None and protocol not in TRANSFER_PROTOCOLS:
        raise ActionError(
            400,
            "Base.1.12.ActionParameterValueNotInList",
            f"The value '{protocol}' for the parameter TransferProtocol is not in the list of acceptable values.",
            args=[str(protocol), "TransferProtocol"],
        )
    if protocol is None and scheme not in TRANSFER_PROTOCOLS:
        raise ActionError(
            400,
            "Base.1.12.ActionParameterMissing",
            "The action SimpleUpdate requires the parameter TransferProtocol to be present in the request body.",
            args=["TransferProtocol"],
        )
    apply_time = body.get("@Redfish.OperationApplyTime", "OnReset")
    job = req.bmc.simple_update(uri, apply_time)
    task_uri = f"{V1}/TaskService/Tasks/{job.id}"
    return Response(202, R.task(req.bmc, job), {"Location": task_uri})


def multipart_push(req: Request) -> Response:
    """DSP0266 multipart HTTP push: an `UpdateParameters` JSON part and an `UpdateFile` part."""
    from email.parser import BytesParser
    from email.policy import HTTP

    content_type = req.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ActionError(415, "Base.1.12.UnsupportedMediaType", "Expected multipart/form-data.")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + req.body
    )
    parts = {
        part.get_param("name", header="content-disposition"): part
        for part in message.iter_parts()  # type: ignore[attr-defined]
    }
    image = parts.get("UpdateFile")
    if image is None:
        raise ActionError(
            400,
            "Base.1.12.ActionParameterMissing",
            "The action requires the parameter UpdateFile to be present in the request body.",
            args=["UpdateFile"],
        )
    params: Any = {}
    if "UpdateParameters" in parts:
        raw = parts["UpdateParameters"].get_payload(decode=True)
        try:
            params = json.loads(raw if isinstance(raw, bytes) and raw else b"{}")
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise ActionError(400, "Base.1.12.MalformedJSON", "UpdateParameters is not a JSON object.")
    apply_time = params.get("@Redfish.OperationApplyTime", "Immediate")
    payload = image.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    job = req.bmc.simple_update(image.get_filename() or "upload.bin", apply_time, content=content)
    return Response(202, R.task(req.bmc, job), {"Location": f"{V1}/TaskService/Tasks/{job.id}"})


def task_get(req: Request, jid: str) -> Response | None:
    """A task; an SCP export's task answers 202 while it runs and the profile itself once done."""
    job = req.bmc.jobs.get(jid)
    if job is None:
        return None
    body = R.task(req.bmc, job)
    if job.job_type != "ExportConfiguration":
        return Response(200, body)
    if body["TaskState"] == "Running":
        return Response(202, body, {"Location": f"{V1}/TaskService/Tasks/{jid}"})
    return Response(200, json.loads(job.payload))


def task_monitor(req: Request, jid: str) -> Response | None:
    job = req.bmc.jobs.get(jid)
    if job is None:
        return None
    body = R.task(req.bmc, job)
    running = body["TaskState"] == "Running"
    return Response(202 if running else 200, body, {"Location": body["TaskMonitor"]} if running else {})


def job_resource(req: Request, jid: str, dell: bool) -> dict[str, Any] | None:
    job = req.bmc.jobs.get(jid)
    if job is None:
        return None
    base = f"{MGR}/Oem/Dell/Jobs" if dell else f"{MGR}/Jobs"
    return R.job_body(req.bmc, job, f"{base}/{jid}", dell)


def job_create(req: Request) -> Response:
    target = need(req.json(), "TargetSettingsURI")
    if target.rstrip("/") != f"{SYS}/Bios/Settings":
        raise ActionError(400, "IDRAC.2.8.SYS426", f"The TargetSettingsURI {target} is not supported.", args=[target])
    reboot = req.json().get("RebootJobType")
    if reboot is not None and reboot not in REBOOT_JOB_TYPES:
        raise ActionError(
            400,
            "Base.1.12.PropertyValueNotInList",
            f"The value '{reboot}' for the property RebootJobType is not in the list of acceptable values.",
            args=[str(reboot), "RebootJobType"],
        )
    job = req.bmc.create_bios_job()
    if reboot is not None:  # iDRAC adds a reboot job (RID_...) and reboots the server at once
        req.bmc.reboot_job(reboot)
    return Response(200, None, {"Location": f"{MGR}/Jobs/{job.id}"})


def job_delete(req: Request, jid: str) -> Response:
    if jid in ("JID_CLEARALL", "JID_CLEARALL_FORCE"):  # DELETE .../Jobs/JID_CLEARALL clears the queue too
        return Response(200, dell.delete_job_queue(req.bmc, {"JobID": jid}))
    req.bmc.delete_job(jid)
    return Response(
        200,
        {
            "@Message.ExtendedInfo": [
                {
                    "MessageId": "Base.1.12.Success",
                    "Message": "Successfully Completed Request",
                    "Severity": "OK",
                }
            ]
        },
    )


def check_etag(req: Request, current: dict[str, Any]) -> None:
    wanted = req.headers.get("if-match")
    if wanted and wanted != "*" and etag_of(current) not in [w.strip() for w in wanted.split(",")]:
        raise ActionError(
            412,
            "Base.1.12.PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.",
        )


def patch_bios(req: Request) -> Response:
    check_etag(req, R.bios_settings(req.bmc))
    body = req.json()
    attrs = body.get("Attributes")
    unknown = sorted(set(body) - {"Attributes", "@Redfish.SettingsApplyTime"})
    if unknown:
        raise ActionError(
            400,
            "Base.1.12.PropertyUnknown",
            f"The property {unknown[0]} is not in the list of valid properties for the resource.",
            args=[unknown[0]],
        )
    if not isinstance(attrs, dict) or not attrs:
        raise ActionError(
            400,
            "Base.1.12.PropertyMissing",
            "The property Attributes is a required property and must be included in the request.",
            args=["Attributes"],
        )
    apply_block = body.get("@Redfish.SettingsApplyTime") or {}
    if not isinstance(apply_block, dict):
        raise ActionError(
            400,
            "Base.1.12.PropertyValueTypeError",
            "The value for the property @Redfish.SettingsApplyTime is of a different type than the property "
            "can accept.",
            args=["@Redfish.SettingsApplyTime"],
        )
    apply = apply_block.get("ApplyTime")
    if apply is not None and apply not in ("OnReset", "Immediate"):
        raise ActionError(
            400,
            "Base.1.12.PropertyValueNotInList",
            f"The value '{apply}' for the property ApplyTime is not in the list of acceptable values.",
            args=[str(apply), "ApplyTime"],
        )
    if apply is not None:
        req.bmc.require_lc()  # refused before anything is staged: a retried PATCH finds the same ETag
    req.bmc.set_bios_pending(attrs)
    headers = {}
    if apply in ("OnReset", "Immediate"):
        job = req.bmc.create_bios_job()
        headers["Location"] = f"{MGR}/Jobs/{job.id}"
        if apply == "Immediate":
            req.bmc.reset("ForceRestart" if req.bmc.power_state != "Off" else "On")
    return Response(202 if headers else 200, R.bios_settings(req.bmc), headers)


def patch_system(req: Request) -> Response:
    check_etag(req, R.system(req.bmc))
    body = req.json()
    for key in body:
        if key not in ("Boot", "AssetTag"):
            raise ActionError(
                400,
                "Base.1.12.PropertyNotWritable" if key in R.system(req.bmc) else "Base.1.12.PropertyUnknown",
                f"The property {key} is a read only property and cannot be assigned a value."
                if key in R.system(req.bmc)
                else f"The property {key} is not in the list of valid properties for the resource.",
                args=[key],
            )
    boot = body.get("Boot", {})
    if not isinstance(boot, dict):
        raise ActionError(
            400,
            "Base.1.12.PropertyValueTypeError",
            "The value for the property Boot is of a different type than the property can accept.",
            args=["Boot"],
        )
    if boot:
        req.bmc.set_boot(
            boot.get("BootSourceOverrideTarget"),
            boot.get("BootSourceOverrideEnabled"),
            boot.get("BootSourceOverrideMode"),
            boot.get("UefiTargetBootSourceOverride"),
        )
    if "AssetTag" in body:
        req.bmc.asset_tag = str(body["AssetTag"])
    return Response(200, R.system(req.bmc))


def patch_session_service(req: Request) -> Response:
    check_etag(req, R.session_service(req.bmc))
    timeout = req.json().get("SessionTimeout")
    if not isinstance(timeout, int) or not 30 <= timeout <= 86400:
        raise ActionError(
            400,
            "Base.1.12.PropertyValueOutOfRange",
            "The value for the property SessionTimeout is out of range.",
            args=["SessionTimeout"],
        )
    req.bmc.session_timeout = timeout
    return Response(200, R.session_service(req.bmc))


def media_action(req: Request, device: str, action: str) -> Response | None:
    if device not in req.bmc.media:
        return None
    if action == "InsertMedia":
        req.bmc.insert_media(device, need(req.json(), "Image"))
    else:
        req.bmc.eject_media(device)
    return Response(204)


def clear_log(req: Request) -> Response:
    req.bmc.clear_sel()
    return Response(204)
