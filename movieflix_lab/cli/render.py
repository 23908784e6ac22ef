"""How the commands show results: tables and goal lines, drawn from the jobs' typed results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from movieflix_lab.cli.app import (
    console,
    err_console,
)

# --- listings: tables that never cut an identifier, and their JSON ---------------------


@dataclass(frozen=True)
class Listing:
    """The rows a listing command prints: identifier columns first, then values.

    Identifiers (topic, group names) are plain text; values may hold rich markup.
    """

    title: str
    ids: Sequence[str]
    values: Sequence[str]
    rows: list[Sequence[str]]
    #: Value columns aligned right (numbers).
    numeric: frozenset[str] = field(default_factory=frozenset)


def listing_table(listing: Listing) -> Table:
    """The table: identifiers never wrapped, never ellipsized (folded only when one alone is
    wider than the terminal); values may fold."""
    table = Table(title=listing.title)
    for name in listing.ids:
        table.add_column(name, no_wrap=True, overflow="fold")
    for name in listing.values:
        table.add_column(name, overflow="fold",
                         justify="right" if name in listing.numeric else "left")  # fmt: skip
    n = len(listing.ids)
    for row in listing.rows:
        table.add_row(*(Text(cell) for cell in row[:n]), *row[n:])
    return table


def print_listing(listing: Listing, *, out: Console | None = None) -> None:
    """A table when it fits the terminal; else each identifier on a line of its own, printed
    once while the rows below share it, and the row's values on the line under it (a long
    name stays one line to copy; the terminal wraps it, rich does not cut it)."""
    out = out or console
    table = listing_table(listing)
    natural = Measurement.get(out, out.options.update(max_width=100_000), table).maximum
    if natural <= out.width:
        out.print(table)
        return
    out.print(Text(listing.title, style="italic"), soft_wrap=True)
    n = len(listing.ids)
    shown: list[str | None] = [None] * n
    for row in listing.rows:
        changed = next((i for i in range(n) if row[i] != shown[i]), n)
        for level in range(changed, n):
            out.print(Text("  " * level + row[level], style="bold" if level == 0 else ""),
                      soft_wrap=True)  # fmt: skip
        shown = list(row[:n])
        pairs = [Text.from_markup(f"{name} {value}") for name, value in
                 zip(listing.values, row[n:], strict=True)]  # fmt: skip
        for line in _pack(pairs, out.width - 2 * n):
            out.print(Text("  " * n).append_text(line), soft_wrap=True, highlight=False)


def _pack(pairs: list[Text], width: int) -> list[Text]:
    """``pairs`` joined by `` · `` into lines of at most ``width`` cells, broken between pairs
    only (a pair wider than that gets a line of its own)."""
    lines: list[Text] = []
    for pair in pairs:
        if lines and lines[-1].cell_len + 3 + pair.cell_len <= width:
            lines[-1].append(" · ").append_text(pair)
        else:
            lines.append(pair.copy())
    return lines


def print_json(value: Any) -> None:
    """``value`` as one JSON document on stdout, nothing else (``--json``)."""
    from movieflix_lab.jobs.results import jsonable

    print(json.dumps(jsonable(value), default=str))


# --- topics ---------------------------------------------------------------------------


def print_topic_reports(reports: list[Any]) -> None:
    colors = {"created": "green", "exists": "dim", "differs": "yellow", "altered": "cyan"}
    rows: list[Sequence[str]] = [
        (r.name, f"[{colors[r.status]}]{r.status}[/]", "; ".join(r.differences) or "-")
        for r in reports
    ]
    print_listing(Listing("topic catalog", ("topic",),
                          ("status", "differences from the catalog"), rows))  # fmt: skip


def fmt(value: object) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def goal_lines(goals: list[Any]) -> None:
    """Every goal a job judged, one line each (the one way goals are shown)."""
    for goal in goals:
        mark = "[green]met[/]" if goal.met else "[red]not met[/]"
        console.print(f"  goal {goal.name} {goal.target}: {fmt(goal.value)} — {mark}")


def goal_table(goals: list[Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("goal", "value", "target", "met"):
        table.add_column(column)
    for goal in goals:
        table.add_row(goal.name, fmt(goal.value), goal.target,
                      "yes" if goal.met else "[red]NO[/]")  # fmt: skip
    return table


def fraud_table(report: Any) -> None:
    score = report.score
    table = Table(title="fraud detection against the labels")
    for column in ("scope", "precision", "recall", "F1", "alerts", "incidents found"):
        table.add_column(column)
    table.add_row("overall", fmt(score.precision), fmt(score.recall), fmt(score.f1),
                  str(score.alerts), "")  # fmt: skip
    for name, row in score.per_scenario.items():
        found = f"{row['detected']}/{row['incidents']} ({', '.join(row['detectors'])})"
        table.add_row(f"scenario {name}", fmt(row["precision"]), fmt(row["recall"]),
                      fmt(row["f1"]), str(row["alerts"]), found)  # fmt: skip
    for name, row in score.per_detector.items():
        table.add_row(f"detector {name}", fmt(row["precision"]), "", "", str(row["alerts"]), "")
    console.print(table)
    hard = score.hard_negative_false_alerts
    per_1k = score.false_alerts_per_1k_users
    console.print(
        f"false alerts: {sum(hard.values())} on hard negatives {hard or ''}, "
        f"{score.background_false_alerts} on other traffic"
        + (f" ({per_1k:.2f} per 1,000 users)" if per_1k is not None else "")
    )
    model = getattr(report, "model_quality", {}) or {}
    if model:
        console.print(
            f"River model: {model['alerts']} alerts, precision {fmt(model['precision'])}, recall "
            f"{fmt(model['recall'])} on the scenarios only it can find; "
            f"{model['ordinary_users_alerted']} ordinary users alerted "
            f"({model['ordinary_rate_per_day']:.3%} of active users per day)"
        )
    run = getattr(report, "run", None)
    for name, row in run.ranking.items() if run is not None else ():
        console.print(
            f"  River score, {name}: ROC-AUC {fmt(row['roc_auc'])}, PR-AUC {fmt(row['pr_auc'])}"
            f" ({row['positives']} incidents, {row['negatives']:,} ordinary {row['entity']}-hours)"
        )
    console.print(
        "latency (decisive event produced → alert read): "
        f"p50 {fmt(score.latency_p50_ms)} ms,"
        f" p99 {fmt(score.latency_p99_ms)} ms; account-takeover ROC-AUC "
        f"{fmt(report.roc_auc_account_takeover)}"
    )
    goal_lines(report.goals)


class StepProgress:
    """A rich progress bar whose task follows the job's current step."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        task = self.tasks.get(step)
        if task is None:
            task = self.tasks[step] = self.bar.add_task(step, total=max(total, 1))
        self.bar.update(task, completed=done, total=max(total, 1))


def step_bar(to_stderr: bool = False) -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(),
        "{task.completed:,.0f}/{task.total:,.0f}", TimeElapsedColumn(),
        console=err_console if to_stderr else console, transient=True,
    )  # fmt: skip


BASELINE_LABELS = {"popularity": "popularity", "recent_popularity": "recent popularity",
                   "item_knn": "item-kNN"}  # fmt: skip


def recs_table(report: dict[str, Any], title: str) -> None:
    """Held-out metrics (:func:`~movieflix_lab.recs.evaluate.evaluate_recs`'), ALS next to
    each baseline, with the hyper-parameters each one's tuning chose."""
    k = report.get("k", 10)
    baselines = report.get("baselines", {})
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("ALS", justify="right")
    for name in baselines:
        table.add_column(BASELINE_LABELS.get(name, name), justify="right")
    for metric in (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", "coverage"):
        table.add_row(metric, fmt(report.get(metric)),
                      *(fmt(row.get(metric)) for row in baselines.values()))  # fmt: skip
    table.add_row("chosen", _params(report.get("params", {})),
                  *(_params(row.get("params", {})) for row in baselines.values()))  # fmt: skip
    console.print(table)
    best = BASELINE_LABELS.get(report.get("best_baseline", ""), report.get("best_baseline"))
    console.print(
        f"NDCG@{k} ALS / the best baseline ({best}): {fmt(report.get('ndcg_ratio'))}x; "
        f"ALS / plain popularity: {fmt(report.get('popularity_ndcg_ratio'))}x. "
        f"{report.get('users_evaluated', 0):,} users evaluated on their latest "
        f"{report.get('holdout', 0.2):.0%} of movies ({report.get('relevant', 'liked')} "
        "held-out movies count as hits)"
    )


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("seed", "iterations"))


def recs_quality(metrics: dict[str, Any]) -> str:
    """ALS's held-out NDCG@10 next to the best baseline's, in one line."""
    best = metrics.get("best_baseline", "popularity")
    return (
        f"ALS {fmt(metrics['ndcg@10'])} vs best baseline {BASELINE_LABELS.get(best, best)} "
        f"{fmt(metrics.get('best_baseline_ndcg@10'))} ({fmt(metrics['ndcg_ratio'])}x); "
        f"plain popularity {fmt(metrics['popularity_ndcg@10'])}"
    )


def demo_table(result: Any) -> Table:
    """The demo's summary: one row per thing it ran, from its typed result."""
    table = Table(title="MovieFlix Lab demo", show_header=False)
    table.add_row("events through the gateway", f"{result.events:,}")
    for topic, count in sorted(result.topic_messages.items()):
        table.add_row(f"  messages in {topic}", f"{count:,}")
    wire = result.wire
    if wire is not None and wire.topics:
        weigh = f"{wire.written}; as Avro, events weigh {wire.ratio:.2f} of their JSON"
        table.add_row("wire format (MOVIEFLIX_WIRE_FORMAT)", weigh)
        for topic, (_, as_json, as_avro) in wire.topics.items():
            table.add_row(f"  bytes per event in {topic}",
                          f"JSON {as_json:,.0f}, Avro {as_avro:,.0f}")  # fmt: skip
    table.add_row("labelled incidents", f"{result.incidents} ({result.labels_dir})")
    table.add_row(
        "closed genre windows (30 min)",
        f"{result.genre_windows} in data/processed/genre_watch_time"
        + (f"; longest watched: {result.top_genre}" if result.top_genre else ""),
    )
    table.add_row("analytics lag", f"{result.analytics_lag:,}")
    fraud = result.fraud
    if fraud is not None:
        detectors = ", ".join(
            f"{name} {row['alerts']} (precision {fmt(row.get('precision'))})"
            for name, row in fraud.per_detector.items()
        )
        table.add_row("fraud alerts on fraud-signals", f"{fraud.alerts} ({detectors})")
        found = ", ".join(
            f"{name} {row['detected']}/{row['incidents']}"
            for name, row in fraud.per_scenario.items()
        )
        table.add_row(
            "  against the labels",
            f"precision {fmt(fraud.precision)}, recall {fmt(fraud.recall)}; "
            f"incidents caught: {found}",
        )
        model = result.fraud_model
        if model:
            table.add_row(
                "  River model (its scenarios)",
                f"precision {fmt(model['precision'])}, recall {fmt(model['recall'])} "
                f"({model['alerts']} alerts); ordinary users alerted "
                f"{model['ordinary_users_alerted']} ({model['ordinary_rate_per_day']:.2%}/day)",
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
            table.add_row("  held-out NDCG@10 (the run's data)", recs_quality(metrics))
        else:
            table.add_row("  held-out NDCG@10 (the run's data)", model.metrics_note or "—")
        quality = recs.quality
        if quality is not None:
            data = quality.data
            table.add_row(
                f"  held-out NDCG@10 (a seeded {data['days']:g}-day history of "
                f"{data['users']:,} users)",
                recs_quality(quality.metrics),
            )
        titles = ", ".join(item["title"] for item in recs.example["items"])
        table.add_row("  recommendations API", f"{recs.example_url} → {titles}")
        table.add_row("  recs app lag", f"{result.recs_lag:,}")
    if result.consumer_status:
        table.add_row("consumer status (lag --watch)", "; ".join(result.consumer_status))
    for name, report in result.reports.items():
        table.add_row(f"report {name}", f"{report.status}: {report.folder}/report.html")
    if result.reports_index:
        table.add_row("  reports index", result.reports_index)
    for name, rows in result.postgres_rows.items():
        table.add_row(f"  PostgreSQL {name}", f"{rows:,} rows")
    for app, metrics in result.stream_metrics.items():
        table.add_row(f"{app} app /metrics", f"{metrics.url}: {metrics.line()}")
    table.add_row("gateway", result.gateway_url)
    return table
