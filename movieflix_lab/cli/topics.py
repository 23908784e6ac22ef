"""``movieflix-lab topics`` and ``lag``: the topic catalog on the cluster, consumer lag."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
    topics_app,
)
from movieflix_lab.cli.render import (
    Listing,
    print_json,
    print_listing,
    print_topic_reports,
    step_bar,
)
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.lag_status import Status

# --- topics ---------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    alter: Annotated[
        bool,
        typer.Option(help="Bring differing topics in line: set configs, add partitions."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Create the catalog's topics (idempotent); report what differs on the cluster."""
    from movieflix_lab.kafka.catalog import create_topics
    from movieflix_lab.kafka.client import wait_until_reachable

    s = settings()
    wait_until_reachable(s)
    reports = create_topics(s, alter=alter)
    if as_json:
        print_json(reports)
        return
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
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Print every topic: partitions, cleanup policy, retention, message count."""
    from movieflix_lab.kafka.catalog import describe_topics
    from movieflix_lab.kafka.client import wait_until_reachable

    s = settings()
    wait_until_reachable(s)
    topics = describe_topics(s, include_internal=internal)
    if as_json:
        print_json(topics)
        return
    rows: list[Sequence[str]] = [
        (d.name, str(d.partitions), str(d.replication_factor), d.cleanup_policy,
         _format_retention(d.retention_ms, d.cleanup_policy), f"{d.messages:,}",
         "yes" if d.in_catalog else "[dim]no[/]")
        for d in topics
    ]  # fmt: skip
    values = ("partitions", "replicas", "cleanup", "retention", "messages", "catalog")
    print_listing(
        Listing(f"topics on {s.bootstrap_servers}", ("topic",), values, rows,
                numeric=frozenset({"partitions", "replicas", "messages"}))
    )  # fmt: skip


# --- lag ------------------------------------------------------------------------------

_STATUS_COLORS = {"OK": "green", "WARN": "yellow"}


def _status(status: Status) -> str:
    return f"[{_STATUS_COLORS.get(status.value, 'bold red')}]{status.value}[/]"


def _trend(lags: Sequence[int]) -> str:
    """The lag from the first sample to the last: ``40 → 66 ↑``."""
    if not lags:
        return "-"
    first, last = lags[0], lags[-1]
    arrow = "↑" if last > first else "↓" if last < first else "="
    return f"{first:,} → {last:,} {arrow}"


@app.command("lag")
def lag(
    group: Annotated[
        list[str] | None, typer.Option(help="Consumer group (repeat); default movieflix-*.")
    ] = None,
    max_lag: Annotated[
        int | None, typer.Option(min=0, help="Exit 1 when any partition lags more.")
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(help="Sample over --window and give each partition Burrow's status."),
    ] = False,
    window: Annotated[float, typer.Option(min=0.0, help="With --watch: seconds to sample.")] = 30.0,
    interval: Annotated[
        float, typer.Option(min=0.1, help="With --watch: seconds between samples.")
    ] = 5.0,
    check: Annotated[
        bool, typer.Option(help="Watch, and exit 1 unless every group is OK.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Consumer lag per group, topic and partition (committed vs log-end offset).

    With --watch: samples every --interval seconds for --window seconds, reading the groups'
    commits meanwhile, and gives each partition Burrow's status (OK, WARN, STOP, STALL,
    REWIND) and each group OK, WARN or ERR.
    """
    from movieflix_lab.kafka.client import wait_until_reachable
    from movieflix_lab.kafka.lag import consumer_lag, sample_count, watch_lag

    s = settings()
    wait_until_reachable(s)
    if not (watch or check):
        rows = consumer_lag(s, group)
        if as_json:
            print_json(rows)
        elif rows:
            print_listing(
                Listing(f"consumer lag on {s.bootstrap_servers}", ("group", "topic"),
                        ("partition", "committed", "log end", "lag"),
                        [(r.group, r.topic, str(r.partition), _offset(r.committed),
                          f"{r.end:,}", _lag(r.lag, max_lag)) for r in rows],
                        numeric=frozenset({"partition", "committed", "log end", "lag"}))
            )  # fmt: skip
        else:
            console.print("no consumer groups with committed offsets")
        _check_max_lag([r.lag for r in rows], max_lag)
        return
    with step_bar(to_stderr=True) as bar:
        task = bar.add_task(f"sampling lag every {interval:g} s for {window:g} s",
                            total=sample_count(window, interval))  # fmt: skip
        result = watch_lag(
            s, group, window=window, interval=interval,
            progress=lambda done, _: bar.update(task, completed=done),
        )  # fmt: skip
    if as_json:
        print_json(result)
    elif result.groups:
        title = (f"consumer lag on {s.bootstrap_servers}: {len(result.sampled_at)} samples over "
                 f"{result.sampled_at[-1] - result.sampled_at[0]:.0f} s")  # fmt: skip
        parts = result.partitions
        print_listing(
            Listing(title, ("group", "topic"),
                    ("partition", "committed", "log end", "lag", "status", "lag trend"),
                    [(p.group, p.topic, str(p.partition), _offset(p.committed), f"{p.end:,}",
                      _lag(p.lag, max_lag), _status(p.status), _trend(p.lags)) for p in parts],
                    numeric=frozenset({"partition", "committed", "log end", "lag"}))
        )  # fmt: skip
        print_listing(
            Listing("consumer groups (Burrow's evaluation)", ("group",),
                    ("status", "lag", "partitions", "not OK"),
                    [(g.group, _status(g.status), f"{g.lag:,}", str(len(g.partitions)),
                      ", ".join(f"{p.topic}[{p.partition}] {p.status.value}"
                                for p in g.partitions if p.status is not Status.OK) or "-")
                     for g in result.groups],
                    numeric=frozenset({"lag", "partitions"}))
        )  # fmt: skip
    else:
        console.print("no consumer groups with committed offsets")
    _check_max_lag([p.lag for p in result.partitions], max_lag)
    if check:
        found = {g.group for g in result.groups}
        problems = [g.describe() for g in result.not_ok()]
        missing = [name for name in group or [] if name not in found]
        problems += [f"{name} has no committed offsets" for name in missing]
        if problems:
            raise MovieflixError("not OK: " + "; ".join(problems))


def _offset(committed: int | None) -> str:
    return "-" if committed is None else f"{committed:,}"


def _lag(value: int, max_lag: int | None) -> str:
    return f"[red]{value:,}[/]" if max_lag is not None and value > max_lag else f"{value:,}"


def _check_max_lag(lags: list[int], max_lag: int | None) -> None:
    worst = max(lags, default=0)
    if max_lag is not None and worst > max_lag:
        raise MovieflixError(f"lag {worst:,} is above --max-lag {max_lag:,}")
