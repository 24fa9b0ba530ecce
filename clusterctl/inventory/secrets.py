"""Secrets by reference only: `env:NAME`, `file:PATH`, `vault:PATH[#key]`.

The inventory never holds a credential, only where to find one. A reference is
resolved at the moment a command needs the value, and the value is registered
with `log.redact` straight away so no log line, error or traceback can show it.
An inline value fails validation with a message that never repeats the input.

A reference is itself untrusted input: `password: file:~/.ssh/id_ed25519` would send a private
key to whatever BMC the inventory names. So `file:` and `vault:` references must lie inside the
site's secrets directory and `env:` references must start with the site's prefix (`SecretPolicy`).
The operator's environment can pin both (CLUSTERCTL_SECRETS_DIR, CLUSTERCTL_SECRET_ENV_PREFIX); an
inventory may then only narrow them, never widen them.
"""

from __future__ import annotations

import os
import re
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
SECRETS_DIR_ENV = "CLUSTERCTL_SECRETS_DIR"
ENV_PREFIX_ENV = "CLUSTERCTL_SECRET_ENV_PREFIX"
DEFAULT_ENV_PREFIX = "CLUSTERCTL_"
# clusterctl's own settings: a reference to them would hand the state URL's password or the dashboard
# token to a BMC, whatever the prefix allows.
_OWN_SETTINGS = frozenset({"CLUSTERCTL_STATE", "CLUSTERCTL_DASHBOARD_TOKEN", SECRETS_DIR_ENV, ENV_PREFIX_ENV})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_secrets_dir() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "clusterctl" / "secrets"


@dataclass(frozen=True, slots=True)
class SecretPolicy:
    """Where this site's secrets may come from: one directory, and environment variables with one prefix."""

    root: Path
    env_prefix: str = DEFAULT_ENV_PREFIX

    @classmethod
    def for_site(cls, secrets_dir: str | None, env_prefix: str | None, base_dir: Path) -> SecretPolicy:
        """The inventory's choice within the operator's bounds; raises SecretError when it steps outside."""
        pinned_dir = os.environ.get(SECRETS_DIR_ENV, "").strip()
        pinned_root = _absolute(Path(os.path.expanduser(pinned_dir))) if pinned_dir else None
        root = _absolute(resolve_path(secrets_dir, base_dir) if secrets_dir else pinned_root or default_secrets_dir())
        if pinned_root is not None and not _inside(root, pinned_root):
            raise SecretError(f"site.secrets_dir {secrets_dir} is outside {SECRETS_DIR_ENV}={pinned_root} "
                              f"(move the secrets under {pinned_root}, or drop site.secrets_dir)")
        pinned_prefix = os.environ.get(ENV_PREFIX_ENV, "").strip()
        prefix = env_prefix or pinned_prefix or DEFAULT_ENV_PREFIX
        if pinned_prefix and not prefix.startswith(pinned_prefix):
            raise SecretError(f"site.secret_env_prefix {prefix} does not start with "
                              f"{ENV_PREFIX_ENV}={pinned_prefix} (use a prefix that starts with {pinned_prefix})")
        return cls(root, prefix)

    def require(self, ref: SecretRef) -> None:
        """Raise SecretError (why, and what to do) when the policy forbids `ref`."""
        refused = self.refusal(ref)
        if refused:
            raise SecretError(f"{refused[0]} ({refused[1]})")

    def refusal(self, ref: SecretRef) -> tuple[str, str] | None:
        """(why, hint) when the policy forbids `ref`; None when it may be resolved."""
        if ref.scheme == "env":
            if not _ENV_NAME.match(ref.target):
                return f"{ref} is not an environment variable name", "use letters, digits and '_'"
            if ref.target in _OWN_SETTINGS or not ref.target.startswith(self.env_prefix):
                return (f"{ref}: secrets may come only from environment variables that start with {self.env_prefix}",
                        f"rename it {self.env_prefix}{ref.target.removeprefix(self.env_prefix)}, "
                        "or set site.secret_env_prefix")
            return None
        target = ref.target.split("#", 1)[0]
        if any(part == ".." for part in Path(target).parts):
            return f"{ref}: '..' is not allowed in a secret reference", f"name a file inside {self.root}"
        if not _inside(_absolute(resolve_path(target, self.root)), self.root):
            return (f"{ref} is outside the secrets directory {self.root}",
                    f"move the file into {self.root} and write {ref.scheme}:NAME, or set site.secrets_dir")
        return None


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

    def path(self, policy: SecretPolicy) -> Path:
        """The file a `file:` or `vault:` reference points at (`~` expanded, relative to the secrets
        directory); raises SecretError when the policy forbids it, symbolic links followed."""
        policy.require(self)
        path = resolve_path(self.target.split("#", 1)[0], policy.root)
        if not _inside(Path(os.path.realpath(path)), Path(os.path.realpath(policy.root))):
            raise SecretError(f"{self}: {path} leads outside the secrets directory {policy.root} (a symbolic link)")
        return path

    def resolve(self, policy: SecretPolicy) -> str:
        """The secret value. Raises SecretError naming the reference, never the value."""
        if self.scheme == "env":
            policy.require(self)
            value = os.environ.get(self.target)
            if value is None:
                raise SecretError(f"{self}: environment variable {self.target} is not set")
        elif self.scheme == "file":
            value = _read_private_file(self.path(policy), self).rstrip("\r\n")
        else:
            value = _read_vault(self, policy)
        if not value:
            raise SecretError(f"{self}: the secret is empty")
        log.redact(value)
        return value


def resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


def _absolute(path: Path) -> Path:
    """Absolute, with `.` and `..` folded lexically (the file may not exist yet)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


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


def _read_vault(ref: SecretRef, policy: SecretPolicy) -> str:
    """Decrypt with ansible-core's VaultLib; imported here so only vault users pay for ansible."""
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret

    path = ref.path(policy)
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
