"""A private PostgreSQL server for tests and benches: Debian's binaries, run as postgres.

initdb into a fresh folder under /tmp (owned by postgres, which cannot enter pytest's
root-only temp dirs), pg_ctl start on a free port with the unix socket in the same
folder, and stop plus remove on the way out, also when the test failed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import free_port


class PostgresUnavailable(RuntimeError):
    """Debian's PostgreSQL server binaries (or the postgres user) are not installed."""


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major)
    if not found:
        raise PostgresUnavailable("no /usr/lib/postgresql/*/bin/pg_ctl; apt-get install postgresql")
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("runuser is missing")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError as err:
        raise PostgresUnavailable("no postgres user") from err
    return Path(found[-1]).parent


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


@dataclass(frozen=True)
class PostgresServer:
    port: int
    root: Path
    bindir: Path
    settings: str  # the server options it was started with

    def restart(self, down_s: float) -> None:
        """Stop the server as an operator's restart does (fast: connections are cut),
        leave it down ``down_s`` seconds, and start it again on the same port."""
        _pg_ctl(self.bindir, self.root, "-m", "fast", "stop")
        time.sleep(down_s)
        _pg_ctl(self.bindir, self.root, "-o", self.settings, "start")

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def create_socket_database(self, prefix: str = "t") -> str:
        """A new empty database reached through the server's unix socket, as from
        another network namespace, where 127.0.0.1 is not this host's; its URL."""
        dbname = self.create_database(prefix).rsplit("/", 1)[1]
        return f"postgresql://postgres@:{self.port}/{dbname}?host={self.root}"


def _as_postgres(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
    )


@contextmanager
def postgres_server(durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throwaway cluster. durable=False turns off fsync: for tests only."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="towerbox-pg-"))
    shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    data = root / "data"
    port = free_port()
    init = _as_postgres(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-locale",
        ]
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr}")
    settings = [
        f"-p {port}",
        f"-k {root}",
        "-c listen_addresses=127.0.0.1",
        "-c max_connections=200",
        "-c shared_buffers=128MB",
    ]
    if durable:
        # Commits reach the WAL within 200 ms: the durability class of SQLite's WAL
        # with synchronous=NORMAL, which the registry uses there.
        settings.append("-c synchronous_commit=off")
    else:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    try:
        _pg_ctl(bindir, root, "-o", " ".join(settings), "start")
        yield PostgresServer(port=port, root=root, bindir=bindir, settings=" ".join(settings))
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _pg_ctl(bindir: Path, root: Path, *args: str) -> None:
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log")]
    done = _as_postgres([*pg_ctl, "-w", "-t", "60", *args])
    if done.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl {args[-1]} failed: {done.stderr}\n{log[-2000:]}")
