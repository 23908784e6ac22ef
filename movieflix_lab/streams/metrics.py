"""Prometheus ``/metrics`` of a stream app: what an operator watches without the CLI.

Each stream app process serves its own registry on a port of its own
(:func:`metrics_port`: ``stream_metrics_port`` plus the app's place in ``analytics, fraud,
recs``) with prometheus_client's HTTP server, in a thread beside the Quix loop:

- ``movieflix_stream_records_total{app,topic}``: records processed, by input topic
  (repartition topics included), counted by Quix's ``on_message_processed`` hook (a record
  the app drops before decoding it, such as an event type the fraud app has no rule for,
  is read but not counted);
- ``movieflix_stream_processing_seconds{app}``: time to process one polled record (its
  pipeline, state and sinks' buffering), measured on one record in :data:`SAMPLE_EVERY`;
- ``movieflix_stream_consumer_lag{app,topic,partition}``: the consumer's lag per assigned
  partition (log end, or last stable offset under read_committed, minus the committed
  offset), from librdkafka's statistics every ``stream_metrics_interval_s``;
- ``movieflix_stream_late_records_total{app,window}``: records that came after their window
  closed (each also on ``analytics.late-events``);
- ``movieflix_stream_dead_letters_total{app}``: unreadable records sent to ``dead-letters``;
- ``movieflix_stream_windows_closed_total{app,window}``: window results emitted;
- ``movieflix_stream_checkpoint_seconds{app}``: committing a checkpoint (producer flush,
  state flush, offsets commit; under exactly-once the transaction);
- ``movieflix_stream_state_bytes{app}``: the app instance's state folder on disk (RocksDB).

The per-record hooks add two Python calls to a record's path; everything else is read when
Prometheus scrapes. The values are the running process's since it started (counters reset at
a restart, as Prometheus expects).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from movieflix_lab.config import Settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from movieflix_lab.streams.app import StreamApp

__all__ = [
    "SAMPLE_EVERY",
    "MetricsSnapshot",
    "StreamMetrics",
    "free_metrics_port",
    "metrics_port",
    "scrape",
    "serve_metrics",
]

logger = logging.getLogger(__name__)

#: One polled record in this many has its processing time measured.
SAMPLE_EVERY = 32

#: The apps in the order that gives each its port (``stream_metrics_port`` + place).
PORT_ORDER = ("analytics", "fraud", "recs")


def metrics_port(settings: Settings, app: str) -> int:
    """The port stream app ``app`` serves ``/metrics`` on by default; 0 when turned off."""
    if settings.stream_metrics_port == 0:
        return 0
    place = PORT_ORDER.index(app) if app in PORT_ORDER else len(PORT_ORDER)
    return settings.stream_metrics_port + place


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # RocksDB removed it since the listing
                total += os.stat(os.path.join(root, name)).st_size
    return total


class StreamMetrics:
    """The metrics of one stream app process; :meth:`attach` hooks them into its Quix app."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        #: Records processed per topic (a plain Counter: no lock on the record path).
        self.records: Counter[str] = Counter()
        #: (topic, partition) → lag, from the latest consumer statistics.
        self.lag: dict[tuple[str, int], int] = {}
        self.windows: Counter[str] = Counter()
        self.processing = Histogram(
            "movieflix_stream_processing_seconds",
            f"Time to process one polled record (one record in {SAMPLE_EVERY} is measured).",
            ["app"],
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1),
            registry=self.registry,
        ).labels(app)
        self.checkpoints = Histogram(
            "movieflix_stream_checkpoint_seconds",
            "Committing a checkpoint: flushing producer and state, committing offsets.",
            ["app"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        ).labels(app)
        self._stream: StreamApp | None = None
        self.registry.register(_Collected(self))

    # -- hooks ----------------------------------------------------------------------------
    def on_message_processed(self, topic: str, partition: int, offset: int) -> None:
        """Quix's ``on_message_processed``: one record of ``topic`` done."""
        self.records[topic] += 1

    def window_closed(self, window: str) -> Callable[[Any], None]:
        """A callback counting the results of window ``window`` (for ``sdf.update``)."""

        def closed(_: Any) -> None:
            self.windows[window] += 1

        return closed

    def on_statistics(self, raw: str) -> None:
        """librdkafka's statistics (``stats_cb``): the consumer's lag per partition."""
        try:
            stats = json.loads(raw)
        except ValueError:
            return
        lag: dict[tuple[str, int], int] = {}
        for topic, data in stats.get("topics", {}).items():
            for key, partition in data.get("partitions", {}).items():
                value = partition.get("consumer_lag", -1)
                if key != "-1" and value >= 0:
                    lag[(topic, int(key))] = value
        self.lag = lag

    def attach(self, stream: StreamApp) -> None:
        """Time a sample of the records and every checkpoint of ``stream``'s application.

        Quix has no public hook for either: this wraps its loop's ``_process_message`` and
        its processing context's ``commit_checkpoint``, as ``DeadLetters`` reaches its
        checkpoint (checked against quixstreams 3.28).
        """
        self._stream = stream
        app = stream.app
        process = app._process_message
        count = self.records
        timer = self.processing
        calls = 0

        def process_message(dataframes: Any) -> None:
            nonlocal calls
            calls += 1
            if calls % SAMPLE_EVERY:
                process(dataframes)
                return
            before, started = count.total(), time.perf_counter()
            process(dataframes)
            if count.total() > before:  # a record, not an empty poll
                timer.observe(time.perf_counter() - started)

        app._process_message = process_message  # type: ignore[method-assign]
        context = app._processing_context
        commit = context.commit_checkpoint
        checkpoints = self.checkpoints

        def commit_checkpoint(force: bool = False, revoking: bool = False) -> None:
            checkpoint = context.checkpoint
            if checkpoint.empty() or not (force or checkpoint.expired()):
                commit(force=force, revoking=revoking)
                return
            started = time.perf_counter()
            commit(force=force, revoking=revoking)
            checkpoints.observe(time.perf_counter() - started)

        context.commit_checkpoint = commit_checkpoint  # type: ignore[method-assign]

    # -- read at scrape time --------------------------------------------------------------
    def families(self) -> Iterator[Metric]:
        app = self.app
        records = CounterMetricFamily(
            "movieflix_stream_records", "Records processed, by input topic.",
            labels=["app", "topic"],
        )  # fmt: skip
        for topic, value in sorted(self.records.items()):
            records.add_metric([app, topic], value)
        yield records
        lag = GaugeMetricFamily(
            "movieflix_stream_consumer_lag",
            "The consumer's lag per assigned partition (from librdkafka's statistics).",
            labels=["app", "topic", "partition"],
        )
        for (topic, partition), value in sorted(self.lag.items()):
            lag.add_metric([app, topic, str(partition)], value)
        yield lag
        windows = CounterMetricFamily(
            "movieflix_stream_windows_closed", "Window results emitted, by window.",
            labels=["app", "window"],
        )  # fmt: skip
        for window, value in sorted(self.windows.items()):
            windows.add_metric([app, window], value)
        yield windows
        stream = self._stream
        late = CounterMetricFamily(
            "movieflix_stream_late_records",
            "Records that came after their window closed, by window.",
            labels=["app", "window"],
        )
        dead = CounterMetricFamily(
            "movieflix_stream_dead_letters", "Unreadable records sent to dead-letters.",
            labels=["app"],
        )  # fmt: skip
        state = GaugeMetricFamily(
            "movieflix_stream_state_bytes", "The instance's state folder on disk (RocksDB).",
            labels=["app"],
        )  # fmt: skip
        if stream is not None:
            for window, value in sorted(stream.late.by_window.items()):
                late.add_metric([app, window], value)
            dead.add_metric([app], stream.dead_letters.count)
            state.add_metric([app], _size(stream.state_dir))
        yield from (late, dead, state)


class _Collected(Collector):
    def __init__(self, metrics: StreamMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.families()


def _keyed(app: Callable[..., Any], key: str | None) -> Callable[..., Any]:
    """``app`` behind ``key`` (``X-API-Key`` or ``Authorization: Bearer``), as the serve
    app's ``/metrics`` when ``MOVIEFLIX_METRICS_API_KEY`` is set."""
    if not key:
        return app
    expected = key.encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        given = environ.get("HTTP_X_API_KEY", "")
        bearer = environ.get("HTTP_AUTHORIZATION", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if hmac.compare_digest(given.encode(), expected):
            return app(environ, start_response)
        body = b'{"error":"unauthorized","detail":[{"field":"X-API-Key","message":"missing or wrong API key"}]}'  # noqa: E501
        start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                            ("WWW-Authenticate", "ApiKey")])  # fmt: skip
        return [body]

    return guarded


def serve_metrics(
    settings: Settings, metrics: StreamMetrics, port: int, *, exact: bool = False
) -> tuple[WSGIServer | None, str | None]:
    """Serve ``metrics`` on ``port`` in a daemon thread; returns the server and its URL.

    A taken port is an error when ``exact`` (the operator asked for it), else the server
    takes a free port and says so in the log. Port 0 serves nothing.
    """
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    if port == 0:
        return None, None

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    key = settings.metrics_api_key.get_secret_value() if settings.metrics_api_key else None
    app = _keyed(make_wsgi_app(metrics.registry), key)
    host = settings.stream_metrics_host
    try:
        server = make_server(host, port, app, ThreadingWSGIServer, handler_class=Quiet)
    except OSError as exc:
        if exact:
            from movieflix_lab.exceptions import MovieflixError

            raise MovieflixError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}): pick another "
                "--metrics-port, or 0 for none"
            ) from None
        server = make_server(host, 0, app, ThreadingWSGIServer, handler_class=Quiet)
        logger.warning("port %d is taken: metrics on port %d", port, server.server_port)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server, f"http://{host}:{server.server_port}/metrics"


@dataclass(frozen=True)
class MetricsSnapshot:
    """What one scrape of a stream app's ``/metrics`` says, summed over topics and windows."""

    url: str
    records: int
    dead_letters: int
    lag: int
    partitions: int
    windows_closed: int
    late: int
    checkpoints: int

    def line(self) -> str:
        windows = f", {self.windows_closed:,} windows closed" if self.windows_closed else ""
        late = f", {self.late:,} late" if self.late else ""
        return (
            f"{self.records:,} records, lag {self.lag:,} over {self.partitions} partitions, "
            f"{self.dead_letters} dead letters{windows}{late}, {self.checkpoints:,} checkpoints"
        )


def scrape(url: str, *, key: str | None = None, timeout: float = 5.0) -> MetricsSnapshot:
    """Scrape a stream app's ``/metrics`` (with the metrics key, when one is set)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"x-api-key": key} if key else {}
    text = httpx.get(url, headers=headers, timeout=timeout).raise_for_status().text
    sums: Counter[str] = Counter()
    partitions = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] += int(sample.value)
            partitions += sample.name == "movieflix_stream_consumer_lag"
    return MetricsSnapshot(
        url=url,
        records=sums["movieflix_stream_records_total"],
        dead_letters=sums["movieflix_stream_dead_letters_total"],
        lag=sums["movieflix_stream_consumer_lag"],
        partitions=partitions,
        windows_closed=sums["movieflix_stream_windows_closed_total"],
        late=sums["movieflix_stream_late_records_total"],
        checkpoints=sums["movieflix_stream_checkpoint_seconds_count"],
    )


def free_metrics_port(settings: Settings, app: str) -> int:
    """The app's default metrics port if nothing listens on it, else a free one."""
    import socket

    for port in (metrics_port(settings, app) or 0, 0):
        with socket.socket() as sock:
            try:
                sock.bind((settings.stream_metrics_host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port")  # pragma: no cover - binding port 0 does not fail
