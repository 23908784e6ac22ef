"""Parquet sinks, models by version, and seeded simulations — for notebooks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from movieflix_lab.config import Settings, get_settings
from movieflix_lab.lab.frames import empty_frame, validate_frame
from movieflix_lab.lab.session import record

__all__ = [
    "fraud_replay",
    "load_fraud_model",
    "load_recs",
    "load_results",
    "simulate_events",
    "simulated_history",
]

#: Each window dataset's result keys (one row per key).
RESULT_KEYS = {
    ("genre_watch_time", "tumbling"): ("genre", "window_start_ms", "window_ms", "hop_ms"),
    ("genre_watch_time", "hopping"): ("genre", "window_start_ms", "window_ms", "hop_ms"),
    ("search_volume", "per_user"): ("user_id", "window_start_ms", "window_ms"),
    ("search_volume", "total"): ("window_start_ms", "window_ms"),
}


def load_results(
    dataset: str, output: str, settings: Settings | None = None, *, validate: bool = True
) -> pl.DataFrame:
    """A stream app's window results from its Parquet sink (one row per window and key),
    e.g. ``load_results("genre_watch_time", "tumbling")``: checked against the dataset's
    schema (:mod:`movieflix_lab.lab.frames`; ``validate=False`` skips it), and with its
    columns when there are none yet."""
    from movieflix_lab.sinks.parquet import read_results

    settings = settings or get_settings()
    if (dataset, output) not in RESULT_KEYS:
        known = ", ".join(f"{d}/{o}" for d, o in RESULT_KEYS)
        raise KeyError(f"no Parquet results {dataset}/{output}; known: {known}")
    folder = settings.processed_dir / dataset / output
    frame = read_results(folder, RESULT_KEYS[(dataset, output)])
    record("parquet", path=str(folder), rows=frame.height)
    name = f"{dataset}/{output}"
    if not frame.width:
        return empty_frame(name)
    return validate_frame(frame, name) if validate else frame


def load_recs(
    version: str = "latest", settings: Settings | None = None
) -> tuple[Any, dict[str, Any]]:
    """A recommendation model version and its provenance (``latest`` by default)."""
    from movieflix_lab.recs.store import load_version

    settings = settings or get_settings()
    model, provenance = load_version(settings.recs_model_path, version)
    record(
        "model", name="recs", version=provenance.get("version"), path=str(settings.recs_model_path)
    )
    return model, provenance


def load_fraud_model(folder: Path | None = None, settings: Settings | None = None) -> Any:
    """The fraud app's River model checkpoint (``models/fraud`` by default)."""
    from movieflix_lab.fraud.model import OnlineFraudModel

    folder = folder or (settings or get_settings()).fraud_model_path
    model = OnlineFraudModel.load(folder)
    record("model", name="fraud", path=str(folder), events_learned=model.learned)
    return model


def _config(
    seed: int,
    users: int,
    minutes: float,
    activity: float,
    incident_rates: dict[str, float] | None,
    start: datetime | None,
) -> Any:
    from movieflix_lab.simulate import SimulationConfig

    changes: dict[str, Any] = {"seed": seed, "users": users, "minutes": minutes,
                               "activity": activity}  # fmt: skip
    if incident_rates is not None:
        changes["incident_rates"] = incident_rates
    if start is not None:
        changes["start"] = start
    return SimulationConfig(**changes)


def fraud_ranking(
    seed: int = 7,
    users: int = 800,
    minutes: float = 180.0,
    *,
    activity: float = 4.0,
    incident_rates: dict[str, float] | None = None,
    start: datetime | None = None,
    labels: Path | str | None = None,
) -> dict[str, dict[str, Any]]:
    """How the River score ranks each fraud scenario of a seeded simulation (replayed in
    memory through the same model; :func:`movieflix_lab.fraud.calibrate.ranking`): ROC-AUC,
    PR-AUC and the precision-recall curve. With ``labels`` (a simulation folder) the
    simulation is the one its ``manifest.json`` describes."""
    from movieflix_lab.events.codec import to_record
    from movieflix_lab.fraud.calibrate import ranking, score_log
    from movieflix_lab.simulate import Simulator
    from movieflix_lab.simulate.labels import simulation_config

    config = (
        simulation_config(Path(labels)) if labels
        else _config(seed, users, minutes, activity, incident_rates, start)
    )  # fmt: skip
    simulator = Simulator(config)
    log = score_log(to_record(e) for e in simulator.events())
    record("simulation", config=config.as_dict(), events=len(log.rows))
    return ranking(log, [i.as_row() for i in simulator.incidents])


def simulate_events(
    seed: int = 42,
    users: int = 1000,
    minutes: float = 120.0,
    *,
    activity: float = 1.0,
    start: datetime | None = None,
    incident_rates: dict[str, float] | None = None,
) -> tuple[dict[str, pl.DataFrame], Any]:
    """A seeded simulation without Kafka: one DataFrame per event type, and the simulator
    (``.incidents`` are the labels, ``.world`` the catalog and users)."""

    from movieflix_lab.events.codec import to_record
    from movieflix_lab.simulate import Simulator

    simulator = Simulator(_config(seed, users, minutes, activity, incident_rates, start))
    config = simulator.config
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in simulator.events():
        rows[event.event_type].append(to_record(event))  # type: ignore[attr-defined]
    frames = {kind: pl.from_dicts(r, infer_schema_length=None) for kind, r in rows.items()}
    for frame_kind, frame in list(frames.items()):
        if "timestamp" in frame.columns:
            frames[frame_kind] = frame.with_columns(
                pl.col("timestamp").str.to_datetime(time_zone="UTC")
            )
    record("simulation", config=config.as_dict(), events=sum(len(r) for r in rows.values()))
    return frames, simulator


def fraud_replay(
    seed: int = 7,
    users: int = 800,
    minutes: float = 180.0,
    *,
    activity: float = 4.0,
    incident_rates: dict[str, float] | None = None,
    start: datetime | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """A labelled seeded scenario through the fraud detectors in one batch (no Kafka, the
    same code the fraud app runs): its alerts (as on ``fraud-signals``), its labelled
    incidents, and the number of events."""

    from movieflix_lab.events.codec import to_record
    from movieflix_lab.fraud import FraudDetector
    from movieflix_lab.simulate import Simulator

    simulator = Simulator(_config(seed, users, minutes, activity, incident_rates, start))
    config = simulator.config
    events = sorted((to_record(e) for e in simulator.events()), key=lambda r: r["timestamp"])
    detector = FraudDetector(clock=lambda: 0.0)
    alerts = [alert.as_record() for alert in detector.run(events)]
    record("simulation", config=config.as_dict(), events=len(events))
    return alerts, [incident.as_row() for incident in simulator.incidents], len(events)


def simulated_history(
    seed: int = 42,
    users: int = 2000,
    days: float = 14.0,
    movies: int = 2000,
    start: datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Interactions and movies of a seeded simulation (no fraud incidents): the planted
    tastes make the best possible recommendations known. ``start``: a fixed UTC start (by
    default the simulator's, yesterday evening; to produce the events to Kafka start them
    ``days`` in the past: brokers refuse timestamps far in the future)."""
    from movieflix_lab.recs.data import MOVIES, interactions_from_records
    from movieflix_lab.simulate import SimulationConfig, Simulator

    config = SimulationConfig(
        seed=seed, users=users, movies=movies, minutes=days * 1440, incident_rates={}
    )
    if start is not None:
        config = replace(config, start=start)
    simulator = Simulator(config)
    wanted = ("watch", "rate")
    interactions = interactions_from_records(
        e
        for e in simulator.events()
        if e.event_type in wanted  # type: ignore[attr-defined]
    )
    catalog = pl.DataFrame(
        [(m.movie_id, m.title, m.genre) for m in simulator.world.movies], schema=MOVIES,
        orient="row",
    )  # fmt: skip
    return interactions, catalog
