"""``movieflix-lab broker``: the local Kafka broker."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from movieflix_lab.cli.app import (
    broker_app,
    console,
    settings,
)

# --- broker ---------------------------------------------------------------------------


@broker_app.command("start")
def broker_start() -> None:
    """Start the local broker; returns once it answers metadata requests."""
    from movieflix_lab.kafka.broker import LocalBroker

    with console.status("starting the local Kafka broker…"):
        status = LocalBroker(settings()).start()
    if status.stale_pid_removed:
        console.print("removed a stale pid file (the broker it named was gone)")
    if status.already_running:
        console.print(f"already running: pid {status.pid} at [bold]{status.bootstrap}[/]")
    else:
        console.print(
            f"Kafka {status.version} running: pid {status.pid} at [bold]{status.bootstrap}[/] "
            f"(log: {status.log_file})"
        )


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker gracefully and wait for it to exit."""
    from movieflix_lab.kafka.broker import LocalBroker

    with console.status("stopping the local Kafka broker…"):
        stopped = LocalBroker(settings()).stop()
    console.print("stopped" if stopped else "not running")


@broker_app.command("status")
def broker_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show whether the local broker runs. Exit code 0 when running, 3 when stopped."""
    import json

    from movieflix_lab.kafka.broker import LocalBroker

    status = LocalBroker(settings()).status()
    if as_json:
        print(json.dumps({
            "running": status.running, "pid": status.pid, "address": status.bootstrap,
            "kafka_version": status.version, "home": str(status.home),
            "log": str(status.log_file), "stale_pid_removed": status.stale_pid_removed,
        }))  # fmt: skip
        if not status.running:
            raise typer.Exit(3)
        return
    if status.stale_pid_removed:
        console.print("removed a stale pid file (the broker it named was gone)")
    table = Table(show_header=False, box=None)
    table.add_row("state", "[green]running[/]" if status.running else "[yellow]stopped[/]")
    table.add_row("pid", str(status.pid) if status.pid else "-")
    table.add_row("address", status.bootstrap)
    table.add_row("kafka version", status.version or "jars not fetched (make kafka)")
    table.add_row("home", str(status.home))
    table.add_row("log", str(status.log_file))
    console.print(table)
    if not status.running:
        raise typer.Exit(3)


@broker_app.command("fetch")
def broker_fetch(
    force: Annotated[bool, typer.Option(help="Fetch again even when present.")] = False,
) -> None:
    """Fetch the broker jars from Maven Central (idempotent)."""
    from movieflix_lab.kafka.broker import fetch_kafka_libs, kafka_version

    with console.status("fetching the Kafka jars with Maven…"):
        libs, fetched = fetch_kafka_libs(settings(), force=force)
    state = "fetched" if fetched else "already present"
    console.print(f"Kafka {kafka_version(libs)} jars {state} in {libs}")
