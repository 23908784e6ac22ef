"""``movieflix-lab demo`` end to end on a broker of its own: once through its typed result,
once as a user runs it (the command, its printed summary)."""

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from movieflix_lab.config import Settings
from movieflix_lab.jobs.demo import DemoOptions, DemoResult, run_demo
from movieflix_lab.jobs.processes import spawn
from movieflix_lab.jobs.recs import TOO_LITTLE
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import free_port, local_broker_settings, with_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTPUTS = {"genre watch time, tumbling", "genre watch time, hopping", "search volume, total",
           "search volume, per user"}  # fmt: skip
REPORTS = ("explore-windows", "fraud-review", "recsys-eval", "pipeline-health", "stream-vs-batch")


@pytest.fixture
def fresh(tmp_path: Path) -> Settings:
    return with_settings(local_broker_settings(tmp_path / "broker"), gateway_port=free_port(),
                         local_postgres_port=free_port())  # fmt: skip


@pytest.mark.timeout(600)  # two demos, each running every report: about 280 s on 2 cores
def test_demo_runs_end_to_end_and_cleans_up(fresh: Settings) -> None:
    said: list[str] = []
    summaries: list[DemoResult] = []
    options = DemoOptions(users=300, minutes=60, exit_after=True)
    result = run_demo(fresh, options, say=said.append, summary=summaries.append)
    assert summaries == [result]
    assert any(line.startswith("Kafka 4.3.1 at") for line in said), said
    assert any(line.startswith("gateway ready at") for line in said), said
    assert "stopped the broker the demo started" in said
    assert any(line.startswith("PostgreSQL sink: a local server") for line in said), said
    for app in ("analytics", "fraud", "recs"):
        assert any(line.startswith(f"{app} stream app started") for line in said), app
    # Every app caught up on the run's traffic.
    assert (result.analytics_lag, result.fraud_lag, result.recs_lag) == (0, 0, 0)
    # ...and their groups are OK by Burrow's rules over the demo's short watch.
    for app in ("analytics", "fraud", "recs"):
        assert f"movieflix-{app} OK" in result.consumer_status, result.consumer_status
    # The fraud app scored against the run's labels, its model saved beside its provenance.
    assert result.fraud is not None and result.fraud.alerts == sum(
        row["alerts"] for row in result.fraud.per_detector.values()
    )
    model = json.loads((fresh.models_dir / "fraud" / "model.json").read_text())
    assert model["events_learned"] > 500
    # The recommender: trained on the run's watch-history, served by the serve app.
    assert result.recs is not None
    trained = result.recs.model
    assert os.readlink(fresh.models_dir / "recs" / "latest") == trained.version
    provenance = json.loads((Path(trained.path) / "provenance.json").read_text())
    assert provenance["source"]["kind"] == "topic" and provenance["git_sha"]
    # A 300-user, one-hour demo is too small to judge quality (the eval's business): it says so.
    assert provenance["interactions"] > 300 and provenance["metrics"] == {}
    assert trained.metrics_note == TOO_LITTLE
    # ...so its quality is shown on a seeded history beside it (the recsys-eval report's):
    # ALS and the tuned baselines, the ratio over the best of them.
    quality = result.recs.quality
    assert quality is not None and quality.data["kind"] == "simulated"
    assert quality.data["report"] == result.reports["recsys-eval"].folder
    scores = quality.metrics
    baselines = scores["baselines"]
    assert set(baselines) == {"popularity", "recent_popularity", "item_knn"}
    assert scores["best_baseline"] == max(baselines, key=baselines.__getitem__)
    best_ndcg = baselines[scores["best_baseline"]]
    assert scores["ndcg_ratio"] == round(scores["ndcg@10"] / best_ndcg, 3)
    assert scores["ndcg@10"] > best_ndcg  # ALS ahead of every tuned baseline on planted tastes
    assert result.recs.example["model_version"] == trained.version
    assert result.recs.example["items"] and "/v1/recommendations/" in result.recs.example_url
    # Every report ran on the run's data; the index lists them.
    assert {name: r.status for name, r in result.reports.items()} == dict.fromkeys(
        REPORTS, "succeeded"
    )
    index = (fresh.reports_dir / "index.html").read_text()
    assert index.count('class="status-succeeded"') == 5
    charts = {"explore-windows": 4, "fraud-review": 2, "recsys-eval": 2, "pipeline-health": 2,
              "stream-vs-batch": 1}  # fmt: skip
    for name, report in result.reports.items():  # as Chromium draws them: publishable
        manifest = json.loads((Path(report.folder) / "manifest.json").read_text())
        assert manifest["page"]["checked"] and manifest["page"]["problems"] == [], name
        assert manifest["page"]["charts"] >= charts[name], (name, manifest["page"])
        assert (Path(report.folder) / "report.png").is_file(), name
    # The first half hour's windows closed once event time passed 18:35.
    assert result.genre_windows > 0 and result.top_genre
    # Every windowed output reconciled with the batch computation over the same offsets.
    checks = {check.spec.name: check for check in result.reconciliation.checks}
    assert set(checks) == OUTPUTS
    for name, check in checks.items():
        assert check.closed > 0 and check.equal == check.closed and not check.missing, name
    assert result.reconciled
    # Each app's /metrics, scraped at the end: caught up, everything read, nothing dead.
    scraped = result.stream_metrics
    assert set(scraped) == {"analytics", "fraud", "recs"}
    for app, metrics in scraped.items():
        assert metrics.lag == 0 and metrics.partitions > 0 and metrics.dead_letters == 0, app
        assert metrics.checkpoints > 0, app
    counts = result.topic_messages
    # Analytics reads each viewing and search, then each again from its repartition topic.
    assert scraped["analytics"].records >= counts["watch-history"] + counts["search-events"]
    assert 0 < scraped["recs"].records <= counts["watch-history"]
    assert scraped["analytics"].windows_closed >= result.genre_windows > 0
    # The events went over the wire as JSON; the same records weigh about half as Avro.
    assert result.wire is not None and result.wire.written == "json"
    assert set(result.wire.topics) == {"user-interactions", "watch-history", "search-events",
                                       "login-events"}  # fmt: skip
    assert 0.3 < result.wire.ratio < 0.6, result.wire
    # The PostgreSQL sink ran on a local server of the demo's own (Debian's postgresql).
    rows = result.postgres_rows
    assert rows["watch_history"] > 100 and rows["genre_watch_time"] > 0, rows
    assert not (fresh.data_dir / "postgres" / "data" / "postmaster.pid").exists()  # stopped

    labels = fresh.raw_dir / "simulations" / "demo-seed42"
    assert result.labels_dir == labels
    manifest = json.loads((labels / "manifest.json").read_text())
    assert result.events == manifest["events"] > 500  # what was ingested
    assert pl.read_parquet(labels / "users.parquet").height == 300

    # Everything it started is stopped: the broker it started, and the gateway.
    env = cli_env(fresh, MOVIEFLIX_GATEWAY_PORT=str(fresh.gateway_port),
                  MOVIEFLIX_LOCAL_POSTGRES_PORT=str(fresh.local_postgres_port))  # fmt: skip
    assert run_cli("broker", "status", env=env).returncode == 3
    assert not (fresh.broker_dir / "broker.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{fresh.gateway_port}/healthz", timeout=2)

    # As a user runs it, a second time (the broker restarts on the same storage): the
    # command prints what it ran and the summary of its result. This time with Avro on the
    # wire, so every topic now holds both formats, and every window still equals the batch.
    # It serves until stopped, as `make demo` does; stopped here as `kill` or a process
    # manager stops it (SIGTERM), it cleans up as after Ctrl-C.
    env["MOVIEFLIX_WIRE_FORMAT"] = "avro"
    said_to, errors_to = fresh.data_dir / "demo.out", fresh.data_dir / "demo.err"
    with said_to.open("w") as stdout, errors_to.open("w") as stderr:
        terminal = {**env, "COLUMNS": "200", "NO_COLOR": "1"}
        demo = spawn(["demo", "--users", "300", "--minutes", "30"], terminal,
                     stdout=stdout, stderr=stderr)  # fmt: skip
        deadline = time.monotonic() + 300
        while "Ctrl-C to stop" not in said_to.read_text():
            assert demo.poll() is None, errors_to.read_text()
            assert time.monotonic() < deadline, said_to.read_text()
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{fresh.gateway_port}/healthz", timeout=5).is_success
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(120) == 0, errors_to.read_text()
    events = json.loads((labels / "manifest.json").read_text())["events"]
    out, err = said_to.read_text(), errors_to.read_text()
    assert "stopping" in out
    assert "MovieFlix Lab demo" in out and f"{events:,}" in out
    assert "stream vs batch" in out
    assert "analytics app /metrics" in out
    assert re.search(r"wire format \(MOVIEFLIX_WIRE_FORMAT\)[\s│]+avro; as Avro, events weigh "
                     r"0\.\d\d of their JSON", out), out  # fmt: skip
    for line in (out + err).splitlines():  # librdkafka's lines go through logging
        assert not re.match(r"\s*(%\d\||[A-Z]{4,12} \[(rdkafka|thrd))", line), line
    for output in OUTPUTS:  # printed as reconciled: every closed window equal to the batch
        found = re.search(rf"{output}: ([\d,]+) windows closed, ([\d,]+) equal to the batch", out)
        assert found and found[1] == found[2], output
    assert "stopped the broker the demo started" in out
    assert run_cli("broker", "status", env=env).returncode == 3  # all it started is stopped
    metrics = set(re.findall(r"(http://127\.0\.0\.1:\d+)/metrics", out))
    assert len(metrics) == 3, out
    for url in [*metrics, f"http://127.0.0.1:{fresh.gateway_port}"]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    assert not (fresh.data_dir / "postgres" / "data" / "postmaster.pid").exists()
