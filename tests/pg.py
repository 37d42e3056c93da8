"""A throwaway PostgreSQL server for the tests and the benchmarks: `initdb` in a temp folder,
started on a unix socket in that folder (no TCP port, nothing shared with the machine's own
server), stopped and deleted at the end.

    with pg.server() as server:          # pg.Unavailable when there is no server binary
        url = server.new_database()      # postgresql+psycopg://... of an empty database

initdb refuses to run as root, so as root (containers, some CI) the server runs as the
`postgres` system user (through `runuser`, else `su`). The binaries are found on PATH, then
in /usr/lib/postgresql/<newest>/bin; LEADML_PG_BIN names another folder. The server's time
zone is deliberately not UTC (Pacific/Auckland), so a test that expects UTC back proves the
store converts rather than relying on the server's zone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql-15; macOS: brew install "
    "postgresql@15) or set LEADML_PG_BIN to the folder holding initdb and pg_ctl"
)
USER = "leadml"  # the database superuser initdb creates (trust auth, socket only)


class Unavailable(RuntimeError):
    """No server binary (or no user to run it as) here; the message says what to install.
    A server that is there but fails to start raises RuntimeError instead: not a skip."""


def bin_dir() -> Path:
    """The folder of initdb and pg_ctl: LEADML_PG_BIN, PATH, or the newest Debian install."""
    if given := os.environ.get("LEADML_PG_BIN"):
        candidates = [Path(given)]
    else:
        on_path = shutil.which("pg_ctl")
        debian = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
            reverse=True,
        )
        candidates = [Path(on_path).resolve().parent] if on_path else []
        candidates += debian
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    tried = ", ".join(str(c) for c in candidates) or "nothing on PATH or in /usr/lib/postgresql"
    raise Unavailable(f"no initdb and pg_ctl in {tried}: {INSTALL_HINT}")


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server's commands unprivileged, and that user (None:
    ourselves)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable(
            "running as root and there is no 'postgres' user to run the server as "
            "(initdb refuses root): run the tests as another user, or create one "
            "(useradd --system postgres)"
        ) from None
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", "postgres", "--"], "postgres"
    return ["su", "-s", "/bin/sh", "postgres", "-c"], "postgres"


@dataclass
class Server:
    """A running throwaway server: its folder (data, socket, log) and how to reach it."""

    folder: Path
    prefix: list[str]
    bin: Path
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@/{database}?host={self.folder}"

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database (named in order: db1, db2, ... unless given); its URL."""
        import psycopg

        name = name or f"db{next(self._names)}"
        with psycopg.connect(host=str(self.folder), user=USER, dbname="postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        """A server command (initdb, pg_ctl) as the server's user; its output kept for errors."""
        args = [str(self.bin / cmd[0]), *cmd[1:]]
        if self.prefix and self.prefix[0] == "su":
            args = [shlex.join(args)]
        return subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )


@contextlib.contextmanager
def server(durable: bool = False) -> Iterator[Server]:
    """Start a throwaway server; stop it and delete its folder afterwards. `durable=False`
    (tests) turns fsync off; the benchmark keeps it on, as a real server would."""
    binaries = bin_dir()
    prefix, user = _as_user()
    # under the system temp folder, not pytest's (root's 0700 folders would lock the server
    # user out), and short: a unix socket path has ~100 characters at most
    folder = Path(tempfile.mkdtemp(prefix="leadml-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    srv = Server(folder, prefix, binaries)
    data = folder / "data"
    try:
        _check(srv.run("initdb", "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8",
                       "--no-locale", "-N"), "initdb")  # fmt: skip
        options = f"-k {folder} -c listen_addresses='' -c timezone=Pacific/Auckland"
        if not durable:
            options += " -F"
        log = folder / "server.log"
        done = srv.run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        _check(done, "pg_ctl start", log)
        try:
            yield srv
        finally:
            srv.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check(done: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")
