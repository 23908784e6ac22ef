"""``movieflix-lab stream`` and ``serve``: the stream apps and the HTTP serve app."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

import typer

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
)

# --- stream apps ----------------------------------------------------------------------


class Guarantee(StrEnum):
    at_least_once = "at-least-once"
    exactly_once = "exactly-once"


@app.command("stream")
def stream(
    name: Annotated[
        str, typer.Argument(help="analytics, fraud, recs, or all (one process per app).")
    ],
    timeout: Annotated[
        float,
        typer.Option(
            min=0, help="Stop once caught up and this many seconds pass without new messages."
        ),
    ] = 0.0,
    guarantee: Annotated[
        Guarantee, typer.Option(help="Processing guarantee.")
    ] = Guarantee.at_least_once,
    instance: Annotated[
        str, typer.Option(help="Instance name: its own state folder; same consumer group.")
    ] = "0",
    grace: Annotated[
        float,
        typer.Option(min=0, help="Window grace period, seconds (a replay needs its span)."),
    ] = 300.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65533,
            help="Serve Prometheus /metrics on this port (0: none); with `all`, the first of"
            " three. Default: MOVIEFLIX_STREAM_METRICS_PORT (9470) plus the app's place.",
        ),
    ] = None,
) -> None:
    """Run a stream app (Quix Streams) until Ctrl-C, or until --timeout of quiet."""

    from movieflix_lab.jobs.processes import run_together
    from movieflix_lab.jobs.stream import run_stream
    from movieflix_lab.kafka.client import wait_until_reachable
    from movieflix_lab.streams.runner import APPS

    if name == "all":  # each app prints where its metrics are
        args = ["--timeout", str(timeout), "--guarantee", guarantee.value, "--grace", str(grace)]
        commands = {}
        for place, app in enumerate(APPS):
            ports = [] if metrics_port is None else [
                "--metrics-port", str(metrics_port + place if metrics_port else 0)
            ]  # fmt: skip
            commands[app] = ["stream", app, *args, "--instance", instance, *ports]
        run_together(commands, say=console.print)
        return
    if name not in APPS:
        raise typer.BadParameter(f"unknown app {name!r}; known: {', '.join(APPS)}, all")
    s = settings()
    wait_until_reachable(s)
    console.print(f"stream app [bold]{name}[/] ({guarantee.value}, instance {instance})")
    run = run_stream(
        s, name, timeout=timeout, guarantee=guarantee.value, instance=instance,
        grace=timedelta(seconds=grace), metrics_port=metrics_port, say=console.print,
    )  # fmt: skip
    summary = run.summary
    left = f", {summary.outstanding:,} records left to read" if summary.outstanding else ""
    replayed = (
        f", {summary.replays_dropped:,} replayed records dropped" if summary.replays_dropped else ""
    )
    console.print(
        f"stopped: {summary.dead_letters} dead letters, {run.late} late events{replayed}{left}"
    )
    if run.fraud_model is not None:
        model = run.fraud_model
        console.print(
            f"River model: {model.events_learned:,} events learned, "
            f"{model.drifts_detected} score drifts (ADWIN); saved to {model.folder}"
        )


# --- serve --------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes; the gateway is stateless, so it scales out.")
    ] = 1,
) -> None:
    """Run the HTTP gateway (POST /v1/events) with /healthz, /readyz, /metrics, /docs."""
    import uvicorn

    from movieflix_lab.config import PROMETHEUS_MULTIPROC_ENV, environment_overlay

    s = settings()
    bind_host, bind_port = host or s.gateway_host, port or s.gateway_port
    console.print(f"serving on [bold]http://{bind_host}:{bind_port}[/] (docs at /docs)")
    with contextlib.ExitStack() as stack:
        if workers > 1:  # one /metrics for all workers: their values shared through files
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="movieflix-metrics-"))
            stack.enter_context(environment_overlay({PROMETHEUS_MULTIPROC_ENV: folder}))
        uvicorn.run(
            "movieflix_lab.serve.app:create_app",
            factory=True,
            workers=workers,
            host=bind_host,
            port=bind_port,
            log_level="warning",
            access_log=False,
        )
