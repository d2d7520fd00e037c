"""A VM's charts from the monitor's history: CPU, guest memory, network and disk rates,
and the activity of the GPU slice it holds.

The appliance keeps each VM's last samples (counters as libvirt reports them) and
one point per sweep for the slice a VM holds; rates are the counters' growth between
two samples. The charts are made once and their data replaced in place at each
refresh, with animation off, so a refresh never redraws them from empty.
"""

from __future__ import annotations

import itertools
from typing import Any

from nicegui import ui

from ui import fmt
from ui.handles import tag

# marker, title, unit, series names
CHARTS = (
    ("cpu", "CPU (of its vCPUs)", "%", ("cpu",)),
    ("mem", "Guest memory", "MiB", ("memory",)),
    ("net", "Network", "B/s", ("rx", "tx")),
    ("disk", "Disk", "B/s", ("read", "write")),
    ("gpu", "GPU slice", "%", ("busy",)),
)
# series name -> the sample's counter whose rate it plots
COUNTERS = {
    "rx": "net_rx_bytes",
    "tx": "net_tx_bytes",
    "read": "disk_read_bytes",
    "write": "disk_write_bytes",
}


def _guest_memory_kib(sample: dict[str, Any]) -> int:
    used = sample.get("guest_used_kib")
    return int(used if used is not None else sample.get("memory_kib") or 0)


def rates(history: list[dict[str, Any]], counter: str) -> list[float | None]:
    """Bytes per second between each sample and the one before: None for the first and
    across a gap in time; never negative (a restarted QEMU counts from zero)."""
    found: list[float | None] = [None] if history else []
    for before, after in itertools.pairwise(history):
        span = (after.get("at") or 0) - (before.get("at") or 0)
        if span <= 0:
            found.append(None)
            continue
        grown = (after.get(counter) or 0) - (before.get(counter) or 0)
        found.append(max(0.0, grown / span))
    return found


def chart_series(history: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Time labels, CPU %, memory MiB, and network and disk rates (bytes/s).

    Memory is the guest's: what it uses where its balloon driver reports that, else
    what it has been given. QEMU's own resident size on the host is not the VM's.
    """
    series: dict[str, list[Any]] = {
        "time": [fmt.clock(s.get("at")) for s in history],
        "cpu": [s.get("cpu_pct") for s in history],
        "mem": [round(_guest_memory_kib(s) / 1024, 1) for s in history],
    }
    for name, counter in COUNTERS.items():
        series[name] = rates(history, counter)
    return series


def gpu_series(points: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Time labels and the slice's busy share (%), None where the driver reports none."""
    return {
        "time": [fmt.clock(p.get("at")) for p in points],
        "busy": [p.get("utilization_pct") for p in points],
    }


def chart_options(title: str, unit: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 0},
        "grid": {"left": 50, "right": 10, "top": 30, "bottom": 25},
        "xAxis": {"type": "category", "data": []},
        "yAxis": {"type": "value", "name": unit},
        "animation": False,
        "aria": {"enabled": True},  # ECharts describes the series for screen readers
        "series": [
            {"name": name, "type": "line", "showSymbol": False, "data": []} for name in names
        ],
    }


def gpu_note(points: list[dict[str, Any]]) -> str:
    if not points:
        return "It holds no GPU slice (none since the appliance started keeping points)."
    last = points[-1]
    used = fmt.size_bytes(last.get("memory_used_bytes"))
    if last.get("utilization_pct") is None:
        return f"The GPU driver reports no activity for this slice; memory used {used}."
    return f"Memory used on its slice: {used}."


class VmCharts:
    """The charts section of a VM's page; ``show`` puts a stats answer in it."""

    def __init__(self) -> None:
        self.charts: dict[str, ui.echart] = {}
        with ui.column().classes("grow gap-2 min-w-[28rem]"):
            for marker, title, unit, names in CHARTS:
                self.charts[marker] = tag(
                    ui.echart(chart_options(title, unit, names)), f"vm-chart-{marker}"
                ).classes("w-full h-48")
            self.gpu_note = tag(ui.label("").classes("text-grey-7 text-xs"), "vm-chart-gpu-note")
            self.note = tag(ui.label("").classes("text-grey-7 text-xs"), "vm-chart-note")

    def show(self, stats: dict[str, Any]) -> None:
        history = list(stats.get("history") or [])
        points = list(stats.get("gpu") or [])
        series = chart_series(history)
        gpu = gpu_series(points)
        series["busy"] = gpu["busy"]
        for marker, _, _, names in CHARTS:
            chart = self.charts[marker]
            times = gpu["time"] if marker == "gpu" else series["time"]
            if chart.options["xAxis"]["data"] == times and all(
                line["data"] == series[_key(name)]
                for line, name in zip(chart.options["series"], names, strict=True)
            ):
                continue  # nothing new: leave the chart as it is
            chart.options["xAxis"]["data"] = times
            for line, name in zip(chart.options["series"], names, strict=True):
                line["data"] = series[_key(name)]
            chart.update()
        self.charts["gpu"].set_visibility(bool(points))
        self.gpu_note.text = gpu_note(points)
        self.note.text = (
            f"{len(history)} samples kept by the appliance's monitor "
            f"(it keeps a short in-memory history; nothing older is served)."
        )


def _key(name: str) -> str:
    return "mem" if name == "memory" else name
