"""The controller-side client of the os stage's reboot gate (clusterctl/provision/stages/os/gate.py).

The driver role's handlers run it on the controller around the node's reboot. A script of the standard
library only: it starts in milliseconds, where importing clusterctl's engine would take seconds per call.
"""

from __future__ import annotations

import socket
import sys


def ask(path: str, verb: str, node: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(f"{verb} {node}\n".encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode("ascii", "replace").strip()


def main(argv: list[str]) -> int:
    """`acquire|release SOCKET NODE [TIMEOUT_S]`: exit 0 once the gate said ok."""
    if len(argv) not in (3, 4) or argv[0] not in ("acquire", "release"):
        print("usage: reboot_slot.py acquire|release SOCKET NODE [TIMEOUT_S]",
              file=sys.stderr)
        return 2
    verb, path, node = argv[:3]
    try:
        answer = ask(path, verb, node, float(argv[3]) if len(argv) == 4 else 3600.0)
    except (OSError, ValueError) as exc:
        print(f"the power gate did not answer: {exc}", file=sys.stderr)
        return 1
    if answer != "ok":
        print(answer or "the power gate closed the connection", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
