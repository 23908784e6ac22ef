"""``serve --workers 2``: one scrape of ``/metrics`` counts every worker's requests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from movieflix_lab.config import Settings
from movieflix_lab.jobs.processes import gateway_process
from movieflix_lab.kafka.catalog import create_topics
from tests.fixtures.kafka import free_port

REQUESTS = 40


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_every_scrape_sums_all_workers(kafka: Settings) -> None:
    create_topics(kafka)
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    with gateway_process(kafka, port=free_port(), workers=2) as url:
        for n in range(REQUESTS):  # a connection each: the workers take turns accepting
            event = {"event_id": str(uuid.uuid4()), "user_id": f"u-metrics-{n}", "rating": 4,
                     "timestamp": at, "event_type": "rate", "movie_id": "m1"}  # fmt: skip
            assert httpx.post(f"{url}/v1/events", json=event, timeout=30).status_code == 200
        refused = httpx.post(f"{url}/v1/events", content=b"{", timeout=30)
        assert refused.status_code == 400
        for _ in range(10):  # whichever worker answers, the same totals
            got = _samples(httpx.get(f"{url}/metrics", timeout=10).text)
            events = sum(v for labels, v in got["movieflix_gateway_events_total"])
            assert events == REQUESTS, got["movieflix_gateway_events_total"]
            rejects = {labels["reason"]: v for labels, v in got["movieflix_gateway_rejects_total"]}
            assert rejects == {"malformed_json": 1}
            workers = {labels["pid"] for labels, v in got["movieflix_gateway_worker_up"] if v == 1}
            assert len(workers) == 2, got["movieflix_gateway_worker_up"]
            up = got["movieflix_gateway_kafka_up"]
            assert [v for _, v in up] == [1.0], up
