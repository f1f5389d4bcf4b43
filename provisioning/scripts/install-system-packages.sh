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
# Provisioning: cloud-init checks generated user-data; sfdisk, mkfs.vfat and mtools build and fill
# the disk images `labedge provision image` writes, without root or a loop device.
have_cmd cloud-init || need="$need cloud-init"
have_cmd sfdisk || need="$need fdisk"
have_cmd mkfs.vfat || need="$need dosfstools"
have_cmd mcopy || need="$need mtools"
# The board firmware (firmware_bridge/firmware) is built with avr-gcc and runs in tests under
# simavr, driven by a harness linked against libsimavr (firmware_bridge/simrig).
have_cmd avr-gcc || need="$need gcc-avr"
[ -f /usr/lib/avr/include/avr/io.h ] || need="$need avr-libc"
have_cmd simavr || need="$need simavr"
[ -f /usr/include/simavr/sim_avr.h ] || need="$need libsimavr-dev"
[ -f /usr/include/libelf.h ] || need="$need libelf-dev"
have_cmd pkg-config || need="$need pkg-config"
# The dashboard's browser tests drive Debian's Chromium headless through Playwright, which must
# never download a browser of its own.
have_cmd chromium || need="$need chromium"

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
# cloud-init is here only to check generated user-data: it must not configure this machine at its
# next boot. (A Pi image already has cloud-init, so this never disables it there.)
case "$need" in
    *" cloud-init"*) $SUDO mkdir -p /etc/cloud && $SUDO touch /etc/cloud/cloud-init.disabled ;;
esac
