#!/usr/bin/env bash
# Build the demo appliance image: the current Debian kernel and a busybox-static
# initramfs whose /init prints TOWERBOX-DEMO-BOOTED on the serial port, powers off
# on the ACPI power button, prints what it finds on its NoCloud seed CD-ROM
# (TOWERBOX-SEED ... model=...) and on its model disk (TOWERBOX-MODEL ...), answers
# the QEMU guest agent's sync and ping on the org.qemu.guest_agent.0 port (when the
# VM has that channel), and otherwise prints a heartbeat every 10 s. Also writes the demo model file that the
# demo catalog entry attaches as a read-only disk.
#
# usage: images/demo/build.sh OUTPUT_DIR
# writes OUTPUT_DIR/demo-vmlinuz, OUTPUT_DIR/demo-initramfs.cpio.gz and
# OUTPUT_DIR/demo-model.img
#
# Needs root (apt-get), apt sources with the Debian kernel, dpkg-deb, cpio, gzip
# (and xz or zstd when the kernel package compresses its modules). Does nothing when
# all outputs exist and are newer than this script.
set -euo pipefail

if [[ $# -ne 1 || $1 == -* ]]; then
    echo "usage: $0 OUTPUT_DIR" >&2
    exit 2
fi

out_dir=$1
script=$(readlink -f "${BASH_SOURCE[0]}")
kernel_out=$out_dir/demo-vmlinuz
initrd_out=$out_dir/demo-initramfs.cpio.gz
model_out=$out_dir/demo-model.img

if [[ $kernel_out -nt $script && $initrd_out -nt $script && $model_out -nt $script ]]; then
    echo "demo image is up to date in $out_dir"
    exit 0
fi

log() { echo "build.sh: $*" >&2; }

for tool in apt-get apt-cache dpkg-deb dpkg-query tar cpio gzip find sort; do
    command -v "$tool" >/dev/null || { log "$tool is missing"; exit 1; }
done

# Without an apt index there is no candidate to download.
candidate=$(apt-cache policy linux-image-amd64 | awk '$1 == "Candidate:" { print $2 }')
if [[ -z $candidate || $candidate == "(none)" ]]; then
    log "no candidate for linux-image-amd64; running apt-get update"
    apt-get update -qq
fi

# The static busybox; the dynamic one from the busybox package would need a libc
# in the initramfs.
if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true) != *"ok installed" ]]; then
    log "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static
fi
busybox=/bin/busybox

# linux-image-amd64 is a metapackage; the versioned package it depends on holds
# the kernel.
kernel_pkg=$(apt-cache depends linux-image-amd64 |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
if [[ -z $kernel_pkg ]]; then
    log "cannot resolve the kernel package behind linux-image-amd64"
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -p "$work/deb" "$work/kernel" "$work/root"
# apt downloads as _apt when it can; give it the folder so it does not warn.
if id _apt >/dev/null 2>&1; then
    chown _apt "$work/deb"
fi

log "downloading $kernel_pkg"
(cd "$work/deb" && apt-get download -qq "$kernel_pkg")
deb=$(find "$work/deb" -maxdepth 1 -name '*.deb' -print -quit)
[[ -n $deb ]] || { log "apt-get download left no .deb"; exit 1; }

# The power button needs the ACPI button driver (it creates the input device) and
# evdev (it gives that device a /dev/input/event node busybox acpid can read). The
# seed CD-ROM (SATA on q35) needs AHCI, the SCSI CD-ROM driver and isofs; the model
# disk needs virtio-blk over virtio-pci; the guest-agent port needs virtio_console;
# a NIC needs virtio_net (and the failover modules it links against).
# Debian builds all of them as modules; newer
# kernels ship them under /usr/lib and compressed. One pass over the archive (large
# and xz-compressed): patterns that match nothing only make tar complain, which is
# fine as long as the kernel came out.
dpkg-deb --fsys-tarfile "$deb" |
    tar -x -C "$work/kernel" --wildcards './boot/vmlinuz-*' \
        '*/kernel/drivers/acpi/button.ko*' '*/kernel/drivers/input/evdev.ko*' \
        '*/kernel/drivers/scsi/scsi_common.ko*' '*/kernel/drivers/scsi/scsi_mod.ko*' \
        '*/kernel/drivers/scsi/sr_mod.ko*' '*/kernel/drivers/cdrom/cdrom.ko*' \
        '*/kernel/drivers/ata/libata.ko*' '*/kernel/drivers/ata/libahci.ko*' \
        '*/kernel/drivers/ata/ahci.ko*' '*/kernel/fs/isofs/isofs.ko*' \
        '*/kernel/drivers/virtio/virtio*.ko*' '*/kernel/drivers/block/virtio_blk.ko*' \
        '*/kernel/drivers/char/virtio_console.ko*' '*/kernel/net/core/failover.ko*' \
        '*/kernel/drivers/net/net_failover.ko*' '*/kernel/drivers/net/virtio_net.ko*' \
        2>"$work/tar.log" || true
if ! compgen -G "$work/kernel/boot/vmlinuz-*" >/dev/null; then
    log "no /boot/vmlinuz-* in $kernel_pkg: $(cat "$work/tar.log")"
    exit 1
fi

vmlinuz=$(find "$work/kernel/boot" -name 'vmlinuz-*' -print -quit)
kernel_version=${vmlinuz##*/vmlinuz-}

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/acpi,proc,sys,dev,run,tmp,var/log,lib/modules}
cp "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    [[ $applet == bin/busybox ]] && continue
    if [[ $applet == */* && ! -d $root/${applet%/*} ]]; then
        mkdir -p "$root/${applet%/*}"
    fi
    ln -sf /bin/busybox "$root/$applet"
done

# In load order: each after the modules it needs (modinfo -F depends).
wanted=(button evdev
    scsi_common scsi_mod libata libahci ahci cdrom sr_mod isofs
    virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_console
    failover net_failover virtio_net)
modules=()
for name in "${wanted[@]}"; do
    src=$(find "$work/kernel" -path '*/kernel/*' -name "$name.ko*" -print -quit)
    if [[ -z $src ]]; then
        log "$name is not a module in $kernel_pkg (built in, or missing: check its config)"
        continue
    fi
    case $src in
        *.ko.xz) xz -dc "$src" >"$root/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -qdc "$src" >"$root/lib/modules/$name.ko" ;;
        *) cp "$src" "$root/lib/modules/$name.ko" ;;
    esac
    modules+=("$name")
done

# busybox acpid maps KEY_POWER to "button/power PWRF ..." and runs the action
# listed for PWRF, relative to its config folder.
echo "PWRF power-button" >"$root/etc/acpid.conf"
cat >"$root/etc/acpi/power-button" <<'EOF'
#!/bin/sh
echo "TOWERBOX-DEMO-POWER-BUTTON: powering off" >/dev/ttyS0
sync
poweroff -f
EOF
chmod 0755 "$root/etc/acpi/power-button"

# udhcpc's hook: the lease's address and route on the NIC, and the lease in
# /run/lease for init to say. busybox passes ip, mask (a prefix length), router.
mkdir -p "$root/usr/share/udhcpc" "$root/www"
cat >"$root/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
case $1 in
    deconfig) ip addr flush dev "$interface" ;;
    bound | renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for gw in $router; do
            ip route add default via "$gw" dev "$interface"
            break
        done
        echo "ip=$ip server=${serverid:-} router=${router%% *}" >/run/lease
        ;;
esac
exit 0
EOF
chmod 0755 "$root/usr/share/udhcpc/default.script"
echo "towerbox demo appliance" >"$root/www/index.html"

cat >"$root/etc/towerbox-demo" <<EOF
kernel='$kernel_version'
modules='${modules[*]:-}'
EOF

cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the Towerbox demo appliance. It must never exit: the kernel panics
# (and with panic=-1 reboots) when init does.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() {
    echo "$*" >/dev/ttyS0 2>/dev/null
    # With console=ttyS0 the console is the serial port already: say it once.
    if ! grep -qw ttyS0 /sys/class/tty/console/active 2>/dev/null; then
        echo "$*" >/dev/console 2>/dev/null
    fi
}

kernel=unknown
modules=
# shellcheck source=/dev/null
. /etc/towerbox-demo

# In the order build.sh listed them: each after the ones it needs.
for name in $modules; do
    insmod "/lib/modules/$name.ko"
done

# wait_for PATH [TENTHS]: wait up to TENTHS tenths of a second (5 s by default).
wait_for() {
    i=0
    while [ ! -e "$1" ] && [ "$i" -lt "${2:-50}" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e "$1" ]
}

# The NoCloud seed: the CD-ROM labelled cidata. Prints the instance id from its
# meta-data and the model its user-data names (demo.yaml's TOWERBOX_MODEL line).
read_seed() {
    if ! wait_for /dev/sr0 150; then
        say "TOWERBOX-SEED none"
        return
    fi
    mkdir -p /run/seed
    if ! mount -t iso9660 -o ro /dev/sr0 /run/seed; then
        say "TOWERBOX-SEED unreadable"
        return
    fi
    instance=$(sed -n 's/^instance-id: *"*\([^"]*\)"*$/\1/p' /run/seed/meta-data | head -n 1)
    model=$(sed -n 's/^ *TOWERBOX_MODEL="\(.*\)"$/\1/p' /run/seed/user-data | head -n 1)
    umount /run/seed
    say "TOWERBOX-SEED instance-id=${instance:-none} model=${model:-none}"
}

# The model disk: the virtio disk whose serial is towerbox-model. Prints the first
# line of its first 64 bytes.
read_model() {
    i=0
    while [ "$i" -lt 150 ]; do
        for serial in /sys/block/vd*/serial; do
            [ -e "$serial" ] || continue
            if [ "$(cat "$serial")" = towerbox-model ]; then
                dev=${serial%/serial}
                line=$(head -c 64 "/dev/${dev##*/}" | head -n 1 | tr -cd 'A-Za-z0-9 ._:=/+-')
                say "TOWERBOX-MODEL ${line:-empty}"
                return
            fi
        done
        sleep 0.1
        i=$((i + 1))
    done
    say "TOWERBOX-MODEL none"
}

# acpid opens /dev/input/event0.. once, at start, and writes its pid file after
# that: wait for both, and announce the boot only once the power button is heard,
# so a shutdown request sent on the marker is never lost.
power_button="none (no input device)"
if wait_for /dev/input/event0; then
    acpid -d -c /etc/acpi -a /etc/acpid.conf -p /run/acpid.pid </dev/null >/dev/ttyS0 2>&1 &
    if wait_for /run/acpid.pid; then
        power_button="acpid"
    else
        power_button="acpid (not ready)"
    fi
fi

# A minimal QEMU guest agent: JSON requests, one per line, on the virtio-serial
# port named org.qemu.guest_agent.0. It knows guest-sync, guest-sync-delimited
# (whose answer starts with a 0xFF byte, so the host can find where it begins) and
# guest-ping; anything else is CommandNotFound. Runs in the background for as long
# as the VM does; a VM without the channel prints TOWERBOX-AGENT none.
agent_reply() {
    cmd=$(echo "$1" | sed -n 's/.*"execute" *: *"\([^"]*\)".*/\1/p')
    case $cmd in
        guest-sync | guest-sync-delimited)
            id=$(echo "$1" | sed -n 's/.*"id" *: *\(-\{0,1\}[0-9]\{1,\}\).*/\1/p')
            [ "$cmd" = guest-sync-delimited ] && printf '\377'
            printf '{"return": %s}\n' "${id:-0}"
            ;;
        guest-ping) printf '{"return": {}}\n' ;;
        "") ;; # a blank line or the host's 0xFF resynchronisation byte alone
        *) printf '{"error": {"class": "CommandNotFound", "desc": "not supported"}}\n' ;;
    esac
}

guest_agent() {
    port=
    i=0
    while [ -z "$port" ] && [ "$i" -lt 50 ]; do
        for name in /sys/class/virtio-ports/*/name; do
            [ -e "$name" ] || continue
            if [ "$(cat "$name")" = org.qemu.guest_agent.0 ]; then
                port=${name%/name}
                port=/dev/${port##*/}
            fi
        done
        [ -n "$port" ] || sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ] || ! wait_for "$port"; then
        say "TOWERBOX-AGENT none"
        return
    fi
    say "TOWERBOX-AGENT port=${port#/dev/}"
    # The port stays open: libvirt connects its end only once it sees the guest's
    # open, and closing on end-of-file (what a read gives while no host end is
    # connected) would take that back. So end-of-file only means: try again soon.
    while :; do
        {
            while :; do
                while IFS= read -r line <&3; do
                    agent_reply "$line" >&3
                done
                sleep 0.5
            done
        } 3<>"$port"
        sleep 1 # the open itself failed
    done
}
guest_agent </dev/null >/dev/null 2>&1 &

# A NIC: DHCP on eth0 (the seed's network-config asks for dhcp4 on each NIC), then a
# ping of the DHCP server so the host learns the guest's address (the node finds it
# in its ARP table), and an HTTP server on port 8000 for TCP health checks. In the
# background: a VM without a DHCP server on its link boots as fast as one without a
# NIC, and says TOWERBOX-NET none once udhcpc gives up.
network() {
    if ! wait_for /sys/class/net/eth0 50; then
        say "TOWERBOX-NET none (no NIC)"
        return
    fi
    ip link set lo up
    ip link set eth0 up
    if ! udhcpc -i eth0 -q -n -t 20 -T 1 -s /usr/share/udhcpc/default.script; then
        say "TOWERBOX-NET none (no DHCP lease on eth0)"
        return
    fi
    if [ ! -r /run/lease ]; then
        say "TOWERBOX-NET none (udhcpc left no lease)"
        return
    fi
    ip=
    server=
    router=
    # shellcheck source=/dev/null
    . /run/lease
    httpd -p 8000 -h /www
    if [ -n "${server:-$router}" ]; then
        ping -c 3 -W 1 "${server:-$router}"
    fi
    say "TOWERBOX-NET eth0 $ip http=8000"
}
network </dev/null >/dev/null 2>&1 &

say "TOWERBOX-DEMO-BOOTED kernel=$kernel power-button=$power_button"
read_seed
read_model

while :; do
    sleep 10
    read -r up _ </proc/uptime
    say "towerbox-demo heartbeat uptime=${up}s"
done
EOF
chmod 0755 "$root/init"

mkdir -p "$out_dir"
# Written under temporary names and renamed, so an interrupted build never leaves
# an output that looks finished.
(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) |
    gzip -9 -n >"$initrd_out.tmp"
install -m 0644 "$vmlinuz" "$kernel_out.tmp"
chmod 0644 "$initrd_out.tmp"
# The demo model bundle: a raw disk whose first line names it, 64 KiB (whole sectors).
printf 'TOWERBOX-DEMO-MODEL demo-model-v1\n' >"$model_out.tmp"
truncate -s 64K "$model_out.tmp"
chmod 0644 "$model_out.tmp"
mv -f "$kernel_out.tmp" "$kernel_out"
mv -f "$initrd_out.tmp" "$initrd_out"
mv -f "$model_out.tmp" "$model_out"

log "built $kernel_out ($kernel_pkg), $initrd_out (modules: ${modules[*]:-none}) and $model_out"
