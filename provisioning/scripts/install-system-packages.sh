#!/bin/sh
# Install the Debian / Raspberry Pi OS packages labedge needs, only those missing.
# Uses sudo when not run as root. Safe to run again.
set -eu

need=""
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

have_cmd mosquitto || need="$need mosquitto"
have_cmd mosquitto_sub || need="$need mosquitto-clients"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
# gcc builds the fault-injection shim (slow or failing fsync) the disk tests and benchmarks preload.
have_cmd gcc || need="$need gcc libc6-dev"

if [ -z "$need" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "labedge: installing system packages:$need"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need
# Debian starts the packaged broker as a service on port 1883; labedge runs its own.
if have_cmd systemctl && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
