"""``movieflix-lab stream APP``: one stream app in this process, with what runs beside it.

The recs app gets its background refit (a job: :class:`~movieflix_lab.jobs.recs.Refitter`)
through the runner's ``on_start`` hook; the fraud app's saved River model is described
when the run ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.streams.app import Guarantee
from movieflix_lab.streams.runner import APPS, AnalyticsOptions, RunSummary, run_app

__all__ = ["FraudModelState", "StreamRun", "run_stream"]


@dataclass(frozen=True)
class FraudModelState:
    """The fraud app's River model as it saved it at the end of the run."""

    events_learned: int
    drifts_detected: int
    folder: str


@dataclass(frozen=True)
class StreamRun:
    summary: RunSummary
    #: The fraud app's model, when the app was ``fraud`` and it saved one.
    fraud_model: FraudModelState | None = None

    @property
    def late(self) -> int:
        return sum(self.summary.late_events.values())


def _refit_hook(settings: Settings) -> Callable[[], Callable[[], None]]:
    from movieflix_lab.jobs.recs import Refitter

    def start() -> Callable[[], None]:
        return Refitter(settings, settings.recs_refit_interval_s).start().stop

    return start


def _fraud_model(settings: Settings, instance: str) -> FraudModelState | None:
    from movieflix_lab.streams.fraud import model_dir

    path = model_dir(settings, instance) / "model.json"
    if not path.exists():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return FraudModelState(meta["events_learned"], meta["drifts_detected"], str(path.parent))


def run_stream(
    settings: Settings,
    name: str,
    *,
    timeout: float = 0.0,
    guarantee: Guarantee = "at-least-once",
    instance: str = "0",
    grace: timedelta | None = None,
    metrics_port: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> StreamRun:
    """Run stream app ``name`` (see :func:`~movieflix_lab.streams.runner.run_app`) on a
    cluster that answers (the CLI checks it first).

    Its ``/metrics`` are served on ``metrics_port`` (0: none) or, by default, on the app's
    port from ``stream_metrics_port`` (:func:`~movieflix_lab.streams.metrics.metrics_port`;
    a free one when that is taken); ``say`` hears the URL."""
    from movieflix_lab.streams.genre_watch_time import GenreWatchTimeOptions
    from movieflix_lab.streams.metrics import StreamMetrics, serve_metrics
    from movieflix_lab.streams.metrics import metrics_port as default_port
    from movieflix_lab.streams.search_volume import SearchVolumeOptions

    if name not in APPS:
        raise MovieflixError(f"unknown stream app {name!r}; known: {', '.join(APPS)}, all")
    options = None
    if grace is not None:
        options = AnalyticsOptions(
            genre=GenreWatchTimeOptions(grace=grace), search=SearchVolumeOptions(grace=grace)
        )
    metrics = StreamMetrics(name)
    port = default_port(settings, name) if metrics_port is None else metrics_port
    server, url = serve_metrics(settings, metrics, port, exact=metrics_port is not None)
    if url:
        say(f"{name}: metrics on {url}")
    try:
        summary = run_app(
            settings,
            name,
            timeout=timeout,
            guarantee=guarantee,
            instance=instance,
            options=options,
            on_start=_refit_hook(settings) if name == "recs" else None,
            metrics=metrics,
        )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    model = _fraud_model(settings, instance) if name == "fraud" else None
    return StreamRun(summary, model)
