"""Who may do what on a simulated iDRAC9: the Redfish privilege of each write, by the caller's role.

A ReadOnly or Operator user reads everything and may change its own account (ConfigureSelf);
user accounts need ConfigureUsers, the manager and sessions' settings ConfigureManager, the rest
ConfigureComponents (DSP8011's default operation-to-privilege mapping, which iDRAC9 follows for
its Administrator/Operator/ReadOnly roles). An account marked PasswordChangeRequired may log in,
read and change its own account and log out; anything else is refused with 403 (DSP0266 13.3.5).
"""

from __future__ import annotations

from clusterctl.sim.accounts import PRIVILEGES
from clusterctl.sim.protocol import Request, Response, error_body
from clusterctl.sim.resources import MGR, V1

ACCOUNTS = f"{V1}/AccountService"
SESSIONS = f"{V1}/SessionService/Sessions"


def _own_account(req: Request) -> bool:
    acc = req.bmc.accounts.find(req.user)
    return acc is not None and req.path == f"{ACCOUNTS}/Accounts/{acc.slot}"


def required(req: Request) -> str:
    if req.method in ("GET", "HEAD") or req.path.startswith(SESSIONS):
        return "Login"
    if req.path.startswith(ACCOUNTS):
        return "ConfigureSelf" if _own_account(req) and req.method == "PATCH" else "ConfigureUsers"
    if req.path.startswith((MGR, f"{V1}/SessionService")):
        return "ConfigureManager"
    return "ConfigureComponents"


def refusal(req: Request) -> Response | None:
    """The 403 a request gets from the authenticated `req.user`, or None when it may proceed."""
    acc = req.bmc.accounts.find(req.user)
    if acc is None:
        return None  # sessions of an account removed meanwhile lapse on their own
    if acc.password_change_required and not (
        (req.method in ("GET", "HEAD", "PATCH") and _own_account(req))
        or (req.method == "DELETE" and req.path.startswith(SESSIONS))
    ):
        return Response(
            403,
            error_body(
                "Base.1.12.PasswordChangeRequired",
                "The password provided for this account must be changed before access is granted. PATCH the "
                f"Password property for this account located at the target URI '{ACCOUNTS}/Accounts/{acc.slot}' "
                "to complete this process.",
                [f"{ACCOUNTS}/Accounts/{acc.slot}"],
            ),
        )
    need = required(req)
    if need not in PRIVILEGES.get(acc.role, set()):
        return Response(
            403,
            error_body(
                "Base.1.12.InsufficientPrivilege",
                "There are insufficient privileges for the account or credentials associated with the current "
                "session to perform the requested operation.",
            ),
        )
    return None
