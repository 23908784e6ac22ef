"""Prometheus metrics of the serve app (one registry per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.kafka_up = Gauge(
            "movieflix_gateway_kafka_up",
            "1 when the gateway's producer reaches Kafka.",
            registry=self.registry,
        )
