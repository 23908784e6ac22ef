"""A seeded MovieFlix traffic simulator with labelled fraud and planted tastes."""

from movieflix_lab.simulate.labels import latest_labels, read_labels
from movieflix_lab.simulate.outputs import (
    GatewaySink,
    JsonlSink,
    KafkaSink,
    ParquetSink,
    TimedSink,
)
from movieflix_lab.simulate.runner import SimulationResult, run_simulation
from movieflix_lab.simulate.traffic import (
    DEFAULT_INCIDENT_RATES,
    FRAUD_SCENARIOS,
    HARD_NEGATIVES,
    Incident,
    SimulationConfig,
    Simulator,
    last_evening,
)
from movieflix_lab.simulate.world import GENRES, Movie, User, World, build_world

__all__ = [
    "DEFAULT_INCIDENT_RATES",
    "FRAUD_SCENARIOS",
    "GENRES",
    "HARD_NEGATIVES",
    "GatewaySink",
    "Incident",
    "JsonlSink",
    "KafkaSink",
    "Movie",
    "ParquetSink",
    "SimulationConfig",
    "SimulationResult",
    "Simulator",
    "TimedSink",
    "User",
    "World",
    "build_world",
    "last_evening",
    "latest_labels",
    "read_labels",
    "run_simulation",
]
