"""Secret references: parsing, resolution from env/file/ansible-vault, and never leaking the value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clusterctl import log
from clusterctl.errors import SecretError
from clusterctl.inventory.secrets import SecretPolicy, SecretRef

VALUE = "correct-horse-battery-staple"


def policy(root: Path, prefix: str = "TEST_") -> SecretPolicy:
    return SecretPolicy(root, prefix)


def test_parse_accepts_references_only() -> None:
    assert str(SecretRef.parse("env:IDRAC_PASSWORD")) == "env:IDRAC_PASSWORD"
    assert SecretRef.parse("file:~/x").scheme == "file"
    for inline in ("hunter2-x9", "ENV:X9Y", "env:", 1234567, None):
        with pytest.raises(ValueError) as info:
            SecretRef.parse(inline)
        assert "inline secret" in str(info.value)
        if inline not in ("env:", None):
            assert str(inline) not in str(info.value)


def test_env_resolution_registers_the_value_for_redaction(monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setenv("TEST_BMC_PASSWORD", VALUE)
    assert SecretRef.parse("env:TEST_BMC_PASSWORD").resolve(policy(tmp_path)) == VALUE
    assert VALUE not in log.scrub(f"logging in with {VALUE}")


def test_env_missing_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="NOT_SET_ANYWHERE"):
        SecretRef.parse("env:TEST_NOT_SET_ANYWHERE").resolve(policy(tmp_path))


def test_file_with_mode_600_relative_to_the_inventory(tmp_path: Path) -> None:
    secret = tmp_path / "bmc-password"
    secret.write_text(VALUE + "\n")
    secret.chmod(0o600)
    assert SecretRef.parse("file:bmc-password").resolve(policy(tmp_path)) == VALUE


def test_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "bmc-password"
    secret.write_text(VALUE)
    secret.chmod(0o644)
    with pytest.raises(SecretError) as info:
        SecretRef.parse(f"file:{secret}").resolve(policy(tmp_path))
    message = str(info.value)
    assert f"chmod 600 {secret}" in message and "644" in message
    assert VALUE not in message


def test_file_home_expansion_and_missing(isolated_home: Path) -> None:
    (isolated_home / "pw").write_text(VALUE)
    (isolated_home / "pw").chmod(0o600)
    assert SecretRef.parse("file:~/pw").resolve(policy(isolated_home)) == VALUE
    with pytest.raises(SecretError, match="does not exist"):
        SecretRef.parse("file:~/absent").resolve(policy(isolated_home))


def _vault_file(path: Path, plaintext: str, password: str) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    path.write_bytes(vault.encrypt(plaintext.encode()))


def test_vault_whole_file_and_key(tmp_path: Path, monkeypatch) -> None:
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault-open-sesame\n")
    password_file.chmod(0o600)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password_file))
    _vault_file(tmp_path / "bmc.vault", VALUE + "\n", "vault-open-sesame")
    _vault_file(tmp_path / "all.vault", f"idrac: {VALUE}\nother: x\n", "vault-open-sesame")
    assert b"$ANSIBLE_VAULT" in (tmp_path / "bmc.vault").read_bytes()
    assert SecretRef.parse("vault:bmc.vault").resolve(policy(tmp_path)) == VALUE
    assert SecretRef.parse("vault:all.vault#idrac").resolve(policy(tmp_path)) == VALUE
    with pytest.raises(SecretError, match="no key 'nope'"):
        SecretRef.parse("vault:all.vault#nope").resolve(policy(tmp_path))


def test_vault_wrong_password_and_no_password_file(tmp_path: Path, monkeypatch) -> None:
    _vault_file(tmp_path / "bmc.vault", VALUE, "right")
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    with pytest.raises(SecretError, match="ANSIBLE_VAULT_PASSWORD_FILE"):
        SecretRef.parse("vault:bmc.vault").resolve(policy(tmp_path))
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("wrong")
    wrong.chmod(0o600)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(wrong))
    with pytest.raises(SecretError, match="cannot decrypt") as info:
        SecretRef.parse("vault:bmc.vault").resolve(policy(tmp_path))
    assert VALUE not in str(info.value)


def test_resolved_secret_is_masked_in_logs(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("TEST_LOG_SECRET", "s3cr3t-in-a-log-line")
    log.setup(0)
    value = SecretRef.parse("env:TEST_LOG_SECRET").resolve(policy(tmp_path))
    log.get("test").warning("talking to the BMC with %s", value)
    logging.getLogger("clusterctl").handlers.clear()
    assert "s3cr3t-in-a-log-line" not in capsys.readouterr().err
