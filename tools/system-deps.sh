#!/usr/bin/env bash
# Installs the Debian packages that the tests drive for real (PostgreSQL, sshd, Slurm,
# munge, Chromium for the dashboard's browser tests, systemd-analyze, promtool, mmdebstrap and
# systemd-nspawn for the real Debian node the os stage is tested on, gpg and dpkg-deb for its package
# repository). Only what is missing is installed; nothing is started here:
# each test starts its own private server on loopback and stops it.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
id postgres >/dev/null 2>&1 || need+=(postgresql)
have /usr/sbin/sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
have slurmctld || need+=(slurm-wlm)
have munged || need+=(munge)
have ip || need+=(iproute2)
have /usr/bin/chromium || need+=(chromium)
have systemd-analyze || need+=(systemd)  # check schedule: systemd-analyze verify of the timer it writes
have promtool || need+=(prometheus)  # promtool check rules on contrib/prometheus (the daemon is never started)
have mmdebstrap || need+=(mmdebstrap)
have systemd-nspawn || need+=(systemd-container)
have gpg || need+=(gpg)
have dpkg-deb || need+=(dpkg)

if [ ${#need[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
echo "system packages: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's postinst would start the distribution's own PostgreSQL/Slurm/sshd services;
# the tests start private ones, so keep package scripts from starting daemons.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: done"
