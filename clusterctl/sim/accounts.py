"""The local user table of a simulated iDRAC9: 16 fixed slots, as the real one has.

iDRAC9 does not create or delete accounts: `AccountService/Accounts` always lists slots 1-16.
Slot 1 is reserved (anonymous) and cannot be changed; slot 2 holds `root`; the rest are empty
(`UserName` "" and `Enabled` false). A user is added by PATCHing a name, password and role into
an empty slot and removed by disabling it and blanking its name; POST and DELETE on the
collection or a slot answer 405. DMTF's redfish_utilities (add_user/delete_user) and Dell's
iDRAC Redfish scripts (CreateIdracUserPasswordREDFISH.py, DeleteIdracUserREDFISH.py) work that way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from clusterctl.sim.refusal import ActionError

SLOTS = 16
ROLES = ("Administrator", "Operator", "ReadOnly", "None")
MIN_PASSWORD = 8
MAX_PASSWORD = 40


@dataclass(slots=True)
class Account:
    slot: int
    user: str = ""
    password: str = ""
    role: str = "None"
    enabled: bool = False
    locked: bool = False
    password_change_required: bool = False


PRIVILEGES = {
    "Administrator": {"Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"},
    "Operator": {"Login", "ConfigureSelf", "ConfigureComponents"},
    "ReadOnly": {"Login", "ConfigureSelf"},
    "None": set(),
}


class Accounts:
    def __init__(self, user: str, password: str) -> None:
        self.slots = {n: Account(n) for n in range(1, SLOTS + 1)}
        self.slots[2] = Account(2, user, password, "Administrator", True)

    def check(self, user: str, password: str) -> bool:
        """True for an enabled, unlocked account with this name and password (compared in constant time)."""
        ok = False
        for acc in self.slots.values():
            if acc.user and acc.enabled and not acc.locked and acc.user == user:
                ok = secrets.compare_digest(acc.password.encode(), password.encode()) or ok
        return ok

    def find(self, user: str) -> Account | None:
        return next((a for a in self.slots.values() if a.user and a.user == user), None)

    def patch(self, slot: int, body: dict[str, Any]) -> None:
        acc = self.slots[slot]
        if body and all(k.startswith("@odata.") for k in body):
            raise ActionError(400, "Base.1.12.NoOperation",
                              "The request body submitted contain no data to act upon and no changes to the resource "
                              "took place.")
        if slot == 1:
            raise ActionError(400, "IDRAC.2.8.RAC0248", "User account 1 is reserved and cannot be modified.")
        known = {"UserName", "Password", "RoleId", "Enabled", "Locked", "PasswordChangeRequired"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ActionError(
                400,
                "Base.1.12.PropertyUnknown",
                f"The property {unknown[0]} is not in the list of valid properties for the resource.",
                args=[unknown[0]],
            )
        name = body.get("UserName", acc.user)
        if not isinstance(name, str) or len(name) > 16 or any(c in name for c in "/\\@ :\"'<>&`;|"):
            raise ActionError(
                400, "Base.1.12.PropertyValueFormatError",
                f"The value '{name}' for the property UserName is of a different format than the property "
                "can accept.", args=[str(name), "UserName"],
            )
        if name and any(a.user == name for a in self.slots.values() if a.slot != slot):
            raise ActionError(409, "Base.1.12.ResourceAlreadyExists",
                              f"The user name {name} is already in use.", args=[name])
        password = body.get("Password")
        if password is not None and (not isinstance(password, str)
                                     or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
            raise ActionError(400, "IDRAC.2.8.RAC947",
                              f"The password length must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters.")
        role = body.get("RoleId", acc.role)
        if role not in ROLES:
            raise ActionError(
                400, "Base.1.12.PropertyValueNotInList",
                f"The value '{role}' for the property RoleId is not in the list of acceptable values.",
                args=[str(role), "RoleId"],
            )
        for key in ("Enabled", "Locked", "PasswordChangeRequired"):
            if key in body and not isinstance(body[key], bool):
                raise ActionError(
                    400, "Base.1.12.PropertyValueTypeError",
                    f"The value for the property {key} is of a different type than the property can accept.",
                    args=[key],
                )
        if body.get("Enabled") and not name:
            raise ActionError(400, "IDRAC.2.8.RAC0246", "An account without a user name cannot be enabled.")
        acc.user, acc.role = name, role
        if password is not None:
            acc.password = password
            if "PasswordChangeRequired" not in body:
                acc.password_change_required = False  # a new password is the change that was required
        acc.enabled = body.get("Enabled", acc.enabled)
        acc.locked = body.get("Locked", acc.locked)
        acc.password_change_required = body.get("PasswordChangeRequired", acc.password_change_required)
        if not acc.user:  # a blanked slot forgets its secret
            acc.password, acc.role, acc.enabled = "", "None", False
