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


NODE_HELP = "One node of the local cluster (1, 2, …), not all of them."


@broker_app.command("start")
def broker_start(
    nodes: Annotated[int | None, typer.Option(
        "--nodes", min=1, max=9,
        help="Nodes of the local cluster (each a broker and a KRaft controller). With 3, "
        "topics get three replicas and min.insync.replicas=2. Default: as last started, else 1.",
    )] = None,
    node: Annotated[int | None, typer.Option("--node", min=1, help=NODE_HELP)] = None,
) -> None:  # fmt: skip
    """Start the local broker (or cluster); returns once it answers metadata requests."""
    from movieflix_lab.kafka.broker import LocalBroker

    broker = LocalBroker(settings())
    if node is not None:
        if nodes is not None:
            raise typer.BadParameter("give --nodes or --node, not both", param_hint="--node")
        with console.status(f"starting node {node} of the local Kafka cluster…"):
            state = broker.start_node(node)
        console.print(f"node {node} running: pid {state.pid} at [bold]{state.address}[/] "
                      f"(log: {state.log_file})")  # fmt: skip
        return
    what = "cluster" if (nodes or broker.node_count) > 1 else "broker"
    with console.status(f"starting the local Kafka {what}…"):
        status = broker.start(nodes)
    if status.stale_pid_removed:
        console.print("removed a stale pid file (the broker it named was gone)")
    if status.already_running:
        console.print(f"already running: pid {status.pid} at [bold]{status.bootstrap}[/]")
    elif len(status.nodes) > 1:
        console.print(f"Kafka {status.version} running: {len(status.nodes)} nodes at "
                      f"[bold]{status.bootstrap}[/] (logs: {status.home}/node-N/logs)")  # fmt: skip
    else:
        console.print(
            f"Kafka {status.version} running: pid {status.pid} at [bold]{status.bootstrap}[/] "
            f"(log: {status.log_file})"
        )


@broker_app.command("stop")
def broker_stop(
    node: Annotated[int | None, typer.Option("--node", min=1, help=NODE_HELP)] = None,
) -> None:
    """Stop the local broker (every node, or ``--node N``) gracefully and wait for it to exit."""
    from movieflix_lab.kafka.broker import LocalBroker

    broker = LocalBroker(settings())
    if node is not None:
        with console.status(f"stopping node {node}…"):
            stopped = broker.stop_node(node)
        console.print(f"node {node} stopped" if stopped else f"node {node} was not running")
        return
    with console.status("stopping the local Kafka broker…"):
        stopped = broker.stop()
    console.print("stopped" if stopped else "not running")


@broker_app.command("status")
def broker_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show whether the local broker runs, node by node. Exit code 0 when every node runs, 3
    when none does, 4 when some do."""
    import json

    from movieflix_lab.kafka.broker import LocalBroker

    status = LocalBroker(settings()).status()
    code = 0 if status.running else 3 if not status.running_nodes else 4
    if as_json:
        print(json.dumps({
            "running": status.running, "pid": status.pid, "address": status.bootstrap,
            "kafka_version": status.version, "home": str(status.home),
            "log": str(status.log_file), "stale_pid_removed": status.stale_pid_removed,
            "nodes": [{"id": n.node_id, "roles": n.roles, "address": n.address,
                       "controller_address": n.controller_address, "pid": n.pid,
                       "running": n.running, "log": str(n.log_file)} for n in status.nodes],
        }))  # fmt: skip
        if code:
            raise typer.Exit(code)
        return
    if status.stale_pid_removed:
        console.print("removed a stale pid file (the broker it named was gone)")
    table = Table(show_header=False, box=None)
    state = ("[green]running[/]" if status.running else
             "[yellow]stopped[/]" if not status.running_nodes else
             f"[yellow]{status.running_nodes} of {len(status.nodes)} nodes running[/]")  # fmt: skip
    table.add_row("state", state)
    if len(status.nodes) == 1:
        table.add_row("pid", str(status.pid) if status.pid else "-")
    table.add_row("address", status.bootstrap)
    table.add_row("kafka version", status.version or "jars not fetched (make kafka)")
    table.add_row("home", str(status.home))
    if len(status.nodes) == 1:
        table.add_row("log", str(status.log_file))
    console.print(table)
    if len(status.nodes) > 1:
        nodes = Table("node", "roles", "address", "controller", "pid", "state", box=None)
        for n in status.nodes:
            nodes.add_row(str(n.node_id), n.roles, n.address, n.controller_address,
                          str(n.pid) if n.pid else "-",
                          "[green]running[/]" if n.running else "[yellow]stopped[/]")  # fmt: skip
        console.print(nodes)
    if code:
        raise typer.Exit(code)


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
