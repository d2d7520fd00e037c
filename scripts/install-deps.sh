#!/usr/bin/env bash
# Debian packages Towerbox needs to build, run and test. Installs only what is missing.
set -euo pipefail
PKGS=(
  python3-venv python3-dev gcc pkg-config libvirt-dev       # libvirt-python builds from source
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils  # real VMs
  libxml2-utils                                              # virt-xml-validate's schemas
  busybox-static cpio xz-utils                               # the demo appliance image
  systemd                                                    # systemd-analyze verify
  openvswitch-switch iproute2 nftables                       # N6 handoff, WAN faults
  postgresql                                                 # the registry on PostgreSQL
  chromium                                                   # the UI's end-to-end tests
  curl                                                       # make run waits for the API
  prometheus                                                 # promtool checks the exported alert rules
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install these packages first (as root): ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
