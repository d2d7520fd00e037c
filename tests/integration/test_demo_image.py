"""The demo appliance image, built by images/demo/build.sh, boots under the real
libvirtd (QEMU software emulation), prints its marker on the serial port and powers
off on an ACPI power-button press: no destroy needed.

The image is built into $TOWERBOX_IMAGE_DIR, else var/images when that folder
exists (both kept: the build is skipped while up to date), else a temporary folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "images" / "demo" / "build.sh"
KERNEL = "demo-vmlinuz"
INITRD = "demo-initramfs.cpio.gz"
MARKER = b"TOWERBOX-DEMO-BOOTED"
BOOT_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 30.0
DOMAIN_PREFIX = "towerbox-demo-test-"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
LIBVIRT_QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")


@pytest.fixture(scope="module")
def libvirt_mod() -> Any:
    return pytest.importorskip("libvirt")


@pytest.fixture(scope="module")
def conn(libvirt_mod: Any) -> Iterator[Any]:
    # Without a handler libvirt prints every error to stderr as well as raising it.
    libvirt_mod.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        connection = libvirt_mod.open("qemu:///system")
    except libvirt_mod.libvirtError as err:
        pytest.skip(f"qemu:///system cannot be opened (is libvirtd running?): {err}")
    yield connection
    leaked = [d.name() for d in connection.listAllDomains() if d.name().startswith(DOMAIN_PREFIX)]
    connection.close()
    assert leaked == [], f"domains left behind: {leaked}"


@pytest.fixture(scope="module")
def image_dir() -> Iterator[Path]:
    configured = os.environ.get("TOWERBOX_IMAGE_DIR")
    if configured:
        yield Path(configured)
        return
    cached = REPO / "var" / "images"
    if cached.is_dir():
        yield cached
        return
    # Not pytest's tmp_path: its folders are 0700 and QEMU runs as another user.
    made = Path(tempfile.mkdtemp(prefix="towerbox-demo-image-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


@pytest.fixture(scope="module")
def demo_image(image_dir: Path) -> Path:
    started = time.monotonic()
    subprocess.run([str(BUILD_SCRIPT), str(image_dir)], check=True, timeout=300)
    log.info("demo image ready in %s after %.1f s", image_dir, time.monotonic() - started)
    for name in (KERNEL, INITRD):
        _assert_qemu_can_reach(image_dir / name)
    return image_dir


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="towerbox-demo-run-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_demo_image_boots_and_powers_off_on_acpi(
    libvirt_mod: Any, conn: Any, demo_image: Path, run_dir: Path
) -> None:
    name = DOMAIN_PREFIX + uuid.uuid4().hex[:8]
    serial_log = run_dir / "serial.log"
    dom = conn.defineXML(_domain_xml(name, demo_image, serial_log))
    try:
        started = time.monotonic()
        dom.create()
        _wait_for(
            lambda: MARKER in _read(serial_log),
            BOOT_TIMEOUT_S,
            f"no {MARKER.decode()} on the serial port",
            serial_log,
        )
        booted_s = time.monotonic() - started
        log.info("%s: marker %.1f s after start", name, booted_s)

        pressed = time.monotonic()
        dom.shutdownFlags(libvirt_mod.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        _wait_for(
            lambda: dom.state()[0] == libvirt_mod.VIR_DOMAIN_SHUTOFF,
            SHUTDOWN_TIMEOUT_S,
            "the guest ignored the ACPI power button",
            serial_log,
        )
        log.info("%s: shut off %.1f s after the power button", name, time.monotonic() - pressed)

        state, reason = dom.state()
        assert (state, reason) == (
            libvirt_mod.VIR_DOMAIN_SHUTOFF,
            libvirt_mod.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
        )
        assert b"TOWERBOX-DEMO-POWER-BUTTON" in _read(serial_log)
        assert re.search(rb"TOWERBOX-DEMO-BOOTED .*power-button=acpid\r?\n", _read(serial_log))
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        (LIBVIRT_QEMU_LOG_DIR / f"{name}.log").unlink(missing_ok=True)


def _domain_xml(name: str, image_dir: Path, serial_log: Path) -> str:
    domain = ET.Element("domain", type="qemu")  # software emulation: no KVM needed
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = "128"
    ET.SubElement(domain, "vcpu").text = "1"
    os_el = ET.SubElement(domain, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(image_dir / KERNEL)
    ET.SubElement(os_el, "initrd").text = str(image_dir / INITRD)
    ET.SubElement(os_el, "cmdline").text = "console=ttyS0 panic=-1"
    # The power button is an ACPI device; without ACPI even poweroff -f hangs.
    ET.SubElement(ET.SubElement(domain, "features"), "acpi")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "destroy"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_log))
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def _wait_for(done: Any, timeout_s: float, what: str, serial_log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            tail = _read(serial_log)[-2000:].decode(errors="replace")
            pytest.fail(f"{what} within {timeout_s:.0f} s; serial log ends:\n{tail}")
        time.sleep(0.2)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _qemu_user() -> str:
    """The user libvirtd runs QEMU as (qemu.conf ``user``; Debian's default otherwise)."""
    try:
        text = QEMU_CONF.read_text()
    except OSError:
        return "libvirt-qemu"
    match = re.search(r'^\s*user\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "libvirt-qemu"


def _assert_qemu_can_reach(path: Path) -> None:
    """QEMU opens the kernel and initrd as its own user: every folder above them must
    let others through (libvirt chowns the files themselves, not their folders)."""
    if _qemu_user() in ("root", "+0"):
        return
    for folder in path.resolve().parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            pytest.fail(
                f"{folder} is not searchable by others, so QEMU (user {_qemu_user()}) "
                f"cannot open {path}: chmod o+x {folder} or build elsewhere"
            )
