"""What the commands print, drawn from the jobs' typed results (no broker: the results are
made here, the end-to-end runs check the results themselves)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from movieflix_lab.cli.render import demo_table, goal_table
from movieflix_lab.fraud.evaluate import FraudScore
from movieflix_lab.jobs.demo import DemoResult, ReportOutcome, ServedRecs
from movieflix_lab.jobs.recs import TOO_LITTLE, RecsEvaluation, TrainedModel
from movieflix_lab.jobs.results import Goal


def _printed(renderable: object) -> str:
    console = Console(record=True, width=220, color_system=None)
    console.print(renderable)
    return console.export_text()


def _cells(text: str) -> dict[str, str]:
    """A two-column table's rows: label → value."""
    rows = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("│")]
        if len(parts) >= 4 and parts[1]:
            rows[parts[1]] = parts[2]
    return rows


def test_the_demo_summary_shows_every_part_of_the_result() -> None:
    fraud = FraudScore(precision=0.75, recall=1.0, f1=0.857, latency_p50_ms=None,
                       latency_p99_ms=None, incident_latency_p50_ms=None,
                       incident_latency_p99_ms=None, alerts=4,
                       per_scenario={"binge_bot": {"detected": 2, "incidents": 2}},
                       per_detector={"binge_bot": {"alerts": 3, "precision": 1.0},
                                     "river_anomaly": {"alerts": 1, "precision": 0.0}})  # fmt: skip
    model = TrainedModel(version="20261201T150000", path="models/recs/20261201T150000",
                         provenance={"fit_seconds": 0.42, "metrics": {},
                                     "metrics_note": TOO_LITTLE},
                         users=300, movies=120, interactions=1500, hyperparameters={},
                         sample_users=["u000001"])  # fmt: skip
    example = {"model_version": model.version, "items": [{"title": "Alpha"}, {"title": "Beta"}]}
    quality = RecsEvaluation(
        {"ndcg@10": 0.1953, "best_baseline": "item_knn", "best_baseline_ndcg@10": 0.1834,
         "ndcg_ratio": 1.065, "popularity_ndcg@10": 0.0425},
        {"kind": "simulated", "seed": 42, "users": 600, "days": 10.0},
    )  # fmt: skip
    result = DemoResult(
        gateway_url="http://127.0.0.1:8000", events=12345, incidents=3,
        labels_dir=Path("data/raw/simulations/demo-seed42"),
        topic_messages={"watch-history": 4000, "login-events": 700}, genre_windows=39,
        top_genre="drama (41 min on average)", analytics_lag=0,
        postgres_rows={"watch_history": 4000}, fraud=fraud, fraud_lag=0,
        recs=ServedRecs(model, example, "http://127.0.0.1:8000/v1/recommendations/u000001",
                        quality),
        recs_lag=0, consumer_status=["movieflix-analytics OK", "movieflix-fraud OK"],
        reports={"fraud-review": ReportOutcome("succeeded", "reports/fraud-review/r1", 9.0)},
        reports_index="reports/index.html",
    )  # fmt: skip
    rows = _cells(_printed(demo_table(result)))
    assert rows["events through the gateway"] == "12,345"
    assert rows["messages in watch-history"] == "4,000"
    assert rows["closed genre windows (30 min)"].startswith("39 in data/processed")
    assert "longest watched: drama" in rows["closed genre windows (30 min)"]
    assert rows["fraud alerts on fraud-signals"] == (
        "4 (binge_bot 3 (precision 1.000), river_anomaly 1 (precision 0.000))"
    )
    assert rows["against the labels"] == (
        "precision 0.750, recall 1.000; incidents caught: binge_bot 2/2"
    )
    assert rows["analytics lag"] == rows["fraud app lag"] == rows["recs app lag"] == "0"
    assert rows["recommendation model"].startswith("20261201T150000: 300 users x 120 movies")
    assert rows["held-out NDCG@10 (the run's data)"] == TOO_LITTLE
    assert rows["held-out NDCG@10 (a seeded 10-day history of 600 users)"] == (
        "ALS 0.195 vs best baseline item-kNN 0.183 (1.065x); plain popularity 0.043"
    )
    assert rows["recommendations API"].endswith("u000001 → Alpha, Beta")
    assert rows["consumer status (lag --watch)"] == "movieflix-analytics OK; movieflix-fraud OK"
    assert rows["report fraud-review"] == "succeeded: reports/fraud-review/r1/report.html"
    assert rows["PostgreSQL watch_history"] == "4,000 rows"
    assert rows["gateway"] == "http://127.0.0.1:8000"


def test_goals_print_as_a_table_with_their_targets() -> None:
    goals = [Goal.check("bounded lag", 1200, "<=", 3500), Goal.check("gateway errors", 2, "==", 0)]
    text = _printed(goal_table(goals, "soak"))
    lag = next(line for line in text.splitlines() if "bounded lag" in line)
    errors = next(line for line in text.splitlines() if "gateway errors" in line)
    assert "1200" in lag and "<= 3500" in lag and "yes" in lag
    assert "== 0" in errors and "NO" in errors
