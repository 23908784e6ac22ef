"""A simulation's labels on disk: the folder a run writes them to, and reading them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError

__all__ = ["latest_labels", "read_labels", "simulation_config"]


def latest_labels(settings: Settings) -> Path:
    """The newest simulation folder under ``data/raw/simulations`` that holds labels."""
    runs = sorted(
        (settings.raw_dir / "simulations").glob("*/labels.parquet"),
        key=lambda path: path.stat().st_mtime,
    )
    if not runs:
        raise MovieflixError("no simulation labels under data/raw/simulations: run a simulation")
    return runs[-1].parent


def read_labels(folder: Path) -> list[dict[str, Any]]:
    """The labelled incidents of the simulation in ``folder``, one dict each."""
    if not (folder / "labels.parquet").exists():
        raise MovieflixError(f"no labels.parquet in {folder}")
    return pl.read_parquet(folder / "labels.parquet").to_dicts()


def simulation_config(folder: Path) -> Any:
    """The :class:`~movieflix_lab.simulate.traffic.SimulationConfig` a simulation folder's
    ``manifest.json`` records (to replay the same events)."""
    import json
    from datetime import datetime, timedelta

    from movieflix_lab.simulate.traffic import SimulationConfig

    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise MovieflixError(f"no manifest.json in {folder}")
    config = dict(json.loads(manifest.read_text())["config"])
    config["start"] = datetime.fromisoformat(config["start"])
    config["late_by"] = timedelta(seconds=config.pop("late_by_s"))
    return SimulationConfig(**config)
