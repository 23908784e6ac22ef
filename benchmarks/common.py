"""What every benchmark shares: the machine description and writing results."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from movieflix_lab.config import PROJECT_ROOT
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
            f"| {row['metric']} | {_fmt(row['value'])} {row.get('unit', '')} | "
            f"{row.get('anchor', '-')} | {_fmt(row.get('anchor_value'))} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {row.get('goal', '-')} |"
        )
    notes = results.get("notes")
    if notes:
        lines += ["", *notes]
    (RESULTS_DIR / f"{name}.md").write_text("\n".join(lines) + "\n")
    return RESULTS_DIR / f"{name}.md"


def _fmt(value: Any) -> str:
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
