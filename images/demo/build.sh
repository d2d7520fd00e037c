#!/usr/bin/env bash
# Build the demo appliance image: the current Debian kernel and a busybox-static
# initramfs whose /init prints TOWERBOX-DEMO-BOOTED on the serial port, powers off
# on the ACPI power button and otherwise prints a heartbeat every 10 s.
#
# usage: images/demo/build.sh OUTPUT_DIR
# writes OUTPUT_DIR/demo-vmlinuz and OUTPUT_DIR/demo-initramfs.cpio.gz
#
# Needs root (apt-get), apt sources with the Debian kernel, dpkg-deb, cpio, gzip
# (and xz or zstd when the kernel package compresses its modules). Does nothing when
# both outputs exist and are newer than this script.
set -euo pipefail

if [[ $# -ne 1 || $1 == -* ]]; then
    echo "usage: $0 OUTPUT_DIR" >&2
    exit 2
fi

out_dir=$1
script=$(readlink -f "${BASH_SOURCE[0]}")
kernel_out=$out_dir/demo-vmlinuz
initrd_out=$out_dir/demo-initramfs.cpio.gz

if [[ $kernel_out -nt $script && $initrd_out -nt $script ]]; then
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
# evdev (it gives that device a /dev/input/event node busybox acpid can read).
# Debian builds both as modules; newer kernels ship them under /usr/lib and
# compressed. One pass over the archive (large and xz-compressed): patterns that
# match nothing only make tar complain, which is fine as long as the kernel came out.
dpkg-deb --fsys-tarfile "$deb" |
    tar -x -C "$work/kernel" --wildcards './boot/vmlinuz-*' \
        '*/kernel/drivers/acpi/button.ko*' '*/kernel/drivers/input/evdev.ko*' \
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

modules=()
for name in button evdev; do
    src=$(find "$work/kernel" -path '*/kernel/drivers/*' -name "$name.ko*" -print -quit)
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

for module in /lib/modules/*.ko; do
    [ -e "$module" ] && insmod "$module"
done

wait_for() {
    i=0
    while [ ! -e "$1" ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e "$1" ]
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

kernel=unknown
# shellcheck source=/dev/null
. /etc/towerbox-demo
say "TOWERBOX-DEMO-BOOTED kernel=$kernel power-button=$power_button"

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
mv -f "$kernel_out.tmp" "$kernel_out"
mv -f "$initrd_out.tmp" "$initrd_out"

log "built $kernel_out ($kernel_pkg) and $initrd_out (modules: ${modules[*]:-none})"
