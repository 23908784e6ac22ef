"""Running a simulation: pacing, progress, and the labels written beside the events."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.catalog import CATALOG
from movieflix_lab.simulate.outputs import EventSink, GatewaySink, KafkaSink
from movieflix_lab.simulate.traffic import SimulationConfig, Simulator

__all__ = ["SimulationResult", "check_retention", "run_simulation", "write_ground_truth"]

#: Called every few thousand events with (events so far, simulated minutes so far).
ProgressCallback = Callable[[int, float], None]


@dataclass
class SimulationResult:
    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    incidents: int = 0
    simulated_minutes: float = 0.0
    wall_seconds: float = 0.0
    labels_dir: Path | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds else 0.0


def check_retention(config: SimulationConfig, now_ms: int | None = None) -> None:
    """Refuse a simulation Kafka would delete, or refuse, as it is written.

    Time-based retention counts from each record's timestamp (here, event time): events
    older than a topic's retention go at the broker's next check, every 5 minutes. And the
    broker refuses records more than an hour ahead of its clock
    (``log.message.timestamp.after.max.ms``).

    >>> from datetime import datetime, UTC
    >>> old = SimulationConfig(start=datetime(2026, 3, 2, 18, tzinfo=UTC), minutes=60)
    >>> check_retention(old, now_ms=int(datetime(2026, 3, 3, tzinfo=UTC).timestamp() * 1000))
    >>> check_retention(old, now_ms=int(datetime(2026, 11, 24, tzinfo=UTC).timestamp() * 1000))
    Traceback (most recent call last):
    ...
    movieflix_lab.exceptions.MovieflixError: ... but Kafka keeps user-interactions for 7 days...
    >>> check_retention(old, now_ms=int(datetime(2026, 3, 2, 17, tzinfo=UTC).timestamp() * 1000))
    Traceback (most recent call last):
    ...
    movieflix_lab.exceptions.MovieflixError: the simulation ends ..., 2.0 hours ahead of now; ...
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    start_ms = int(config.start.timestamp() * 1000)
    age_ms = now_ms - start_ms
    for spec in CATALOG:
        retention = spec.config.get("retention.ms")
        deletes = "delete" in spec.config.get("cleanup.policy", "")
        # 0.9: leave the run some time before the deletion
        if deletes and retention and retention != "-1" and age_ms > int(retention) * 0.9:
            raise MovieflixError(
                f"the simulation starts {config.start.isoformat()}, "
                f"{age_ms / 86_400_000:.1f} days ago, but Kafka keeps {spec.name} for "
                f"{int(retention) / 86_400_000:g} days and would delete its events within "
                "minutes: give a later --start"
            )
    if config.minutes is not None:
        end = config.start + timedelta(minutes=config.minutes)
        ahead_ms = int(end.timestamp() * 1000) - now_ms
        if ahead_ms > 3_600_000:
            raise MovieflixError(
                f"the simulation ends {end.isoformat()}, {ahead_ms / 3_600_000:.1f} hours ahead "
                "of now; Kafka refuses records over an hour ahead: give an earlier --start"
            )


def run_simulation(
    config: SimulationConfig,
    sink: EventSink,
    *,
    rate: float | None = None,
    speedup: float | None = None,
    labels_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """Generate ``config``'s events into ``sink``; write the labels to ``labels_dir``.

    Pace: as fast as possible by default; ``rate`` events per second of wall time; or
    ``speedup`` seconds of simulated time per second of wall time. The labels (and the
    world's ground truth) are written even when the run is interrupted.
    """
    if rate is not None and speedup is not None:
        raise ValueError("give rate or speedup, not both")
    if isinstance(sink, KafkaSink | GatewaySink):
        check_retention(config)
    simulator = Simulator(config)
    result = SimulationResult(labels_dir=labels_dir)
    started = time.monotonic()
    start_ms = simulator.start_ms
    try:
        for event in simulator.events():
            if rate is not None:
                _sleep_until(started + result.events / rate)
            elif speedup is not None:
                _sleep_until(started + (event.timestamp_ms - start_ms) / 1000 / speedup)
            sink.write(event)
            result.events += 1
            result.by_type[event.event_type] += 1  # type: ignore[attr-defined]
            if progress is not None and result.events % 2000 == 0:
                progress(result.events, (event.timestamp_ms - start_ms) / 60_000)
            result.simulated_minutes = (event.timestamp_ms - start_ms) / 60_000
        sink.close()
    finally:
        result.wall_seconds = time.monotonic() - started
        result.incidents = len(simulator.incidents)
        if labels_dir is not None:
            write_ground_truth(simulator, labels_dir, result)
    if progress is not None:
        progress(result.events, result.simulated_minutes)
    return result


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def write_ground_truth(simulator: Simulator, folder: Path, result: SimulationResult) -> None:
    """``labels.parquet``, ``late_events.parquet`` (the ids of events sent late),
    ``movies.parquet``, ``users.parquet`` and ``manifest.json``."""
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    label_schema: dict[str, Any] = {
        "incident_id": pl.String, "scenario": pl.String, "is_fraud": pl.Boolean,
        "entity_kind": pl.String, "entity_id": pl.String,
        "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
        "user_ids": pl.List(pl.String), "suspect_ids": pl.List(pl.String),
        "decisive_event_id": pl.String,
        "decisive_time": pl.Datetime("us", "UTC"), "event_count": pl.Int64,
    }  # fmt: skip
    labels = pl.DataFrame([i.as_row() for i in simulator.incidents], schema=label_schema)
    labels.write_parquet(folder / "labels.parquet")
    late = sorted(str(event_id) for event_id in simulator.late_event_ids)
    pl.DataFrame({"event_id": late}, schema={"event_id": pl.String}).write_parquet(
        folder / "late_events.parquet"
    )
    pl.DataFrame(simulator.world.movie_rows()).write_parquet(folder / "movies.parquet")
    pl.DataFrame(simulator.world.user_rows()).write_parquet(folder / "users.parquet")
    manifest = {
        "config": simulator.config.as_dict(),
        "events": result.events,
        "events_by_type": dict(sorted(result.by_type.items())),
        "incidents": len(simulator.incidents),
        "late_events": len(late),
        "simulated_minutes": round(result.simulated_minutes, 3),
        "complete": result.events > 0,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
