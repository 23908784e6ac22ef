"""``movieflix-lab topics`` and ``lag``: the topic catalog on the cluster, consumer lag."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
    topics_app,
)
from movieflix_lab.cli.render import (
    print_topic_reports,
)
from movieflix_lab.exceptions import MovieflixError

# --- topics ---------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    alter: Annotated[
        bool,
        typer.Option(help="Bring differing topics in line: set configs, add partitions."),
    ] = False,
) -> None:
    """Create the catalog's topics (idempotent); report what differs on the cluster."""
    from movieflix_lab.kafka.catalog import create_topics
    from movieflix_lab.kafka.client import wait_until_reachable

    s = settings()
    wait_until_reachable(s)
    reports = create_topics(s, alter=alter)
    print_topic_reports(reports)
    if any(report.status == "differs" for report in reports):
        console.print("some topics differ from the catalog: `topics create --alter` aligns them")


def _format_retention(ms: int | None, cleanup_policy: str) -> str:
    if "delete" not in cleanup_policy:
        return "compacted"
    if ms is None or ms < 0:
        return "forever"
    hours = ms / 3_600_000
    return f"{hours / 24:g} d" if hours >= 24 else f"{hours:g} h"


@topics_app.command("describe")
def topics_describe(
    internal: Annotated[bool, typer.Option(help="Include internal topics (__*).")] = False,
) -> None:
    """Print every topic: partitions, cleanup policy, retention, message count."""
    from movieflix_lab.kafka.catalog import describe_topics
    from movieflix_lab.kafka.client import wait_until_reachable

    s = settings()
    wait_until_reachable(s)
    table = Table(title=f"topics on {s.bootstrap_servers}")
    for column in ("topic", "partitions", "replicas", "cleanup", "retention", "messages"):
        table.add_column(column, justify="left" if column in ("topic", "cleanup") else "right")
    for d in describe_topics(s, include_internal=internal):
        name = d.name if d.in_catalog else f"[dim]{d.name}[/]"
        table.add_row(
            name,
            str(d.partitions),
            str(d.replication_factor),
            d.cleanup_policy,
            _format_retention(d.retention_ms, d.cleanup_policy),
            f"{d.messages:,}",
        )
    console.print(table)


@app.command("lag")
def lag(
    group: Annotated[
        list[str] | None, typer.Option(help="Consumer group (repeat); default movieflix-*.")
    ] = None,
    max_lag: Annotated[
        int | None, typer.Option(min=0, help="Exit 1 when any partition lags more.")
    ] = None,
) -> None:
    """Consumer lag per group, topic and partition (committed vs log-end offset)."""
    from movieflix_lab.kafka.client import wait_until_reachable
    from movieflix_lab.kafka.lag import consumer_lag

    s = settings()
    wait_until_reachable(s)
    rows = consumer_lag(s, group)
    table = Table(title=f"consumer lag on {s.bootstrap_servers}")
    for column in ("group", "topic", "partition", "committed", "log end", "lag"):
        table.add_column(column, justify="left" if column in ("group", "topic") else "right")
    for row in rows:
        committed = "-" if row.committed is None else f"{row.committed:,}"
        style = "red" if max_lag is not None and row.lag > max_lag else ""
        table.add_row(
            row.group, row.topic, str(row.partition), committed, f"{row.end:,}",
            f"[{style}]{row.lag:,}[/]" if style else f"{row.lag:,}",
        )  # fmt: skip
    console.print(table if rows else "no consumer groups with committed offsets")
    worst = max((row.lag for row in rows), default=0)
    if max_lag is not None and worst > max_lag:
        raise MovieflixError(f"lag {worst:,} is above --max-lag {max_lag:,}")
