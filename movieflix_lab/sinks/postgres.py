"""Window results and watch-history rows in PostgreSQL, written idempotently.

Set ``MOVIEFLIX_POSTGRES_DSN`` and the stream apps also write here. Each table has a primary
key (a window's key, or a viewing's event id) and every batch is an upsert on it
(``INSERT ... ON CONFLICT (key) DO UPDATE``), in one transaction per batch, so a replay or an
at-least-once redelivery rewrites rows instead of adding them.

Quix calls :meth:`PostgresSink.write` at each checkpoint with one topic partition's batch,
before it commits the input offsets: a crash in between re-delivers the batch, which the
upsert absorbs. A batch that cannot be written (the server is down) raises
:class:`~quixstreams.sinks.SinkBackpressureError`: Quix pauses, rewinds and retries it,
and commits nothing meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

__all__ = ["TABLES", "PostgresSink", "TableSpec", "create_tables", "watch_row"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns (name → SQL type) and the primary key an upsert lands on."""

    name: str
    columns: Mapping[str, str]
    key: tuple[str, ...]

    def ddl(self) -> sql.Composed:
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in self.columns.items()
        ]
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            sql.Identifier(self.name),
            sql.SQL(", ").join(columns),
            sql.SQL(", ").join(map(sql.Identifier, self.key)),
        )

    def upsert(self) -> sql.Composed:
        names = list(self.columns)
        updates = [n for n in names if n not in self.key]
        return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.Identifier(self.name),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
            sql.SQL(", ").join(map(sql.Identifier, self.key)),
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in updates
            ),
        )


_WINDOW = {"window_start": "timestamptz NOT NULL", "window_start_ms": "bigint NOT NULL",
           "window_ms": "bigint NOT NULL"}  # fmt: skip

#: The tables, by the stream output that fills them.
TABLES: dict[str, TableSpec] = {
    "genre_watch_time": TableSpec(
        "genre_watch_time",
        {
            "genre": "text NOT NULL",
            **_WINDOW,
            "window_end": "timestamptz NOT NULL",
            "hop_ms": "bigint NOT NULL",
            "count": "bigint NOT NULL",
            "sum_seconds": "double precision NOT NULL",
            "mean_seconds": "double precision",
        },
        ("genre", "window_start_ms", "window_ms", "hop_ms"),
    ),
    "search_volume_user": TableSpec(
        "search_volume_user",
        {"user_id": "text NOT NULL", **_WINDOW, "count": "bigint NOT NULL"},
        ("user_id", "window_start_ms", "window_ms"),
    ),
    "search_volume_total": TableSpec(
        "search_volume_total",
        {
            **_WINDOW,
            "count": "bigint NOT NULL",
            "distinct_queries": "bigint NOT NULL",
            "top_queries": "jsonb NOT NULL",
        },
        ("window_start_ms", "window_ms"),
    ),
    "watch_history": TableSpec(
        "watch_history",
        {
            "event_id": "uuid NOT NULL",
            "user_id": "text NOT NULL",
            "movie_id": "text NOT NULL",
            "genre": "text NOT NULL",
            "started_at": "timestamptz NOT NULL",
            "ended_at": "timestamptz NOT NULL",
            "seconds_watched": "double precision NOT NULL",
            "movie_duration_s": "double precision NOT NULL",
            "completion_ratio": "double precision NOT NULL",
            "session_id": "text NOT NULL",
            "device_id": "text NOT NULL",
        },
        ("event_id",),
    ),
}


#: The advisory lock ``create_tables`` holds (any fixed number; this one spells "mflx").
SCHEMA_LOCK = 0x6D666C78


def create_tables(dsn: str, tables: Iterable[TableSpec] | None = None) -> None:
    """Create the tables that do not exist yet (idempotent).

    In one transaction under an advisory lock: two instances starting together would
    otherwise both run ``CREATE TABLE IF NOT EXISTS`` and one fail on the catalog's unique
    index (PostgreSQL checks "not exists" before it takes the name)."""
    with psycopg.connect(dsn) as connection, connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for table in tables if tables is not None else TABLES.values():
            connection.execute(table.ddl())


def _row(table: TableSpec, value: Mapping[str, Any]) -> list[Any]:
    row = []
    for name, kind in table.columns.items():
        item = value.get(name)
        row.append(Jsonb(item) if kind.startswith("jsonb") and item is not None else item)
    return row


def watch_row(value: Any) -> dict[str, Any]:
    """A watch-history record (a WatchRecord or its dict) as a ``watch_history`` row."""
    data = value.model_dump(mode="json") if hasattr(value, "model_dump") else dict(value)
    return {**data, "ended_at": data["timestamp"]}


class PostgresSink(BatchingSink):
    """Upserts each checkpoint's batch into ``table``; one transaction per batch."""

    def __init__(self, dsn: str, table: TableSpec, *, retry_after: float = 5.0) -> None:
        super().__init__()
        self.dsn = dsn
        self.table = table
        self.retry_after = retry_after
        self.rows_written = 0
        self._statement = table.upsert()
        self._connection: psycopg.Connection[Any] | None = None

    def setup(self) -> None:
        create_tables(self.dsn, [self.table])

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.dsn)
        return self._connection

    def write(self, batch: SinkBatch) -> None:
        rows = [_row(self.table, item.value) for item in batch]
        if not rows:
            return
        try:
            connection = self._connect()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(self._statement, rows)
        except psycopg.OperationalError as exc:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            logger.warning("PostgreSQL unavailable (%s): retrying in %ss", exc, self.retry_after)
            raise SinkBackpressureError(retry_after=self.retry_after) from exc
        self.rows_written += len(rows)
