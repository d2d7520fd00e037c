"""The guest's own memory use comes from its balloon driver's figures, never QEMU's RSS."""

from __future__ import annotations

from appliance.backends.vm.libvirt_stats import _guest_used


def test_guest_use_is_available_less_unused_when_the_driver_reports_both() -> None:
    raw = {"balloon.current": 1048576, "balloon.rss": 900000}
    assert _guest_used(raw) is None  # no guest driver: unknown, not QEMU's RSS
    raw |= {"balloon.available": 1000000, "balloon.unused": 750000}
    assert _guest_used(raw) == 250000
