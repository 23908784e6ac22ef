"""Stream apps' catch-up throughput on a backlog, next to raw confluent-kafka and Kafka Streams.

    python benchmarks/stream_catchup.py [--events 1000000]

Runs on a broker of its own (a temporary local one: 1M synthetic events do not belong in
anybody's topics). In one run, on one backlog of ``--events`` records in ``watch-history``
and ``search-events`` (simulated events, copied with new ids and shifted times until the
count is reached):

1. anchor: raw confluent-kafka consume + deserialize (the codec, as the apps decode: the
   msgspec fast path for canonical records, pydantic for the rest)
   of both topics, one consumer;
2. anchor: a Java Kafka Streams 4.3.1 job of the seed's sketch (watch-history, group by genre,
   30-minute windows, count; ``benchmarks/kafka-streams/``) — at-least-once and exactly-once;
3. the Quix apps, each from launch until its consumer group has caught up (repartition topics
   included): genre watch time alone, search volume alone, and both as ``analytics``
   (at-least-once and exactly-once). Parquet sinks on, as in production.

Every app reads the whole backlog with a grace period spanning it, so windows stay open
(no window closes during the run, in either framework): this measures ingest + aggregation.
Two more runs use the default 5-minute grace: windows close on the event-time watermark
during the catch-up, as users run the apps.
Writes ``reports/benchmarks/stream_catchup.{json,md}``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from benchmarks.common import own_broker, quix_floor, write_results
from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.events import decode_record, encode
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.event_writer import route
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.streams import genre_watch_time, search_volume
from movieflix_lab.streams.app import Guarantee, stream_application
from movieflix_lab.streams.metrics import StreamMetrics
from movieflix_lab.streams.runner import AnalyticsOptions, build_analytics, outstanding

console = Console()
ANCHOR_DIR = Path(__file__).resolve().parent / "kafka-streams"
TOPICS = ("watch-history", "search-events")


#: Malformed messages of several kinds (see ``benchmarks/poison.py``).
POISON = (b"{not json", b"\xff\xfe binary", b"[1, 2, 3]", b'{"event_type": "watch", "user_id": "u"}',
          b'{"event_type": "teleport", "user_id": "u"}')  # fmt: skip


def backlog(settings: Settings, count: int, poison: float = 0.0) -> int:
    """``count`` watch and search records in their topics (compaction may remove some later:
    :func:`raw_consume` counts what is there); with ``poison``, that share of malformed
    messages interleaved as well. Returns how many malformed ones."""
    import random

    rng = random.Random(5)
    poisoned = 0
    base_config = SimulationConfig(seed=2024, users=20_000, movies=5_000, minutes=None,
                                   events=min(count * 4, 400_000), activity=40,
                                   start=datetime.now(UTC) - timedelta(days=6))  # fmt: skip
    base = [e for e in Simulator(base_config).events() if e.event_type in ("watch", "search")]
    first, last = base[0].timestamp, max(e.timestamp for e in base)
    span = (last - first) + timedelta(minutes=30)
    copies = math.ceil(count / len(base))
    if first + copies * span > datetime.now(UTC) - timedelta(hours=1):
        raise SystemExit(f"{copies} copies of {span} would reach the future: raise activity")
    out = producer(settings, **{"linger.ms": 50, "batch.size": 1_000_000})
    written = 0
    for copy in range(copies):
        shift = copy * span
        for event in base:
            if written == count:
                break
            # Another user id per copy: watch-history is compacted per user and movie, and
            # copies sharing keys would be compacted away under the benchmark's feet.
            update = {"event_id": uuid.uuid4(), "timestamp": event.timestamp + shift,
                      "user_id": f"{event.user_id}.c{copy}"}  # fmt: skip
            if event.event_type == "watch":
                update["started_at"] = event.started_at + shift  # type: ignore[attr-defined]
            moved = event.model_copy(update=update)
            where = route(moved, lambda topic: settings.topic_partitions)
            kwargs = {"partition": where.partition} if where.partition is not None else {}
            out.produce(where.topic, key=where.key, value=encode(moved),
                        timestamp=moved.timestamp_ms, **kwargs)  # fmt: skip
            written += 1
            if poison and rng.random() < poison:
                out.produce(where.topic, key=where.key, value=rng.choice(POISON), **kwargs)
                poisoned += 1
            if written % 10_000 == 0:
                out.poll(0)
    assert out.flush(120) == 0
    return poisoned


def raw_consume(settings: Settings) -> tuple[float, dict[str, int]]:
    """One confluent-kafka consumer reads and decodes both topics to the end.

    Returns the seconds from subscribing to the last record, and the records per topic
    (the truth for the other runs: compaction may have removed repeated viewings).
    """
    reader = consumer(settings, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                      **{"auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    started = time.perf_counter()
    reader.subscribe(list(TOPICS))
    counts = dict.fromkeys(TOPICS, 0)
    last = started
    while time.perf_counter() - last < 10 or not any(counts.values()):
        for message in reader.consume(num_messages=1000, timeout=1.0):
            if message.error() is None:
                decode_record(message.value())
                counts[message.topic()] += 1
                last = time.perf_counter()
        if time.perf_counter() - started > 900:
            raise RuntimeError(f"raw consumer: only {counts} after 15 minutes")
    reader.close()
    return last - started, counts


DEFAULT_GRACE = timedelta(minutes=5)
#: Runs of the analytics app as users run it, with and without its /metrics hooks.
PAIRS = 3


def quix_catch_up(settings: Settings, name: str, guarantee: Guarantee, quiet: float = 3.0,
                  grace: timedelta = timedelta(days=5), metrics: bool = False) -> float:  # fmt: skip
    """Seconds from launch until the app's group has caught up (minus the quiet period);
    with ``metrics``, with the hooks of its ``/metrics`` (as ``movieflix-lab stream`` runs
    it; no scrape)."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    run_settings = settings.model_copy(update={"stream_group_prefix": prefix})
    genre = genre_watch_time.GenreWatchTimeOptions(grace=grace)
    search = search_volume.SearchVolumeOptions(grace=grace)
    started = time.perf_counter()
    hooks = StreamMetrics(name) if metrics else None
    stream = stream_application(run_settings, name, guarantee=guarantee, metrics=hooks)
    options = AnalyticsOptions(genre=genre, search=search)
    processed = run_settings.processed_dir / "bench" / prefix

    def parquet(output: str) -> list:  # type: ignore[type-arg]
        from movieflix_lab.sinks.parquet import ParquetSink

        return [] if output == "rows" else [ParquetSink(processed / output)]

    if name == "genre":
        genre_watch_time.build(stream.app, genre, late=stream.late, sink_for=parquet)
    elif name == "search":
        search_volume.build(stream.app, search, late=stream.late, sink_for=parquet)
    else:
        build_analytics(stream, run_settings, options)
    stream.app.run(timeout=quiet)
    elapsed = time.perf_counter() - started - quiet
    inputs = {"genre": ("watch-history",), "search": ("search-events",)}.get(name)
    left = outstanding(run_settings, name, guarantee, inputs=inputs)
    if left:
        raise RuntimeError(f"{name} stopped with {left} records left: raise the quiet period")
    return elapsed


def kafka_streams(settings: Settings, expected: int, guarantee: str) -> float:
    """Seconds from JVM launch until ``expected`` records reached the windowed count."""
    libs, classes = ANCHOR_DIR / "target" / "libs", ANCHOR_DIR / "target" / "classes"
    if not libs.exists():
        subprocess.run(["mvn", "-B", "-q", "-f", str(ANCHOR_DIR / "pom.xml"),
                        "dependency:copy-dependencies", "-DincludeScope=runtime",
                        f"-DoutputDirectory={libs}"], check=True)  # fmt: skip
    classes.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(classes), "-cp", f"{libs}/*",
                    str(ANCHOR_DIR / "src" / "GenreCount.java")], check=True)  # fmt: skip
    result = subprocess.run(
        ["java", "-Xmx1g", "-cp", f"{classes}:{libs}/*", "GenreCount",
         settings.bootstrap_servers, f"bench-ks-{uuid.uuid4().hex[:6]}", str(expected),
         guarantee, str(5 * 86_400)],
        capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    if result.returncode != 0 or "since_launch=" not in line:
        raise RuntimeError(f"the Kafka Streams anchor failed: {line[-500:]}")
    return float(line.split("since_launch=")[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="raw, the Quix pass-through, Kafka Streams ALOS and the three apps "
        "at-least-once only (written to stream_catchup_quick)",
    )
    args = parser.parse_args()

    with own_broker(whole_history=True, stream_commit_interval_s=5.0) as settings:
        with console.status(f"writing a backlog of {args.events:,} records…"):
            backlog(settings, args.events)
        timings: dict[str, float] = {}
        with console.status("raw confluent-kafka…"):
            timings["raw confluent-kafka"], counts = raw_consume(settings)
        console.print(f"backlog as read: {counts}")
        console.print(f"  raw confluent-kafka: {timings['raw confluent-kafka']:.1f} s")
        total = sum(counts.values())
        steps = [
            ("Quix pass-through", lambda: quix_floor(settings, TOPICS, concat=False,
                                                     low_latency=False)[0]),
            ("Kafka Streams ALOS", lambda: kafka_streams(settings, counts["watch-history"],
                                                         "at_least_once")),
            ("Kafka Streams EOS", lambda: kafka_streams(settings, counts["watch-history"],
                                                        "exactly_once_v2")),
            ("genre ALOS", lambda: quix_catch_up(settings, "genre", "at-least-once")),
            ("search ALOS", lambda: quix_catch_up(settings, "search", "at-least-once")),
            ("analytics ALOS", lambda: quix_catch_up(settings, "analytics", "at-least-once")),
            ("analytics EOS", lambda: quix_catch_up(settings, "analytics", "exactly-once")),
            # The apps as users run them: windows close on the watermark during the catch-up.
            ("genre ALOS, 5-min grace", lambda: quix_catch_up(settings, "genre", "at-least-once",
                                                              grace=DEFAULT_GRACE)),
        ]  # fmt: skip
        # With and without the /metrics hooks, alternately, three times each: the median of
        # each (one pair differs by up to 20 % from run to run on these machines).
        if args.quick:  # the ingest rows only: the goals' ratios, for a change in progress
            steps = [(label, step) for label, step in steps
                     if label in ("Quix pass-through", "Kafka Streams ALOS", "genre ALOS",
                                  "search ALOS", "analytics ALOS")]  # fmt: skip
        for round_ in range(1, 0 if args.quick else PAIRS + 1):
            for metrics in (False, True):
                label = f"analytics ALOS, 5-min grace{', /metrics' if metrics else ''} #{round_}"
                steps.append((label, lambda metrics=metrics: quix_catch_up(
                    settings, "analytics", "at-least-once", grace=DEFAULT_GRACE, metrics=metrics)))  # fmt: skip
        for label, step in steps:
            with console.status(f"{label}…"):
                timings[label] = step()
            console.print(f"  {label}: {timings[label]:.1f} s")

        def rate(label: str, records: int) -> float:
            return records / timings[label]

        raw = rate("raw confluent-kafka", total)
        floor = rate("Quix pass-through", total)
        ks = rate("Kafka Streams ALOS", counts["watch-history"])
        genre = rate("genre ALOS", counts["watch-history"])
        search = rate("search ALOS", counts["search-events"])
        alos = rate("analytics ALOS", total)

        def row(metric: str, value: float, anchor: str, anchor_value: float, goal: str) -> dict:  # type: ignore[type-arg]
            return {"metric": metric, "value": value, "unit": "rec/s", "anchor": anchor,
                    "anchor_value": anchor_value, "ratio": value / anchor_value, "goal": goal}  # fmt: skip

        rows = [
            {"metric": "raw confluent-kafka consume + decode", "value": raw, "unit": "rec/s"},
            row("Quix pass-through (same topics, same decode, nothing else)", floor,
                "raw consume", raw, "-"),
            row("genre watch time (Quix), at-least-once", genre, "raw consume", raw, ">= 0.5"),
            row("search volume (Quix), at-least-once", search, "raw consume", raw, ">= 0.5"),
            row("analytics (both), at-least-once", alos, "raw consume", raw, ">= 0.3"),
            row("analytics (both), at-least-once", alos, "Quix pass-through", floor, "-"),
            row("genre watch time (Quix), at-least-once", genre, "Kafka Streams 4.3.1 ALOS", ks,
                ">= 0.5"),
        ]  # fmt: skip
        if not args.quick:
            ks_eos = rate("Kafka Streams EOS", counts["watch-history"])
            eos = rate("analytics EOS", total)
            genre_closing = rate("genre ALOS, 5-min grace", counts["watch-history"])
            for kind in ("analytics ALOS, 5-min grace", "analytics ALOS, 5-min grace, /metrics"):
                timings[kind] = statistics.median(
                    timings[f"{kind} #{n}"] for n in range(1, PAIRS + 1)
                )
            alos_closing = rate("analytics ALOS, 5-min grace", total)
            alos_metrics = rate("analytics ALOS, 5-min grace, /metrics", total)
            rows += [
                row("analytics (both), exactly-once", eos, "analytics at-least-once", alos,
                    ">= 0.9"),
                row("Kafka Streams 4.3.1, exactly-once v2", ks_eos, "Kafka Streams ALOS", ks,
                    "-"),
                row("genre watch time, windows closing (5-min grace)", genre_closing,
                    "genre, windows open (5-day grace)", genre, "as measured"),
                row("analytics, windows closing (5-min grace)", alos_closing,
                    "analytics, windows open (5-day grace)", alos, "as measured"),
                row("analytics, windows closing (5-min grace)", alos_closing, "raw consume", raw,
                    ">= 0.3"),
                row("analytics with its /metrics hooks (5-min grace)", alos_metrics,
                    "the same without", alos_closing, ">= 0.95"),
            ]  # fmt: skip
        notes = [
            f"Backlog: {counts['watch-history']:,} watch-history + "
            f"{counts['search-events']:,} search-events records, 6 partitions each, one local "
            "broker (KRaft) on the same machine. Times run from launch (group join and JVM "
            "start included) until the group caught up; Quix's 3-s quiet period is subtracted.",
            "Kafka Streams parses the JSON with Jackson and counts; the Quix apps validate each "
            "event against the contract (the codec's msgspec fast path, as the raw anchor "
            "does), sum seconds as well as count, and keep tumbling and hopping windows; each "
            "app writes Parquet at every checkpoint.",
            f"The analytics app as users run it (5-min grace) ran {PAIRS} times with and "
            f"{PAIRS} times without its /metrics hooks, alternately; each row takes the median.",
            "The 5-day grace keeps every window open (ingest and aggregation only, comparable "
            "across versions); the 5-min grace rows are the apps as users run them, their "
            "windows closing on the event-time watermark during the catch-up.",
        ]
    name = "stream_catchup_quick" if args.quick else "stream_catchup"
    path = write_results(name, {"events": args.events, "notes": notes}, rows)
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
