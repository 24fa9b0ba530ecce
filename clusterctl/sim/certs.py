"""The lab CA and the BMCs' server certificates, so the lab verifies TLS like production does.

One CA per lab directory (kept across `lab up`s). Each BMC (and the control endpoint) gets its
own leaf certificate naming only its address, as real BMCs each have their own: one certificate
with an IP SAN for all 2,000 addresses made every client's handshake parse and search a 17 kB
certificate (~2.8 ms more per handshake, client and server together, than a one-address leaf).
The leaves share one EC P-256 key, so 2,000 of them take about a second to issue.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clusterctl.sim.labdir import write_private

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def ensure_ca(lab_dir: Path) -> tuple[Path, Path]:
    """Create the lab CA unless this lab directory already has one."""
    cert_path, key_path = lab_dir / CA_CERT, lab_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clusterctl lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "clusterctl lab CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    cert_path.write_text(cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path


def server_tls_contexts(lab_dir: Path, addresses: Sequence[str]) -> dict[str, ssl.SSLContext]:
    """Per address, a server TLS context whose certificate (signed by the lab CA) names that address.

    The shared key is written to server-key.pem (0600) and the certificate of the last address
    (the control endpoint's, by the lab's convention) to server.pem, for anyone inspecting the lab.
    """
    ca_cert, ca_key = _load_ca(lab_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = lab_dir / SERVER_KEY
    write_private(key_path, _key_pem(key))
    now = dt.datetime.now(dt.UTC)
    contexts: dict[str, ssl.SSLContext] = {}
    pem = b""
    fd, scratch = tempfile.mkstemp(prefix=".leaf-", suffix=".pem", dir=lab_dir)
    os.close(fd)
    try:
        for address in addresses:
            pem = _leaf(ca_cert, ca_key, key, address, now).public_bytes(serialization.Encoding.PEM)
            Path(scratch).write_bytes(pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(scratch, key_path)  # the ssl module reads certificates from files only
            contexts[address] = context
    finally:
        Path(scratch).unlink(missing_ok=True)
    (lab_dir / SERVER_CERT).write_bytes(pem)
    return contexts


def _load_ca(lab_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert_path, ca_key_path = ensure_ca(lab_dir)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # noqa: S101 - we wrote it
    return ca_cert, ca_key


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    address: str,
    now: dt.datetime,
) -> x509.Certificate:
    """A server certificate for one IP address (and localhost), valid for a year."""
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName("localhost")]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"clusterctl lab {address}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
