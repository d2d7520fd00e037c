"""Logging for journald when systemd runs us, with timestamps otherwise."""

from __future__ import annotations

import logging
import os
import sys


class _ContextFormatter(logging.Formatter):
    """Appends structured fields (vm, gpu, tenant) given through ``extra=``."""

    FIELDS = ("vm", "gpu", "tenant")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{k}={getattr(record, k)}" for k in self.FIELDS if hasattr(record, k)]
        return f"{text} [{' '.join(extras)}]" if extras else text


def setup_logging(level: str = "INFO") -> None:
    # journald stamps each line itself and reads <N> priority prefixes.
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_journald
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ContextFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines would drown the log of a node that is polled a lot.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the agent polls the appliance each second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
