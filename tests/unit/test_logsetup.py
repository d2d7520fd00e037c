"""Logging: syslog priority prefixes when stderr is the journal, timestamps otherwise."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from towerbox_core.logsetup import setup_logging, stream_is_journal, syslog_priority


def _pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__ == "_pytest.logging"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # pytest adds its capture handlers for each phase of a test and removes them after;
    # the rest of the root logger's state is put back as it was.
    root = logging.getLogger()
    kept = [h for h in root.handlers if not _pytests(h)]
    level = root.level
    quiet = {n: logging.getLogger(n).level for n in ("uvicorn.access", "apscheduler", "httpx")}
    yield
    for handler in root.handlers[:]:
        if not _pytests(handler) and handler not in kept:
            root.removeHandler(handler)
            handler.close()
    for handler in kept:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "stderr").open("w", encoding="utf-8") as file:
        yield file


def _journal_of(stream: TextIO) -> dict[str, str]:
    stat = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}


def _lines(stream: TextIO) -> list[str]:
    stream.flush()
    return Path(stream.name).read_text(encoding="utf-8").splitlines()


def _broken(text: str) -> None:
    raise ValueError(text)


def test_levels_map_to_syslog_priorities() -> None:
    assert [syslog_priority(n) for n in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    assert [syslog_priority(n) for n in (5, 25, 45, 60)] == [7, 6, 3, 2]


def test_the_journal_gets_a_priority_prefix_and_no_timestamp(stream: TextIO) -> None:
    setup_logging("debug", stream=stream, env=_journal_of(stream))
    log = logging.getLogger("towerbox.test")
    log.debug("polling")
    log.info("VM started", extra={"vm": "vm-1", "tenant": "acme"})
    log.warning("slow")
    log.error("failed")
    log.critical("gone")
    assert _lines(stream) == [
        "<7>DEBUG towerbox.test: polling",
        "<6>INFO towerbox.test: VM started [vm=vm-1 tenant=acme]",
        "<4>WARNING towerbox.test: slow",
        "<3>ERROR towerbox.test: failed",
        "<2>CRITICAL towerbox.test: gone",
    ]


def test_a_traceback_stays_one_journal_entry(stream: TextIO) -> None:
    setup_logging(stream=stream, env=_journal_of(stream))
    try:
        _broken("bad\nvalue")
    except ValueError:
        logging.getLogger("towerbox.test").exception("apply failed", extra={"gpu": "GPU-1"})
    (line,) = _lines(stream)
    assert line.startswith("<3>ERROR towerbox.test: apply failed\\nTraceback (most recent")
    assert "\\n    raise ValueError(text)\\n" in line
    assert line.endswith("ValueError: bad\\nvalue [gpu=GPU-1]")


@pytest.mark.parametrize("journal", [None, "1:2", "junk", ""])
def test_elsewhere_lines_carry_a_timestamp_and_no_prefix(
    stream: TextIO, journal: str | None
) -> None:
    env = {} if journal is None else {"JOURNAL_STREAM": journal}
    setup_logging(stream=stream, env=env)
    try:
        _broken("bad")
    except ValueError:
        logging.getLogger("towerbox.test").exception("apply failed")
    lines = _lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d [\d:,]+ ERROR towerbox.test: apply failed", lines[0])
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad"


def test_the_journal_is_told_by_the_stream_not_the_variable(stream: TextIO, tmp_path: Path) -> None:
    # A child of a systemd service inherits JOURNAL_STREAM with its stderr redirected.
    assert stream_is_journal(stream, _journal_of(stream))
    with (tmp_path / "other").open("w", encoding="utf-8") as other:
        assert not stream_is_journal(other, _journal_of(stream))
    assert not stream_is_journal(stream, {})
    assert not stream_is_journal(stream, {"JOURNAL_STREAM": "a:b"})


def test_setup_replaces_handlers_and_quiets_chatty_loggers(stream: TextIO) -> None:
    setup_logging("warning", stream=stream, env={})
    setup_logging("warning", stream=stream, env={})
    root = logging.getLogger()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is stream
    assert root.level == logging.WARNING
    assert logging.getLogger("httpx").level == logging.WARNING
