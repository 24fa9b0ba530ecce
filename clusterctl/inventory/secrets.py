"""Secrets by reference only: `env:NAME`, `file:PATH`, `vault:PATH[#key]`.

The inventory never holds a credential, only where to find one. A reference is
resolved at the moment a command needs the value, and the value is registered
with `log.redact` straight away so no log line, error or traceback can show it.
An inline value fails validation with a message that never repeats the input.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from clusterctl import log
from clusterctl.errors import SecretError

SCHEMES = ("env", "file", "vault")
INLINE_HINT = (
    "write a reference instead: env:NAME (an environment variable), file:PATH (a file with mode 600) "
    "or vault:PATH (an ansible-vault file)"
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives. `str()` is the reference itself, safe to print and store."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    @classmethod
    def parse(cls, value: object) -> SecretRef:
        if isinstance(value, SecretRef):
            return value
        if isinstance(value, str):
            scheme, sep, target = value.partition(":")
            if sep and scheme in SCHEMES and target.strip():
                return cls(scheme, target.strip())
        # Never include the value: it may be the password someone pasted in.
        raise PydanticCustomError("inline_secret", "inline secret values are not allowed; " + INLINE_HINT)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    def path(self, base_dir: Path) -> Path:
        """The file a `file:` or `vault:` reference points at (`~` expanded, relative to the inventory)."""
        return resolve_path(self.target.split("#", 1)[0], base_dir)

    def resolve(self, base_dir: Path) -> str:
        """The secret value. Raises SecretError naming the reference, never the value."""
        if self.scheme == "env":
            value = os.environ.get(self.target)
            if value is None:
                raise SecretError(f"{self}: environment variable {self.target} is not set")
        elif self.scheme == "file":
            value = _read_private_file(self.path(base_dir), self).rstrip("\r\n")
        else:
            value = _read_vault(self, base_dir)
        if not value:
            raise SecretError(f"{self}: the secret is empty")
        log.redact(value)
        return value


def resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


def _read_private_file(path: Path, ref: SecretRef) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretError(f"{ref}: {path} does not exist") from None
    except OSError as exc:
        raise SecretError(f"{ref}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"{ref}: {path} is not a regular file")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"{ref}: {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{ref}: cannot read {path}: {type(exc).__name__}") from None


def _vault_password() -> bytes:
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise SecretError("vault: references need ANSIBLE_VAULT_PASSWORD_FILE set to the vault password file")
    path = Path(os.path.expanduser(password_file))
    ref = SecretRef("file", str(path))
    password = _read_private_file(path, ref).strip()
    if not password:
        raise SecretError(f"{path}: the vault password file is empty")
    log.redact(password)
    return password.encode()


def _read_vault(ref: SecretRef, base_dir: Path) -> str:
    """Decrypt with ansible-core's VaultLib; imported here so only vault users pay for ansible."""
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret

    path = ref.path(base_dir)
    _, _, key = ref.target.partition("#")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"{ref}: cannot read {path}: {exc.strerror}") from None
    try:
        plain = VaultLib([("default", VaultSecret(_vault_password()))]).decrypt(data)
    except AnsibleError:
        raise SecretError(
            f"{ref}: cannot decrypt {path} (wrong vault password or not a vault file)"
        ) from None
    text = plain.decode("utf-8", errors="replace")
    if not key:
        return text.strip()
    return _vault_key(ref, text, key)


def _vault_key(ref: SecretRef, text: str, key: str) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        raise SecretError(
            f"{ref}: the decrypted vault is not YAML, so '#{key}' cannot be looked up"
        ) from None
    if not isinstance(doc, dict) or key not in doc:
        raise SecretError(f"{ref}: the vault has no key '{key}'")
    value = doc[key]
    if isinstance(value, dict | list) or value is None:
        raise SecretError(f"{ref}: '{key}' in the vault is not a single value")
    return str(value)
