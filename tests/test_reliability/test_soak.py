"""The soak, short: about a minute of traffic through the gateway into every stream app, with a
10x burst halfway (``make soak`` runs the 10-minute version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.jobs.soak import SoakOptions, run_soak, write_soak
from tests.fixtures.kafka import free_port, with_settings


@pytest.mark.slow
def test_a_minute_of_traffic_with_a_burst(empty_kafka: Settings, tmp_path: Path) -> None:
    settings = with_settings(empty_kafka, gateway_port=free_port(), stream_commit_interval_s=1.0)
    # A minute is short for memory to settle (state stores and caches fill during the
    # first minutes): the short run allows more growth than the 10-minute soak's 1.25.
    options = SoakOptions(minutes=1.0, rate=200, burst_factor=10, burst_s=5, users=2000,
                          sample_s=1.0, memory_growth_goal=1.5)  # fmt: skip
    result = run_soak(settings, options)
    write_soak(result, tmp_path / "soak")
    failed = [goal for goal in result.goals if not goal.met]
    assert not failed, (failed, (tmp_path / "soak" / "soak.md").read_text())
    # The burst happened and showed up as lag that then went away.
    phases = {s["phase"] for s in result.samples}
    assert {"steady", "burst", "after", "drain"} <= phases
    assert result.max_lag > result.steady_lag_peak
    assert result.accepted == result.sent >= 0.9 * (60 * 200 + 5 * 9 * 200)
    # What the gateway acknowledged is in the topics, every event of it.
    assert sum(result.acknowledged_by_topic.values()) == result.accepted
