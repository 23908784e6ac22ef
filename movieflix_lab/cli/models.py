"""``movieflix-lab eval``, ``train`` and ``import``: the models' jobs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TimeElapsedColumn

from movieflix_lab.cli.app import (
    console,
    err_console,
    eval_app,
    import_app,
    settings,
    train_app,
)
from movieflix_lab.cli.render import (
    StepProgress,
    fraud_table,
    goal_lines,
    recs_table,
    step_bar,
)

# --- evaluation -----------------------------------------------------------------------


@eval_app.command("fraud")
def eval_fraud(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    from_topic: Annotated[
        bool, typer.Option("--from-topic", help="Score the live app's alerts on fraud-signals.")
    ] = False,
    labels: Annotated[
        Path | None,
        typer.Option(help="With --from-topic: a simulation folder (default: the latest)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the labelled scenario.")] = 7,
    users: Annotated[int, typer.Option(min=10, help="Simulated users.")] = 5000,
    minutes: Annotated[float, typer.Option(min=10, help="Simulated minutes.")] = 360.0,
    rate: Annotated[
        float, typer.Option(min=1, help="Background traffic, events per second.")
    ] = 5000.0,
) -> None:
    """Precision, recall, F1 and alert latency of the fraud detectors against labels."""
    import json

    from movieflix_lab.jobs.fraud import FraudScenario, evaluate_from_topic, run_fraud_eval
    from movieflix_lab.jobs.results import jsonable

    s = settings()
    if from_topic:
        report = evaluate_from_topic(s, labels)
    else:
        scenario = FraudScenario(seed=seed, users=users, minutes=minutes, rate=rate)
        say = (lambda m: None) if as_json else (lambda m: console.print(f"[green]•[/] {m}"))
        with Progress(
            "[progress.description]{task.description}", BarColumn(),
            "{task.completed:.0f}/{task.total:.0f} simulated minutes", TimeElapsedColumn(),
            console=err_console if as_json else console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("labelled scenario into Kafka", total=minutes)
            report = run_fraud_eval(
                s, scenario, say=say,
                progress=lambda events, done: bar.update(task, completed=done),
            )  # fmt: skip
    if as_json:
        print(json.dumps(jsonable(report), default=str))
    else:
        fraud_table(report)


# --- recommendations ------------------------------------------------------------------


@train_app.command("recs")
def train_recs_command(
    data: Annotated[
        Path | None,
        typer.Option(
            help="A MovieLens folder, `import movielens` output or simulate Parquet "
            "folder (default: the watch-history topic)."
        ),
    ] = None,
    movies: Annotated[
        Path | None, typer.Option(help="A movies.parquet (movie_id, title, genre) catalog.")
    ] = None,
    tune: Annotated[
        bool, typer.Option(help="Tune the hyper-parameters on a validation split.")
    ] = True,
) -> None:
    """Fit implicit ALS and save it as models/recs/<version>/ (latest points at it)."""
    from movieflix_lab.jobs.recs import train_recs

    s = settings()
    if data is None:
        from movieflix_lab.kafka.client import wait_until_reachable

        wait_until_reachable(s)
    with step_bar() as bar:
        result = train_recs(s, data=data, movies_path=movies, tune=tune,
                            progress=StepProgress(bar))  # fmt: skip
    console.print(
        f"[green]•[/] model [bold]{result.version}[/]: {result.users:,} users, "
        f"{result.movies:,} movies, {result.interactions:,} interactions, fit in "
        f"{result.fit_seconds:.2f} s → {result.path}"
    )
    if result.metrics:
        recs_table(result.metrics, "held-out latest movies (model fitted before them)")
    else:
        console.print(result.metrics_note or "")


@train_app.command("fraud")
def train_fraud_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the validation simulation.")] = 11,
    users: Annotated[int, typer.Option(min=100, help="Simulated users.")] = 3000,
    minutes: Annotated[float, typer.Option(min=180, help="Simulated minutes.")] = 480.0,
) -> None:
    """Choose the River model's alert bars on a validation simulation (never a test run)."""
    import contextlib
    import json

    from movieflix_lab.fraud.model import ModelConfig
    from movieflix_lab.jobs.fraud import calibrate_bars, validation_config

    s = settings()
    out = s.reports_dir / "fraud" / "calibration.json"
    status = "scoring a validation simulation in memory"
    with contextlib.nullcontext() if as_json else err_console.status(status):
        result = calibrate_bars(validation_config(seed, users, minutes))
    result.write(out)
    if as_json:
        print(json.dumps(result.as_dict(), default=str))
        return
    q = result.quality
    shipped = ModelConfig()
    console.print(
        f"[green]•[/] bars chosen on seed {seed} ({result.validation['active_users']:,} users, "
        f"{result.validation['simulated_days'] * 24:.0f} simulated hours): user "
        f"[bold]{result.alert_score}[/], IP [bold]{result.ip_alert_score}[/] (the kit "
        f"ships {shipped.alert_score} and {shipped.ip_alert_score})"
    )
    recall = ", ".join(f"{k} {v:.2f}" for k, v in q["recall_per_scenario"].items())
    console.print(
        f"  on the validation labels: {q['alerts']} model alerts, precision "
        f"{q['precision']:.3f}, recall {q['recall']:.3f} ({recall}); ordinary users alerted "
        f"{q['ordinary_users_alerted']} ({q['ordinary_rate_per_day']:.3%} per day) → {out}"
    )
    console.print("  use them with MOVIEFLIX_FRAUD_ALERT_SCORE / MOVIEFLIX_FRAUD_IP_ALERT_SCORE")


class Relevant(StrEnum):
    liked = "liked"
    all = "all"


@eval_app.command("recs")
def eval_recs(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="A MovieLens folder, `import movielens` output or simulate Parquet "
            "folder (default: a seeded simulated history)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated history.")] = 42,
    users: Annotated[int, typer.Option(min=20, help="Simulated users.")] = 2000,
    days: Annotated[float, typer.Option(min=1, help="Simulated days.")] = 14.0,
    tune: Annotated[
        bool, typer.Option(help="Tune on a validation split (never the test split).")
    ] = True,
    relevant: Annotated[
        Relevant,
        typer.Option(help="Held-out movies that count as hits: liked ones, or all of them."),
    ] = Relevant.liked,
) -> None:
    """Precision, recall, NDCG, MAP @10 and coverage of ALS next to its baselines (plain
    and recent popularity, item-kNN), each tuned on the validation split."""
    import json

    from movieflix_lab.jobs.recs import run_recs_eval
    from movieflix_lab.jobs.results import jsonable

    with step_bar(to_stderr=as_json) as bar:
        report = run_recs_eval(data=data, seed=seed, users=users, days=days, tune=tune,
                               relevant=relevant.value, progress=StepProgress(bar))  # fmt: skip
    if as_json:
        print(json.dumps(jsonable(report), default=str))
        return
    recs_table(report.metrics, "recommendations on held-out latest movies")
    goal_lines(report.goals)


@import_app.command("movielens")
def import_movielens_command(
    path: Annotated[
        Path, typer.Argument(help="A MovieLens folder (ml-100k, ml-1m, ml-latest, ml-25m...).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the Parquet (default data/movielens/NAME).")
    ] = None,
    replay: Annotated[
        bool, typer.Option(help="Also replay the viewings into watch-history, in time order.")
    ] = False,
) -> None:
    """Read MovieLens ratings as watch-history; optionally replay them into Kafka."""
    from movieflix_lab.jobs.recs import import_movielens

    s = settings()
    if replay:
        from movieflix_lab.kafka.client import wait_until_reachable

        wait_until_reachable(s)
    with step_bar() as bar:
        summary = import_movielens(s, path, out=out, replay=replay, progress=StepProgress(bar))
    console.print(
        f"[green]•[/] {summary.layout}: {summary.interactions:,} ratings of "
        f"{summary.movies:,} movies by {summary.users:,} users → {summary.out}"
        + (f"; {summary.replayed:,} viewings replayed into watch-history" if replay else "")
    )
