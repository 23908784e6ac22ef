"""A real PostgreSQL server (Debian's ``postgresql`` package) on a temporary folder and port.

``make test`` installs the package when it is missing (``make sysdeps``); the server is the
kit's own :class:`~movieflix_lab.sinks.local_postgres.LocalPostgres`, stopped at the end of
the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from movieflix_lab.sinks.local_postgres import LocalPostgres
from tests.fixtures import free_port


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN of a fresh PostgreSQL server's empty ``movieflix`` database."""
    server = LocalPostgres(tmp_path_factory.mktemp("postgres"), free_port())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def fresh_database(postgres: str) -> str:
    """The DSN of a new, empty database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"
