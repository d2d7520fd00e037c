"""Logging for journald when systemd runs us, with timestamps otherwise."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

# syslog priorities (RFC 5424) for the logging levels; journald reads them from a
# "<N>" at the start of each line of a stream when the unit keeps the default
# SyslogLevelPrefix=yes. A level between two of these takes the lower one's.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald files a record of ``levelno`` under."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


def stream_is_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Whether ``stream`` is the journal stream systemd connected us to.

    systemd.exec(5): JOURNAL_STREAM holds "device:inode" of the stream it gave as
    stdout/stderr. Children inherit the variable even when their stderr goes
    elsewhere (a shell's ``2>file``, a pipe), so compare it with the stream itself.
    """
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):  # no file behind the stream, or no such variable
        return False


class _ContextFormatter(logging.Formatter):
    """Appends structured fields (vm, gpu, tenant) given through ``extra=``."""

    FIELDS = ("vm", "gpu", "tenant")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{k}={getattr(record, k)}" for k in self.FIELDS if hasattr(record, k)]
        return f"{text} [{' '.join(extras)}]" if extras else text


class _JournalFormatter(_ContextFormatter):
    """One record, one journal entry at the record's priority.

    journald's stream protocol makes each line an entry of its own and reads "<N>"
    only at the start of that line. A traceback written as lines would become a row
    of entries, all but the first at the unit's default priority (info): hidden from
    ``journalctl -p err`` and, with several worker processes on one stream, open to
    interleaving. Prefixing every line would keep the priority but still split the
    record. So newlines are written as the two characters "\\n": the record stays one
    entry whose every part has its priority. (Only the native journal protocol carries
    real newlines; it needs a socket of its own and is not worth it for tracebacks.)
    """

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r", "\\r").replace("\n", "\\n")
        return f"<{syslog_priority(record.levelno)}>{text}"


def setup_logging(
    level: str = "INFO", *, stream: TextIO | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Log to ``stream`` (stderr): for journald when it is the journal's stream,
    which stamps each entry itself; with a timestamp otherwise."""
    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    formatter: logging.Formatter
    if stream_is_journal(stream, env):
        formatter = _JournalFormatter("%(levelname)s %(name)s: %(message)s")
    else:
        formatter = _ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines would drown the log of a node that is polled a lot.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the agent polls the appliance each second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
