"""The ``movieflix-lab`` command: thin over the library, one-line errors unless ``--debug``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TimeElapsedColumn
from rich.table import Table

from movieflix_lab.config import Settings, get_settings
from movieflix_lab.exceptions import ConfigError, MovieflixError

console = Console()
err_console = Console(stderr=True)


#: Set by the root callback; read by :func:`main` when an error reaches it.
_options = {"debug": False}


app = typer.Typer(
    help="MovieFlix Lab: streaming analytics and ML research on MovieFlix's Kafka events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
broker_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft, one node).", no_args_is_help=True
)
topics_app = typer.Typer(help="The topic catalog on the cluster.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
eval_app = typer.Typer(help="Score models and detectors against labels.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Fit models and save them as versions.", no_args_is_help=True)
app.add_typer(train_app, name="train")
import_app = typer.Typer(help="Bring public datasets in.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _options["debug"] = debug


def settings() -> Settings:
    """The process settings; an invalid environment variable becomes a one-line error."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MOVIEFLIX_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None


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
def broker_status() -> None:
    """Show whether the local broker runs. Exit code 0 when running, 3 when stopped."""
    from movieflix_lab.kafka.broker import LocalBroker

    status = LocalBroker(settings()).status()
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


# --- topics ---------------------------------------------------------------------------


def _print_topic_reports(reports: list[Any]) -> None:
    colors = {"created": "green", "exists": "dim", "differs": "yellow", "altered": "cyan"}
    table = Table(title="topic catalog")
    table.add_column("topic")
    table.add_column("status")
    table.add_column("differences from the catalog")
    for report in reports:
        color = colors[report.status]
        table.add_row(report.name, f"[{color}]{report.status}[/]", "; ".join(report.differences))
    console.print(table)


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
    _print_topic_reports(reports)
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from movieflix_lab.simulate import (
        GatewaySink,
        JsonlSink,
        KafkaSink,
        ParquetSink,
        SimulationConfig,
        run_simulation,
    )

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
    run_name = f"seed{seed}-u{users}-" + (f"{events}ev" if events else f"{config.minutes:g}min")
    run_name += f"-{config.start:%Y%m%dT%H%M}"
    labels = labels_dir or s.raw_dir / "simulations" / run_name
    to_stdout = via_gateway is None and out is Output.jsonl and path is None
    sink: Any
    if via_gateway is not None:
        sink = GatewaySink(via_gateway, api_key=s.api_key_value)
    elif out is Output.kafka:
        from movieflix_lab.kafka.client import wait_until_reachable

        wait_until_reachable(s)
        sink = KafkaSink(s)
    elif out is Output.jsonl:
        sink = JsonlSink(path)
    else:
        sink = ParquetSink(path or s.processed_dir / "simulated" / run_name)

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

        result = run_simulation(
            config, sink, rate=rate, speedup=speedup, labels_dir=labels, progress=progress
        )
    shown.print(
        f"{result.events:,} events ({result.events_per_second:,.0f}/s), "
        f"{result.incidents} labelled incidents, {result.simulated_minutes:.1f} simulated "
        f"minutes; labels in {labels}"
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
) -> None:
    """Run a stream app (Quix Streams) until Ctrl-C, or until --timeout of quiet."""
    from datetime import timedelta

    from movieflix_lab.jobs.processes import run_together
    from movieflix_lab.jobs.stream import run_stream
    from movieflix_lab.streams.runner import APPS

    if name == "all":
        args = ["--timeout", str(timeout), "--guarantee", guarantee.value, "--grace", str(grace)]
        commands = {app: ["stream", app, *args, "--instance", instance] for app in APPS}
        run_together(commands, say=console.print)
        return
    if name not in APPS:
        raise typer.BadParameter(f"unknown app {name!r}; known: {', '.join(APPS)}, all")
    console.print(f"stream app [bold]{name}[/] ({guarantee.value}, instance {instance})")
    run = run_stream(
        settings(), name, timeout=timeout, guarantee=guarantee.value, instance=instance,
        grace=timedelta(seconds=grace),
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

    s = settings()
    bind_host, bind_port = host or s.gateway_host, port or s.gateway_port
    console.print(f"serving on [bold]http://{bind_host}:{bind_port}[/] (docs at /docs)")
    uvicorn.run(
        "movieflix_lab.serve.app:create_app",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level="warning",
        access_log=False,
    )


# --- evaluation -----------------------------------------------------------------------


def _fmt(value: object) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _goal_lines(goals: list[Any]) -> None:
    """Every goal a job judged, one line each (the one way goals are shown)."""
    for goal in goals:
        mark = "[green]met[/]" if goal.met else "[red]not met[/]"
        console.print(f"  goal {goal.name} {goal.target}: {_fmt(goal.value)} — {mark}")


def _goal_table(goals: list[Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("goal", "value", "target", "met"):
        table.add_column(column)
    for goal in goals:
        table.add_row(goal.name, _fmt(goal.value), goal.target,
                      "yes" if goal.met else "[red]NO[/]")  # fmt: skip
    return table


def _fraud_table(report: Any) -> None:
    score = report.score
    table = Table(title="fraud detection against the labels")
    for column in ("scope", "precision", "recall", "F1", "alerts", "incidents found"):
        table.add_column(column)
    table.add_row("overall", _fmt(score.precision), _fmt(score.recall), _fmt(score.f1),
                  str(score.alerts), "")  # fmt: skip
    for name, row in score.per_scenario.items():
        found = f"{row['detected']}/{row['incidents']} ({', '.join(row['detectors'])})"
        table.add_row(f"scenario {name}", _fmt(row["precision"]), _fmt(row["recall"]),
                      _fmt(row["f1"]), str(row["alerts"]), found)  # fmt: skip
    for name, row in score.per_detector.items():
        table.add_row(f"detector {name}", _fmt(row["precision"]), "", "", str(row["alerts"]), "")
    console.print(table)
    hard = score.hard_negative_false_alerts
    console.print(
        f"false alerts: {sum(hard.values())} on hard negatives {hard or ''}, "
        f"{score.background_false_alerts} on other traffic"
    )
    console.print(
        "latency (decisive event produced → alert read): "
        f"p50 {_fmt(score.latency_p50_ms)} ms,"
        f" p99 {_fmt(score.latency_p99_ms)} ms; account-takeover ROC-AUC "
        f"{_fmt(report.roc_auc_account_takeover)}"
    )
    _goal_lines(report.goals)


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
        _fraud_table(report)


# --- recommendations ------------------------------------------------------------------


class _StepProgress:
    """A rich progress bar whose task follows the job's current step."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        task = self.tasks.get(step)
        if task is None:
            task = self.tasks[step] = self.bar.add_task(step, total=max(total, 1))
        self.bar.update(task, completed=done, total=max(total, 1))


def _step_bar(to_stderr: bool = False) -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(),
        "{task.completed:,.0f}/{task.total:,.0f}", TimeElapsedColumn(),
        console=err_console if to_stderr else console, transient=True,
    )  # fmt: skip


def _recs_table(report: dict[str, Any], title: str) -> None:
    """Held-out metrics (:func:`~movieflix_lab.recs.evaluate.evaluate_recs`'), ALS next to
    popularity."""
    k = report.get("k", 10)
    table = Table(title=title)
    for column in ("metric", "ALS", "popularity"):
        table.add_column(column)
    for metric in (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", "coverage"):
        table.add_row(metric, _fmt(report.get(metric)), _fmt(report.get(f"popularity_{metric}")))
    console.print(table)
    console.print(
        f"NDCG@{k} ALS / popularity: {_fmt(report.get('ndcg_ratio'))}x; "
        f"{report.get('users_evaluated', 0):,} users evaluated on their latest "
        f"{report.get('holdout', 0.2):.0%} of movies; hyper-parameters {report.get('params')}"
    )


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
    with _step_bar() as bar:
        result = train_recs(s, data=data, movies_path=movies, tune=tune,
                            progress=_StepProgress(bar))  # fmt: skip
    console.print(
        f"[green]•[/] model [bold]{result.version}[/]: {result.users:,} users, "
        f"{result.movies:,} movies, {result.interactions:,} interactions, fit in "
        f"{result.fit_seconds:.2f} s → {result.path}"
    )
    if result.metrics:
        _recs_table(result.metrics, "held-out latest movies (model fitted before them)")
    else:
        console.print(result.metrics_note or "")


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
) -> None:
    """Precision, recall, NDCG, MAP @10 and coverage of ALS next to popularity."""
    import json

    from movieflix_lab.jobs.recs import run_recs_eval
    from movieflix_lab.jobs.results import jsonable

    with _step_bar(to_stderr=as_json) as bar:
        report = run_recs_eval(data=data, seed=seed, users=users, days=days, tune=tune,
                               progress=_StepProgress(bar))  # fmt: skip
    if as_json:
        print(json.dumps(jsonable(report), default=str))
        return
    _recs_table(report.metrics, "recommendations on held-out latest movies")
    _goal_lines(report.goals)


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
    with _step_bar() as bar:
        summary = import_movielens(s, path, out=out, replay=replay, progress=_StepProgress(bar))
    console.print(
        f"[green]•[/] {summary.layout}: {summary.interactions:,} ratings of "
        f"{summary.movies:,} movies by {summary.users:,} users → {summary.out}"
        + (f"; {summary.replayed:,} viewings replayed into watch-history" if replay else "")
    )


# --- reports --------------------------------------------------------------------------


def _pairs(args: list[str]) -> dict[str, str]:
    """``-p KEY VALUE`` pairs (Typer has no two-value repeatable option)."""
    given: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise typer.BadParameter(
                f"expected -p KEY VALUE, got {' '.join([flag, *rest[:2]])!r}", param_hint="-p"
            )
        key, value = rest.pop(0), rest.pop(0)
        given[key] = value
    return given


@app.command("report", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def report(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="The report (notebook) to run, then -p KEY VALUE per parameter."),
    ] = None,
    show_input: Annotated[
        bool, typer.Option("--show-input", help="Keep the code cells in the HTML report.")
    ] = False,
    rerun: Annotated[
        Path | None,
        typer.Option(
            "--rerun",
            help="A run's manifest.json: run it again, same parameters, "
            "topics pinned to the offsets it read.",
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the reports and their parameters.")
    ] = False,
) -> None:
    """Run a notebook with papermill into reports/NAME/<run>/ (notebook, HTML, manifest)."""
    from movieflix_lab.reports import list_notebooks, notebook_parameters, run_report
    from movieflix_lab.reports import rerun as rerun_report

    s = settings()
    if list_ or (name is None and rerun is None):
        for report_name, path in list_notebooks(s).items():
            params = ", ".join(f"{p.name}: {p.type} = {p.default!r}"
                               for p in notebook_parameters(path).values())  # fmt: skip
            console.print(f"[bold]{report_name}[/] ({path.name}): {params}")
        return
    with console.status(f"running {name or rerun} with papermill…"):
        if rerun is not None:
            run = rerun_report(s, rerun, hide_input=not show_input)
        else:
            assert name is not None
            given: dict[str, Any] = _pairs(ctx.args)
            run = run_report(s, name, given, hide_input=not show_input)
    mark = "[green]succeeded[/]" if run.status == "succeeded" else "[red]failed[/]"
    console.print(f"{run.name}: {mark} in {run.manifest['duration_s']:.1f} s → {run.folder}")
    if run.manifest.get("key_numbers"):
        console.print(f"key numbers: {run.manifest['key_numbers']}")
    console.print(f"index: {s.reports_dir / 'index.html'}")
    if run.status != "succeeded":
        raise MovieflixError(f"report {run.name} failed: {run.manifest['error']} "
                             f"(partial notebook kept in {run.folder})")  # fmt: skip


@app.command("schedule")
def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Run every report that is due now, then exit.")
    ] = False,
    file: Annotated[
        Path | None, typer.Option(help="The schedule (default reports/schedule.toml).")
    ] = None,
) -> None:
    """Run reports on the cron schedules of reports/schedule.toml (APScheduler)."""
    from movieflix_lab.reports.schedule import load_schedule, run_due, serve

    s = settings()
    if once:

        def said(report: Any, run: Any) -> None:
            state = "could not run" if run is None else run.status
            console.print(f"{report.name} ({report.cron}): {state}")

        done = run_due(s, file, on_run=said)
        failed = [r.name for r, run in done if run is None or run.status != "succeeded"]
        console.print(f"{len(done)} due report(s) run, {len(failed)} failed")
        if failed:
            raise MovieflixError(f"failed: {', '.join(failed)} (the others ran)")
        return
    reports = load_schedule(s, file)
    console.print(f"scheduling {len(reports)} report(s) (UTC); Ctrl-C stops")
    serve(s, file)


# --- demo -----------------------------------------------------------------------------


def _demo_table(result: Any) -> Table:
    """The demo's summary: one row per thing it ran, from its typed result."""
    table = Table(title="MovieFlix Lab demo", show_header=False)
    table.add_row("events through the gateway", f"{result.events:,}")
    for topic, count in sorted(result.topic_messages.items()):
        table.add_row(f"  messages in {topic}", f"{count:,}")
    table.add_row("labelled incidents", f"{result.incidents} ({result.labels_dir})")
    table.add_row(
        "closed genre windows (30 min)",
        f"{result.genre_windows} in data/processed/genre_watch_time"
        + (f"; longest watched: {result.top_genre}" if result.top_genre else ""),
    )
    table.add_row("analytics lag", f"{result.analytics_lag:,}")
    fraud = result.fraud
    if fraud is not None:
        detectors = ", ".join(f"{name} {row['alerts']}" for name, row in fraud.per_detector.items())
        table.add_row("fraud alerts on fraud-signals", f"{fraud.alerts} ({detectors})")
        found = ", ".join(
            f"{name} {row['detected']}/{row['incidents']}"
            for name, row in fraud.per_scenario.items()
        )
        table.add_row(
            "  against the labels",
            f"precision {_fmt(fraud.precision)}, recall {_fmt(fraud.recall)}; "
            f"incidents caught: {found}",
        )
        table.add_row("  fraud app lag", f"{result.fraud_lag:,}")
        table.add_row("  alerts API", f"{result.gateway_url}/v1/fraud/alerts")
    recs = result.recs
    if recs is not None:
        model, metrics = recs.model, recs.model.metrics
        table.add_row(
            "recommendation model",
            f"{model.version}: {model.users:,} users x {model.movies:,} movies, "
            f"fit {model.fit_seconds:.2f} s ({model.path})",
        )
        if metrics:
            table.add_row(
                "  held-out NDCG@10",
                f"ALS {_fmt(metrics['ndcg@10'])} vs popularity "
                f"{_fmt(metrics['popularity_ndcg@10'])} ({_fmt(metrics['ndcg_ratio'])}x)",
            )
        else:
            table.add_row("  held-out NDCG@10", model.metrics_note or "—")
        titles = ", ".join(item["title"] for item in recs.example["items"])
        table.add_row("  recommendations API", f"{recs.example_url} → {titles}")
        table.add_row("  recs app lag", f"{result.recs_lag:,}")
    for name, report in result.reports.items():
        table.add_row(f"report {name}", f"{report.status}: {report.folder}/report.html")
    if result.reports_index:
        table.add_row("  reports index", result.reports_index)
    for name, rows in result.postgres_rows.items():
        table.add_row(f"  PostgreSQL {name}", f"{rows:,} rows")
    table.add_row("gateway", result.gateway_url)
    return table


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
            bar.console.print(_demo_table(result))
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
        _goal_table(
            result.goals, f"soak: {result.accepted:,} events, {result.achieved_rate:,.0f}/s"
        )
    )
    console.print(f"samples and goals in {path.parent}")
    if not result.passed:
        raise MovieflixError("the soak missed a goal (see the table)")


def main() -> None:
    """Run the CLI: errors become one line on stderr and exit code 1 unless ``--debug``."""
    try:
        app(prog_name="movieflix-lab")
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise SystemExit(130) from None
    except Exception as exc:
        if _options["debug"]:
            raise
        if isinstance(exc, MovieflixError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
