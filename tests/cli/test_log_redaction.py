"""Secrets stay out of everything the process writes: every library's log records, warnings,
uncaught exceptions, the --help advice, and the command line that `ps` shows.

Output is read as written (a child process's stderr, /proc/PID/cmdline), not with caplog:
caplog's handler sees records before the redacting handler's filter has run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clusterctl.cli.main import _url_passwords, run

SECRET = "S3cretPW-in-a-record"
LOGGERS = ("paramiko.transport", "asyncssh", "uvicorn.error", "uvicorn.access", "ansible-runner",
           "ansible_runner", "httpx", "sqlalchemy.engine", "root", "clusterctl.test")

EMITTER = textwrap.dedent(
    """
    import logging, sys, threading, warnings
    from clusterctl import log

    secret, verbosity = sys.argv[1], int(sys.argv[2])
    log.setup(verbosity)
    log.redact(secret)
    for name in sys.argv[3:]:
        logging.getLogger(name).warning("from %s: password is %s", name, secret)
        logging.getLogger(name).info("info from %s", name)
    try:
        raise ValueError(f"bad login {secret}")
    except ValueError:
        logging.getLogger("paramiko").exception("handled with a traceback")
    warnings.warn(f"a warning quoting {secret}", stacklevel=1)
    thread = threading.Thread(target=lambda: 1 / 0 if secret else None, name="worker")
    thread.start()
    thread.join()
    raise RuntimeError(f"uncaught, quoting {secret}")
    """
)


def _emit(verbosity: int) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", EMITTER, SECRET, str(verbosity), *LOGGERS],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    return proc.stderr


def test_every_logger_warning_and_exception_is_masked_on_stderr() -> None:
    err = _emit(0)
    assert SECRET not in err
    for name in LOGGERS:
        assert f"from {name}: password is ***" in err
    assert "ValueError: bad login ***" in err
    assert "UserWarning: a warning quoting ***" in err
    assert "ZeroDivisionError" in err and "thread worker" in err
    assert "RuntimeError: uncaught, quoting ***" in err


def test_libraries_stay_at_warnings_until_vv() -> None:
    assert "info from paramiko.transport" not in _emit(1)
    assert "info from clusterctl.test" in _emit(1)
    err = _emit(2)
    assert "info from paramiko.transport" in err and "info from asyncssh" in err
    assert SECRET not in err


def test_help_recommends_the_environment_or_pgpass(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "set CLUSTERCTL_STATE, or put the password in ~/.pgpass" in text
    assert "[default: SQLite in ~/.local/state]" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:S3cret@db/clusterctl", {"S3cret"}),
        ("postgresql://u:p%40ss@db/clusterctl", {"p%40ss", "p@ss"}),
        ("postgresql://u@db/clusterctl?sslmode=require&password=S3cret", {"S3cret"}),
        ("postgresql://u@db/clusterctl", set()),
        ("sqlite:////var/lib/clusterctl/state.db", set()),
    ],
)
def test_passwords_found_in_state_urls(url: str, expected: set[str]) -> None:
    assert _url_passwords(url) == expected


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_state_password_is_gone_from_ps_and_stderr(clusterctl_bin: list[str]) -> None:
    """The store's connection attempt reaches a socket the test holds open: the CLI is then past
    its global options, and stays alive until the test closes the socket."""
    pytest.importorskip("psycopg")
    password = "S3cretPW"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(60)
        url = f"postgresql://u:{password}@127.0.0.1:{listener.getsockname()[1]}/clusterctl"
        proc = subprocess.Popen([*clusterctl_bin, "--state", url, "status"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            conn, _ = listener.accept()
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
            conn.close()
        finally:
            listener.close()
            _, err = proc.communicate(timeout=60)
    assert password.encode() not in cmdline
    assert b"--state postgresql://u:***@127.0.0.1" in cmdline
    if clusterctl_bin[0] != sys.executable:  # the console script, not `python -m`
        assert comm == "clusterctl"  # what pgrep matches survives the new title
    assert proc.returncode == 2, err
    assert password not in err
    assert "CLUSTERCTL_STATE" in err and "~/.pgpass" in err


def test_json_output_and_progress_notes_mask_resolved_secrets(capsys) -> None:
    """What the CLI prints is not a log record, yet a secret in it is masked the same way."""
    from clusterctl import log
    from clusterctl.cli.context import Settings

    log.redact("printed-secret-value-123")
    settings = Settings(output="json")
    settings.emit({"reason": "BMC said printed-secret-value-123", "password": "env:CLUSTERCTL_X"})
    settings.note("retrying with printed-secret-value-123")
    out, err = capsys.readouterr()
    assert "printed-secret-value-123" not in out + err
    assert '"password": "env:CLUSTERCTL_X"' in out  # references are data, shown as they are
    log.forget("printed-secret-value-123")


def test_resolved_secrets_are_masked_longest_first_in_any_text_long_enough() -> None:
    from clusterctl import log

    short, long = "pw-abc", "pw-abc-and-more"  # one contains the other: the longer must win
    log.redact(short)
    log.redact(long)
    try:
        assert log.mask_secrets(f"x{long}y {short}") == f"x{log.MASK}y {log.MASK}"
        assert log.mask_secrets("pw-ab") == "pw-ab"  # shorter than any secret: nothing to find
        assert log.mask_secrets(short) == log.MASK  # exactly as long as one
        log.forget(long)
        assert log.mask_secrets(long) == f"{log.MASK}-and-more"  # the shorter one is still known
    finally:
        log.forget(short)
        log.forget(long)
    assert log.mask_secrets(long) == long
