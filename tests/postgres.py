"""A real PostgreSQL server for tests: Debian's package, a throwaway cluster in a temporary directory.

Nothing is installed here (`make test` installs the `postgresql` package, as it does chromium). The
cluster trusts local TCP connections on 127.0.0.1 and a free port; each test gets a fresh database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl (Debian keeps them out of PATH), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates and (found := shutil.which("initdb")):
        candidates = [found]
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Nothing here waits forever: each server command, connection and statement has a bound.
COMMAND_TIMEOUT = 120  # initdb, pg_ctl start (which itself waits up to -t seconds) and stop
CONNECT_TIMEOUT = 10
# The server's own bounds for every session, tests and product code alike: a lock held by a stuck
# process, or a statement that never ends, fails with an error instead of hanging the suite.
SESSION_LIMITS = "-c lock_timeout=60s -c statement_timeout=120s -c idle_in_transaction_session_timeout=300s"


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the package's `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Server:
    def __init__(self) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql; `make test` does it).")
        # Its own directory under /tmp: pytest's temporary directories are private to the test user, and
        # the server may run as another user.
        root = self.root = Path(tempfile.mkdtemp(prefix="rashomon-postgres-"))
        self.data, self.log, self.port = root / "data", root / "server.log", _free_port()
        self.pg_ctl = str(binaries / "pg_ctl")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(self.data), "-U", "postgres",
                                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True, timeout=COMMAND_TIMEOUT)
        subprocess.run(_as_server_user([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "90",
                                        "-o", f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                                        f"-c max_connections=200 {SESSION_LIMITS}", "start"]),
                       check=True, capture_output=True, timeout=COMMAND_TIMEOUT)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=CONNECT_TIMEOUT) as connection:
            connection.execute(statement)

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run(_as_server_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=COMMAND_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)
