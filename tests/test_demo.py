"""``movieflix-lab demo`` as a user runs it, on a broker of its own."""

import json
import os
import re
from pathlib import Path

import httpx
import polars as pl
import pytest

from movieflix_lab.config import Settings
from tests.fixtures import cli_env, free_port, local_broker_settings, run_cli, with_settings


@pytest.fixture
def fresh(tmp_path: Path) -> Settings:
    return with_settings(local_broker_settings(tmp_path / "broker"), gateway_port=free_port())


def test_demo_runs_end_to_end_and_cleans_up(fresh: Settings) -> None:
    env = cli_env(fresh, MOVIEFLIX_GATEWAY_PORT=str(fresh.gateway_port),
                  MOVIEFLIX_LOCAL_POSTGRES_PORT=str(free_port()))  # fmt: skip
    result = run_cli("demo", "--exit", "--users", "300", "--minutes", "60", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Kafka 4.3.1 at" in out and "gateway ready at" in out
    assert "events through the gateway" in out and "stopped the broker the demo started" in out
    assert "analytics stream app started" in out and "fraud stream app started" in out
    fraud = next(line for line in out.splitlines() if "fraud app lag" in line)
    assert fraud.split("│")[2].strip() == "0", fraud
    assert "fraud alerts on fraud-signals" in out and "/v1/fraud/alerts" in out
    model = json.loads((fresh.models_dir / "fraud" / "model.json").read_text())
    # The recommender: trained on the run's watch-history, served by the serve app.
    assert "recs stream app started" in out and "recommendation model" in out
    recs_lag = next(line for line in out.splitlines() if "recs app lag" in line)
    assert recs_lag.split("│")[2].strip() == "0", recs_lag
    version = os.readlink(fresh.models_dir / "recs" / "latest")
    provenance = json.loads((fresh.models_dir / "recs" / version / "provenance.json").read_text())
    assert provenance["source"]["kind"] == "topic" and provenance["git_sha"]
    # A 300-user, one-hour demo is too small to judge quality (the eval's business): it says so.
    assert provenance["interactions"] > 300 and provenance["metrics"] == {}
    assert "too little data for a held-out evaluation" in out
    # Every report ran on the run's data; the index lists them.
    for name in (
        "explore-windows",
        "fraud-review",
        "recsys-eval",
        "pipeline-health",
        "stream-vs-batch",
    ):
        row = next(line for line in out.splitlines() if f"report {name}" in line and "│" in line)
        assert "succeeded" in row, row
    index = (fresh.reports_dir / "index.html").read_text()
    assert index.count('class="status-succeeded"') == 5
    api = next(line for line in out.splitlines() if "recommendations API" in line)
    assert "/v1/recommendations/" in api and "→" in api, api
    assert model["events_learned"] > 500  # the fraud app's model, beside its provenance
    # The first half hour's windows closed once event time passed 18:35; every genre there.
    windows = next(line for line in out.splitlines() if "closed genre windows" in line)
    assert int(windows.split("│")[2].split()[0]) > 0, windows
    # Every windowed output reconciled with the batch computation over the same offsets.
    for output in ("genre watch time, tumbling", "genre watch time, hopping",
                   "search volume, total", "search volume, per user"):  # fmt: skip
        found = re.search(rf"{output}: ([\d,]+) windows closed, ([\d,]+) equal to the batch", out)
        assert found and found[1] == found[2] and int(found[1].replace(",", "")) > 0, output
    lag = next(line for line in out.splitlines() if "analytics lag" in line)
    assert lag.split("│")[2].strip() == "0", lag
    # The PostgreSQL sink ran on a local server of the demo's own (Debian's postgresql).
    assert "PostgreSQL sink: a local server" in out
    rows = {line.split("│")[1].split()[-1]: int(line.split("│")[2].split()[0].replace(",", ""))
            for line in out.splitlines() if "PostgreSQL " in line and "│" in line}  # fmt: skip
    assert rows["watch_history"] > 100 and rows["genre_watch_time"] > 0, rows
    assert not (fresh.data_dir / "postgres" / "data" / "postmaster.pid").exists()  # stopped

    labels = fresh.raw_dir / "simulations" / "demo-seed42"
    manifest = json.loads((labels / "manifest.json").read_text())
    assert manifest["events"] > 500
    assert f"{manifest['events']:,}" in out  # the summary reports what was ingested
    assert pl.read_parquet(labels / "users.parquet").height == 300

    # Everything it started is stopped: the broker it started, and the gateway.
    assert run_cli("broker", "status", env=env).returncode == 3
    assert not (fresh.broker_dir / "broker.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{fresh.gateway_port}/healthz", timeout=2)

    # A second run works (the broker restarts on the same storage).
    again = run_cli("demo", "--exit", "--users", "300", "--minutes", "30", env=env, timeout=300)
    assert again.returncode == 0, again.stderr
