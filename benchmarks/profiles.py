"""Where the CPU goes: py-spy flame graphs and CPU µs per event, process by process.

    python -m benchmarks.profiles [--events 300000] [--seconds 20]

On a broker of its own, one seeded backlog of ``--events`` simulated events (every topic):

1. each stream app (analytics, fraud, recs) catches up on it twice, from a new consumer
   group, as ``movieflix-lab stream APP --timeout 3`` in a child process: once measured
   (the child's CPU time from ``os.wait4``, the broker's from its JVM, per record the app
   read: its input topics, repartition topics not counted) and once under py-spy, for the
   flame graph (py-spy's sampling slows the process it samples: the numbers come from the
   run without it). The recs app runs against a model trained on the backlog first.
2. the gateway (one worker) under ``--seconds`` of batched load from vegeta (batches of 100,
   8 clients), its CPU, the broker's and vegeta's per accepted event; then again under
   py-spy for its flame graph.

Writes ``reports/benchmarks/profiles/{APP}.svg``, ``gateway.svg`` and
``reports/benchmarks/profiles.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import TopicPartition
from rich.console import Console

from benchmarks.common import RESULTS_DIR, free_port, own_broker, write_results
from benchmarks.loadgen import Vegeta, describe, vegeta
from movieflix_lab.config import PROJECT_ROOT, Settings, child_environment
from movieflix_lab.jobs.processes import gateway_process
from movieflix_lab.jobs.recs import train_recs
from movieflix_lab.kafka.client import consumer
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation
from movieflix_lab.streams.runner import APP_INPUTS

console = Console()
PROFILES = RESULTS_DIR / "profiles"
PY_SPY = Path(sys.executable).with_name("py-spy")


def _broker(settings: Settings) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if ("kafka" in command and str(settings.local_kafka_port) in command) or (
            "kafka.Kafka" in command and str(settings.kafka_data_dir) in command
        ):
            return process
    raise RuntimeError("cannot find the broker's process")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _records(settings: Settings, app: str) -> int:
    """How many records the app's input topics hold (what a new group reads)."""
    reader = consumer(settings, group_id=f"profile-count-{uuid.uuid4().hex[:6]}")
    total = 0
    for topic in APP_INPUTS[app]:
        for partition in reader.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
    reader.close()
    return total


def catch_up(settings: Settings, app: str, spy: Path | None = None) -> dict[str, Any]:
    """One catch-up of ``app`` in a child (under py-spy, writing ``spy``, when given)."""
    env = child_environment(settings, stream_group_prefix=f"profile-{uuid.uuid4().hex[:6]}-")
    command = [sys.executable, "-m", "movieflix_lab", "stream", app, "--timeout", "3"]
    if spy is not None:
        command = [str(PY_SPY), "record", "--rate", "100", "--format", "flamegraph",
                   "--output", str(spy), "--", *command]  # fmt: skip
    broker = _broker(settings)
    broker_before = _cpu(broker)
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.monotonic() - started - 3  # Quix's quiet period
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stream {app} exited with {os.waitstatus_to_exitcode(status)}")
    return {"seconds": elapsed, "cpu_s": usage.ru_utime + usage.ru_stime,
            "broker_cpu_s": _cpu(broker) - broker_before}  # fmt: skip


def gateway_load(settings: Settings, binary: Path, bodies: list[bytes], seconds: float,
                 spy: Path | None = None) -> dict[str, Any]:  # fmt: skip
    settings = settings.model_copy(update={"gateway_port": free_port()})
    with gateway_process(settings) as url:
        server = next(p for p in psutil.Process().children(recursive=True)
                      if " serve " in " ".join(p.cmdline()) + " ")  # fmt: skip
        spy_process = None
        if spy is not None:
            spy_process = subprocess.Popen(
                [str(PY_SPY), "record", "--rate", "100", "--format", "flamegraph", "--output",
                 str(spy), "--pid", str(server.pid), "--duration", str(int(seconds))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        broker = _broker(settings)
        before, broker_before = _cpu(server), _cpu(broker)
        attack = Vegeta(binary, url + "/v1/events", bodies, rate=0, workers=8,
                        seconds=seconds).run()  # fmt: skip
        used, broker_used = _cpu(server) - before, _cpu(broker) - broker_before
        if spy_process is not None:
            spy_process.wait(timeout=seconds + 30)
    return {"events": attack.ok * 100, "seconds": attack.seconds, "cpu_s": used,
            "broker_cpu_s": broker_used, "load_cpu_s": attack.cpu_s,
            "failures": attack.failures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not PY_SPY.exists():
        raise SystemExit("py-spy is missing: run `make setup` (it is a dev dependency)")
    PROFILES.mkdir(parents=True, exist_ok=True)
    binary = vegeta()
    rows: list[dict[str, Any]] = []
    measured: dict[str, Any] = {}
    config = SimulationConfig(seed=99, users=20_000, minutes=None, events=args.events,
                              activity=20)  # fmt: skip
    with own_broker(whole_history=True) as settings:
        with console.status(f"a backlog of {args.events:,} events…"):
            run_simulation(config, KafkaSink(settings))
        with console.status("a recs model on the backlog…"):
            train_recs(settings, tune=False)
        for app in ("analytics", "fraud", "recs"):
            records = _records(settings, app)
            with console.status(f"{app}: catching up on {records:,} records…"):
                run = catch_up(settings, app)
            with console.status(f"{app}: again, under py-spy…"):
                catch_up(settings, app, spy=PROFILES / f"{app}.svg")
            measured[app] = {**run, "records": records}
            rate = records / run["seconds"]
            console.print(f"  {app}: {rate:,.0f} records/s, {run['cpu_s'] / records * 1e6:.0f} "
                          f"µs CPU per record (broker {run['broker_cpu_s'] / records * 1e6:.0f})")  # fmt: skip
            rows += [
                {"metric": f"{app} catch-up: CPU per record read, the app", "unit": "µs",
                 "value": run["cpu_s"] / records * 1e6},
                {"metric": f"{app} catch-up: CPU per record read, the broker", "unit": "µs",
                 "value": run["broker_cpu_s"] / records * 1e6},
                {"metric": f"{app} catch-up rate ({records:,} records)", "unit": "records/s",
                 "value": rate},
            ]  # fmt: skip
        if binary is not None:
            events = [e for e, _ in zip(Simulator(config).events(), range(100_000), strict=False)]
            from movieflix_lab.events import encode

            encoded = [encode(e) for e in events]
            bodies = [b"[" + b",".join(encoded[i : i + 100]) + b"]"
                      for i in range(0, len(encoded), 100)]  # fmt: skip
            with console.status("gateway under vegeta…"):
                load = gateway_load(settings, binary, bodies, args.seconds)
            with console.status("gateway again, under py-spy…"):
                gateway_load(settings, binary, bodies, args.seconds, spy=PROFILES / "gateway.svg")
            measured["gateway"] = load
            n = load["events"]
            console.print(f"  gateway: {n / load['seconds']:,.0f} events/s, "
                          f"{load['cpu_s'] / n * 1e6:.0f} µs CPU per event")  # fmt: skip
            rows += [
                {"metric": "gateway (batches of 100): CPU per event, the gateway", "unit": "µs",
                 "value": load["cpu_s"] / n * 1e6},
                {"metric": "gateway (batches of 100): CPU per event, the broker", "unit": "µs",
                 "value": load["broker_cpu_s"] / n * 1e6},
                {"metric": "gateway (batches of 100): CPU per event, vegeta", "unit": "µs",
                 "value": load["load_cpu_s"] / n * 1e6},
                {"metric": "gateway ingest rate (batches of 100, 8 clients)",
                 "unit": "events/s", "value": n / load["seconds"]},
            ]  # fmt: skip
    notes = [
        "CPU per record: user + system seconds of the process over the records it read "
        "(the app's input topics; its repartition topics, which it also reads, not counted), "
        "from launch (imports, group join, state) to the end of the catch-up. The broker's: "
        "its JVM's CPU over the same run.",
        "Flame graphs (py-spy, 100 Hz, from a second run of each): "
        + ", ".join(f"[{p.stem}](profiles/{p.name})" for p in sorted(PROFILES.glob("*.svg"))),
        describe(binary),
    ]
    path = write_results("profiles", {"events": args.events, **measured, "notes": notes}, rows)
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
