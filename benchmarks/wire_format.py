"""JSON against Avro on the wire: bytes per event on each topic, decode and catch-up rates.

    python -m benchmarks.wire_format [--events 300000]

In one run, the same seeded simulated backlog of ``--events`` events twice, each on a broker
of its own: once written as JSON, once as Avro's single-object encoding
(``MOVIEFLIX_WIRE_FORMAT=avro``, :mod:`movieflix_lab.events.avro`). For each format:

- the value bytes per event on each topic (as written), and the bytes the broker keeps on
  disk per event (its log segments: record batches, keys and timestamps included, batches
  lz4-compressed as the kit's producers write them);
- raw confluent-kafka consume + decode of the four event topics (the codec's
  ``decode_record``: the fast path for JSON; for Avro the schema's resolution, then the same
  validation);
- the analytics and the fraud apps catching up on the backlog (launch to caught up).

The Avro rows' anchors are the JSON rows of the same run. Writes
``reports/benchmarks/wire_format.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from rich.console import Console

from benchmarks.common import own_broker, write_results
from benchmarks.fraud_detection import fraud_catch_up
from benchmarks.stream_catchup import DEFAULT_GRACE, quix_catch_up
from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.events import decode_record
from movieflix_lab.kafka.client import consumer
from movieflix_lab.simulate import KafkaSink, SimulationConfig, run_simulation
from movieflix_lab.streams.fraud import FRAUD_INPUTS

console = Console()
FORMATS = ("json", "avro")


def read_all(settings: Settings) -> tuple[float, dict[str, tuple[int, int]]]:
    """Consume and decode every event topic to its end; the seconds it took, and per topic
    (messages, value bytes)."""
    reader = consumer(settings, group_id=f"bench-wire-{uuid.uuid4().hex[:6]}",
                      **{"auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    reader.subscribe(list(FRAUD_INPUTS))
    seen: dict[str, list[int]] = {topic: [0, 0] for topic in FRAUD_INPUTS}
    started = time.perf_counter()
    last = started
    while time.perf_counter() - last < 5 or not any(n for n, _ in seen.values()):
        for message in reader.consume(num_messages=1000, timeout=0.5):
            if message.error() is None:
                value = message.value()
                decode_record(value)
                counts = seen[message.topic()]
                counts[0] += 1
                counts[1] += len(value)
                last = time.perf_counter()
    reader.close()
    return last - started, {topic: (n, size) for topic, (n, size) in seen.items()}


def disk_bytes(settings: Settings, topic: str) -> int:
    """What the broker keeps of ``topic``'s records: its partitions' log segments (record
    batches with their headers, keys and timestamps; the index files, preallocated, left
    out)."""
    folders = Path(settings.kafka_data_dir).rglob(f"{topic}-[0-9]*")
    return sum(f.stat().st_size for folder in folders if folder.is_dir()
               for f in folder.glob("*.log"))  # fmt: skip


def measure(wire_format: str, events: int) -> dict[str, object]:
    with own_broker(whole_history=True, wire_format=wire_format,
                    stream_commit_interval_s=5.0) as settings:  # fmt: skip
        with console.status(f"{wire_format}: a backlog of {events:,} events…"):
            config = SimulationConfig(seed=99, users=20_000, minutes=None, events=events,
                                      activity=20)  # fmt: skip
            run_simulation(config, KafkaSink(settings))
        with console.status(f"{wire_format}: raw consume + decode…"):
            raw_s, topics = read_all(settings)
        total = sum(n for n, _ in topics.values())
        with console.status(f"{wire_format}: analytics catching up…"):
            analytics_s = quix_catch_up(settings, "analytics", "at-least-once",
                                        grace=DEFAULT_GRACE)  # fmt: skip
        with console.status(f"{wire_format}: fraud app catching up…"):
            fraud_s = fraud_catch_up(settings, settings.data_dir.parent / f"model-{wire_format}")
        disk = {topic: disk_bytes(settings, topic) for topic in topics}
    analytics_records = topics["watch-history"][0] + topics["search-events"][0]
    result = {
        "topics": {
            t: {"messages": n, "value_bytes": size, "disk_bytes": disk[t]}
            for t, (n, size) in topics.items()
        },
        "raw_rate": total / raw_s,
        "analytics_rate": analytics_records / analytics_s,
        "fraud_rate": total / fraud_s,
    }
    console.print(f"  {wire_format}: raw {result['raw_rate']:,.0f}/s, analytics "
                  f"{result['analytics_rate']:,.0f}/s, fraud {result['fraud_rate']:,.0f}/s")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    runs = {fmt: measure(fmt, args.events) for fmt in FORMATS}
    json_run, avro_run = runs["json"], runs["avro"]
    rows: list[dict[str, object]] = []
    for topic, avro in avro_run["topics"].items():  # type: ignore[attr-defined]
        plain = json_run["topics"][topic]  # type: ignore[index]
        for kind, label in (("value_bytes", "value bytes per event"),
                            ("disk_bytes", "bytes on the broker's disk per event")):  # fmt: skip
            a, j = avro[kind] / avro["messages"], plain[kind] / plain["messages"]
            rows.append({"metric": f"{topic}: {label}, Avro", "value": a, "unit": "bytes",
                         "anchor": "JSON", "anchor_value": j, "ratio": a / j})  # fmt: skip
    for key, label in (("raw_rate", "raw confluent-kafka consume + decode"),
                       ("analytics_rate", "analytics app catch-up (5-min grace)"),
                       ("fraud_rate", "fraud app catch-up")):  # fmt: skip
        a, j = float(avro_run[key]), float(json_run[key])  # type: ignore[arg-type]
        rows.append({"metric": f"{label}, Avro", "value": a, "unit": "events/s",
                     "anchor": f"{label}, JSON", "anchor_value": j, "ratio": a / j})  # fmt: skip
    notes = [
        f"The same seeded backlog ({args.events:,} simulated events over the four event topics, "
        "6 partitions each, lz4-compressed batches as the kit writes them) on two brokers of the benchmark's own, one after "
        "the other: first JSON, then Avro's single-object encoding. Catch-ups run from launch "
        "until the app's group caught up (Quix's 3-s quiet period subtracted).",
        "Every Avro record is resolved into its type's current schema and then validated "
        "against the contract as a JSON one is (Avro's types carry no patterns or bounds).",
    ]
    path = write_results("wire_format", {"events": args.events, "notes": notes, "runs": runs},
                         rows)  # fmt: skip
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
