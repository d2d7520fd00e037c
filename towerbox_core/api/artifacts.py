"""Artifact routes: what the catalog needs in the image folder, fetches with their
progress, garbage collection and the pre-cache plan."""

from __future__ import annotations

import msgspec

# A fetch in one of these states has not ended: it holds its artifact's name, and a
# client that shows progress keeps polling.
FETCH_UNDER_WAY = frozenset({"queued", "running", "verifying"})


class FetchProgress(msgspec.Struct, frozen=True):
    name: str
    # queued | running | verifying | done | failed | paused
    state: str
    reason: str  # "now": asked through the API; "precache": the off-peak window
    bytes_done: int
    bytes_total: int | None  # None until the size is known
    rate_bps: float  # bytes per second over this run
    eta_s: float | None  # None when the size or the rate is unknown
    resumed_from: int  # bytes a partial file already held when this run started
    started_at: str | None
    finished_at: str | None
    error_code: str | None = None
    error: str | None = None


class ArtifactView(msgspec.Struct, frozen=True):
    name: str
    kind: str  # image | kernel | initrd | model
    url: str | None  # http(s), or "registry:<sha256>" (the fleet registry's blob)
    sha256: str
    size: int | None  # what the catalog says, when it says
    # verified: on disk with the right hash; present: on disk, hash not checked since
    # the daemon started; missing; fetching; conflict: two entries disagree on its hash
    state: str
    size_on_disk: int | None
    needed_by: list[str]  # catalog entries
    used_by_vms: list[str]
    fetch: FetchProgress | None = None


class ArtifactList(msgspec.Struct, frozen=True):
    image_dir: str
    free_bytes: int
    artifacts: list[ArtifactView]


class GcRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dry_run: bool = False
    # File names (shell patterns allowed, e.g. "ubuntu-*.img") never to remove.
    keep: list[str] = []
    # Only these paths (as a dry run's ``removed`` names them), each if it is still
    # removable now: a client removes a plan's files one by one and shows progress.
    only: list[str] | None = None


class GcItem(msgspec.Struct, frozen=True):
    path: str  # relative to the image folder
    bytes: int
    why: str  # unused | quarantined | stale partial


class GcResult(msgspec.Struct, frozen=True):
    dry_run: bool
    removed: list[GcItem]  # what was removed (dry run: what would be)
    kept: list[str]  # unused files the keep list saved
    freed_bytes: int


class PlanItem(msgspec.Struct, frozen=True):
    name: str
    bytes_left: int | None  # None when the catalog gives no size
    url: str
    # Why the window will not fetch it ("": it will): the origin served a file with
    # another sha256 at the last try, and the catalog still names the same url and
    # sha256. Not counted in the plan's total.
    held: str = ""


class PrecachePlan(msgspec.Struct, frozen=True):
    window_cron: str | None  # None: no off-peak window configured
    window_minutes: int
    in_window: bool
    next_start: str | None  # the window now open, else the next
    next_end: str | None
    bandwidth_bytes_s: int  # 0: no cap
    items: list[PlanItem]
    total_bytes: int
