#!/usr/bin/python
"""Ansible module: write a role's rendered files (and the directories they need) in one round trip.

Each module run costs a node a fresh Python that compiles Ansible's module_utils from a zip
(about a third of a CPU second); `template` needs two runs per file plus one per directory.
clusterctl's roles write a dozen small configuration files on every node, so they render
the content on the controller (`lookup('ansible.builtin.template', ...)`) and hand a role's
files to this module at once: one run per role, still idempotent and atomic per file.
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: clusterctl_files
short_description: Write several small files and directories, changing only what differs
description:
  - Creates missing directories (with parents) and writes each file whose content or mode
    differs, atomically (a temporary file in the same directory, then a rename).
options:
  files:
    description: Files to write; C(path) absolute, C(content) text, C(mode) octal string (default 0644).
    type: list
    elements: dict
    default: []
  directories:
    description: Directories that must exist; C(path) absolute, C(mode) octal string (default 0755).
    type: list
    elements: dict
    default: []
author: clusterctl
"""

RETURN = r"""
changed_paths:
  description: The files and directories this run created or changed.
  returned: always
  type: list
  elements: str
"""


def _mode(value: object, default: str) -> int:
    return int(str(value or default), 8)


def ensure_directory(path: str, mode: int, check: bool) -> bool:
    if os.path.isdir(path):
        return False
    if not check:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, mode)
    return True


def ensure_file(module: AnsibleModule, path: str, content: bytes, mode: int, check: bool) -> bool:
    try:
        with open(path, "rb") as current:
            same = current.read() == content
        same_mode = (os.stat(path).st_mode & 0o7777) == mode
    except FileNotFoundError:
        same, same_mode = False, False
    if same and same_mode:
        return False
    if check:
        return True
    if same:
        os.chmod(path, mode)
        return True
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=parent, prefix=".clusterctl-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(temp, mode)
        module.atomic_move(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return True


def main() -> None:
    entry = {"type": "list", "elements": "dict", "default": []}
    module = AnsibleModule(argument_spec={"files": dict(entry), "directories": dict(entry)},
                           supports_check_mode=True)
    changed: list[str] = []
    for item in module.params["directories"]:
        path = item.get("path") or module.fail_json(msg="every directory needs a path")
        if not os.path.isabs(path):
            module.fail_json(msg=f"directory path {path!r} is not absolute")
        if ensure_directory(path, _mode(item.get("mode"), "0755"), module.check_mode):
            changed.append(path)
    for item in module.params["files"]:
        path = item.get("path") or module.fail_json(msg="every file needs a path")
        if not os.path.isabs(path):
            module.fail_json(msg=f"file path {path!r} is not absolute")
        content = str(item.get("content", "")).encode("utf-8")
        try:
            if ensure_file(module, path, content, _mode(item.get("mode"), "0644"), module.check_mode):
                changed.append(path)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc.strerror}", changed_paths=changed)
    module.exit_json(changed=bool(changed), changed_paths=changed)


if __name__ == "__main__":
    main()
