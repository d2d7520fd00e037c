#!/usr/bin/env bash
# Make sure Open vSwitch answers, for N6 trunks. With systemd as PID 1 that is the
# unit; elsewhere (containers, CI micro-VMs) ovs-ctl starts ovsdb-server and
# ovs-vswitchd by hand. Exits 0 with a warning if it cannot: the appliance then uses
# the simulated N6 backend and /healthz says so.
set -u
command -v ovs-vsctl >/dev/null || { echo "warning: Open vSwitch is not installed; N6 will be simulated" >&2; exit 0; }
ovs-vsctl --timeout=5 show >/dev/null 2>&1 && exit 0
if [ "$(ps -o comm= -p 1 2>/dev/null)" = "systemd" ]; then
  systemctl start openvswitch-switch.service 2>/dev/null || true
else
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
fi
ovs-vsctl --timeout=5 show >/dev/null 2>&1 && exit 0
echo "warning: Open vSwitch could not be started; N6 will be simulated" >&2
exit 0
