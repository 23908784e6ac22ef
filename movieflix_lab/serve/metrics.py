"""Prometheus metrics of the serve app.

One process (``serve`` with one worker, a test's app): the metrics live in the app's own
registry. Several workers (``serve --workers N``): each worker is a process of its own, and a
scrape reaches one of them at random, so each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (the ``serve`` command makes that folder for the run) and
``/metrics`` sums every worker's files (prometheus_client's multiprocess mode): one scrape
shows all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from movieflix_lab.config import prometheus_multiproc_dir

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        #: Whether the values are shared with the other workers through files.
        self.multiprocess = prometheus_multiproc_dir() is not None
        self.requests = Counter(
            "movieflix_http_requests_total",
            "HTTP requests by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "movieflix_gateway_events_total",
            "Events accepted (confirmed by Kafka) by event type.",
            ["event_type"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "movieflix_gateway_rejects_total",
            "Ingestion requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.delivery = Histogram(
            "movieflix_gateway_delivery_seconds",
            "From receiving a request to Kafka confirming all of its events.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # Across workers: up only when every live worker's producer reaches Kafka.
        self.kafka_up = Gauge(
            "movieflix_gateway_kafka_up",
            "1 when the gateway's producer reaches Kafka (every worker's, with several).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

        self.worker_up = Gauge(
            "movieflix_gateway_worker_up",
            "1 per live worker process (a pid label each, with several).",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.worker_up.set(1)

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's registry, or every worker's values."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)

    def close(self) -> None:
        """A worker stopping: its live gauges no longer count."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())
