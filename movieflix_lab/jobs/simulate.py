"""``movieflix-lab simulate``: a seeded simulation into the destination a user picked.

The run is named after its configuration (``seed42-u1000-60min-20261123T1800``); its labels
go to ``data/raw/simulations/<run>`` unless given, its Parquet (``--out parquet`` without a
path) to ``data/processed/simulated/<run>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from movieflix_lab.config import Settings
from movieflix_lab.simulate import (
    GatewaySink,
    JsonlSink,
    KafkaSink,
    ParquetSink,
    SimulationConfig,
    SimulationResult,
    run_simulation,
)
from movieflix_lab.simulate.outputs import EventSink
from movieflix_lab.simulate.runner import ProgressCallback

__all__ = ["Destination", "SimulationRun", "run_name", "simulate", "simulation_sink"]

Destination = Literal["kafka", "jsonl", "parquet"]


@dataclass(frozen=True)
class SimulationRun:
    result: SimulationResult
    labels_dir: Path


def run_name(config: SimulationConfig) -> str:
    """The run's name: seed, users, length (events or simulated minutes), start."""
    length = f"{config.events}ev" if config.events else f"{config.minutes:g}min"
    return f"seed{config.seed}-u{config.users}-{length}-{config.start:%Y%m%dT%H%M}"


def simulation_sink(
    settings: Settings,
    config: SimulationConfig,
    *,
    out: Destination = "kafka",
    path: Path | None = None,
    via_gateway: str | None = None,
) -> EventSink:
    """Where the events go: the gateway at ``via_gateway``, else Kafka (once the cluster
    answers), a JSONL file (stdout without ``path``) or a Parquet folder."""
    name = run_name(config)
    if via_gateway is not None:
        return GatewaySink(via_gateway, api_key=settings.api_key_value)
    if out == "kafka":
        from movieflix_lab.kafka.client import wait_until_reachable

        wait_until_reachable(settings)
        return KafkaSink(settings)
    if out == "jsonl":
        return JsonlSink(path)
    return ParquetSink(path or settings.processed_dir / "simulated" / name)


def simulate(
    settings: Settings,
    config: SimulationConfig,
    *,
    out: Destination = "kafka",
    path: Path | None = None,
    via_gateway: str | None = None,
    rate: float | None = None,
    speedup: float | None = None,
    labels_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    sink: EventSink | None = None,
) -> SimulationRun:
    """Generate ``config``'s events into ``sink`` (default: :func:`simulation_sink` of
    ``out``, ``path``, ``via_gateway``); write its labels."""
    labels = labels_dir or settings.raw_dir / "simulations" / run_name(config)
    if sink is None:
        sink = simulation_sink(settings, config, out=out, path=path, via_gateway=via_gateway)
    result = run_simulation(
        config, sink, rate=rate, speedup=speedup, labels_dir=labels, progress=progress
    )
    return SimulationRun(result, labels)
