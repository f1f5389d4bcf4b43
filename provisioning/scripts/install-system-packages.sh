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
# The board firmware (firmware_bridge/firmware) is built with avr-gcc and runs in tests under
# simavr, driven by a harness linked against libsimavr (firmware_bridge/simrig).
have_cmd avr-gcc || need="$need gcc-avr"
[ -f /usr/lib/avr/include/avr/io.h ] || need="$need avr-libc"
have_cmd simavr || need="$need simavr"
[ -f /usr/include/simavr/sim_avr.h ] || need="$need libsimavr-dev"
[ -f /usr/include/libelf.h ] || need="$need libelf-dev"
have_cmd pkg-config || need="$need pkg-config"

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
