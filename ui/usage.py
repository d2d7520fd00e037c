"""Usage against quotas as bars: the Tenants page and the dashboard's tenant card.

-1 is "unlimited" (towerbox_core.api.tenants.UNLIMITED): its bar stays empty and says
so in words. A quota the usage is above (one lowered after the fact) is drawn red.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from nicegui import ui

from towerbox_core.api.tenants import UNLIMITED, Quotas, TenantDetail, TenantUsage
from ui import fmt
from ui.handles import tag

# (quota field, label): the countable quotas, in the order they are shown.
BARS = (
    ("vms", "VMs"),
    ("vcpus", "vCPUs"),
    ("memory_mib", "Memory"),
    ("disk_gib", "Disk"),
    ("gpu_compute_slices", "GPU compute slices"),
    ("vnets", "VNets"),
    ("process_claims", "Process GPU claims"),
)


@dataclass(frozen=True)
class UsageBar:
    key: str
    label: str
    text: str  # "2 of 10", "3 GiB (unlimited)"
    fraction: float  # of the bar to fill, 0..1
    over: bool


def amount(key: str, value: int) -> str:
    if key == "memory_mib":
        return fmt.mib(value)
    if key == "disk_gib":
        return f"{value} GiB"
    return str(value)


def bar_of(key: str, label: str, used: int, limit: int, over: bool = False) -> UsageBar:
    if limit == UNLIMITED:
        return UsageBar(key, label, f"{amount(key, used)} (unlimited)", 0.0, False)
    over = over or used > limit
    fraction = 1.0 if limit <= 0 and used > 0 else (used / limit if limit > 0 else 0.0)
    text = f"{amount(key, used)} of {amount(key, limit)}"
    if limit == 0:
        text += " (none allowed)"
    return UsageBar(key, label, text, min(fraction, 1.0), over)


def usage_bars(quotas: Quotas, usage: TenantUsage, over: list[str] | None = None) -> list[UsageBar]:
    named = set(over or ())
    return [
        bar_of(key, label, getattr(usage, key), getattr(quotas, key), key in named)
        for key, label in BARS
    ]


def gpu_slice_lines(quotas: Quotas, usage: TenantUsage) -> list[str]:
    """Per MIG profile: "1g.10gb: 1 of 2" (only profiles the quota or usage names)."""
    lines = []
    for profile in sorted({*quotas.gpu_slices, *usage.gpu_slices}):
        limit = quotas.gpu_slices.get(profile, 0)
        used = usage.gpu_slices.get(profile, 0)
        shown = "unlimited" if limit == UNLIMITED else str(limit)
        lines.append(f"{profile}: {used} of {shown}")
    return lines


def detail_of(data: Any) -> TenantDetail:
    """The API's answer as its typed struct: a renamed field breaks the type check here."""
    return msgspec.convert(data, TenantDetail)


def draw_usage(detail: TenantDetail, prefix: str) -> None:
    """One row per quota: label, bar, words; data-over="true" on a bar past its quota."""
    with ui.element("div").classes("grid grid-cols-[10rem_1fr_12rem] gap-x-3 gap-y-1 w-full"):
        for bar in usage_bars(detail.quotas, detail.usage, detail.over):
            ui.label(bar.label).classes("text-sm")
            progress = tag(
                ui.linear_progress(bar.fraction, show_value=False, size="12px"),
                f"{prefix}-bar-{bar.key}",
            )
            progress.props(
                f'color={"negative" if bar.over else "primary"} data-over="{str(bar.over).lower()}"'
                f' aria-label="{bar.label}: {bar.text}"'
            ).classes("self-center")
            words = ui.label(bar.text).classes("text-sm" + (" text-negative" if bar.over else ""))
            tag(words, f"{prefix}-text-{bar.key}")
    slices = gpu_slice_lines(detail.quotas, detail.usage)
    if slices:
        ui.label("MIG slices: " + ", ".join(slices)).classes("text-sm text-grey-8")
    if detail.over:
        tag(
            ui.label(
                f"Over quota: {', '.join(detail.over)}. New allocations of these are refused; "
                "what runs keeps running."
            ).classes("text-negative text-sm"),
            f"{prefix}-over",
        )
