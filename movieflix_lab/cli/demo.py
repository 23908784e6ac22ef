"""``movieflix-lab demo`` and ``soak``: the whole pipeline at once."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TimeElapsedColumn

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
)
from movieflix_lab.cli.render import (
    demo_table,
    goal_table,
)
from movieflix_lab.exceptions import MovieflixError

# --- demo -----------------------------------------------------------------------------


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 42,
    users: Annotated[int, typer.Option(min=1, help="Simulated users.")] = 2000,
    minutes: Annotated[float, typer.Option(min=1, help="Simulated minutes of traffic.")] = 120.0,
    activity: Annotated[float, typer.Option(min=0.01, help="Traffic density.")] = 20.0,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Finish after the summary instead of serving.")
    ] = False,
) -> None:
    """The main job end to end: broker, topics, stream apps, serve app, traffic, models."""
    import time

    from movieflix_lab.jobs.demo import DemoOptions, DemoResult, run_demo

    options = DemoOptions(
        seed=seed, users=users, minutes=minutes, activity=activity, exit_after=exit_after
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed:.0f}/{task.total:.0f} simulated minutes",
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("traffic through the gateway", total=minutes, visible=False)

        def progress(events: int, simulated_minutes: float) -> None:
            bar.update(task, completed=simulated_minutes, visible=True)

        def say(message: str) -> None:
            bar.console.print(f"[green]•[/] {message}", highlight=False)

        def wait_for_interrupt() -> None:
            bar.stop()
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                console.print("stopping…")

        def summary(result: DemoResult) -> None:
            bar.update(task, visible=False)
            bar.console.print(demo_table(result))
            bar.console.print("stream vs batch (every closed window against a batch computation "
                              "over the same offsets):", soft_wrap=True)  # fmt: skip
            for line in result.reconciliation.lines():
                bar.console.print(f"  {line}", soft_wrap=True)

        result = run_demo(
            settings(),
            options,
            say=say,
            summary=summary,
            progress=progress,
            wait_for_interrupt=wait_for_interrupt,
        )
        if not result.reconciled:
            raise MovieflixError(
                "stream results differ from the batch computation (see the summary above; "
                "lab.reconcile.reconcile_analytics shows every window)"
            )


@app.command("soak")
def soak(
    minutes: Annotated[float, typer.Option(min=0.2, help="How long the traffic runs.")] = 10.0,
    rate: Annotated[float, typer.Option(min=1, help="Steady events per second.")] = 500.0,
    burst: Annotated[float, typer.Option(min=1, help="Burst: this many times the rate.")] = 10.0,
    burst_seconds: Annotated[float, typer.Option(min=1, help="How long the burst lasts.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 42,
    catch_up: Annotated[
        float,
        typer.Option(
            min=0,
            help="Longest wait (s) for the apps to read what the topics "
            "already hold before the traffic starts.",
        ),
    ] = 600.0,
) -> None:
    """Sustained traffic through the gateway into every stream app, with a burst halfway:
    lag bounded and back within 60 s, memory flat, nothing lost (results in reports/soak/)."""
    from movieflix_lab.jobs.soak import SoakOptions, soak

    s = settings()
    options = SoakOptions(minutes=minutes, rate=rate, burst_factor=burst, burst_s=burst_seconds,
                          seed=seed, catch_up_s=catch_up)  # fmt: skip
    with Progress(
        "[progress.description]{task.description}", BarColumn(), TimeElapsedColumn(),
        console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("soak", total=options.seconds)

        def progress(t: float, sample: dict[str, Any]) -> None:
            lag = sum(sample["lag"].values())
            bar.update(task, completed=t, description=f"soak [{sample['phase']}] lag {lag:,}")

        result, path = soak(s, options, say=lambda m: bar.console.print(f"[green]•[/] {m}"),
                            progress=progress)  # fmt: skip
    console.print(
        goal_table(result.goals, f"soak: {result.accepted:,} events, {result.achieved_rate:,.0f}/s")
    )
    console.print(f"samples and goals in {path.parent}")
    if not result.passed:
        raise MovieflixError("the soak missed a goal (see the table)")
