"""The gateway while Kafka is away: how soon it answers 503, and how soon it acknowledges
again once the broker is back.

A broker of the benchmark's own is SIGKILLed under load from a client posting batches of
10 events one after another; once the gateway has noticed (4 s), every answer is timed for
``--seconds``, next to ``/healthz`` on the same server in the same window (the anchor: what
any answer costs there). Then the broker restarts and the time to the first acknowledgement
is measured. ``tests/test_reliability/test_broker_restart.py`` checks the outcomes (200 or
503 only, nothing acknowledged lost); how fast is judged here.

Goal: while Kafka is away, the 503 p99 under 1 s (the delivery timeout, 3 s here, is what
a gateway that did not notice would make a client wait).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console

from benchmarks.common import free_port, own_broker, percentile, write_results
from movieflix_lab.jobs.processes import gateway_process
from movieflix_lab.jobs.results import Goal
from movieflix_lab.kafka.broker import LocalBroker

console = Console()
RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")


def _batch() -> list[dict[str, Any]]:
    return [{"event_id": str(uuid.uuid4()), "user_id": "u-outage", "timestamp": RECENT,
             "event_type": "rate", "movie_id": "m1", "rating": 4} for _ in range(10)]  # fmt: skip


def _timed(client: httpx.Client, seconds: float) -> dict[str, Any]:
    """Alternate a batch POST and a /healthz GET for ``seconds``: each one's times, and the
    POSTs' statuses."""
    times: dict[str, list[float]] = {"post": [], "healthz": []}
    statuses: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        statuses.add(client.post("/v1/events", json=_batch()).status_code)
        times["post"].append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get("/healthz")
        times["healthz"].append(time.perf_counter() - started)
    return {**times, "statuses": sorted(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with own_broker(gateway_delivery_timeout_s=3.0, gateway_port=free_port()) as settings:
        broker = LocalBroker(settings)
        with gateway_process(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
            with console.status("traffic with Kafka up…"):
                up = _timed(client, 3.0)
            pid = broker.status().pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # a crash, not a clean shutdown
            with console.status("Kafka killed; the gateway noticing…"):
                time.sleep(4.0)
            with console.status(f"Kafka away: timing answers for {args.seconds:g} s…"):
                away = _timed(client, args.seconds)
            broker.start()
            restarted = time.monotonic()
            with console.status("broker restarted; waiting for the first acknowledgement…"):
                while client.post("/v1/events", json=_batch()).status_code != 200:
                    if time.monotonic() - restarted > 60:
                        raise SystemExit("no acknowledgement within 60 s of the restart")
                    time.sleep(0.05)
            back_s = time.monotonic() - restarted
    p99, anchor = percentile(away["post"], 0.99) * 1000, percentile(away["healthz"], 0.99) * 1000
    goal = Goal.check("503 p99 while Kafka is away (ms)", round(p99, 1), "<", 1000)
    rows = [
        {"metric": "batch POST while Kafka is up, p99", "value": percentile(up["post"], 0.99) * 1000,
         "unit": "ms", "anchor": "/healthz, same window",
         "anchor_value": percentile(up["healthz"], 0.99) * 1000},
        {"metric": f"batch POST while Kafka is away, p99 (answers: {away['statuses']})",
         "value": p99, "unit": "ms", "anchor": "/healthz, same window", "anchor_value": anchor,
         "ratio": p99 / anchor if anchor else None, "goal": "< 1000 ms (delivery timeout 3 s)"},
        {"metric": "first acknowledgement after the broker restarted", "value": back_s,
         "unit": "s", "goal": "as measured"},
    ]  # fmt: skip
    console.print(f"503 p99 {p99:.1f} ms (/healthz {anchor:.1f} ms); acknowledging again "
                  f"{back_s:.1f} s after the restart; goal {'met' if goal.met else 'NOT met'}")  # fmt: skip
    path = write_results("gateway_outage", {"goals": [goal.__dict__]}, rows)
    console.print(f"results in {path}")


if __name__ == "__main__":
    main()
