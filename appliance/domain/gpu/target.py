"""What an operator, a schedule or the configuration asks a GPU to become.

Exactly one of: exact instances, B2B profile counts solved around the vRAN slice,
or the name of a layout from the ``[gpu.layouts]`` configuration table.
"""

from __future__ import annotations

import msgspec

from appliance.domain.gpu.layout import Instance
from towerbox_core.errors import InvalidInput


class LayoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    instances: tuple[Instance, ...] | None = None
    counts: dict[str, int] | None = None
    layout: str | None = None

    def check(self, *, named: bool = True) -> None:
        """Refuse a request that gives none or several kinds of target."""
        given = [k for k in ("instances", "counts", "layout") if getattr(self, k) is not None]
        kinds = "instances, counts or layout" if named else "instances or counts"
        if len(given) != 1 or (not named and self.layout is not None):
            raise InvalidInput(f"give exactly one of {kinds}", code="invalid_layout_request")
