"""The state directory and the private files in it: 0700 and 0600 whoever creates them, whatever the umask.

The state directory is `$XDG_STATE_HOME/clusterctl` (default ~/.local/state/clusterctl). The SQLite
store, the lab, the dashboard token and Ansible's artifacts live in it, and whichever command runs
first creates it, so every one of them goes through `private_dir`. A directory or file that is
ours but too open (left by an older version, or made under a lax umask) is tightened; one that
belongs to someone else is refused, never used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from clusterctl.errors import StateError

DIR_MODE = 0o700
FILE_MODE = 0o600


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "clusterctl"


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents 0700; `path` itself, and the state directory when `path`
    lies inside it, must be ours and are made 0700 if they are more open."""
    path = Path(os.path.expanduser(path))
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: checked below if it matters
        except OSError as exc:
            raise StateError(f"cannot create the directory {directory}: {exc.strerror}") from exc
        os.chmod(directory, DIR_MODE)  # mkdir's mode passed through the umask
    home = state_dir()
    guarded = [home] if path != home and path.is_relative_to(home) else []
    for directory in [*guarded, path]:
        _make_ours_private(directory, DIR_MODE, stat.S_ISDIR, "directory")
    return path


def private_file(path: Path, *, create: bool = True) -> Path:
    """An empty file made 0600 if there is none and `create` (never through a symlink); an existing
    one must be ours and is made 0600 if it is more open."""
    if not create and not os.path.lexists(path):
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        _make_ours_private(path, FILE_MODE, stat.S_ISREG, "file")
    except OSError as exc:
        raise StateError(f"cannot create {path}: {exc.strerror}") from exc
    else:
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
    return path


def _make_ours_private(path: Path, mode: int, kind_ok: Callable[[int], bool], kind: str) -> None:
    """Refuse `path` unless it (and a symlink's target) is ours; then take group's and others' access away."""
    try:
        link = os.lstat(path)
        info = os.stat(path)
    except OSError as exc:
        raise StateError(f"cannot inspect {path}: {exc.strerror}") from exc
    me = os.geteuid()
    for owner in {link.st_uid, info.st_uid}:
        if owner != me:
            raise StateError(f"{path} belongs to uid {owner}, not to you (uid {me}): clusterctl keeps private data "
                             f"there; remove it, or point XDG_STATE_HOME or the state URL at a {kind} of your own")
    if not kind_ok(info.st_mode):
        raise StateError(f"{path} is not a {kind}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700 | mode)
        except OSError as exc:
            raise StateError(f"{path} is readable by others and cannot be made private "
                             f"({exc.strerror}): chmod {mode:o} {path}") from exc
