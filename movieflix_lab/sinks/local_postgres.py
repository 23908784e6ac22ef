"""A local PostgreSQL server on a folder and port of our choosing (the demo's and the tests').

Debian's ``postgresql`` package (``make sysdeps`` installs it) provides ``initdb`` and
``pg_ctl``; this runs them on ``home`` — no system service, no root-owned cluster. When the
kit runs as root the server runs as the ``postgres`` user (``initdb`` refuses root). Trust
authentication, listening on 127.0.0.1 only: a lab server, not a production one. As root,
``home``'s parent folders get ``o+x`` (traverse only) so that user can reach it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from movieflix_lab.exceptions import MovieflixError

__all__ = ["LocalPostgres", "postgres_binary"]


def postgres_binary(name: str) -> str:
    """The path of PostgreSQL's ``name`` (``initdb``, ``pg_ctl``...), or a one-line error."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise MovieflixError(
            f"PostgreSQL's {name} not found: install it (apt-get install postgresql, or make "
            "sysdeps as root)"
        )
    return found


class LocalPostgres:
    """``initdb`` on first start, then ``pg_ctl start``/``stop``; database ``movieflix``."""

    def __init__(self, home: Path, port: int, *, user: str = "movieflix") -> None:
        self.home, self.port, self.user = home, port, user
        self.data = home / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/movieflix"

    def _run(self, command: list[str], *, as_server: bool = True) -> None:
        name = Path(command[0]).name
        if as_server and os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise MovieflixError(
                f"{name} failed: {detail[-1] if detail else result.returncode} "
                f"(log: {self.home / 'server.log'})"
            )

    def start(self) -> str:
        """Start the server (creating it on first use); returns its DSN."""
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._reachable()
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._run([postgres_binary("initdb"), "-D", str(self.data), "-U", self.user,
                       "--auth=trust", "-E", "UTF8", "--no-instructions"])  # fmt: skip
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        log = str(self.home / "server.log")
        self._run([postgres_binary("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options,
                   "-w", "-t", "60", "start"])  # fmt: skip
        if fresh:
            self._run([postgres_binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                       "-U", self.user, "movieflix"], as_server=False)  # fmt: skip
        return self.dsn

    def _reachable(self) -> None:
        """As root, the server runs as ``postgres``, which must be able to reach its home:
        each parent gets search permission (again at a stop: a folder such as pytest's
        ``/tmp/pytest-of-root`` may have been closed to others meanwhile)."""
        if os.geteuid() != 0:
            return
        for parent in self.home.parents:
            if parent.stat().st_mode & 0o011 != 0o011 and parent != Path("/"):
                parent.chmod(parent.stat().st_mode | 0o011)

    def stop(self) -> None:
        self._reachable()
        if (self.data / "postmaster.pid").exists():
            self._run([postgres_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                       "stop"])  # fmt: skip
