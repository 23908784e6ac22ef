"""What every benchmark shares: a broker of its own, the machine description, writing results.

Run a benchmark from the project root as a module: ``python -m benchmarks.stream_catchup``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.provenance import describe, machine

RESULTS_DIR = PROJECT_ROOT / "reports" / "benchmarks"


def write_results(name: str, results: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """``reports/benchmarks/NAME.json`` and ``NAME.md``: a table of metric, value, anchor."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **results, "rows": rows}
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    lines = [
        f"# Benchmark: {name}",
        "",
        describe(m),
        "",
        "| metric | value | anchor (same run) | anchor value | ratio | goal |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.get("ratio")
        lines.append(
            f"| {row['metric']} | {fmt(row['value'])} {row.get('unit', '')} | "
            f"{row.get('anchor', '-')} | {fmt(row.get('anchor_value'))} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {row.get('goal', '-')} |"
        )
    notes = results.get("notes")
    if notes:
        lines += ["", *notes]
    (RESULTS_DIR / f"{name}.md").write_text("\n".join(lines) + "\n")
    return RESULTS_DIR / f"{name}.md"


@contextmanager
def own_broker(*, whole_history: bool = False, **overrides: Any) -> Iterator[Settings]:
    """A temporary local broker of the benchmark's own, on free ports, with the catalog's
    topics; stopped, and its folder removed, on the way out.

    Its data and model folders are temporary too (``settings.data_dir.parent`` is the
    benchmark's scratch folder); ``overrides`` are further settings. ``whole_history``:
    watch-history not compacted (the cleaner would remove repeated viewings between two
    runs of a backlog: every run must read the same records).
    """
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    from movieflix_lab.kafka.broker import LocalBroker
    from movieflix_lab.logs import configure_logging

    configure_logging()  # librdkafka's retried conditions out of the benchmark's output
    from movieflix_lab.kafka.catalog import WATCH_HISTORY, create_topics
    from movieflix_lab.kafka.client import admin_client

    home = Path(tempfile.mkdtemp(prefix="movieflix-bench-"))
    settings = Settings(**{
        "kafka_data_dir": home / "kafka", "data_dir": home / "data",
        "models_dir": home / "models", "local_kafka_port": free_port(),
        "local_controller_port": free_port(), **overrides,
    })  # fmt: skip
    broker = LocalBroker(settings)
    try:
        with Console().status("starting a broker of the benchmark's own…"):
            broker.start()
            create_topics(settings)
            if whole_history:
                change = ConfigResource(ResourceType.TOPIC, WATCH_HISTORY.name, incremental_configs=[
                    ConfigEntry("cleanup.policy", "delete",
                                incremental_operation=AlterConfigOpType.SET),
                    ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET),
                ])  # fmt: skip
                admin = admin_client(settings)  # kept alive until the futures resolve
                for future in admin.incremental_alter_configs([change]).values():
                    future.result()
        yield settings
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def quix_floor(settings: Settings, topics: Sequence[str], *, concat: bool,
               low_latency: bool, quiet: float = 3.0) -> tuple[float, int]:  # fmt: skip
    """Quix Streams' own cost of reading ``topics``: an app made as the stream apps are made
    (:func:`~movieflix_lab.streams.app.stream_application`: same consumer settings, same
    decode) that does nothing with a record. ``concat``: the inputs aligned by event time
    through Quix's partition buffers, as the fraud app reads them.

    Returns the seconds from launch until caught up (the quiet period subtracted) and the
    records it saw. What an app costs above this is its own work; what this costs above raw
    confluent-kafka is the framework's, which no change to the app can take away.
    """
    import uuid

    from movieflix_lab.kafka.serde import EventDeserializer
    from movieflix_lab.streams.app import stream_application

    run_settings = settings.model_copy(
        update={"stream_group_prefix": f"bench-floor-{uuid.uuid4().hex[:6]}-"}
    )
    started = time.perf_counter()
    stream = stream_application(run_settings, "floor", low_latency=low_latency)
    app = stream.app
    frames = [app.dataframe(app.topic(name, key_deserializer="str",
                                      value_deserializer=EventDeserializer()))
              for name in topics]  # fmt: skip
    seen = [0]

    def count(value: Any) -> None:
        seen[0] += 1

    if concat:
        merged = frames[0]
        for frame in frames[1:]:
            merged = merged.concat(frame)
        frames = [merged]
    for frame in frames:
        frame.update(count)
    app.run(timeout=quiet)
    return time.perf_counter() - started - quiet, seen[0]


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- HTTP load (run it in a process of its own, beside the server) -----------------------

#: One request: ``send(session, i)`` makes request number ``i`` and returns its status.
Send = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fixed_rate(send: Send, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: request i is sent at start + i/rate whatever happened to the others;
    latency counts from when it was due."""
    total = int(rate * seconds)
    latencies: list[float] = []
    failures = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(i: int, scheduled: float) -> None:
            nonlocal failures
            failures += await send(session, i) != 200
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter() + 0.2
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests_per_s": total / elapsed, "requests": total, "failures": failures,
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000}  # fmt: skip


async def closed_loop(send: Send, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` concurrent clients, each sending its next request when answered."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                await send(session, i)
                latencies.append(time.perf_counter() - sent)
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests_per_s": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000}  # fmt: skip
