"""Fraud detection: alert latency under background traffic, and catch-up throughput.

    python benchmarks/fraud_detection.py [--rates 1000,5000] [--backlog 300000]

On a broker of its own (temporary, local), in one run:

1. latency, per background rate: ``eval fraud``'s labelled scenario produced at that rate
   through the fraud app (:func:`movieflix_lab.jobs.fraud.run_fraud_eval`): the pipeline's
   latency (the event that raised an alert produced → the alert read from ``fraud-signals``)
   and each incident's (its decisive event → its first alert), with precision, recall and
   the River score's ROC-AUC. Anchor, same scenario, same rate: a raw confluent-kafka
   pass-through in a child process (consume the four topics, decode each event with the
   same codec as the app, ``decode_record``, produce one record per event; no state, no
   model) — the floor a Kafka
   consumer-producer hop has on this machine.
2. throughput on a backlog (``--backlog`` events in the four topics): the fraud app from
   launch until its group has caught up, next to raw confluent-kafka consume + decode.

Writes ``reports/benchmarks/fraud_detection.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from rich.console import Console

from benchmarks.common import own_broker, quix_floor, write_results
from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.events import decode_record
from movieflix_lab.fraud.evaluate import percentile
from movieflix_lab.jobs.fraud import FraudScenario, run_fraud_eval
from movieflix_lab.jobs.results import jsonable
from movieflix_lab.kafka.catalog import create_topics, derived_topic
from movieflix_lab.kafka.client import consumer
from movieflix_lab.kafka.groups import start_group_at_end, wait_for_members
from movieflix_lab.kafka.tail import TopicTail
from movieflix_lab.simulate import KafkaSink, SimulationConfig, TimedSink, run_simulation
from movieflix_lab.streams.fraud import FRAUD_INPUTS
from movieflix_lab.streams.runner import outstanding, run_app

console = Console()
PASSTHROUGH = "bench.passthrough"


def passthrough(bootstrap: str, group: str) -> None:
    """The anchor (a child process): consume, decode, produce one record per event."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "enable.auto.commit": True, "fetch.wait.max.ms": 20})  # fmt: skip
    writer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    reader.subscribe(list(FRAUD_INPUTS))
    try:
        while True:
            for message in reader.consume(500, timeout=0.05):
                if message.error() is None:
                    event = decode_record(message.value())
                    writer.produce(PASSTHROUGH, value=json.dumps({"id": event["event_id"]}))
            writer.poll(0)
    except KeyboardInterrupt:
        writer.flush(10)
        reader.close()


def passthrough_latency(settings: Settings, scenario: FraudScenario) -> dict[str, float | None]:
    group = f"bench-passthrough-{uuid.uuid4().hex[:6]}"
    create_topics(settings, specs=[derived_topic(PASSTHROUGH, "benchmark anchor", "none")])
    start_group_at_end(settings, group, FRAUD_INPUTS)
    tail = TopicTail(settings, PASSTHROUGH, start="end", capacity=2_000_000)
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.fraud_detection", "--passthrough",
                              settings.bootstrap_servers, group])  # fmt: skip
    try:
        wait_for_members(settings, group, timeout=60)
        sink = TimedSink(settings)
        run_simulation(scenario.config(), sink, rate=scenario.rate)
        time.sleep(3)
    finally:
        child.send_signal(2)
        child.wait(30)
        tail.stop()
    latencies = [
        r.received_ms - sink.produced_ms[r.value["id"]]
        for r in tail.snapshot()
        if r.value["id"] in sink.produced_ms
    ]
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "events": len(latencies)}  # fmt: skip


def raw_consume(settings: Settings) -> tuple[float, int]:
    reader = consumer(settings, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                      **{"auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    started = time.perf_counter()
    reader.subscribe(list(FRAUD_INPUTS))
    count, last = 0, started
    while time.perf_counter() - last < 5 or not count:
        for message in reader.consume(num_messages=1000, timeout=0.5):
            if message.error() is None:
                decode_record(message.value())
                count += 1
                last = time.perf_counter()
    reader.close()
    return last - started, count


def fraud_catch_up(settings: Settings, model_dir: Path) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    run_settings = settings.model_copy(
        update={"stream_group_prefix": prefix, "fraud_model_dir": model_dir}
    )
    started = time.perf_counter()
    summary = run_app(run_settings, "fraud", timeout=3)
    elapsed = time.perf_counter() - started - 3
    if summary.outstanding or outstanding(run_settings, "fraud", "at-least-once"):
        raise RuntimeError("the fraud app stopped before catching up")
    return elapsed


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--passthrough":
        passthrough(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1000,5000")
    parser.add_argument("--backlog", type=int, default=300_000)
    parser.add_argument(
        "--catch-up-only",
        action="store_true",
        help="only the catch-up (no labelled scenarios, no latency runs)",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    rows: list[dict] = []  # type: ignore[type-arg]
    notes: list[str] = []
    with own_broker() as settings:
        home = settings.data_dir.parent
        for rate in [] if args.catch_up_only else rates:
            scenario = FraudScenario(rate=rate)
            with console.status(f"fraud app, labelled scenario at {rate:,.0f} events/s…"):
                report = jsonable(run_fraud_eval(settings, scenario))
            with console.status(f"raw pass-through anchor at {rate:,.0f} events/s…"):
                anchor = passthrough_latency(settings, scenario)
            console.print(
                f"  {rate:,.0f}/s: alert p50 {report['latency_p50_ms']:.0f} ms, p99 "
                f"{report['latency_p99_ms']:.0f} ms; pass-through p50 {anchor['p50']:.0f} ms, "
                f"p99 {anchor['p99']:.0f} ms"
            )
            label = f"at {rate:,.0f} events/s"
            for q in ("p50", "p99"):
                value, floor = report[f"latency_{q}_ms"], anchor[q]
                rows.append({
                    "metric": f"alert latency {q} {label} (event → alert read)", "value": value,
                    "unit": "ms", "anchor": "raw confluent-kafka pass-through", "anchor_value": floor,
                    "ratio": value / floor if value and floor else None,
                    "goal": "< 1000 ms" if q == "p99" and rate >= 5000 else "-",
                })  # fmt: skip
            for name in ("binge_bot", "credential_stuffing", "account_takeover"):
                row = report["per_scenario"].get(name, {})
                rows.append({
                    "metric": f"incident latency p99 {label}, {name} (decisive event → first alert)",
                    "value": row.get("latency_p99_ms"), "unit": "ms",
                })  # fmt: skip

            rules = [report["per_scenario"][s] for s in ("binge_bot", "credential_stuffing")]
            rows.append({"metric": f"rules precision / recall {label} (binge, stuffing)",
                         "value": min(r["precision"] for r in rules), "unit": "precision",
                         "anchor": "recall", "anchor_value": min(r["recall"] for r in rules),
                         "goal": ">= 0.99 both"})  # fmt: skip
            rows.append({"metric": f"account-takeover ROC-AUC (River) {label}",
                         "value": report["roc_auc_account_takeover"], "unit": "",
                         "goal": ">= 0.9"})  # fmt: skip
            model = report["model_quality"]
            rows.append({"metric": f"overall precision {label} (every alert)",
                         "value": report["precision"], "unit": "", "goal": ">= 0.95"})  # fmt: skip
            rows.append({"metric": f"River precision / recall {label} (the scenarios only it "
                         "can find)", "value": model["precision"], "unit": "precision",
                         "anchor": "recall", "anchor_value": model["recall"],
                         "goal": ">= 0.8 both"})  # fmt: skip
            rows.append({"metric": f"River alerts on ordinary users {label}",
                         "value": model["ordinary_rate_per_day"], "unit": "of users per day",
                         "goal": "<= 0.002"})  # fmt: skip
            for name, ranked in sorted(report["ranking"].items()):
                rows.append({"metric": f"River score {label}, {name}: ROC-AUC",
                             "value": ranked["roc_auc"], "unit": "", "anchor": "PR-AUC",
                             "anchor_value": ranked["pr_auc"]})  # fmt: skip
            notes.append(
                f"At {rate:,.0f} events/s: {report['events']:,} events "
                f"({report['events_per_second']:,.0f}/s produced), {report['alerts']} alerts, "
                f"precision {report['precision']:.3f}, recall {report['recall']:.3f}; "
                f"pass-through anchor measured over {anchor['events']:,} events."
            )
        with console.status(f"a backlog of {args.backlog:,} events…"):
            config = SimulationConfig(seed=99, users=20_000, minutes=None, events=args.backlog,
                                      activity=20)  # fmt: skip
            run_simulation(config, KafkaSink(settings))
        with console.status("raw confluent-kafka consume + decode…"):
            raw_s, total = raw_consume(settings)
        with console.status(f"fraud app catching up on {total:,} events…"):
            app_s = fraud_catch_up(settings, home / "catch-up-model")
        with console.status("Quix pass-through of the same topics…"):
            floor_s, floor_seen = quix_floor(settings, FRAUD_INPUTS, concat=True,
                                             low_latency=True)  # fmt: skip
        raw, app, floor = total / raw_s, total / app_s, floor_seen / floor_s
        console.print(f"  catch-up: fraud app {app:,.0f} events/s; raw {raw:,.0f} events/s; "
                      f"Quix pass-through {floor:,.0f} events/s")  # fmt: skip
        rows.append({"metric": "fraud app catch-up (rules + River + state)", "value": app,
                     "unit": "events/s", "anchor": "raw confluent-kafka consume + decode",
                     "anchor_value": raw, "ratio": app / raw, "goal": ">= 0.3"})  # fmt: skip
        rows.append({"metric": "Quix pass-through of the fraud app's inputs (concat, decode, "
                     "nothing else)", "value": floor, "unit": "events/s",
                     "anchor": "raw confluent-kafka consume + decode", "anchor_value": raw,
                     "ratio": floor / raw})  # fmt: skip
        rows.append({"metric": "fraud app catch-up over the Quix pass-through", "value": app,
                     "unit": "events/s", "anchor": "Quix pass-through", "anchor_value": floor,
                     "ratio": app / floor})  # fmt: skip
        rows.append({"metric": "fraud app catch-up over the 5,000 events/s offered", "value": app,
                     "unit": "events/s", "anchor": "offered rate", "anchor_value": 5000.0,
                     "ratio": app / 5000, "goal": ">= 3"})  # fmt: skip
        notes.append(
            f"Catch-up: {total:,} events in the four input topics (every event of the latency "
            "runs plus the backlog), 6 partitions each; the app's time runs from launch (group "
            "join included) until its group caught up, Quix's 3-s quiet period subtracted."
        )
        notes.append(
            "One machine runs the broker, the producer (simulator, paced) and the app, so "
            "latency includes competing for 2 cores. The fraud app runs with Quix's low-latency "
            "settings (consumer poll 5 ms, fetch wait 5 ms, 1,000-message buffers per partition)."
        )

    # The catch-up alone is a report of its own: it must not replace the full one.
    name = "fraud_catch_up" if args.catch_up_only else "fraud_detection"
    path = write_results(name, {"rates": [] if args.catch_up_only else rates, "notes": notes},
                         rows)  # fmt: skip
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
