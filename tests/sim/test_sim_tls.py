"""The lab's TLS: every BMC address gets its own certificate from the lab CA, verified like production."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from clusterctl.sim.certs import CA_CERT, SERVER_CERT, SERVER_KEY, server_tls_contexts

ADDRESSES = ["127.94.0.1", "127.94.0.2"]


async def _handshake(address: str, port: int, ca: Path, server_hostname: str) -> dict:
    client = ssl.create_default_context(cafile=str(ca))
    reader, writer = await asyncio.open_connection(address, port, ssl=client, server_hostname=server_hostname)
    try:
        return writer.get_extra_info("peercert")
    finally:
        writer.close()
        await writer.wait_closed()


def test_each_address_presents_its_own_certificate(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    contexts = server_tls_contexts(tmp_path, [*ADDRESSES, "127.0.0.1"])
    assert set(contexts) == {*ADDRESSES, "127.0.0.1"}
    assert stat.S_IMODE((tmp_path / SERVER_KEY).stat().st_mode) == 0o600
    assert (tmp_path / SERVER_CERT).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert not list(tmp_path.glob(".leaf-*"))  # the scratch file is gone

    async def go() -> tuple[list[dict], str]:
        servers = [
            await asyncio.start_server(lambda r, w: w.close(), address, 0, ssl=contexts[address])
            for address in ADDRESSES
        ]
        try:
            ports = [s.sockets[0].getsockname()[1] for s in servers]
            ca = tmp_path / CA_CERT
            seen = [await _handshake(a, p, ca, a) for a, p in zip(ADDRESSES, ports, strict=True)]
            # BMC 1's certificate does not name BMC 2: a mix-up is caught by hostname verification.
            with pytest.raises(ssl.SSLCertVerificationError) as refused:
                await _handshake(ADDRESSES[0], ports[0], ca, ADDRESSES[1])
            return seen, str(refused.value)
        finally:
            for s in servers:
                s.close()
                await s.wait_closed()

    seen, refused = asyncio.run(go())
    for address, cert in zip(ADDRESSES, seen, strict=True):
        ips = [value for kind, value in cert["subjectAltName"] if kind == "IP Address"]
        assert ips == [address]
    assert "mismatch" in refused or "doesn't match" in refused or "not valid" in refused
