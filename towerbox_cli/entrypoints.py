"""The command groups' entry points, read without ``importlib.metadata``.

``importlib.metadata`` imports email parsing, zip and resource readers, sockets and
dates, and then reads every installed distribution's metadata: on a node that costs
``towerbox vm list`` more than its own work. A group needs only the distributions'
``entry_points.txt`` (the PyPA entry points file: INI sections, ``name = module:attr``),
read here from each ``*.dist-info`` on ``sys.path``; as with ``importlib.metadata``,
the first distribution found of a name wins.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str  # "module:attr"

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        found: Any = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            found = getattr(found, part)
        return found


def _entry_point_files() -> list[str]:
    files: list[str] = []
    seen: set[str] = set()
    for folder in sys.path:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = name.partition("-")[0].lower().replace("_", "-").replace(".", "-")
            path = os.path.join(folder or ".", name, "entry_points.txt")
            if dist not in seen and os.path.isfile(path):
                seen.add(dist)
                files.append(path)
    return files


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point in ``group`` of the installed distributions."""
    found: list[EntryPoint] = []
    for path in _entry_point_files():
        section = None
        with open(path, encoding="utf-8") as lines:
            for raw in lines:
                line = raw.strip()
                if not line or line.startswith(("#", ";")):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip()
                elif section == group and "=" in line:
                    name, _, value = line.partition("=")
                    found.append(EntryPoint(name.strip(), value.strip()))
    return found
