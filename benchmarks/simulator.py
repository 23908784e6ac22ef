"""The simulator's pacing against the wall clock, and its unpaced generation rate.

The tests check the pacing logic on a fake clock (``tests/test_simulate/test_outputs.py``);
this measures what a real clock, scheduler and machine make of it. Anchor: a bare loop paced
the same way (sleep until start + i/rate) doing nothing else, in the same run.

Goals: ``--rate R`` delivers R events/s within 5% over the run; ``--speedup S`` covers the
simulated span in span/S seconds within 5% (plus 0.1 s).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console

from benchmarks.common import write_results
from movieflix_lab.jobs.results import Goal
from movieflix_lab.simulate import SimulationConfig, Simulator, run_simulation

console = Console()


class _Null:
    def write(self, event: object) -> None:
        pass

    def close(self) -> None:
        pass


def _bare_paced(count: int, rate: float) -> float:
    """Events/s of an empty loop paced like the simulator (the scheduler's own accuracy)."""
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--speedup", type=float, default=120.0)
    parser.add_argument("--unpaced", type=int, default=200_000)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    goals: list[Goal] = []

    config = SimulationConfig(seed=1, users=500, movies=600, minutes=None, events=args.events,
                              activity=40)  # fmt: skip
    with console.status(f"--rate {args.rate:g} over {args.events:,} events…"):
        result = run_simulation(config, _Null(), rate=args.rate)
        anchor = _bare_paced(args.events, args.rate)
    achieved = result.events / result.wall_seconds
    goals.append(Goal.check("paced rate / asked rate", round(achieved / args.rate, 4), ">=", 0.95))
    goals.append(Goal.check("paced rate / asked rate (at most)", round(achieved / args.rate, 4),
                            "<=", 1.05))  # fmt: skip
    rows.append({"metric": f"simulator paced at --rate {args.rate:g}", "value": achieved,
                 "unit": "events/s", "anchor": "bare loop paced the same way",
                 "anchor_value": anchor, "ratio": achieved / anchor,
                 "goal": f"{args.rate * 0.95:,.0f}-{args.rate * 1.05:,.0f}"})  # fmt: skip

    config = SimulationConfig(seed=1, users=500, movies=600, minutes=20, activity=40)
    events = list(Simulator(config).events())
    span_s = (events[-1].timestamp_ms - Simulator(config).start_ms) / 1000
    expected = span_s / args.speedup
    with console.status(f"--speedup {args.speedup:g} over {span_s / 60:.0f} simulated minutes…"):
        started = time.monotonic()
        run_simulation(config, _Null(), speedup=args.speedup)
        wall = time.monotonic() - started
    goals.append(Goal.check("speedup run wall time - expected (s)", round(wall - expected, 3),
                            "<=", round(0.05 * expected + 0.1, 2)))  # fmt: skip
    rows.append({"metric": f"simulator at --speedup {args.speedup:g} ({len(events):,} events)",
                 "value": wall, "unit": "s", "anchor": "simulated span / speedup",
                 "anchor_value": expected, "ratio": wall / expected,
                 "goal": f"<= {1.05 * expected + 0.1:.2f} s"})  # fmt: skip

    config = SimulationConfig(seed=1, users=5000, minutes=None, events=args.unpaced, activity=20)
    with console.status(f"unpaced, {args.unpaced:,} events…"):
        result = run_simulation(config, _Null())
    rows.append({"metric": "simulator unpaced (generation only)",
                 "value": result.events_per_second, "unit": "events/s", "goal": "as measured"})  # fmt: skip

    for goal in goals:
        mark = "[green]met[/]" if goal.met else "[red]not met[/]"
        console.print(f"goal {goal.name} {goal.target}: {goal.value} — {mark}")
    path = write_results("simulator", {"goals": [goal.__dict__ for goal in goals]}, rows)
    console.print(f"results in {path}")


if __name__ == "__main__":
    main()
