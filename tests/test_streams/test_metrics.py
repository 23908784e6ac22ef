"""Each stream app's ``/metrics``, scraped while ``movieflix-lab stream all`` runs: the counts
equal what was written, the windows closed equal a batch computation, and the lag is zero
once the apps caught up."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from movieflix_lab.config import Settings, child_environment
from movieflix_lab.events.models import WatchRecord
from movieflix_lab.jobs.processes import interrupt, spawn
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.streams import genre_watch_time, search_volume
from movieflix_lab.streams.metrics import StreamMetrics, _keyed
from movieflix_lab.streams.runner import wait_for_catch_up
from tests.fixtures.kafka import free_port, with_settings
from tests.fixtures.streams import ANALYTICS, batch_windows, heartbeats, watch_frame

CONFIG = SimulationConfig(seed=31, users=150, movies=120, minutes=90, activity=6,
                          incident_rates={})  # fmt: skip
POISON = [b"{not json", b"[1, 2, 3]"]
LATE = 3

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(url: str, **headers: str) -> Samples:
    """Every sample of a scrape, by name and labels (``app`` left out)."""
    text = httpx.get(url, timeout=5, headers=headers).raise_for_status().text
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "app"))
            samples[sample.name][labels] = sample.value
    return samples


def _count(settings: Settings, topic: str) -> int:
    reader = consumer(settings)
    reader.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    total, quiet = 0, 0
    while quiet < 3:
        batch = [m for m in reader.consume(1000, timeout=0.5) if not m.error()]
        total += len(batch)
        quiet = 0 if batch else quiet + 1
    reader.close()
    return total


def _until(check: Callable[[], Any], timeout: float = 60) -> Any:
    """``check()`` once it is truthy (the apps count as they go; statistics come every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture(scope="module")
def running(clean_kafka: Settings, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("metrics")
    settings = with_settings(clean_kafka, fraud_model_dir=home / "fraud",
                             recs_model_dir=home / "recs", state_dir=home / "state",
                             processed_dir=home / "processed",
                             stream_metrics_interval_s=0.5)  # fmt: skip
    create_topics(settings)
    events = list(Simulator(CONFIG).events())
    with EventWriter(settings) as writer:
        for event in events:
            writer.send(event)
    out = producer(settings)
    for value in POISON:
        out.produce("watch-history", key=b"u-poison", value=value)
    assert out.flush(30) == 0
    heartbeats(settings, max(e.timestamp_ms for e in events))  # every window of the run closes
    base = free_port()
    while not all(_free(base + i) for i in range(3)):
        base = free_port()
    log = home / "stream-all.log"
    with open(log, "w") as output:
        process = spawn(["stream", "all", "--metrics-port", str(base)], child_environment(settings),
                        stdout=output, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            for app in ("analytics", "fraud", "recs"):
                assert wait_for_catch_up(settings, app, timeout=240) == 0, log.read_text()
            # Late: viewings of the run's first minute, after its windows closed.
            first = min((e for e in events if isinstance(e, WatchRecord)),
                        key=lambda e: e.timestamp_ms)  # fmt: skip
            with EventWriter(settings) as writer:
                for _ in range(LATE):
                    writer.send(first.model_copy(update={"event_id": uuid.uuid4()}))
            assert wait_for_catch_up(settings, "analytics", timeout=60) == 0
            urls = {app: f"http://127.0.0.1:{base + i}/metrics"
                    for i, app in enumerate(("analytics", "fraud", "recs"))}  # fmt: skip
            yield settings, events, urls, log
        finally:
            interrupt(process, timeout=60)


def _free(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
    except httpx.TransportError:
        return True
    return False


def test_stream_all_prints_each_apps_metrics_url(running) -> None:  # type: ignore[no-untyped-def]
    _, _, urls, log = running
    text = log.read_text()
    for app, url in urls.items():
        assert f"{app}: metrics on {url}" in text


def test_the_analytics_metrics_equal_what_was_written_and_a_batch_computation(running) -> None:  # type: ignore[no-untyped-def]
    settings, events, urls, _ = running
    watches = sum(e.event_type == "watch" for e in events) + 6 + LATE  # heartbeats, late
    searches = sum(e.event_type == "search" for e in events) + 6

    def settled() -> Samples | None:
        got = scrape(urls["analytics"])
        records = got["movieflix_stream_records_total"]
        done = (
            records.get((("topic", "watch-history"),)) == watches
            and got["movieflix_stream_late_records_total"]
        )
        return got if done else None

    got = _until(settled)
    assert got, scrape(urls["analytics"])["movieflix_stream_records_total"]
    records = got["movieflix_stream_records_total"]
    assert records[(("topic", "search-events"),)] == searches
    # Every re-keyed record is read again from its repartition topic.
    repartitioned = {labels[0][1]: n for labels, n in records.items()
                     if labels[0][1].startswith("repartition__")}  # fmt: skip
    assert len(repartitioned) == 2 and all(n > 0 for n in repartitioned.values())
    assert got["movieflix_stream_dead_letters_total"][()] == len(POISON)
    late = sum(got["movieflix_stream_late_records_total"].values())
    assert late == _count(settings, "analytics.late-events") >= LATE
    # Windows closed: each genre result once, as many as a batch computation has windows.
    frame = watch_frame(events)
    genre = ANALYTICS.genre
    closed = got["movieflix_stream_windows_closed_total"]
    assert (
        closed[(("window", "genre_watch_time.tumbling"),)]
        == batch_windows(frame, ["genre"], genre.window, None).height
    )
    assert (
        closed[(("window", "genre_watch_time.hopping"),)]
        == batch_windows(frame, ["genre"], genre.window, genre.hop).height
    )
    per_user, total = search_volume.output_topics(ANALYTICS.search)
    assert closed[(("window", "search_volume.per_user"),)] == _count(settings, per_user.name)
    assert closed[(("window", "search_volume.total"),)] == _count(settings, total.name) > 0
    tumbling, _ = genre_watch_time.output_topics(genre)
    assert _count(settings, tumbling.name) == closed[(("window", "genre_watch_time.tumbling"),)]
    assert got["movieflix_stream_checkpoint_seconds_count"][()] >= 1
    assert got["movieflix_stream_processing_seconds_count"][()] >= 1
    assert got["movieflix_stream_state_bytes"][()] > 0


def test_every_app_reports_zero_lag_on_each_partition_once_caught_up(running) -> None:  # type: ignore[no-untyped-def]
    _, _, urls, _ = running
    for app, url in urls.items():

        def caught_up(url: str = url) -> Samples | None:
            got = scrape(url)
            lag = got["movieflix_stream_consumer_lag"]
            return got if lag and not any(lag.values()) else None

        got = _until(caught_up)
        assert got, (app, scrape(url)["movieflix_stream_consumer_lag"])
        partitions = {dict(labels)["topic"] for labels in got["movieflix_stream_consumer_lag"]}
        assert "watch-history" in partitions, (app, partitions)
        assert sum(got["movieflix_stream_records_total"].values()) > 0, app
        assert got["movieflix_stream_dead_letters_total"][()] == len(POISON), app


def test_statistics_become_lag_per_partition_and_the_key_guards_the_scrape() -> None:
    metrics = StreamMetrics("fraud")
    stats = {"topics": {"watch-history": {"partitions": {
        "0": {"consumer_lag": 4}, "1": {"consumer_lag": 0}, "2": {"consumer_lag": -1},
        "-1": {"consumer_lag": 9}}}}}  # fmt: skip
    metrics.on_statistics(json.dumps(stats))
    assert metrics.lag == {("watch-history", 0): 4, ("watch-history", 1): 0}
    metrics.on_statistics("not json")  # a broken statistic changes nothing
    assert metrics.lag == {("watch-history", 0): 4, ("watch-history", 1): 0}

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        start("200 OK", [])
        return [b"ok"]

    guarded = _keyed(app, "k")
    statuses: list[str] = []
    for environ in ({}, {"HTTP_X_API_KEY": "wrong"}, {"HTTP_X_API_KEY": "k"},
                    {"HTTP_AUTHORIZATION": "Bearer k"}):  # fmt: skip
        guarded(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["401 Unauthorized", "401 Unauthorized", "200 OK", "200 OK"]


def test_a_taken_port_named_when_asked_for_a_free_one_taken_otherwise(tmp_path: Path) -> None:
    from movieflix_lab.exceptions import MovieflixError
    from movieflix_lab.streams.metrics import serve_metrics

    settings = Settings(state_dir=tmp_path)
    first, url = serve_metrics(settings, StreamMetrics("recs"), free_port())
    assert first is not None and url is not None
    try:
        taken = first.server_port
        with pytest.raises(MovieflixError, match=f"cannot serve metrics on 127.0.0.1:{taken}"):
            serve_metrics(settings, StreamMetrics("recs"), taken, exact=True)
        second, other = serve_metrics(settings, StreamMetrics("recs"), taken)
        assert second is not None and other != url
        text = httpx.get(other).text
        assert "\nmovieflix_stream_records_total{" not in text  # none processed yet
        assert "movieflix_stream_dead_letters_total" in text
        second.shutdown()
        assert serve_metrics(settings, StreamMetrics("recs"), 0) == (None, None)
    finally:
        first.shutdown()
