"""The site list's filters as the URL carries them and as the registry takes them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

PAGE_SIZE = 50
SORTS = {
    "name": "Name",
    "-name": "Name, Z first",
    "region": "Region",
    "-last_contact": "Last contact, newest first",
    "last_contact": "Last contact, oldest first",
    "hostname": "Hostname",
}
STATUSES = ("online", "stale", "offline", "pending")


@dataclass(frozen=True)
class SiteQuery:
    q: str = ""
    status: str = ""
    region: str = ""
    label: str = ""
    # A version filter (the fleet overview's version skew): both or neither.
    component: str = ""
    version: str = ""
    sort: str = "name"
    page: int = 1

    @classmethod
    def from_url(cls, args: dict[str, Any]) -> SiteQuery:
        """What a shared or reloaded URL asked for; what makes no sense falls back."""
        page = str(args.get("page") or "1")
        sort = str(args.get("sort") or "name")
        status = str(args.get("status") or "")
        return cls(
            q=str(args.get("q") or "").strip(),
            status=status if status in STATUSES else "",
            region=str(args.get("region") or "").strip(),
            label=str(args.get("label") or "").strip(),
            component=str(args.get("component") or "").strip(),
            version=str(args.get("version") or "").strip(),
            sort=sort if sort in SORTS else "name",
            page=int(page) if page.isdigit() and int(page) > 0 else 1,
        )

    def with_(self, **changes: Any) -> SiteQuery:
        """A changed filter starts again at page 1; a changed page keeps the filters."""
        page = changes.pop("page", 1)
        return replace(self, page=page, **changes)

    def url(self) -> str:
        shown = {k: v for k, v in self._fields().items() if v and (k, v) not in _DEFAULTS}
        return "/sites" + ("?" + urlencode(shown) if shown else "")

    def params(self) -> dict[str, Any]:
        """GET /api/v1/sites parameters for this page."""
        params: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "offset": (self.page - 1) * PAGE_SIZE,
            "sort": self.sort,
        }
        for key in ("q", "status", "region", "label", "component", "version"):
            value = getattr(self, key)
            if value:
                params[key] = value
        return params

    def _fields(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "status": self.status,
            "region": self.region,
            "label": self.label,
            "component": self.component,
            "version": self.version,
            "sort": self.sort,
            "page": self.page,
        }


_DEFAULTS = {("sort", "name"), ("page", 1)}


def pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))
