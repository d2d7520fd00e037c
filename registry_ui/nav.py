"""The registry UI's navigation: one entry per page, in the order an operator works.

A page added later takes its place here and in app.PAGES, nothing else.
"""

from __future__ import annotations

NAV: tuple[tuple[str, str, str], ...] = (
    ("overview", "Fleet", "/"),
    ("sites", "Sites", "/sites"),
    ("documents", "Documents", "/documents"),
    ("rollouts", "Rollouts", "/rollouts"),
    ("enroll", "Enrollment", "/enroll"),
)

# Status colours (Quasar names), one meaning everywhere: green answers, grey never did.
STATUS_COLOURS = {
    "online": "positive",
    "stale": "warning",
    "offline": "negative",
    "pending": "grey-7",
}

BANNER_CLASSES = {
    "ok": "hidden",
    "down": "w-full px-4 py-2 text-sm bg-red-1 text-red-10",
}
