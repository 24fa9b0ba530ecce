"""The SSH layer against real sshd hosts on loopback: host keys, quoting, JSON programs, deadlines."""

from __future__ import annotations

import dataclasses
import os
import resource
from pathlib import Path

import pytest
from support.sshd import SSHFleet, fleet_fixture

from clusterctl.ssh import (
    SSHBadOutput,
    SSHCommandFailed,
    SSHCommandTimeout,
    SSHHostKeyError,
    SSHPool,
    SSHUnreachable,
    command_line,
    run_many,
)

fleet = fleet_fixture("sshfleet", count=3, subnet=78)


def test_hostile_values_arrive_as_literal_arguments(fleet: SSHFleet, tmp_path: Path) -> None:
    target = fleet.targets()[0]
    pwned = tmp_path / "pwned"
    hostile = f"; touch {pwned}"
    program = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': os.environ.get('X_VAL')}))"
    got = SSHPool().run_json(target, program, [hostile, "$(id)", "a b"], env={"X_VAL": f"`touch {pwned}`"})
    assert got == {"argv": [hostile, "$(id)", "a b"], "env": f"`touch {pwned}`"}
    result = SSHPool().run(target, ["echo", hostile])
    assert result.exit_status == 0 and result.stdout.decode().strip() == hostile
    assert not pwned.exists()


def test_command_line_quotes_every_word_and_rejects_bad_env_names() -> None:
    assert command_line(["echo", "a;b"], {"K": "v w"}) == "env 'K=v w' echo 'a;b'"
    with pytest.raises(ValueError):
        command_line(["true"], {"A;rm": "x"})
    with pytest.raises(ValueError):
        command_line([])


def test_exit_status_stdout_and_stderr_come_back(fleet: SSHFleet) -> None:
    result = SSHPool().run(fleet.targets()[1], ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_status, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_run_json_errors_say_what_went_wrong(fleet: SSHFleet) -> None:
    target = fleet.targets()[0]
    pool = SSHPool()
    with pytest.raises(SSHCommandFailed, match="status 4: .*boom"):
        pool.run_json(target, "import sys; sys.stderr.write('boom'); sys.exit(4)")
    with pytest.raises(SSHBadOutput, match="expected one JSON document"):
        pool.run_json(target, "print('hello'); print('{}')")
    big = pool.run_json(target, "import json; print(json.dumps(list(range(50000))))")
    assert big == list(range(50000))


def test_unknown_or_changed_host_key_is_a_per_node_error(fleet: SSHFleet, tmp_path: Path) -> None:
    targets = fleet.targets()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    # host02's entry carries host01's key: a changed key, as after a reinstall or a spoof.
    wrong = tmp_path / "wrong_known_hosts"
    key = fleet.hosts[0].host_key_line.split(" ", 1)[1]
    wrong.write_text(f"[{fleet.hosts[1].address}]:{fleet.hosts[1].port} {key}")
    mixed = [targets[0], dataclasses.replace(targets[1], known_hosts=wrong),
             dataclasses.replace(targets[2], known_hosts=empty)]
    outcomes = run_many(mixed, lambda t: SSHPool().run(t, ["true"]).exit_status, max_parallel=3)
    assert [o.target for o in outcomes] == ["host01", "host02", "host03"]
    assert outcomes[0].ok and outcomes[0].value == 0
    assert outcomes[1].error_type == "SSHHostKeyError" and "does not match" in (outcomes[1].error or "")
    assert outcomes[2].error_type == "SSHHostKeyError" and "not in known_hosts" in (outcomes[2].error or "")
    with pytest.raises(SSHHostKeyError):
        SSHPool().run(mixed[2], ["true"])


def test_command_timeout_and_unreachable_host(fleet: SSHFleet) -> None:
    target = fleet.targets()[0]
    with pytest.raises(SSHCommandTimeout):
        SSHPool().run(target, ["sleep", "10"], timeout=1.0)
    closed = dataclasses.replace(target, name="gone", address="127.0.78.200")
    with pytest.raises(SSHUnreachable, match="gone: cannot connect"):
        SSHPool(connect_timeout=2).run(closed, ["true"])


def test_a_session_on_a_descriptor_above_1024_is_read(fleet: SSHFleet) -> None:
    """At 12,500 nodes the controller holds thousands of BMC connections, so a node's SSH channel gets a
    descriptor above select(2)'s limit of 1024: reading it must still work (it broke 804 nodes' validation)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.fail(f"this test needs 2,048 open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert min(held) < 1024 < max(held)
        result = SSHPool().run(fleet.targets()[0], ["sh", "-c", "sleep 0.3; echo late"])
        assert (result.exit_status, result.stdout) == (0, b"late\n")
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_pool_bounds_sessions_across_threads(fleet: SSHFleet) -> None:
    pool = SSHPool(max_sessions=2)
    targets = fleet.targets() * 2
    program = "import json, time; a = time.time(); time.sleep(0.3); print(json.dumps([a, time.time()]))"
    outcomes = run_many(targets, lambda t: pool.run_json(t, program), max_parallel=6)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    spans = [o.value for o in outcomes if o.value]
    # The hosts share this machine's clock: at no moment did more than two remote programs run.
    busiest = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert len(spans) == 6 and busiest <= 2


def test_a_key_the_node_does_not_know_and_an_encrypted_key_fail_auth(fleet: SSHFleet, tmp_path: Path) -> None:
    import subprocess

    from clusterctl.ssh import SSHAuthFailed

    target = fleet.targets()[0]
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(SSHAuthFailed, match="refused the key"):
        SSHPool().run(dataclasses.replace(target, key_file=stranger), ["true"])
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(locked)], check=True)
    with pytest.raises(SSHAuthFailed, match="passphrase-protected"):
        SSHPool().run(dataclasses.replace(target, key_file=locked), ["true"])
