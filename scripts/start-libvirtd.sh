#!/usr/bin/env bash
# Make sure libvirtd answers on qemu:///system. With systemd as PID 1 that is the
# unit; on machines without it (containers, CI micro-VMs) the daemons are started
# by hand. Exits 0 with a warning if it cannot: the appliance then runs simulated.
set -u
sock=/run/libvirt/libvirt-sock
# Debian's udev rule gives /dev/kvm to the kvm group (0660). Where no udev ran (a
# container, a CI micro-VM) it stays root-only: QEMU's capability probe (as root)
# then sees KVM while libvirt's check (as libvirt-qemu) does not, and libvirtd
# re-probes QEMU on every call, turning each define into seconds or minutes.
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
[ -S "$sock" ] && virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
if [ "$(ps -o comm= -p 1 2>/dev/null)" = "systemd" ]; then
  systemctl start libvirtd.service virtlogd.service 2>/dev/null || true
else
  pgrep -x virtlogd >/dev/null || virtlogd -d 2>/dev/null || true
  pgrep -x libvirtd >/dev/null || libvirtd -d 2>/dev/null || true
fi
for _ in $(seq 1 50); do
  [ -S "$sock" ] && virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "warning: libvirtd could not be started; Towerbox will use the simulated test driver" >&2
exit 0
