"""``movieflix-lab simulate``: seeded traffic with labelled fraud."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TimeElapsedColumn

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
)

# --- simulate -----------------------------------------------------------------------


class Output(StrEnum):
    kafka = "kafka"
    jsonl = "jsonl"
    parquet = "parquet"


def _incident_rates(values: list[str]) -> dict[str, float]:
    from movieflix_lab.simulate.traffic import DEFAULT_INCIDENT_RATES

    rates = dict(DEFAULT_INCIDENT_RATES)
    for value in values:
        name, _, number = value.partition("=")
        if name not in rates or not number:
            known = ", ".join(rates)
            raise typer.BadParameter(f"expected SCENARIO=PER_HOUR with SCENARIO one of {known}")
        rates[name] = float(number)
    return rates


@app.command("simulate")
def simulate(
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 42,
    users: Annotated[int, typer.Option(min=1, help="Population size.")] = 1000,
    movies: Annotated[int, typer.Option(min=13, help="Catalog size.")] = 2000,
    minutes: Annotated[
        float | None, typer.Option(min=0.1, help="Simulated minutes (default 60 without --events).")
    ] = None,
    events: Annotated[int | None, typer.Option(min=1, help="Stop after N events.")] = None,
    activity: Annotated[
        float, typer.Option(min=0.01, help="Scale every user's sessions per day.")
    ] = 1.0,
    incident: Annotated[
        list[str] | None,
        typer.Option(help="Incidents per simulated hour, e.g. --incident binge_bot=3 (repeat)."),
    ] = None,
    out: Annotated[Output, typer.Option(help="Where events go.")] = Output.kafka,
    path: Annotated[
        Path | None, typer.Option(help="File (jsonl; default stdout) or folder (parquet).")
    ] = None,
    via_gateway: Annotated[
        str | None, typer.Option(help="POST to the gateway at this URL instead of --out.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d"],
            help="Simulated start, e.g. 2026-11-23T18:00+00:00 (default: the last 18:00 UTC).",
        ),
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Events per second.")] = None,
    speedup: Annotated[
        float | None, typer.Option(min=0.001, help="Simulated seconds per wall second.")
    ] = None,
    labels_dir: Annotated[
        Path | None, typer.Option(help="Where labels go (default data/raw/simulations/RUN).")
    ] = None,
    late_share: Annotated[
        float,
        typer.Option(min=0, max=1, help="Share of viewings and searches a device sends late."),
    ] = 0.0,
    late_by: Annotated[
        float, typer.Option(min=0.01, help="How late those arrive, in simulated minutes.")
    ] = 20.0,
) -> None:
    """Generate seeded MovieFlix traffic with labelled fraud (labels go to data/raw/)."""
    from rich.progress import MofNCompleteColumn

    from movieflix_lab.jobs.simulate import simulate as run
    from movieflix_lab.jobs.simulate import simulation_sink
    from movieflix_lab.simulate import SimulationConfig

    if rate is not None and speedup is not None:
        raise typer.BadParameter("give --rate or --speedup, not both")
    s = settings()
    config = SimulationConfig(
        seed=seed,
        users=users,
        movies=movies,
        minutes=minutes if minutes is not None or events is not None else 60.0,
        events=events,
        activity=activity,
        incident_rates=_incident_rates(incident or []),
        late_share=late_share,
        late_by=timedelta(minutes=late_by),
    )
    if start is not None:
        config = replace(config, start=start if start.tzinfo else start.replace(tzinfo=UTC))
    to_stdout = via_gateway is None and out is Output.jsonl and path is None
    sink = simulation_sink(s, config, out=out.value, path=path, via_gateway=via_gateway)

    shown = Console(stderr=True) if to_stdout else console
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=shown,
        transient=to_stdout,
    ) as bar:
        total = float(events) if events else float(config.minutes or 0)
        unit = "events" if events else "simulated minutes"
        task = bar.add_task(f"simulating ({unit})", total=total)

        def progress(count: int, simulated_minutes: float) -> None:
            bar.update(task, completed=count if events else simulated_minutes)

        done = run(s, config, sink=sink, rate=rate, speedup=speedup, labels_dir=labels_dir,
                   progress=progress)  # fmt: skip
    result = done.result
    shown.print(
        f"{result.events:,} events ({result.events_per_second:,.0f}/s), "
        f"{result.incidents} labelled incidents, {result.simulated_minutes:.1f} simulated "
        f"minutes; labels in {done.labels_dir}"
    )
